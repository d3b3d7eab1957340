"""Every path of the region-failover runbook, run for real on the emulated account.

Assertions read the account afterwards (Route 53 weights, Global Accelerator dials, the
runbook's state in Parameter Store) and the execution history.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.conftest import (
    EVENTS,
    check_function_payload,
    check_sample_event,
    failed_tasks,
    function_payloads,
    load_event,
)

SCENARIO = "region-failover"
PRIMARY, STANDBY = "us-east-1", "us-east-2"


def weights(engine: Any) -> dict[str, int]:
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = engine.world[SCENARIO]["zoneId"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {r["SetIdentifier"]: r["Weight"] for r in records if "SetIdentifier" in r}


def dials(engine: Any) -> dict[str, float]:
    return {
        g["EndpointGroupRegion"]: g["TrafficDialPercentage"]
        for g in engine.fakes["globalaccelerator"].endpoint_groups()
    }


def state(engine: Any) -> dict[str, Any]:
    ssm = boto3.client("ssm", region_name="us-east-1")
    return json.loads(ssm.get_parameter(Name="/opsflow/region-failover/state")["Parameter"]["Value"])


def alarm_event(**overrides: Any) -> dict[str, Any]:
    event = load_event("region-failover/alarm-primary.json")
    if overrides:
        event["opsflow"] = overrides
    return event


def test_failover_with_route53_is_mitigated(engine: Any) -> None:
    event = alarm_event()
    assert [r.scenario for r in engine.match(event)] == [SCENARIO]
    execution = engine.run(SCENARIO, event)

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "mitigated"
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}
    assert state(engine)["before"] == {PRIMARY: 100, STANDBY: 0}
    assert state(engine)["lastFailover"] == event["time"]
    assert execution.states.count("Verify: Check target region") == 3  # 3 healthy checks


def test_failover_with_global_accelerator_is_mitigated(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="globalaccelerator")
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.outcome == "mitigated", execution.cause
    assert dials(engine) == {PRIMARY: 0.0, STANDBY: 100.0}
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}  # DNS untouched


def test_dry_run_moves_nothing(engine: Any) -> None:
    execution = engine.run(SCENARIO, alarm_event(dryRun=True))

    assert execution.outcome == "dry-run"
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert execution.output["actions"]["wouldSet"] == {PRIMARY: 0, STANDBY: 100}


@pytest.mark.parametrize(
    "name", ["alarm-other-metric.json", "alarm-back-to-ok.json", "alarm-from-insufficient-data.json"]
)
def test_other_alarms_and_transitions_do_not_start_it(engine: Any, name: str) -> None:
    event = load_event(f"region-failover/{name}")
    assert engine.match(event) == []
    execution = engine.run(SCENARIO, event)  # started by hand: still no action
    assert execution.outcome == "no-action"
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_standby_alarm_is_no_action(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-standby.json"))
    assert execution.outcome == "no-action"
    assert "carries no traffic" in execution.notifications[0]["message"]


def test_cooldown_is_no_action(engine: Any) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/opsflow/region-failover/state", Type="String", Overwrite=True,
                      Value=json.dumps({"lastFailover": "2026-03-14T03:00:00Z"}))
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.outcome == "no-action"
    assert "cooldown: the last failover was 30 min ago" in execution.notifications[0]["message"]
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_unhealthy_target_escalates_and_moves_nothing(engine: Any) -> None:
    site = engine.world[SCENARIO]["sites"][STANDBY]
    boto3.client("elbv2", region_name=STANDBY).deregister_targets(
        TargetGroupArn=site["targetGroup"], Targets=[{"Id": i} for i in site["instances"][:2]]
    )
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.error == "Runbook.Escalated"
    assert "us-east-2 has 1 healthy targets, fewer than 2" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_target_alarm_not_ok_escalates(engine: Any) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    cloudwatch.set_alarm_state(AlarmName="opsflow-canary-us-east-2", StateValue="ALARM",
                               StateReason="test")
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.error == "Runbook.Escalated"
    assert "canary alarm opsflow-canary-us-east-2 is ALARM" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_approval_approved_moves_traffic(engine_factory: Any) -> None:
    engine = engine_factory(RequireApproval="true")
    engine.approval = "approve"
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.outcome == "mitigated", execution.cause
    assert "Act: Wait for approval" in execution.states
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}


@pytest.mark.parametrize(("answer", "why"), [("reject", "Runbook.Rejected"), (None, "States.Timeout")])
def test_approval_rejected_or_timed_out_escalates(
    engine_factory: Any, answer: str | None, why: str
) -> None:
    engine = engine_factory(RequireApproval="true")
    engine.approval = answer
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.error == "Runbook.Escalated"
    assert execution.cause.startswith("Not approved:") and why in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_throttled_record_change_is_retried(engine_factory: Any) -> None:
    engine = engine_factory(faults=("route53:ChangeResourceRecordSets=Throttling*2",))
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.outcome == "mitigated", execution.cause
    assert failed_tasks(execution, "Throttled") == 2
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}


def test_verify_failure_rolls_back_to_the_original_weights(engine_factory: Any) -> None:
    engine = engine_factory(faults=("route53:ChangeResourceRecordSets=Hang",))
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.RolledBack"
    assert "not confirmed after 10 checks" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert "Rollback: Restore traffic split" in execution.states


def test_failback_moves_traffic_home(engine: Any) -> None:
    assert engine.run(SCENARIO, alarm_event()).outcome == "mitigated"
    execution = engine.run(SCENARIO, load_event("region-failover/failback.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert "us-east-1: 3 of 3 targets healthy" in execution.notifications[0]["message"]


def test_malformed_event_is_rejected(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("region-failover/malformed-no-state.json"))
    assert execution.error == "Runbook.InvalidEvent"
    assert "detail.state.value is missing" in execution.cause


def test_chaos_latency_raises_the_alarm_and_fails_over(engine: Any) -> None:
    played = engine.chaos_latency(PRIMARY, delay_ms=300, minutes=15)

    assert played.event is not None
    assert played.event["detail"]["state"]["value"] == "ALARM"
    assert played.event["detail"]["previousState"]["value"] == "OK"
    reason = json.loads(played.event["detail"]["state"]["reasonData"])
    assert all(p["value"] > p["threshold"] for p in reason["evaluatedDatapoints"])
    assert [r.scenario for r in engine.match(played.event)] == [SCENARIO]
    execution = engine.run(SCENARIO, played.event)
    assert execution.outcome == "mitigated", execution.cause
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}


def test_chaos_below_the_band_starts_nothing(engine: Any) -> None:
    played = engine.chaos_latency(PRIMARY, delay_ms=2, minutes=10, jitter_ms=0)
    assert played.event is None


EXPECTED = {
    "alarm-primary.json": ("SUCCEEDED", "mitigated"),
    "alarm-standby.json": ("SUCCEEDED", "no-action"),
    "failback.json": ("SUCCEEDED", "no-action"),
    "malformed-no-state.json": ("FAILED", "Runbook.InvalidEvent"),
    "alarm-other-metric.json": (None, None),
    "alarm-back-to-ok.json": (None, None),
    "alarm-from-insufficient-data.json": (None, None),
}


def test_every_sample_event_is_covered() -> None:
    assert {p.name for p in (EVENTS / "region-failover").glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_event_runs(engine: Any, name: str) -> None:
    check_sample_event(engine, SCENARIO, name, EXPECTED[name])


@pytest.mark.parametrize("payload", function_payloads(SCENARIO))
def test_every_function_payload_runs(engine: Any, payload: str) -> None:
    check_function_payload(engine, SCENARIO, payload)
