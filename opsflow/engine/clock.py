"""Virtual time for local runs.

moto's interpreter sleeps in exactly two places: a Wait state's interval and a Retry's backoff.
Both advance this clock instead of sleeping, history events are stamped with it, and the
emulated world's slow changes (an instance stopping) follow it. Hours of incident run in
seconds, and every run of the same inputs reports the same times.

Concurrent branches (Map iterations, Parallel branches) share the one clock, so their waits add
up: virtual durations of concurrent work are an upper bound of the real ones.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2026, 3, 14, 3, 12, 0, tzinfo=UTC)


class VirtualClock:
    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._lock = threading.Lock()
        self._start = start
        self._offset = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._offset)

    def elapsed(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._offset += float(seconds)

    def reset(self, start: datetime | None = None) -> None:
        with self._lock:
            if start is not None:
                self._start = start
            self._offset = 0.0

    def state(self) -> tuple[datetime, float]:
        """The start and the seconds elapsed since: what :meth:`set_state` takes back."""
        with self._lock:
            return self._start, self._offset

    def set_state(self, state: tuple[datetime, float]) -> None:
        with self._lock:
            self._start, self._offset = state
