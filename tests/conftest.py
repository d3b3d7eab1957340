from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow import tune_gc

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def pytest_configure(config: pytest.Config) -> None:
    tune_gc()  # as the CLI does: a fifth less CPU for every rehearsal


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``heavy`` tests (each tens of seconds) first: the workers of ``pytest -n`` take them
    on at the start, side by side, instead of one worker ending the run on them alone."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


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


def failed_tasks(execution: Any, error: str) -> int:
    """How many task attempts of the run failed with ``error`` (retried or not)."""
    return sum(
        1
        for event in execution.history
        if (
            event.get("lambdaFunctionFailedEventDetails")
            or event.get("taskFailedEventDetails")
            or {}
        ).get("error")
        == error
    )


def check_sample_event(
    engine: Any,
    scenario: str,
    name: str,
    expected: tuple[str | None, str | None],
    must_match: bool = False,
) -> None:
    """Run one sample event of ``events/<scenario>/``. ``expected`` is (status, outcome or
    error); a status of None means no rule of ``template.yaml`` may start anything for it."""
    event = load_event(f"{scenario}/{name}")
    rules = engine.match(event)
    status, result = expected
    if status is None:
        assert rules == []
        return
    if must_match or rules:
        assert [r.scenario for r in rules] == [scenario]
    execution = engine.run(scenario, event)
    assert execution.status == status
    assert (execution.outcome if status == "SUCCEEDED" else execution.error) == result


def function_payloads(scenario: str) -> list[str]:
    return sorted(p.name for p in (EVENTS / scenario / "functions").glob("*.json"))


def check_function_payload(engine: Any, scenario: str, payload: str) -> None:
    """Run one ``events/<scenario>/functions/`` payload through its function, in-process."""
    succeeded, result = engine.invoke(
        payload.removesuffix(".json"), load_event(f"{scenario}/functions/{payload}")
    )
    assert succeeded, result
    assert isinstance(result, dict) and result
