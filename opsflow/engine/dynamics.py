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
    Instance.stop = _stop
    dynamics.boundary.before_call.append(dynamics.tick)


def deactivate() -> None:
    global _active
    _active = None
    Instance.stop = _original_stop
