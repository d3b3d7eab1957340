"""What the property tests and the fault matrix found, one test each.

* Fixed here (in ``functions/region_failover``, ``functions/ebs_quota``, ``functions/runbook_kit``):
  plain tests that keep them fixed.
* In code this suite does not own, when one is found: a strict ``xfail`` test stating the exact
  finding (and its entry in ``harness.KNOWN``). When its defect is fixed it passes, and
  ``strict`` makes that a failure until the mark and the entry are removed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from ebs_quota import app as ebs_app
from ebs_quota import quotas
from health_abuse import entities
from region_failover import app as failover
from runbook_kit import errors
from runbook_kit.errors import InvalidEvent
from runbook_kit.notices import notice, subject_line

from opsflow.engine import limits
from opsflow.engine.runner import LocalEngine
from tests.property import harness
from tests.property.strategies import HOME, samples

ALLOWED = harness.typed_errors()
EXECUTION = f"arn:aws:states:us-east-1:{HOME}:execution:opsflow-X:finding"


def harness_settings() -> dict[str, Any]:
    """ebs-quota-forecast's settings as the state machine passes them (strings)."""
    return {"dryRun": "true", "regions": "us-east-1,eu-west-1", "quotaCodes": "L-7A658B76",
            "horizonDays": "30", "thresholdPercent": "80", "headroomPercent": "25",
            "historyDays": "90"}


def sample(scenario: str, name: str) -> Any:
    return copy.deepcopy(samples(scenario)[name])


def run(scenario: str, event: Any) -> Any:
    with LocalEngine(scenarios=[scenario]) as engine:
        return engine.run(scenario, event)


def ends_in_the_runbook(scenario: str, event: Any, execution: Any) -> None:
    found = harness.problems(scenario, event, execution, ALLOWED)
    assert not found, [f"{p.kind}: {p.detail[:300]}" for p in found]


# ----------------------------------------------------------------------------- fixed here
def test_region_failover_refuses_an_alarm_of_another_partition() -> None:
    """Was: ``_own`` compared only the account of the ARNs in ``resources``, so an alarm ARN of
    ``aws-us-gov`` with this account's ID started a failover in ``aws``."""
    event = sample("region-failover", "alarm-primary.json")
    event["resources"] = [
        f"arn:aws-us-gov:cloudwatch:us-east-1:{HOME}:alarm:opsflow-canary-us-east-1"]
    execution = run("region-failover", event)
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert "partition 'aws-us-gov'" in (execution.cause or "")
    ends_in_the_runbook("region-failover", event, execution)


def test_region_failover_plan_holds_bounded_alarm_text() -> None:
    """Was: the alarm's reason (and every evaluated datapoint as given) went into the plan and
    into each of its six notices twice, so a 30,000-character reason made PreflightFunction's
    result pass 256 KiB: the run ended ``States.DataLimitExceeded``. CloudWatch's own limits
    bound them now (reason 1,023 characters, name 255)."""
    event = sample("region-failover", "alarm-primary.json")
    event["detail"]["state"]["reason"] = "r" * 30_000
    data = json.loads(event["detail"]["state"]["reasonData"])
    data["evaluatedDatapoints"][0]["extra"] = "x" * 50_000
    event["detail"]["state"]["reasonData"] = json.dumps(data)
    execution = run("region-failover", event)
    assert execution.outcome == "mitigated", execution.cause
    ends_in_the_runbook("region-failover", event, execution)
    with pytest.raises(InvalidEvent, match="at most 255"):
        failover._alarm({**event["detail"], "alarmName": "a" * 256})
    alarm = failover._alarm(event["detail"])
    assert len(alarm["reason"]) == failover.REASON_LIMIT
    assert all(set(p) <= set(failover.DATAPOINT_FIELDS) for p in alarm["evaluatedDatapoints"])


def test_ebs_refuses_an_event_of_another_account() -> None:
    """Was: ``read_trigger`` never looked at the account, so a threshold-breach event for
    account 210987654321 made this account request a quota increase."""
    event = sample("ebs-quota-forecast", "health-threshold-breach.json")
    event["account"] = event["detail"]["affectedAccount"] = "210987654321"
    execution = run("ebs-quota-forecast", event)
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    ends_in_the_runbook("ebs-quota-forecast", event, execution)
    schedule = sample("ebs-quota-forecast", "daily-schedule.json")
    schedule["resources"] = [f"arn:aws-cn:events:cn-north-1:{HOME}:rule/x"]
    with pytest.raises(InvalidEvent, match="partition 'aws-cn'"):
        quotas.read_trigger(schedule, harness_settings(), EXECUTION, account=HOME)


def test_ebs_delivery_key_stays_within_dynamodb_limits() -> None:
    """Was: the Health event's communicationId went into the delivery record's key as is; one
    over 2,048 bytes made ``Detect: Record delivery`` fail (ValidationException) and the run
    escalate as a detection failure."""
    event = sample("ebs-quota-forecast", "health-threshold-breach.json")
    event["detail"]["communicationId"] = "c" * 5000
    execution = run("ebs-quota-forecast", event)
    assert execution.outcome == "mitigated", execution.cause
    key = next(e["resource"] for e in execution.effects if harness.delivery_record(e))
    assert len(key.encode()) < 2048 and "sha256:" in key


class _Denied:
    """A Service Quotas client whose history cannot be read."""

    def list_requested_service_quota_change_history_by_quota(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "ListRequestedServiceQuotaChangeHistoryByQuota")


def test_ebs_report_never_claims_no_request_when_it_could_not_read() -> None:
    """Was: when the requests could not be read, the cause said "requests that exist: no
    request was made", and the Lambda error's whole JSON (stack trace included) was cut at 400
    characters, so what failed was lost."""
    plan = {"targets": [{"region": "us-east-1", "quotaCode": "L-7A658B76", "desiredValue": 53.0}],
            "settings": {"asOf": "2026-03-14"}}
    error = {"Error": "AccessDenied", "Cause": json.dumps({
        "errorType": "AccessDenied", "errorMessage": "GetRequestedServiceQuotaChange: denied",
        "stackTrace": ["  File \"x.py\", line 1\n" * 40]})}
    original = ebs_app.aws.client
    ebs_app.aws.client = lambda service, region: _Denied()  # type: ignore[assignment]
    try:
        report = ebs_app.report_requests.__wrapped__({"plan": plan, "error": error}, None)
    finally:
        ebs_app.aws.client = original  # type: ignore[assignment]
    cause = report["cause"]
    assert "no request was made" not in cause
    assert "UNKNOWN" in cause and "us-east-1 L-7A658B76 -> 53" in cause
    assert "GetRequestedServiceQuotaChange: denied" in cause and "stackTrace" not in cause


def test_ebs_regions_override_is_deduplicated_and_bounded() -> None:
    """Was: a rerun's ``regions`` override of 3,000 copies of one region ran the census Map
    3,000 times (52 s of real time) and ended ``States.DataLimitExceeded``."""
    event = sample("ebs-quota-forecast", "manual-rerun.json")
    event["opsflow"]["regions"] = ["us-east-1"] * 3000
    plan = quotas.read_trigger(event, harness_settings(), EXECUTION, account=HOME)
    assert plan["settings"]["regions"] == ["us-east-1"]
    many = [f"us-{a}{b}-1" for a in "abcdefghij" for b in "abcdefghij"]
    event["opsflow"]["regions"] = many
    with pytest.raises(InvalidEvent, match="100 regions"):
        quotas.read_trigger(event, harness_settings(), EXECUTION, account=HOME)


def test_ebs_escalation_names_every_call_a_count_needs() -> None:
    """Was: "Fix the census's access (ec2:DescribeVolumes, ec2:DescribeSnapshots,
    cloudwatch:PutMetricData)" even when Service Quotas or GetMetricStatistics was refused."""
    regions = [{"region": "us-east-1", "counted": False, "error": "AccessDenied",
                "cause": "GetServiceQuota L-7A658B76: AccessDeniedException"}]
    plan = {"settings": {"horizonDays": 30, "thresholdPercent": 80, "asOf": "2026-03-14"},
            "dryRun": False, "trigger": "schedule"}
    cause = quotas.decide(plan, regions)["escalate"]["cause"]
    assert "GetServiceQuota" in cause and "Service Quotas" in cause
    assert "(ec2:DescribeVolumes, ec2:DescribeSnapshots, cloudwatch:PutMetricData)" not in cause


def test_notice_subjects_are_what_sns_takes() -> None:
    """Was: a subject carrying an event's non-ASCII text (health-abuse puts the event's type
    code in it) was refused by SNS, the notification failure was tolerated, and a no-action run
    ended with nobody told."""
    for text in ("opsflow: abuse report ÄBUSE_日本: nothing to do", "a\x00b\x7fc", " ", "x" * 300):
        subject = notice(text, "sms", "full")["subject"]
        assert limits.SNS_SUBJECT.fullmatch(subject), subject
    assert subject_line("opsflow: fine") == "opsflow: fine"
    event = sample("health-abuse", "dos-report-arn.json")
    event["detail"]["eventTypeCode"] = "AWS_ABUSE_DÖS_REPORT"
    execution = run("health-abuse", event)
    assert execution.outcome == "no-action" and execution.notifications, execution.cause


def test_health_abuse_long_texts_end_in_the_runbook() -> None:
    """Was: the plan copied the event's texts into its notices unbounded (each notice's full
    text twice, ``default`` and ``email``): an eventArn of 40,000 characters made
    InspectInstances' result pass 256 KiB, and the run ended ``States.DataLimitExceeded``
    (uncatchable) with nobody told. AWS Health's own bounds (eventArn 1,600 characters, type
    code 100) reject such an event, and a notice holds its full text once."""
    event = sample("health-abuse", "dos-report-arn.json")
    event["detail"]["eventArn"] = "arn:aws:health:global::event/" + "y" * 40_000
    execution = run("health-abuse", event)
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert "at most 1,600" in (execution.cause or "")
    ends_in_the_runbook("health-abuse", event, execution)
    event["detail"]["eventArn"] = "arn:aws:health:global::event/" + "y" * (
        entities.EVENT_ARN_LIMIT - len("arn:aws:health:global::event/"))
    execution = run("health-abuse", event)
    assert execution.outcome == "mitigated", execution.cause
    ends_in_the_runbook("health-abuse", event, execution)


def test_a_rejection_quoting_a_huge_value_ends_in_the_runbook() -> None:
    """Was (``make fuzz``): an account of 24,000 characters and entity strings of astral
    characters (an event of 185 KB) were quoted whole in the rejection, and the error, added
    beside the event the state still carried, passed 256 KiB: ``States.DataLimitExceeded`` at
    the first task. Messages are cut to ``errors.MESSAGE_LIMIT`` and no state carries the
    event."""
    event = sample("health-abuse", "dos-report-arn.json")
    event["account"] = "(\x84\x17y" * 6051
    event["detail"]["affectedEntities"] = [
        "\U0008af34\u00e3:" * 4096, "\u00a1\x0b\U0001f6be*#\U0003b81d" * 5282]
    execution = run("health-abuse", event)
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert len(execution.cause or "") <= errors.MESSAGE_LIMIT
    assert "characters cut" in (execution.cause or "")
    ends_in_the_runbook("health-abuse", event, execution)


@pytest.mark.parametrize("scenario", ["ebs-quota-forecast", "region-failover", "health-abuse"])
def test_an_invalid_event_near_the_limit_ends_invalid(scenario: str) -> None:
    """An event of 250,000 bytes that the runbook rejects: the rejection's error fits (the
    state no longer holds the event beside it)."""
    name = {"ebs-quota-forecast": "daily-schedule.json", "region-failover": "alarm-primary.json",
            "health-abuse": "dos-report-arn.json"}[scenario]
    event = sample(scenario, name)
    event["source"] = "aws.not-" + event["source"].removeprefix("aws.")
    event["detail"]["padding"] = "x" * (250_000 - len(json.dumps(event)))
    execution = run(scenario, event)
    assert execution.error == "Runbook.InvalidEvent", (execution.error, execution.cause)
    ends_in_the_runbook(scenario, event, execution)


def test_health_bounds_are_aws_healths() -> None:
    model = botocore.session.get_session().get_service_model("health")
    assert entities.EVENT_ARN_LIMIT == model.shape_for("eventArn").metadata["max"]
    assert entities.EVENT_TYPE_CODE_LIMIT == model.shape_for("eventTypeCode").metadata["max"]


def test_health_abuse_regions_override_is_bounded() -> None:
    event = sample("health-abuse", "dos-report-global.json")
    event["opsflow"] = {"regions": ["us-east-1"] * 3000}
    execution = run("health-abuse", event)
    ends_in_the_runbook("health-abuse", event, execution)


def test_health_abuse_long_communication_id_is_acted_on() -> None:
    event = sample("health-abuse", "dos-report-arn.json")
    event["detail"]["communicationId"] = "c" * 5000
    execution = run("health-abuse", event)
    assert execution.outcome == "mitigated", execution.cause


def test_health_abuse_ignores_instance_arns_of_other_partitions() -> None:
    arn = f"arn:aws-cn:ec2:us-east-1:{HOME}:instance/i-40388cb894a7263cf"
    event = sample("health-abuse", "dos-report-arn.json")
    event["detail"]["affectedEntities"] = [{"entityValue": arn}]
    report = entities.read(event, HOME, "aws")  # the parse passes the execution's partition
    assert report.instances == [] and arn in report.foreign


def test_health_abuse_entity_status_of_any_type_is_read() -> None:
    event = sample("health-abuse", "dos-report-bare-ids.json")
    event["detail"]["affectedEntities"][0]["status"] = {"value": "IMPAIRED"}
    try:
        entities.read(event, HOME)
    except InvalidEvent:
        pass


def test_engine_counts_payloads_in_utf8() -> None:
    value = {"text": "é" * 10 + "🛑"}
    assert limits.payload_size(value) == len(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@pytest.mark.parametrize("scenario", ["ebs-quota-forecast", "region-failover", "health-abuse"])
def test_an_event_near_the_limit_ends_in_the_runbook(scenario: str) -> None:
    """Was: every state kept the whole event at ``$.event`` beside the plan, so an event of
    240,000 bytes (within the 256 KiB of EventBridge and Step Functions) ended
    ``States.DataLimitExceeded`` in ebs-quota-forecast at 'Detect: Decide increases'. The first
    task of every runbook (``runbook.read_event``) now replaces the state with the plan."""
    name = {"ebs-quota-forecast": "daily-schedule.json", "region-failover": "alarm-primary.json",
            "health-abuse": "dos-report-arn.json"}[scenario]
    event = sample(scenario, name)
    event["detail"]["padding"] = "x" * (240_000 - len(json.dumps(event)))
    execution = run(scenario, event)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    ends_in_the_runbook(scenario, event, execution)
