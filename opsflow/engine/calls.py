"""The AWS calls a run makes, each tied to the state that made it.

moto's interpreter runs each execution, Map iteration and Parallel branch in a thread of its
own, and each task (with its in-process Lambda handler) in a thread that logs the task's own
events (``TaskScheduled``, ``LambdaFunctionStarted``, …) before it calls AWS. So every call is
recorded with ``event``: the id of the history event its thread logged last (``None``: a call
made outside the execution, such as an approver opening the approval page). The history's
``previousEventId`` chain then ties that event to its state (:func:`opsflow.view.visits`).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from opsflow.engine.clock import VirtualClock

PARAMS_CHARS = 600
"""How much of a call's parameters the record keeps (the full input is in the history)."""
_RESOURCE = re.compile(
    r"\b(?:i|sg|snap|vol|eni|vpc|subnet|ami)-[0-9a-f]{8,17}\b|arn:aws[a-z-]*:[^\s\"',\\]+"
)
_SKIP_PARAMS = {("lambda", "Invoke"): ("Payload",)}
READS = ("Describe", "Get", "List", "Search", "Lookup", "Query", "Scan", "BatchGet")
"""Operations that change nothing in the account (by AWS's naming)."""


def resources_in(value: Any) -> list[str]:
    """The resource IDs and ARNs named anywhere in ``value`` (sorted, distinct)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return sorted(set(_RESOURCE.findall(text)))


@dataclass
class CallLog:
    """Listens to the history and to the boundary; ``records`` are the run's calls, in order."""

    clock: VirtualClock
    _raw: list[tuple[Any, ...]] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_history(self, event: dict[str, Any]) -> None:
        self._local.event = event["id"]

    def on_call(
        self, service: str, operation: str, region: str, principal: str | None,
        params: dict[str, Any], result: Any, error: str | None,
    ) -> None:
        # Kept as given, made into a record only when asked for (most runs never are).
        raw = (getattr(self._local, "event", None), self.clock.now().isoformat(), service,
               operation, region, principal, dict(params), result, error)
        with self._lock:
            self._raw.append(raw)

    @property
    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            raw = list(self._raw)
        return [_record(*item) for item in raw]


def _record(
    event: int | None, time: str, service: str, operation: str, region: str,
    principal: str | None, params: dict[str, Any], result: Any, error: str | None,
) -> dict[str, Any]:
    if error is None and isinstance(result, dict) and result.get("FunctionError"):
        error = f"Lambda.{result['FunctionError']}"
    skip = _SKIP_PARAMS.get((service, operation), ())
    shown = {k: v for k, v in params.items() if k not in skip}
    text = json.dumps(shown, default=str, sort_keys=True)
    answer: Any = {}
    if isinstance(result, dict) and not operation.startswith(READS):
        # What a change created (a group's ID, a snapshot's): reads change nothing, and their
        # answers can be large.
        answer = {k: v for k, v in result.items() if k not in ("ResponseMetadata", "Payload")}
    return {
        "event": event,
        "time": time,
        "service": service,
        "operation": operation,
        "region": region,
        "principal": principal,
        "error": error,
        "params": text if len(text) <= PARAMS_CHARS else text[: PARAMS_CHARS - 1] + "…",
        "resources": resources_in([shown, answer]),
    }
