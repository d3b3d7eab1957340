"""Every runbook's event parser, given anything: it returns a plan or refuses with
``InvalidEvent``, never crashes, and never plans to act on what the event names as another
account's or partition's."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from ebs_quota import quotas
from health_abuse import entities
from health_abuse import plan as health_plan
from hypothesis import given, settings
from region_failover import app as failover
from runbook_kit.errors import InvalidEvent

from tests.property import harness
from tests.property import strategies as s
from tests.property.conftest import examples

ALLOWED = harness.typed_errors()
PARSERS = {
    "health-abuse": health_plan.parse,
    "region-failover": failover.parse,
    "ebs-quota-forecast": quotas.read_trigger,
}
"""The real entry points: what each runbook's first Lambda task calls with the event."""


def parse(scenario: str, event: Any, deployed: dict[str, Any]) -> tuple[Any, list[harness.Problem]]:
    """(the plan, or None when the parser refused the event with ``InvalidEvent``; a crash as
    a problem, as the Lambda function would report it)."""
    config = deployed[scenario]
    try:
        plan = PARSERS[scenario](json.loads(json.dumps(event)), dict(config["settings"]),
                                 config["execution"], account=s.HOME)
    except InvalidEvent as refused:
        assert str(refused).strip(), "a refusal must say why"
        return None, []
    except Exception as crash:  # the function's error: a crash unless it is a typed one
        if type(crash).__name__ in ALLOWED:
            return None, []
        return None, [harness.Problem("lambda-crash", f"{type(crash).__name__}: {crash}"[:300])]
    json.dumps(plan)  # the plan is the task's result: it must be JSON
    assert isinstance(plan, dict) and plan["scenario"] == scenario
    return plan, []


def check_plan(scenario: str, event: Any, plan: dict[str, Any] | None) -> list[harness.Problem]:
    if plan is None:
        return []
    found = []
    acts = not plan.get("ignoredBecause")
    foreign = harness.foreign_event(scenario, event)
    if foreign and acts and (scenario != "health-abuse" or plan.get("reported")):
        found.append(harness.Problem("acted-on-foreign", f"planned to act on an event for "
                                     f"{foreign}"))
    if scenario == "health-abuse":
        named = harness.own_names(event)
        others = harness.foreign_names(event)
        # Whatever shape the plan gives its reported instances, their IDs are its strings.
        planned = {text for text in harness.strings_in(plan.get("reported"))
                   if re.fullmatch(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?", text)}
        for instance in sorted(planned - named):
            why = others.get(instance, "not named at all")
            found.append(harness.Problem(
                "acted-on-foreign", f"{instance} planned; the event names it only as {why}"))
    return found


@pytest.mark.parametrize("scenario", sorted(PARSERS))
def test_parser_plans_or_refuses(scenario: str, deployed_settings: dict[str, Any]) -> None:
    @settings(max_examples=examples("parse"))
    @given(s.events(scenario))
    def check(pair: tuple[Any, str]) -> None:
        event, what = pair
        harness.TALLY.event("parse", scenario)
        plan, crashed = parse(scenario, event, deployed_settings)
        found = crashed + check_plan(scenario, event, plan)
        unknown = [p for p in found if not harness.known_defect(scenario, p)]
        for problem in found:
            if problem not in unknown:
                harness.TALLY.known[harness.known_defect(scenario, problem).id] += 1  # type: ignore[union-attr]
        assert not unknown, f"{what}: {unknown}"

    check()


def test_health_entities_read_never_crashes() -> None:
    """``entities.read`` alone, with and without the runbook's account."""

    @settings(max_examples=examples("parse"))
    @given(s.events("health-abuse"))
    def check(pair: tuple[Any, str]) -> None:
        event, _ = pair
        harness.TALLY.event("parse", "health-abuse")
        for home in (s.HOME, None):
            try:
                report = entities.read(event, home)
            except InvalidEvent:
                continue
            except TypeError as crash:  # see harness.KNOWN: health-abuse-status-type
                problem = harness.Problem("lambda-crash", f"TypeError: {crash}")
                known = harness.known_defect("health-abuse", problem)
                if known is None:
                    raise
                harness.TALLY.known[known.id] += 1
                continue
            assert len({i["instanceId"] for i in report.instances}) == len(report.instances)
            assert report.page <= report.total_pages

    check()
