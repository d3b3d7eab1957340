"""Small extensions of ``stepfunctions.steps`` for ASL fields the SDK predates.

The SDK (``stepfunctions-asl`` 2.3.0) lacks ``ResultSelector`` (on Task and Map),
``ItemSelector``/``ItemProcessor``, Retry ``MaxDelaySeconds``/``JitterStrategy`` and Fail
``ErrorPath``/``CausePath``. Each extension subclasses the SDK's class, adds the field names to
the allowed set and, where the shape differs, overrides ``to_dict``; nothing in the SDK is
patched.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from stepfunctions.steps import states
from stepfunctions.steps.fields import Field


class ExtraField(Enum):
    ResultSelector = "result_selector"
    ItemSelector = "item_selector"
    ErrorPath = "error_path"
    CausePath = "cause_path"
    MaxDelaySeconds = "max_delay_seconds"
    JitterStrategy = "jitter_strategy"
    ToleratedFailurePercentage = "tolerated_failure_percentage"


class Retry(states.Retry):
    """Retry with ``MaxDelaySeconds`` and ``JitterStrategy``."""

    def allowed_fields(self) -> list[Any]:
        return [*super().allowed_fields(), ExtraField.MaxDelaySeconds, ExtraField.JitterStrategy]


class Task(states.Task):
    """Task with ``ResultSelector``."""

    def allowed_fields(self) -> list[Any]:
        return [*super().allowed_fields(), ExtraField.ResultSelector]


class Pass(states.Pass):
    pass


class Fail(states.Fail):
    """Fail with ``ErrorPath``/``CausePath`` (a cause computed by the run, e.g. a rollback report)."""

    def allowed_fields(self) -> list[Any]:
        return [*super().allowed_fields(), ExtraField.ErrorPath, ExtraField.CausePath]


class Map(states.Map):
    """Map written with the current field names: ``ItemProcessor`` (INLINE) and ``ItemSelector``,
    and with ``ResultSelector``.

    The SDK writes the deprecated ``Iterator``/``Parameters`` pair; AWS accepts both, the console
    and the validators prefer these.
    """

    def allowed_fields(self) -> list[Any]:
        fields = [f for f in super().allowed_fields() if f is not Field.Parameters]
        return [
            *fields,
            ExtraField.ItemSelector,
            ExtraField.ResultSelector,
            ExtraField.ToleratedFailurePercentage,
        ]

    def to_dict(self) -> dict[str, Any]:
        result = super().to_dict()
        iterator = result.pop("Iterator")
        result["ItemProcessor"] = {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": iterator["StartAt"],
            "States": iterator["States"],
        }
        return result


Choice = states.Choice
Succeed = states.Succeed
Wait = states.Wait
Chain = states.Chain
Catch = states.Catch
Graph = states.Graph
