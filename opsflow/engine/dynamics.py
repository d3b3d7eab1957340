"""Time-dependent behaviour of the emulated account, on the virtual clock.

moto stops an instance at once; AWS takes tens of seconds, and sometimes an instance stays
``stopping``. Here ``StopInstances`` leaves the instance ``stopping`` and it becomes ``stopped``
once ``stop_seconds`` of virtual time have passed, checked at every EC2 call. The ``Hang`` fault
(``ec2:StopInstances=Hang``) makes the stop never complete.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime, timedelta
from typing import Any

from moto.ec2.models.instances import Instance
from moto.elbv2.models import FakeTargetGroup

from opsflow.engine.boundary import HANG, Boundary
from opsflow.engine.clock import VirtualClock

_original_stop = Instance.stop
_active: Ec2Dynamics | None = None


class Ec2Dynamics:
    def __init__(self, clock: VirtualClock, boundary: Boundary, stop_seconds: float = 40.0) -> None:
        self.clock = clock
        self.boundary = boundary
        self.stop_seconds = stop_seconds
        self._pending: dict[int, tuple[Instance, datetime | None]] = {}
        # When each stop is due, soonest first: a tick looks only at what is due, so an EC2
        # call costs the same with one instance stopping or a thousand.
        self._due: list[tuple[datetime, int]] = []
        self._lock = threading.Lock()

    def stopping(self, instance: Instance) -> None:
        hang = ("ec2", "StopInstances") in self.boundary.hangs
        due = None if hang else self.clock.now() + timedelta(seconds=self.stop_seconds)
        instance._state.name = "stopping"
        instance._state.code = 64
        with self._lock:
            self._pending[id(instance)] = (instance, due)
            if due is not None:
                heapq.heappush(self._due, (due, id(instance)))

    def pending(self) -> int:
        """Instances still stopping (an instance started or terminated meanwhile is not)."""
        with self._lock:
            for key, (instance, _) in list(self._pending.items()):
                if instance._state.name != "stopping":
                    del self._pending[key]
            return len(self._pending)

    def tick(self, service: str = "ec2", operation: str = "", params: Any = None) -> None:
        """Each instance whose stop is due and that is still ``stopping`` becomes ``stopped``."""
        if service != "ec2":
            return
        now = self.clock.now()
        with self._lock:
            while self._due and self._due[0][0] <= now:
                due, key = heapq.heappop(self._due)
                entry = self._pending.get(key)
                if entry is None or entry[1] != due:
                    continue  # stopped again since: a later due time stands for it
                instance = entry[0]
                del self._pending[key]
                if instance._state.name == "stopping":
                    instance._state.name = "stopped"
                    instance._state.code = 80


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
    deactivate_draining()


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

    def pending(self) -> int:
        """Changes this engine is timing."""
        with self._lock:
            return len(self._changes)

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


class TargetDraining:
    """A deregistered target drains: ``DescribeTargetHealth`` reports it ``draining``
    (``Target.DeregistrationInProgress``) for its target group's
    ``deregistration_delay.timeout_seconds`` of virtual time, then no more; moto forgets it at
    once. This holds however it was deregistered (``DeregisterTargets``, or its Auto Scaling
    group when it enters Standby or is detached). With the fault ``elbv2:DeregisterTargets=Hang``
    every deregistered target drains for ever; registering it again ends its draining."""

    def __init__(self, clock: VirtualClock, boundary: Boundary) -> None:
        self.clock = clock
        self.boundary = boundary
        self._draining: dict[tuple[str, str], tuple[dict[str, Any], datetime | None]] = {}
        self._lock = threading.Lock()

    def deregistered(self, group: Any, targets: list[dict[str, Any]]) -> None:
        hang = any(
            (f.service, f.operation, f.code) == ("elbv2", "DeregisterTargets", HANG)
            for f in self.boundary.faults
        )
        delay = float(group.attributes.get("deregistration_delay.timeout_seconds", 300))
        due = None if hang else self.clock.now() + timedelta(seconds=delay)
        with self._lock:
            for target in targets:
                self._draining[(group.arn, target["Id"])] = (
                    {"Id": target["Id"], "Port": int(target.get("Port") or group.port)}, due)

    def pending(self) -> int:
        """Targets draining."""
        with self._lock:
            return len(self._draining)

    def registered(self, group: Any, targets: list[dict[str, Any]]) -> None:
        with self._lock:
            for target in targets:
                self._draining.pop((group.arn, target["Id"]), None)

    def after(self, service: str, operation: str, params: Any, result: Any) -> None:
        if (service, operation) != ("elbv2", "DescribeTargetHealth"):
            return
        arn = str(params.get("TargetGroupArn", ""))
        now = self.clock.now()
        asked = {t["Id"] for t in params.get("Targets", [])}
        registered = {
            d["Target"]["Id"] for d in result.get("TargetHealthDescriptions", [])
            if (d.get("TargetHealth") or {}).get("Reason") != "Target.NotRegistered"
        }
        with self._lock:
            for (group, target_id), (target, due) in list(self._draining.items()):
                if group != arn:
                    continue
                if due is not None and due <= now:
                    del self._draining[(group, target_id)]
                    continue
                if target_id in registered or (asked and target_id not in asked):
                    continue
                descriptions = [
                    d for d in result.get("TargetHealthDescriptions", [])
                    if d["Target"]["Id"] != target_id
                ]
                descriptions.append({
                    "Target": target,
                    "TargetHealth": {
                        "State": "draining",
                        "Reason": "Target.DeregistrationInProgress",
                        "Description": "Target deregistration is in progress",
                    },
                })
                result["TargetHealthDescriptions"] = descriptions

    def activate(self) -> None:
        global _draining
        _draining = self
        FakeTargetGroup.register = _register  # type: ignore[method-assign]
        FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
        self.boundary.after_call.append(self.after)


_draining: TargetDraining | None = None
_original_register = FakeTargetGroup.register
_original_deregister = FakeTargetGroup.deregister


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _original_register(self, targets)
    if _draining is not None:
        _draining.registered(self, targets)


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    known = [dict(self.targets[t["Id"]]) for t in targets if t["Id"] in self.targets]
    _original_deregister(self, targets)
    if _draining is not None:
        _draining.deregistered(self, known)


def deactivate_draining() -> None:
    global _draining
    _draining = None
    FakeTargetGroup.register = _original_register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _original_deregister  # type: ignore[method-assign]
