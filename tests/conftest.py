from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(relative: str) -> Any:
    """A sample event from ``events/`` (the same files ``sam local invoke`` and the CLI use)."""
    return json.loads((EVENTS / relative).read_text(encoding="utf-8"))


@pytest.fixture
def engine_factory(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start a local engine (fresh emulated account) with faults and parameter overrides.

    Only the world and state machine of the test module's ``SCENARIO`` are built, when it has one.
    """
    scenario = getattr(request.module, "SCENARIO", None)
    from opsflow.engine.boundary import parse_fault
    from opsflow.engine.runner import LocalEngine

    started: list[Any] = []

    def start(faults: tuple[str, ...] = (), **parameters: str) -> Any:
        engine = LocalEngine(
            faults=[parse_fault(f) for f in faults],
            parameters=parameters,
            scenarios=[scenario] if scenario else None,
        )
        engine.__enter__()
        started.append(engine)
        return engine

    yield start
    for engine in reversed(started):
        engine.__exit__(None, None, None)


@pytest.fixture
def engine(engine_factory: Any) -> Any:
    return engine_factory()
