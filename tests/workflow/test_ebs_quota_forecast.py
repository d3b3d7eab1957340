"""Every path of the ebs-quota-forecast runbook, run for real on the emulated account.

Assertions read the account afterwards (Service Quotas requests, CloudWatch history) and the
execution history, never what a function claims.
"""

from __future__ import annotations

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

SCENARIO = "ebs-quota-forecast"
GP2, GP3 = "L-D18FCD1D", "L-7A658B76"


def schedule(**overrides: Any) -> dict[str, Any]:
    event = load_event("ebs-quota-forecast/daily-schedule.json")
    if overrides:
        event["opsflow"] = overrides
    return event


def requests(engine: Any) -> list[dict[str, Any]]:
    return engine.fakes["service-quotas"].requests()


def test_crossing_requests_an_increase_with_the_right_value(engine: Any) -> None:
    execution = engine.run(SCENARIO, schedule())

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "mitigated"
    made = requests(engine)
    assert [(r["Region"], r["QuotaCode"]) for r in made] == [("us-east-1", GP3)]
    # Upper 90 % forecast at 30 days is about 42 TiB; plus 25 % headroom, rounded up to a TiB.
    assert 50 < made[0]["DesiredValue"] <= 56
    assert made[0]["Status"] in ("PENDING", "CASE_OPENED")
    report = execution.notifications[0]["message"]
    assert "Census (TiB per volume type):" in report
    assert "= threshold" in report  # the ASCII chart
    assert any(e["field"] == "status" for e in execution.effects)


def test_usage_is_recorded_as_metrics_so_history_accumulates(engine: Any) -> None:
    engine.run(SCENARIO, schedule(regions=["eu-west-1"]))

    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="opsflow/EBS")["Metrics"]}
    assert {"StorageTiB", "SnapshotCount"} <= names


def test_below_threshold_is_no_action(engine: Any) -> None:
    execution = engine.run(SCENARIO, schedule(regions=["eu-west-1"]))

    assert execution.status == "SUCCEEDED"
    assert execution.outcome == "no-action"
    assert requests(engine) == []
    assert "no increase needed" in execution.notifications[0]["subject"]


def test_request_already_open_is_not_duplicated(engine: Any) -> None:
    quotas = boto3.client("service-quotas", region_name="us-east-1")
    quotas.request_service_quota_increase(ServiceCode="ebs", QuotaCode=GP3, DesiredValue=60.0)
    execution = engine.run(SCENARIO, schedule(regions=["us-east-1"]))

    assert execution.outcome == "no-action"
    assert len(requests(engine)) == 1
    assert "already" in execution.notifications[0]["message"]


def test_dry_run_shows_the_request_that_would_be_made(engine: Any) -> None:
    execution = engine.run(SCENARIO, schedule(dryRun=True))

    assert execution.status == "SUCCEEDED"
    assert execution.outcome == "dry-run"
    assert requests(engine) == []
    would = [a["wouldRequest"] for a in execution.output["actions"]]
    assert [(w["QuotaCode"], w["ServiceCode"]) for w in would] == [(GP3, "ebs")]


def test_quota_without_applied_value_uses_the_aws_default(engine: Any) -> None:
    execution = engine.run(SCENARIO, schedule(regions=["ap-southeast-2"], horizonDays=120))

    assert execution.outcome == "mitigated", execution.cause
    made = requests(engine)
    assert [(r["Region"], r["QuotaCode"]) for r in made] == [("ap-southeast-2", GP2)]
    assert made[0]["DesiredValue"] > 50  # above the AWS default of 50 TiB
    assert "(AWS default)" in execution.notifications[0]["message"]


def test_throttled_census_is_retried(engine_factory: Any) -> None:
    """Two throttles are absorbed by the function's SDK retries; the third fails the task as
    Throttled and the state machine retries it."""
    engine = engine_factory(faults=("ec2@us-east-1:DescribeVolumes=RequestLimitExceeded*3",))
    execution = engine.run(SCENARIO, schedule())

    assert execution.outcome == "mitigated", execution.cause
    assert failed_tasks(execution, "Throttled") == 1
    assert len(requests(engine)) == 1


def test_region_denying_access_is_reported_and_the_others_counted(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2@eu-west-1:DescribeVolumes=UnauthorizedOperation",))
    execution = engine.run(SCENARIO, schedule())

    assert execution.outcome == "mitigated", execution.cause
    assert [(r["Region"], r["QuotaCode"]) for r in requests(engine)] == [("us-east-1", GP3)]
    report = execution.notifications[0]["message"]
    assert "eu-west-1" in report and "NOT COUNTED" in report and "AccessDenied" in report
    assert "Detect: Region not counted" in execution.states


def test_denied_request_escalates_with_the_exact_requests(engine: Any) -> None:
    engine.fakes["service-quotas"].set_outcome(None, GP3, "DENIED", 30)
    execution = engine.run(SCENARIO, schedule())

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.Escalated"
    made = requests(engine)
    assert len(made) == 1 and made[0]["Status"] == "DENIED"
    assert made[0]["Id"] in execution.cause
    assert "cannot be withdrawn" in execution.cause
    assert "Rollback: Report the requests" in execution.states


def test_health_breach_for_ebs_starts_the_runbook(engine: Any) -> None:
    event = load_event("ebs-quota-forecast/health-threshold-breach.json")
    assert [r.scenario for r in engine.match(event)] == [SCENARIO]
    execution = engine.run(SCENARIO, event)
    assert execution.outcome == "mitigated", execution.cause


def test_breach_of_another_service_does_not_match(engine: Any) -> None:
    event = load_event("ebs-quota-forecast/health-breach-other-service.json")
    assert engine.match(event) == []


def test_malformed_event_is_rejected(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("ebs-quota-forecast/malformed-health-event.json"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.InvalidEvent"
    assert "affectedEntities must be a list" in execution.cause
    assert requests(engine) == []


def test_duplicate_daily_run_acts_once(engine: Any) -> None:
    first = engine.run(SCENARIO, schedule())
    second = engine.run(SCENARIO, schedule())
    assert first.outcome == "mitigated"
    assert second.output["reason"] == "duplicate-delivery"
    assert len(requests(engine)) == 1


EXPECTED = {
    "daily-schedule.json": ("SUCCEEDED", "mitigated"),
    "health-threshold-breach.json": ("SUCCEEDED", "mitigated"),
    "manual-rerun.json": ("SUCCEEDED", "mitigated"),
    "malformed-health-event.json": ("FAILED", "Runbook.InvalidEvent"),
    "health-breach-other-service.json": (None, None),
}


def test_every_sample_event_is_covered() -> None:
    assert {p.name for p in (EVENTS / "ebs-quota-forecast").glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_event_runs(engine: Any, name: str) -> None:
    check_sample_event(engine, SCENARIO, name, EXPECTED[name])


@pytest.mark.parametrize("payload", function_payloads(SCENARIO))
def test_every_function_payload_runs(engine: Any, payload: str) -> None:
    check_function_payload(engine, SCENARIO, payload)


# ---------------------------------------------------------------- found by a hostile tester


@pytest.mark.parametrize("event", [[], "x", 42, True, None], ids=repr)
def test_input_that_is_not_an_object_is_an_invalid_event(engine: Any, event: Any) -> None:
    execution = engine.run(SCENARIO, event)

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert execution.cause.startswith("the event must be a JSON object")
    assert execution.effects == []


def test_no_region_counted_escalates_naming_every_region(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:DescribeVolumes=UnauthorizedOperation",))
    execution = engine.run(SCENARIO, schedule())

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.Escalated", execution.cause
    assert execution.cause.startswith("No region could be counted")
    regions = engine.regions(SCENARIO)
    assert len(regions) > 1
    for region in regions:
        assert f"{region}: AccessDenied: EBS census in {region}: UnauthorizedOperation" in (
            execution.cause
        )
    assert requests(engine) == []
    assert "Act: Request increases" not in execution.states
    assert any("ESCALATED" in n["subject"] for n in execution.notifications)


def test_a_failed_request_call_escalates_once_every_request_call_ended(
    engine_factory: Any,
) -> None:
    """Requests run per region in a Map whose iterations all end (a failure is kept, not
    thrown), so the report never misses a request still being made."""
    engine = engine_factory(
        faults=("service-quotas:RequestServiceQuotaIncrease=AccessDeniedException",)
    )
    execution = engine.run(SCENARIO, schedule())

    assert execution.error == "Runbook.Escalated", execution.cause
    assert "Act: Read first failure" in execution.states
    assert "AccessDenied" in execution.cause
    assert requests(engine) == []
    assert "no request was made" in execution.cause
