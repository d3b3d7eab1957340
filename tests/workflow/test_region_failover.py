"""Every path of the region-failover runbook, run for real on the emulated account.

Assertions read the account afterwards (Route 53 weights, Global Accelerator dials, the
runbook's state in Parameter Store) and the execution history.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

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
PRIMARY, STANDBY = "us-east-2", "us-east-1"


def weights(engine: Any) -> dict[str, int]:
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = engine.world[SCENARIO]["zoneId"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {r["SetIdentifier"]: r["Weight"] for r in records if "Weight" in r}


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
    assert f"{STANDBY} has 1 healthy targets, fewer than 2" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_target_alarm_not_ok_escalates(engine: Any) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    cloudwatch.set_alarm_state(AlarmName=f"opsflow-canary-{STANDBY}", StateValue="ALARM",
                               StateReason="test")
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.error == "Runbook.Escalated"
    assert f"canary alarm opsflow-canary-{STANDBY} is ALARM" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def approval_notice(execution: Any) -> dict[str, Any]:
    (notice,) = [n for n in execution.notifications if n["subject"].startswith("opsflow: APPROVE")]
    return notice


def approval_output(execution: Any) -> Any:
    """What the approval wait ended with (the answer sent with SendTaskSuccess)."""
    (event,) = [
        e for e in execution.history
        if e["type"] == "TaskSucceeded"
        and e["taskSucceededEventDetails"]["resource"].endswith("waitForTaskToken")
    ]
    return json.loads(event["taskSucceededEventDetails"]["output"])


def test_approval_approved_by_link_moves_traffic(engine_factory: Any) -> None:
    engine = engine_factory(RequireApproval="true")
    engine.approval = "approve"
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.outcome == "mitigated", execution.cause
    assert "Act: Wait for approval" in execution.states
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}
    # The approver's path: a notice with two links, the link's page, then its form.
    notice = approval_notice(execution)
    assert set(engine.approval_links()) == {"approve", "reject"}
    assert "Task token" not in notice["message"] and "SendTaskSuccess" not in notice["message"]
    assert len(notice["sms"]) <= 140 and "https://" not in notice["sms"]
    assert [(c["method"], c["action"], c["status"], c["title"]) for c in engine.clicks] == [
        ("GET", "approve", 200, "Approve?"),
        ("POST", "approve", 200, "Approved"),
    ]
    output = approval_output(execution)
    assert output["approved"] is True and output["by"] == "local operator"
    answered_as = {c.principal.rsplit("/", 1)[-1] for c in engine.authorizer.calls
                   if c.action == "states:SendTaskSuccess" and c.allowed}
    assert answered_as == {"opsflow-ApprovalFunctionRole"}


def test_approval_rejected_with_a_reason_escalates_and_moves_nothing(engine_factory: Any) -> None:
    engine = engine_factory(RequireApproval="true")
    engine.approval = "reject"
    engine.approver["reason"] = "the primary is already recovering"
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.error == "Runbook.Escalated"
    assert execution.cause.startswith("Not approved:")
    assert "Runbook.Rejected" in execution.cause
    assert "Rejected by local operator" in execution.cause
    assert "the primary is already recovering" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert [(c["method"], c["title"]) for c in engine.clicks] == [("GET", "Reject?"),
                                                                  ("POST", "Rejected")]


def test_approval_without_answer_times_out_and_moves_nothing(engine_factory: Any) -> None:
    engine = engine_factory(RequireApproval="true")
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.error == "Runbook.Escalated"
    assert execution.cause.startswith("Not approved:") and "States.Timeout" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert engine.clicks == []
    assert execution.virtual_seconds >= 900
    # Too late: the run no longer waits.
    link = engine.approval_links()["approve"]
    form = engine.click(link).form()
    assert form is not None
    assert engine.click(link, "POST", form[1]).status == 410


def tampered(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    fields = {k: v[0] for k, v in parse_qs(parts.query).items()}
    fields.update(changes)
    return f"{parts.scheme}://{parts.netloc}/?{urlencode(fields)}"


def test_a_tampered_link_is_refused_and_the_run_still_waits(engine_factory: Any) -> None:
    engine = engine_factory(RequireApproval="true")
    pages: list[Any] = []

    def meddle(item: dict[str, Any]) -> None:
        if item["type"] != "TaskSubmitted":
            return
        found = engine.approval_links()
        reject = parse_qs(urlsplit(found["reject"]).query)
        as_approval = tampered(found["reject"], action="approve")  # the reject link's signature
        longer = tampered(found["approve"], expires=str(int(reject["expires"][0]) + 86400))
        other_token = tampered(found["approve"], token=reject["token"][0] + "x")
        for link in (as_approval, longer, other_token):
            pages.append(engine.click(link))
            fields = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
            pages.append(engine.click(link, "POST", {**fields, "name": "mallory"}))

    execution = engine.run(SCENARIO, alarm_event(), on_event=meddle)

    assert [p.status for p in pages] == [403] * 6
    assert all("Nothing was changed" in p.body for p in pages)
    assert ("stepfunctions", "SendTaskSuccess") not in {c[:2] for c in engine.boundary.calls}
    assert execution.error == "Runbook.Escalated" and "States.Timeout" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_an_answered_link_cannot_answer_again(engine_factory: Any) -> None:
    engine = engine_factory(RequireApproval="true")
    engine.approval = "approve"
    assert engine.run(SCENARIO, alarm_event()).outcome == "mitigated"
    link = engine.approval_links()["reject"]
    page = engine.click(link)
    assert page.status == 200
    form = page.form()
    assert form is not None
    answer = engine.click(link, "POST", form[1])
    # Step Functions refuses an answer for a closed task with TaskTimedOut, as for a late one.
    assert (answer.status, answer.title) == (410, "No longer waiting")
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}


def test_the_sample_approval_page_request_is_an_expired_link(engine: Any) -> None:
    from opsflow.engine.runner import function_name

    calls = len(engine.boundary.calls)
    handler = engine.boundary.lambdas[function_name("ApprovalFunction")]
    page = handler(load_event("region-failover/functions/ApprovalFunction.json"))
    assert page["statusCode"] == 403 and "expired" in page["body"]
    assert page["headers"]["Content-Type"].startswith("text/html")
    assert len(engine.boundary.calls) == calls  # refused before any AWS call


def test_opsflow_invoke_serves_the_sample_approval_page(capsys: pytest.CaptureFixture[str]) -> None:
    from opsflow import cli

    sample = EVENTS / "region-failover/functions/ApprovalFunction.json"
    assert cli.main(["invoke", "ApprovalFunction", "--event", str(sample)]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["statusCode"] == 403 and "<title>Link not accepted</title>" in page["body"]


def test_throttled_record_change_is_retried(engine_factory: Any) -> None:
    engine = engine_factory(faults=("route53:ChangeResourceRecordSets=Throttling*3",))
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.outcome == "mitigated", execution.cause
    assert failed_tasks(execution, "Throttled") == 1  # two absorbed by the SDK's retries
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}


def test_verify_failure_rolls_back_to_the_original_weights(engine_factory: Any) -> None:
    engine = engine_factory(faults=("route53:ChangeResourceRecordSets=Hang",))
    execution = engine.run(SCENARIO, alarm_event())

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.RolledBack"
    assert "not confirmed after 10 checks" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert "Rollback: Restore traffic, writer, capacity" in execution.states


def test_failback_moves_traffic_home(engine: Any) -> None:
    assert engine.run(SCENARIO, alarm_event()).outcome == "mitigated"
    execution = engine.run(SCENARIO, load_event("region-failover/failback.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert f"{PRIMARY}: 6 of 6 targets healthy" in execution.notifications[0]["message"]


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


# ---------------------------------------------------------------- found by a hostile tester


@pytest.mark.parametrize("event", [[], "x", 42, True, None], ids=repr)
def test_input_that_is_not_an_object_is_an_invalid_event(engine: Any, event: Any) -> None:
    execution = engine.run(SCENARIO, event)

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert execution.cause.startswith("the event must be a JSON object")
    assert execution.effects == []
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


@pytest.mark.parametrize("time", ["yesterday", "14/03/2026 03:30", "2026-03-14T25:00:00Z", 7])
def test_alarm_time_that_is_not_iso_is_an_invalid_event(engine: Any, time: Any) -> None:
    event = alarm_event()
    event["time"] = time
    execution = engine.run(SCENARIO, event)

    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert "time" in execution.cause
    assert "Detection failed" not in execution.cause
    assert execution.effects == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("source", "aws.cloudwatch "), ("detail-type", "CloudWatch Alarm State Change ")],
)
def test_identity_other_than_the_rule_is_rejected(engine: Any, field: str, value: str) -> None:
    event = alarm_event()
    event[field] = value
    assert engine.match(event) == []
    execution = engine.run(SCENARIO, event)

    assert execution.error == "Runbook.InvalidEvent"
    assert "not a trigger of this runbook" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


@pytest.mark.parametrize("where", ["account", "resources"])
def test_alarm_of_another_account_moves_nothing(engine: Any, where: str) -> None:
    event = alarm_event()
    if where == "account":
        event["account"] = "210987654321"
    else:
        event.pop("account")
        event["resources"] = [
            f"arn:aws:cloudwatch:us-east-1:210987654321:alarm:opsflow-canary-{PRIMARY}"
        ]
    execution = engine.run(SCENARIO, event)

    assert execution.error == "Runbook.InvalidEvent"
    assert "210987654321" in execution.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}


def test_verified_failover_starts_the_cooldown(engine: Any) -> None:
    assert engine.run(SCENARIO, alarm_event()).outcome == "mitigated"
    assert state(engine)["lastFailover"] == "2026-03-14T03:30:00Z"


def test_rolled_back_failover_starts_no_cooldown(engine_factory: Any) -> None:
    # The change never gets in sync: verify gives up, the split is restored.
    engine = engine_factory(faults=("route53:ChangeResourceRecordSets=Hang",))
    failed = engine.run(SCENARIO, alarm_event())
    assert failed.error == "Runbook.RolledBack", failed.cause
    assert weights(engine) == {PRIMARY: 100, STANDBY: 0}
    assert "lastFailover" not in state(engine)

    engine.boundary.faults.clear()
    engine.boundary.hangs.clear()
    later = alarm_event()  # ten minutes later, the alarm fires again
    later["time"] = "2026-03-14T03:40:00Z"
    later["detail"]["state"]["timestamp"] = "2026-03-14T03:40:00.000+0000"
    execution = engine.run(SCENARIO, later)

    assert execution.outcome == "mitigated", (execution.output, execution.cause)
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}
    assert state(engine)["lastFailover"] == "2026-03-14T03:40:00Z"


def test_failed_restore_is_reported_from_the_traffic_as_it_is(engine: Any) -> None:
    """What the rollback-failed path runs: the restore function in report mode reads the
    traffic and names it, with the split that was recorded."""
    from opsflow.engine.runner import function_name

    route53 = boto3.client("route53", region_name="us-east-1")
    zone = engine.world[SCENARIO]["zoneId"]
    records = [r for r in route53.list_resource_record_sets(HostedZoneId=zone)[
        "ResourceRecordSets"] if "Weight" in r]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {
            **r, "Weight": 0 if r["SetIdentifier"] == PRIMARY else 100}} for r in records]})
    payload = load_event("region-failover/functions/RestoreTrafficFunction.json")
    payload["report"] = True
    payload["rollbackError"] = {"Error": "AccessDenied",
                                "Cause": json.dumps({"errorMessage": "ChangeResourceRecordSets"})}
    result = engine.boundary.lambdas[function_name("RestoreTrafficFunction")](payload)

    assert result["complete"] is False
    assert result["cause"].startswith("Rollback failed (AccessDenied: ChangeResourceRecordSets)")
    assert f"Traffic now: {PRIMARY} 0, {STANDBY} 100" in result["cause"]
    assert f"recorded before: {PRIMARY} 100, {STANDBY} 0" in result["cause"]
    assert weights(engine) == {PRIMARY: 0, STANDBY: 100}  # a report moves nothing
