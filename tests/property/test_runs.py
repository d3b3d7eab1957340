"""Whole runs of every runbook on the in-process engine, with generated events: each ends in a
state the runbook chose, no Lambda crashes, a rejected event changes nothing but the delivery
record (read from the account, ``execution.effects``), and nothing is done for another account.

One engine per test serves many examples (see ``conftest.Bench``): each example's effects are
its own diff of the account, and an example that changed the account hands over to a fresh one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from tests.property import harness
from tests.property import strategies as s
from tests.property.conftest import examples
from workflows.catalog import SCENARIOS

ALLOWED = harness.typed_errors()


def judge(scenario: str, event: Any, what: str, execution: Any) -> None:
    found = harness.problems(scenario, event, execution, ALLOWED)
    harness.TALLY.run(scenario, execution, found)
    unknown = [p for p in found if harness.known_defect(scenario, p) is None]
    assert not unknown, (
        f"{what} ({s.size_of(event)} bytes): ended {execution.status} "
        f"{execution.outcome or execution.error}: "
        + "; ".join(f"{p.kind}: {p.detail}" for p in unknown)
    )


SETUPS = [(scenario, {}) for scenario in sorted(SCENARIOS)] + [
    # The failover with every step it can take: capacity, the data tier, routing controls.
    ("region-failover", {"TrafficMechanism": "arc", "AutoScalingGroupName": "web",
                         "StandbyCapacity": "3", "GlobalClusterIdentifier": "shop"}),
]


@pytest.mark.parametrize("scenario, parameters", SETUPS,
                         ids=[s + ("-every-step" if p else "") for s, p in SETUPS])
def test_every_event_ends_as_the_runbook_chose(
    scenario: str, parameters: dict[str, str], bench_factory: Any
) -> None:
    bench = bench_factory(scenario, parameters)

    @settings(max_examples=examples("run"))
    @given(s.events(scenario))
    def check(pair: tuple[Any, str]) -> None:
        event, what = pair
        harness.TALLY.event("run", scenario)
        judge(scenario, event, what, bench.run(event))

    check()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rejected_samples_leave_one_engine_unchanged(scenario: str, bench_factory: Any) -> None:
    """The sample events a runbook refuses, run one after another on one engine: the account
    after all of them is the account before, but for delivery records."""
    bench = bench_factory(scenario)
    engine = bench.engine
    before = engine.observe()
    rejected = 0
    for name, event in s.samples(scenario).items():
        execution = engine.run(scenario, event)
        if execution.error == "Runbook.InvalidEvent" or execution.outcome == "no-action":
            rejected += 1
            judge(scenario, event, name, execution)
        elif execution.effects:
            bench.close()
            engine = bench.engine
            before = engine.observe()
    from opsflow.engine import observe

    left = [e for e in observe.diff(before, engine.observe()) if not harness.delivery_record(e)]
    assert rejected and not left, left
