"""Time-dependent behaviour of the emulated account, on the virtual clock.

moto stops an instance at once; AWS takes tens of seconds, and sometimes an instance stays
``stopping``. Here ``StopInstances`` leaves the instance ``stopping`` and it becomes ``stopped``
once ``stop_seconds`` of virtual time have passed, checked at every EC2 call. The ``Hang`` fault
(``ec2:StopInstances=Hang``) makes the stop never complete.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from moto.ec2.models.instances import Instance

from opsflow.engine.boundary import Boundary
from opsflow.engine.clock import VirtualClock

_original_stop = Instance.stop
_active: Ec2Dynamics | None = None


class Ec2Dynamics:
    def __init__(self, clock: VirtualClock, boundary: Boundary, stop_seconds: float = 40.0) -> None:
        self.clock = clock
        self.boundary = boundary
        self.stop_seconds = stop_seconds
        self._pending: dict[int, tuple[Instance, datetime | None]] = {}
        self._lock = threading.Lock()

    def stopping(self, instance: Instance) -> None:
        hang = ("ec2", "StopInstances") in self.boundary.hangs
        due = None if hang else self.clock.now() + timedelta(seconds=self.stop_seconds)
        instance._state.name = "stopping"
        instance._state.code = 64
        with self._lock:
            self._pending[id(instance)] = (instance, due)

    def tick(self, service: str = "ec2", operation: str = "", params: Any = None) -> None:
        if service != "ec2":
            return
        now = self.clock.now()
        with self._lock:
            for key, (instance, due) in list(self._pending.items()):
                if instance._state.name != "stopping":
                    del self._pending[key]
                elif due is not None and due <= now:
                    instance._state.name = "stopped"
                    instance._state.code = 80
                    del self._pending[key]


def _stop(self: Instance) -> Any:
    previous = _original_stop(self)
    if _active is not None and previous.name not in ("stopped", "stopping"):
        _active.stopping(self)
    return previous


def activate(dynamics: Ec2Dynamics) -> None:
    global _active
    _active = dynamics
    Instance.stop = _stop  # type: ignore[method-assign]
    dynamics.boundary.before_call.append(dynamics.tick)


def deactivate() -> None:
    global _active
    _active = None
    Instance.stop = _original_stop  # type: ignore[method-assign]


class Route53Dynamics:
    """Route 53 changes are ``PENDING`` until they reach every edge (``sync_seconds`` of virtual
    time), then ``INSYNC``; moto says ``INSYNC`` at once. ``route53:ChangeResourceRecordSets=Hang``
    leaves a change ``PENDING`` for ever."""

    def __init__(self, clock: VirtualClock, boundary: Boundary, sync_seconds: float = 30.0) -> None:
        self.clock = clock
        self.boundary = boundary
        self.sync_seconds = sync_seconds
        self._changes: dict[str, tuple[datetime, datetime | None]] = {}
        self._lock = threading.Lock()

    def after(self, service: str, operation: str, params: Any, result: Any) -> None:
        if (service, operation) != ("route53", "ChangeResourceRecordSets"):
            return
        change = result["ChangeInfo"]
        hang = ("route53", "ChangeResourceRecordSets") in self.boundary.hangs
        now = self.clock.now()
        due = None if hang else now + timedelta(seconds=self.sync_seconds)
        with self._lock:
            self._changes[change["Id"].split("/")[-1]] = (now, due)
        change["Status"] = "PENDING"

    def get_change(self, params: dict[str, Any], region: str) -> dict[str, Any] | None:
        change_id = str(params.get("Id", "")).split("/")[-1]
        with self._lock:
            known = self._changes.get(change_id)
        if known is None:
            return None
        submitted, due = known
        status = "INSYNC" if due is not None and self.clock.now() >= due else "PENDING"
        return {
            "ChangeInfo": {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted},
            "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "opsflow-local"},
        }

    def activate(self) -> None:
        self.boundary.after_call.append(self.after)
        self.boundary.overrides[("route53", "GetChange")] = self.get_change
