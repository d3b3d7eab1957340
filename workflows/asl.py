"""Deterministic ASL serialisation: the same workflow always gives the same bytes.

Field order inside each state follows the order people read in the console (type, what it
does, how data flows, where it goes next, error handling); states keep the order the graph
was built in, which follows the runbook from top to bottom.
"""

from __future__ import annotations

import json
from typing import Any

_STATE_KEY_ORDER = [
    "Type",
    "Comment",
    "Resource",
    "Arguments",
    "Parameters",
    "ItemsPath",
    "ItemSelector",
    "MaxConcurrency",
    "ToleratedFailurePercentage",
    "ItemProcessor",
    "Iterator",
    "Branches",
    "Seconds",
    "SecondsPath",
    "Timestamp",
    "TimestampPath",
    "TimeoutSeconds",
    "HeartbeatSeconds",
    "Result",
    "InputPath",
    "ResultSelector",
    "ResultPath",
    "OutputPath",
    "Choices",
    "Default",
    "Error",
    "ErrorPath",
    "Cause",
    "CausePath",
    "Retry",
    "Catch",
    "Next",
    "End",
]
_RANK = {key: index for index, key in enumerate(_STATE_KEY_ORDER)}


def _order_state(state: dict[str, Any]) -> dict[str, Any]:
    ordered = {key: state[key] for key in sorted(state, key=lambda k: (_RANK.get(k, 999), k))}
    for key in ("ItemProcessor", "Iterator"):
        if key in ordered:
            ordered[key] = order_definition(ordered[key])
    if "Branches" in ordered:
        ordered["Branches"] = [order_definition(branch) for branch in ordered["Branches"]]
    return ordered


def order_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """Return ``definition`` with top-level and per-state keys in canonical order."""
    head = ["Comment", "ProcessorConfig", "QueryLanguage", "StartAt", "TimeoutSeconds", "Version"]
    result: dict[str, Any] = {key: definition[key] for key in head if key in definition}
    result["States"] = {
        name: _order_state(state) for name, state in definition["States"].items()
    }
    for key, value in definition.items():
        if key not in result:
            result[key] = value
    return result


def dumps(definition: dict[str, Any]) -> str:
    """Serialise a state machine definition: canonical order, 2-space indent, final newline."""
    return json.dumps(order_definition(definition), indent=2, ensure_ascii=False) + "\n"
