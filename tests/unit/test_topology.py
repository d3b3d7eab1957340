"""Where region-failover runs: outside the region it fails away from.

The stack (the runbook, its state in Parameter Store, the canary and its alarms) is deployed in
the standby region, so an outage of the primary leaves it running; the runbook refuses to run
in its own primary region.
"""

from __future__ import annotations

import shlex
import tomllib
from typing import Any

import pytest
from region_failover import app
from runbook_kit.errors import InvalidEvent

from opsflow import template as cfn
from tests.conftest import ROOT, load_event

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:opsflow-region-failover:sample"


def environments() -> dict[str, dict[str, Any]]:
    found = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    return {name: value for name, value in found.items() if isinstance(value, dict)}


def deployed_parameters(environment: dict[str, Any]) -> dict[str, str]:
    defaults = {k: str(v) for k, v in cfn.parameter_defaults(cfn.cached()).items()}
    overrides = environment.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    return {**defaults, **dict(pair.split("=", 1) for pair in shlex.split(overrides))}


@pytest.mark.parametrize("name", sorted(environments()))
def test_every_environment_deploys_the_stack_in_the_standby_region(name: str) -> None:
    environment = environments()[name]
    region = environment["global"]["parameters"]["region"]
    parameters = deployed_parameters(environment)

    assert region == parameters["StandbyRegion"]
    assert region != parameters["PrimaryRegion"]


def test_the_runbook_refuses_to_run_in_its_primary_region() -> None:
    payload = load_event("region-failover/functions/ParseAlarmFunction.json")
    settings = dict(payload["settings"], alarmRegion=payload["settings"]["primaryRegion"])

    with pytest.raises(InvalidEvent, match="its primary region"):
        app.parse(payload["event"], settings, EXECUTION)


def test_the_sample_settings_run_from_the_standby() -> None:
    payload = load_event("region-failover/functions/ParseAlarmFunction.json")
    plan = app.parse(payload["event"], payload["settings"], EXECUTION)

    assert plan["settings"]["alarmRegion"] == plan["to"] == payload["settings"]["standbyRegion"]
