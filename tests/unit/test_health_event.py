"""Outcome tests for reading AWS Health abuse events and planning the quarantine (pure, no AWS)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from health_abuse import entities, plan
from runbook_kit import errors, notices, settings
from runbook_kit.errors import InvalidEvent
from runbook_kit.parameters import PARAMETERS

EVENTS = Path(__file__).resolve().parents[2] / "events" / "health-abuse"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:opsflow-health-abuse:run-1"
DOS = "AWS_ABUSE_DOS_REPORT"

I1 = "i-40388cb894a7263cf"
I2 = "i-c54064131a9dbfe34"
I3 = "i-42483ca7547a5f49c"
I4 = "i-99e6f7aca3a0ab848"
I5 = "i-0123456789abcdef0"

# What the state machine passes: template parameters, every one a string.
RAW_SETTINGS: dict[str, Any] = {
    "dryRun": "true",
    "abuseCodes": DOS,
    "protectedTagKey": "Stage",
    "protectedTagValue": "Prod",
    "maxInstances": "10",
    "regions": "us-east-1,eu-west-1",
    "isolationGroupName": "opsflow-isolation",
    "forensicSnapshot": "true",
    "autoScalingMode": "standby",
    "rollbackMode": "restore",
    "pollSeconds": "15",
    "maxPolls": "20",
}

DROP = object()
"""Marks a key to remove in :func:`make_event`."""


def load(name: str) -> dict[str, Any]:
    """A fresh copy of one sample event from ``events/health-abuse``."""
    data = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _apply(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if value is DROP:
            target.pop(key, None)
        else:
            target[key] = value


def make_event(
    detail: Mapping[str, Any] | None = None, top: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A valid open DoS report with bare instance IDs, changed by ``detail`` and ``top``."""
    event: dict[str, Any] = {
        "version": "0",
        "id": "synthetic-1",
        "detail-type": "AWS Health Abuse Event",
        "source": "aws.health",
        "account": ACCOUNT,
        "time": "2026-03-14T03:10:00Z",
        "region": "us-east-1",
        "resources": [I1],
        "detail": {
            "eventArn": f"arn:aws:health:global::event/{DOS}_1_2026_03_14",
            "service": "ABUSE",
            "eventTypeCode": DOS,
            "eventTypeCategory": "issue",
            "startTime": "Sat, 14 Mar 2026 03:05:00 GMT",
            "affectedEntities": [{"entityValue": I1, "status": "IMPAIRED"}],
            "communicationId": "synthetic-comm-1",
            "eventRegion": "us-east-1",
            "statusCode": "open",
        },
    }
    _apply(event["detail"], detail or {})
    _apply(event, top or {})
    return event


def entities_of(*values: str, status: str | None = None) -> list[dict[str, str]]:
    items = [{"entityValue": value} for value in values]
    if status:
        for item in items:
            item["status"] = status
    return items


def ec2_instance(
    instance_id: str,
    region: str = "us-east-1",
    state: str = "running",
    tags: Mapping[str, str] | None = None,
    vpc: str = "vpc-0a1b2c3d",
) -> dict[str, Any]:
    """An instance as DescribeInstances returns it, plus the ``Region`` it was found in."""
    return {
        "InstanceId": instance_id,
        "State": {"Code": 16, "Name": state},
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        "VpcId": vpc,
        "Region": region,
    }


def planned(event: dict[str, Any], raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return plan.parse(event, dict(raw or RAW_SETTINGS), EXECUTION)


def instance_pairs(report: entities.Report) -> list[tuple[str, str | None]]:
    return [(item["instanceId"], item["region"]) for item in report.instances]


# ---------------------------------------------------------------- entities.read: sample events


@dataclass(frozen=True)
class Expected:
    instances: list[tuple[str, str | None]]
    region: str | None
    thread: str
    page: int = 1
    total_pages: int = 1
    status: str = "open"
    resolved: list[str] = field(default_factory=list)
    unparseable: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    unaffected: list[dict[str, str]] = field(default_factory=list)


ARN_EVENT = f"arn:aws:health:global::event/{DOS}_92387492375_4498_2026_03_14"

SAMPLES: dict[str, Expected] = {
    "closed-report.json": Expected(
        instances=[], region="us-east-1", thread="closed-1", status="closed", resolved=[I1]
    ),
    "copyright-report.json": Expected(
        instances=[(I1, "us-east-1")], region="us-east-1", thread="dmca-1"
    ),
    "dos-report-arn.json": Expected(
        instances=[(I1, "us-east-1"), (I2, "us-east-1"), (I3, "eu-west-1")],
        region=None,
        thread=ARN_EVENT,
        status="open",
    ),
    "dos-report-bare-ids.json": Expected(
        instances=[(I1, "us-east-1")],
        region="us-east-1",
        thread="1234abc01232a4012345678-1",
        resolved=[I2],
    ),
    "dos-report-global.json": Expected(
        instances=[(I3, None)], region=None, thread="9f8e7d6c5b4a-1"
    ),
    "dos-report-paged-1of2.json": Expected(
        instances=[(I1, "us-east-1")],
        region="us-east-1",
        thread="paged-abc-1",
        page=1,
        total_pages=2,
    ),
    "dos-report-paged-2of2.json": Expected(
        instances=[(I2, "us-east-1")],
        region="us-east-1",
        thread="paged-abc-1",
        page=2,
        total_pages=2,
    ),
    "dos-report-protected.json": Expected(
        instances=[(I4, "us-east-1")], region="us-east-1", thread="prod-1"
    ),
    "dos-report-unknown.json": Expected(
        instances=[(I5, "us-east-1")],
        region="us-east-1",
        thread="unknown-1",
        unparseable=["arn:ec2-1-101002929", "203.0.113.17"],
        foreign=[f"arn:aws:ec2:us-east-1:{OTHER_ACCOUNT}:instance/{I1}"],
    ),
    "dos-report-unaffected.json": Expected(
        instances=[],
        region="us-east-1",
        thread="1234abc01232a4012345678-2",
        unaffected=[{"entity": I1, "status": "UNIMPAIRED"}, {"entity": I2, "status": "PENDING"}],
    ),
}

MALFORMED_SAMPLES: dict[str, str] = {
    "malformed-entities.json": "detail.affectedEntities must be a list",
    "malformed-no-detail.json": "the event has no detail.eventArn",
}


def test_every_sample_event_has_an_expected_outcome() -> None:
    on_disk = {path.name for path in EVENTS.glob("*.json")}
    assert on_disk, f"no sample events found in {EVENTS}"
    assert on_disk == set(SAMPLES) | set(MALFORMED_SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES), ids=lambda name: name.removesuffix(".json"))
def test_read_sample_event(name: str) -> None:
    expected = SAMPLES[name]
    report = entities.read(load(name))

    assert instance_pairs(report) == expected.instances
    assert report.region == expected.region
    assert report.account == ACCOUNT
    assert report.page == expected.page
    assert report.total_pages == expected.total_pages
    assert report.status_code == expected.status
    assert report.resolved == expected.resolved
    assert report.unparseable == expected.unparseable
    assert report.foreign == expected.foreign
    assert report.unaffected == expected.unaffected
    assert report.dedupe_key == f"health-abuse#{ACCOUNT}#{expected.thread}#page-{expected.page}"


@pytest.mark.parametrize(
    ("name", "message"),
    sorted(MALFORMED_SAMPLES.items()),
    ids=[name.removesuffix(".json") for name in sorted(MALFORMED_SAMPLES)],
)
def test_malformed_sample_event_is_rejected(name: str, message: str) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        entities.read(load(name))


def test_sample_description_is_read() -> None:
    report = entities.read(load("dos-report-arn.json"))
    assert report.description.startswith("Denial of Service (DoS) activity has been reported")
    assert report.type_code == DOS
    assert report.start_time == "Sat, 14 Mar 2026 03:05:00 GMT"


# ---------------------------------------------------------------- entities.read: regions


@pytest.mark.parametrize(
    ("event_region", "region", "expected"),
    [
        pytest.param("us-west-2", "us-east-1", "us-west-2", id="eventRegion-wins"),
        pytest.param(DROP, "eu-west-1", "eu-west-1", id="no-eventRegion-uses-region"),
        pytest.param(DROP, "global", None, id="global-region"),
        pytest.param("global", "global", None, id="both-global"),
        pytest.param(DROP, DROP, None, id="no-region-at-all"),
        pytest.param("", "", None, id="empty-regions"),
    ],
)
def test_bare_instance_id_region(event_region: Any, region: Any, expected: str | None) -> None:
    event = make_event({"eventRegion": event_region}, {"region": region})
    report = entities.read(event)
    assert report.region == expected
    assert instance_pairs(report) == [(I1, expected)]


def test_global_event_region_is_not_replaced_by_the_delivery_region() -> None:
    event = make_event({"eventRegion": "global"}, {"region": "us-east-1"})
    report = entities.read(event)
    assert report.region is None
    assert instance_pairs(report) == [(I1, None)]


def test_arn_region_beats_event_region() -> None:
    arn = f"arn:aws:ec2:ap-southeast-2:{ACCOUNT}:instance/{I1}"
    report = entities.read(make_event({"affectedEntities": entities_of(arn)}))
    assert report.region == "us-east-1"
    assert instance_pairs(report) == [(I1, "ap-southeast-2")]


def test_arns_of_other_partitions_and_without_account_are_instances() -> None:
    values = [
        f"arn:aws-us-gov:ec2:us-gov-west-1:{ACCOUNT}:instance/{I1}",
        f"arn:aws-cn:ec2:cn-north-1:{ACCOUNT}:instance/{I2}",
        f"arn:aws:ec2:eu-central-1::instance/{I3}",
        "i-0abc1234",
    ]
    report = entities.read(make_event({"affectedEntities": entities_of(*values)}))
    assert instance_pairs(report) == [
        (I1, "us-gov-west-1"),
        (I2, "cn-north-1"),
        (I3, "eu-central-1"),
        ("i-0abc1234", "us-east-1"),
    ]
    assert report.unparseable == report.foreign == []
    # The runbook passes its own partition: another partition's ARNs are never its instances.
    in_gov = entities.read(make_event({"affectedEntities": entities_of(*values)}),
                           home_partition="aws-us-gov")
    assert [i for i, _ in instance_pairs(in_gov)] == [I1, "i-0abc1234"]
    assert in_gov.foreign == values[1:3]


# ---------------------------------------------------------------- entities.read: entities


def test_values_that_are_not_instances_are_unparseable() -> None:
    values = [
        "arn:ec2-1-101002929",
        "203.0.113.17",
        "2001:db8::1",
        "i-XYZ",
        "I-D786607B85E70A63D",
        f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-0123456789abcdef0",
    ]
    report = entities.read(make_event({"affectedEntities": entities_of(*values)}))
    assert report.instances == []
    assert report.unparseable == values
    assert report.foreign == []


def test_entities_without_a_usable_value_are_unparseable() -> None:
    entity_list: list[Any] = [{"status": "IMPAIRED"}, {"entityValue": 42}, {"entityValue": "  "}]
    report = entities.read(make_event({"affectedEntities": entity_list}))
    assert report.instances == []
    assert report.unparseable == ["None", "42", "'  '"]


def test_arns_of_another_account_are_foreign() -> None:
    foreign = f"arn:aws:ec2:us-east-1:{OTHER_ACCOUNT}:instance/{I2}"
    own = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{I1}"
    report = entities.read(make_event({"affectedEntities": entities_of(foreign, own)}))
    assert report.foreign == [foreign]
    assert instance_pairs(report) == [(I1, "us-east-1")]


def test_account_falls_back_to_affected_account() -> None:
    foreign = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{I2}"
    event = make_event(
        {"affectedAccount": OTHER_ACCOUNT, "affectedEntities": entities_of(foreign)},
        {"account": DROP},
    )
    report = entities.read(event)
    assert report.account == OTHER_ACCOUNT
    assert report.foreign == [foreign]
    assert report.instances == []


def test_resolved_entities_are_reported_not_acted_on() -> None:
    items = entities_of(I1, status="RESOLVED") + entities_of(I2, status="IMPAIRED")
    items += entities_of(f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{I3}", status="RESOLVED")
    report = entities.read(make_event({"affectedEntities": items}))
    assert report.resolved == [I1, I3]
    assert instance_pairs(report) == [(I2, "us-east-1")]


def test_duplicate_instances_are_reported_once() -> None:
    values = [I1, f" {I1} ", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{I1}", I2, I1]
    report = entities.read(make_event({"affectedEntities": entities_of(*values)}))
    assert instance_pairs(report) == [(I1, "us-east-1"), (I2, "us-east-1")]


def test_duplicate_values_that_are_not_acted_on_are_reported_once() -> None:
    foreign = f"arn:aws:ec2:us-east-1:{OTHER_ACCOUNT}:instance/{I2}"
    items = entities_of(I1, I1, status="RESOLVED") + entities_of(
        "203.0.113.17", "203.0.113.17", foreign, foreign
    )
    report = entities.read(make_event({"affectedEntities": items}))
    assert report.resolved == [I1]
    assert report.unparseable == ["203.0.113.17"]
    assert report.foreign == [foreign]


def test_missing_affected_entities_falls_back_to_resources() -> None:
    arn = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{I3}"
    event = make_event({"affectedEntities": DROP}, {"resources": [I1, arn, "203.0.113.17"]})
    report = entities.read(event)
    assert instance_pairs(report) == [(I1, "us-east-1"), (I3, "eu-west-1")]
    assert report.unparseable == ["203.0.113.17"]


def test_empty_affected_entities_does_not_fall_back_to_resources() -> None:
    event = make_event({"affectedEntities": []}, {"resources": [I1]})
    assert entities.read(event).instances == []


def test_no_affected_entities_and_no_resources_is_an_empty_report() -> None:
    event = make_event({"affectedEntities": DROP}, {"resources": DROP})
    report = entities.read(event)
    assert report.instances == []
    assert report.unparseable == report.resolved == report.foreign == []


# ---------------------------------------------------------------- entities.read: pages and keys


@pytest.mark.parametrize(
    ("page", "total", "expected"),
    [
        pytest.param("2", "3", (2, 3), id="strings"),
        pytest.param(2, 3, (2, 3), id="ints"),
        pytest.param(" 2 ", 2, (2, 2), id="padded-string-and-int"),
        pytest.param(DROP, DROP, (1, 1), id="absent"),
        pytest.param("", "", (1, 1), id="empty"),
        pytest.param("3", DROP, (3, 3), id="total-defaults-to-page"),
        pytest.param(DROP, "4", (1, 4), id="page-defaults-to-1"),
    ],
)
def test_page_numbers(page: Any, total: Any, expected: tuple[int, int]) -> None:
    report = entities.read(make_event({"page": page, "totalPages": total}))
    assert (report.page, report.total_pages) == expected


def test_old_event_without_communication_id_dedupes_on_event_arn() -> None:
    event = make_event(
        {"communicationId": DROP, "statusCode": DROP, "eventScopeCode": DROP, "page": DROP}
    )
    report = entities.read(event)
    assert report.communication_id == ""
    assert report.status_code == "open"
    assert report.dedupe_key == (
        f"health-abuse#{ACCOUNT}#arn:aws:health:global::event/{DOS}_1_2026_03_14#page-1"
    )


def test_dedupe_key_differs_per_page() -> None:
    first = entities.read(load("dos-report-paged-1of2.json"))
    second = entities.read(load("dos-report-paged-2of2.json"))
    assert first.communication_id == second.communication_id
    assert first.dedupe_key != second.dedupe_key


def test_dedupe_key_differs_per_account() -> None:
    ours = entities.read(make_event())
    theirs = entities.read(make_event(top={"account": OTHER_ACCOUNT}))
    assert ours.dedupe_key != theirs.dedupe_key
    assert OTHER_ACCOUNT in theirs.dedupe_key


def test_dedupe_key_is_stable_across_redeliveries() -> None:
    first = make_event(top={"id": "delivery-1", "region": "us-east-1"})
    backup = make_event(top={"id": "delivery-2", "region": "us-west-2"})
    assert entities.read(first).dedupe_key == entities.read(backup).dedupe_key


def test_dedupe_expiry_is_fourteen_days_after_the_event() -> None:
    event = load("dos-report-arn.json")
    sent = datetime(2026, 3, 14, 3, 10, tzinfo=UTC)
    assert entities.dedupe_expiry(event) == int((sent + timedelta(days=14)).timestamp())


def test_dedupe_expiry_falls_back_to_start_time() -> None:
    event = make_event(top={"time": DROP})
    started = datetime(2026, 3, 14, 3, 5, tzinfo=UTC)
    assert entities.dedupe_expiry(event) == int((started + timedelta(days=14)).timestamp())


# ---------------------------------------------------------------- entities.read: rejections


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param(None, "the event must be a JSON object, got NoneType", id="none"),
        pytest.param([make_event()], "the event must be a JSON object, got list", id="list"),
        pytest.param("{}", "the event must be a JSON object, got str", id="string"),
        pytest.param(
            make_event(top={"source": "aws.ec2"}),
            "source is 'aws.ec2', expected 'aws.health'",
            id="wrong-source",
        ),
        pytest.param(make_event(top={"source": DROP}), "the event has no source", id="no-source"),
        pytest.param(
            make_event(top={"detail-type": "AWS Health Event"}),
            "detail-type is 'AWS Health Event', expected 'AWS Health Abuse Event'",
            id="wrong-detail-type",
        ),
        pytest.param(
            make_event(top={"detail-type": DROP}),
            "the event has no detail-type",
            id="no-detail-type",
        ),
        pytest.param(
            make_event(top={"detail": DROP}), "the event has no detail object", id="no-detail"
        ),
        pytest.param(
            make_event(top={"detail": ["ABUSE"]}),
            "the event has no detail object",
            id="detail-not-a-dict",
        ),
        pytest.param(
            make_event({"service": "EC2"}),
            "detail.service is 'EC2', expected 'ABUSE'",
            id="service-not-abuse",
        ),
        pytest.param(
            make_event({"service": DROP}), "the event has no detail.service", id="no-service"
        ),
        pytest.param(
            make_event({"eventTypeCode": DROP}),
            "the event has no detail.eventTypeCode",
            id="no-eventTypeCode",
        ),
        pytest.param(
            make_event({"eventTypeCode": 7}),
            "detail.eventTypeCode must be a string, got int",
            id="eventTypeCode-not-a-string",
        ),
        pytest.param(
            make_event({"eventArn": DROP}), "the event has no detail.eventArn", id="no-eventArn"
        ),
        pytest.param(
            make_event({"eventArn": ""}), "the event has no detail.eventArn", id="empty-eventArn"
        ),
        pytest.param(
            make_event({"affectedEntities": {"entityValue": I1}}),
            "detail.affectedEntities must be a list",
            id="affectedEntities-dict",
        ),
        pytest.param(
            make_event({"affectedEntities": I1}),
            "detail.affectedEntities must be a list",
            id="affectedEntities-string",
        ),
        pytest.param(
            make_event({"affectedEntities": DROP}, {"resources": I1}),
            "resources must be a list",
            id="resources-not-a-list",
        ),
        pytest.param(
            make_event({"page": "3", "totalPages": "2"}),
            "detail.page 3 is beyond detail.totalPages 2",
            id="page-beyond-totalPages",
        ),
        pytest.param(
            make_event({"page": "0"}), "detail.page must be at least 1, got 0", id="page-0"
        ),
        pytest.param(
            make_event({"page": -1}), "detail.page must be at least 1, got -1", id="page-negative"
        ),
        pytest.param(
            make_event({"totalPages": "0"}),
            "detail.totalPages must be at least 1, got 0",
            id="totalPages-0",
        ),
        pytest.param(
            make_event({"page": "one"}),
            "detail.page must be a whole number, got 'one'",
            id="page-not-numeric",
        ),
        pytest.param(
            make_event({"totalPages": "1.5"}),
            "detail.totalPages must be a whole number, got '1.5'",
            id="totalPages-fraction",
        ),
        pytest.param(
            make_event(top={"account": "12345"}),
            "account '12345' is not a 12-digit AWS account ID",
            id="account-too-short",
        ),
        pytest.param(
            make_event(top={"account": "12345678901x"}),
            "account '12345678901x' is not a 12-digit AWS account ID",
            id="account-not-digits",
        ),
        pytest.param(
            make_event(top={"account": 123456789012}),
            "account must be a string, got int",
            id="account-number",
        ),
        pytest.param(
            make_event({"eventRegion": "moon-base"}),
            "region 'moon-base' is not an AWS region name",
            id="bad-eventRegion",
        ),
        pytest.param(
            make_event({"eventRegion": DROP}, {"region": "US-EAST-1"}),
            "region 'US-EAST-1' is not an AWS region name",
            id="bad-region",
        ),
    ],
)
def test_malformed_event_is_rejected(event: Any, message: str) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        entities.read(event)


def test_invalid_event_is_a_runbook_error() -> None:
    assert issubclass(InvalidEvent, errors.RunbookError)
    with pytest.raises(errors.RunbookError):
        plan.parse({"source": "aws.health"}, dict(RAW_SETTINGS), EXECUTION)


# ---------------------------------------------------------------- plan.effective_settings


def test_template_strings_are_parsed() -> None:
    config = plan.effective_settings(dict(RAW_SETTINGS), make_event())
    assert config == {
        "dryRun": True,
        "ignoreDuplicate": False,
        "abuseCodes": [DOS],
        "protectedTagKey": "Stage",
        "protectedTagValue": "Prod",
        "maxInstances": 10,
        "regions": ["us-east-1", "eu-west-1"],
        "isolationGroupName": "opsflow-isolation",
        "forensicSnapshot": True,
        "autoScalingMode": "standby",
        "rollbackMode": "restore",
        "pollSeconds": 15,
        "maxPolls": 20,
    }


def test_false_strings_and_lists_are_parsed() -> None:
    raw = dict(
        RAW_SETTINGS,
        dryRun="false",
        forensicSnapshot=" False ",
        abuseCodes=f" {DOS} , AWS_ABUSE_EMAIL_REPORT,, ",
        regions=" eu-west-1 ",
        maxInstances=" 3 ",
    )
    config = plan.effective_settings(raw, make_event())
    assert config["dryRun"] is False
    assert config["forensicSnapshot"] is False
    assert config["abuseCodes"] == [DOS, "AWS_ABUSE_EMAIL_REPORT"]
    assert config["regions"] == ["eu-west-1"]
    assert config["maxInstances"] == 3


@pytest.mark.parametrize("name", sorted(RAW_SETTINGS))
def test_a_setting_the_state_machine_did_not_pass_is_an_invalid_event(name: str) -> None:
    """No setting has a default in the code: the template states every one."""
    raw = {key: value for key, value in RAW_SETTINGS.items() if key != name}
    with pytest.raises(InvalidEvent, match=f"setting '{name}' is missing"):
        plan.effective_settings(raw, make_event())


def test_a_missing_setting_is_not_filled_by_an_override_of_another() -> None:
    raw = {key: value for key, value in RAW_SETTINGS.items() if key != "maxPolls"}
    with pytest.raises(InvalidEvent, match="template parameter VerifyMaxPolls"):
        plan.effective_settings(raw, make_event(top={"opsflow": {"maxInstances": 2}}))


POLLS = PARAMETERS["VerifyMaxPolls"]
INSTANCES = PARAMETERS["MaxInstances"]
POLL_SECONDS = PARAMETERS["VerifyPollSeconds"]


def test_a_rerun_cannot_exceed_the_template_bound() -> None:
    """A rerun's maxPolls is held to VerifyMaxPolls' MaxValue, as CloudFormation holds the
    template's (the time budget ``opsflow validate`` proves relies on it)."""
    event = make_event(top={"opsflow": {"maxPolls": 200}})
    with pytest.raises(InvalidEvent) as raised:
        plan.effective_settings(dict(RAW_SETTINGS), event)
    assert str(raised.value) == (
        f"setting 'maxPolls' must be between {POLLS['MinValue']} and {POLLS['MaxValue']}, got 200"
    )


def test_a_template_value_is_cloudformations_to_check() -> None:
    """What the state machine passes is the template's value, which CloudFormation held to the
    template's bounds at deploy time: it is typed, not checked again (a rehearsal of a template
    with other bounds is obeyed). Only a rerun's override is checked here."""
    beyond = str(POLL_SECONDS["MaxValue"] + 1)
    config = plan.effective_settings(dict(RAW_SETTINGS, pollSeconds=beyond), make_event())
    assert config["pollSeconds"] == int(beyond)


def test_a_rerun_at_the_template_bound_is_accepted() -> None:
    event = make_event(top={"opsflow": {"maxPolls": POLLS["MaxValue"], "maxInstances": "1000"}})
    config = plan.effective_settings(dict(RAW_SETTINGS), event)
    assert config["maxPolls"] == POLLS["MaxValue"]
    assert config["maxInstances"] == INSTANCES["MaxValue"] == 1000


def test_opsflow_overrides_are_applied() -> None:
    overrides = {
        "dryRun": False,
        "maxInstances": "2",
        "forensicSnapshot": "false",
        "rollbackMode": "hold",
        "ignoreDuplicate": "true",
        "regions": ["us-west-2", "ap-south-1"],
        "maxPolls": 5,
    }
    config = plan.effective_settings(dict(RAW_SETTINGS), make_event(top={"opsflow": overrides}))
    assert config["dryRun"] is False
    assert config["maxInstances"] == 2
    assert config["forensicSnapshot"] is False
    assert config["rollbackMode"] == "hold"
    assert config["ignoreDuplicate"] is True
    assert config["regions"] == ["us-west-2", "ap-south-1"]
    assert config["maxPolls"] == 5
    assert config["abuseCodes"] == [DOS]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"abuseCodes": "AWS_ABUSE_EMAIL_REPORT"},
            "unknown override(s) abuseCodes",
            id="abuseCodes-not-overridable",
        ),
        pytest.param(
            {"protectedTagKey": ""}, "unknown override(s) protectedTagKey", id="protected-tag"
        ),
        pytest.param(
            {"dryrun": False, "maxinstances": 5},
            "unknown override(s) dryrun, maxinstances",
            id="misspelt-keys",
        ),
        pytest.param("dryRun=false", "the 'opsflow' overrides must be an object", id="not-a-dict"),
    ],
)
def test_bad_overrides_are_rejected(overrides: Any, message: str) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        plan.effective_settings(dict(RAW_SETTINGS), make_event(top={"opsflow": overrides}))


@pytest.mark.parametrize(
    ("raw", "overrides", "message"),
    [
        pytest.param(
            {},
            {"rollbackMode": "undo"},
            "setting 'rollbackMode' must be one of restore, hold, got 'undo'",
            id="bad-rollbackMode",
        ),
        pytest.param(
            {},
            {"rollbackMode": "Restore"},
            "setting 'rollbackMode' must be one of restore, hold, got 'Restore'",
            id="rollbackMode-override-case",
        ),
        pytest.param(
            {"regions": "us-east-1,eu-west"},
            {},
            "configured region 'eu-west' is not an AWS region name",
            id="bad-region",
        ),
        pytest.param(
            {},
            {"regions": ["global"]},
            "configured region 'global' is not an AWS region name",
            id="global-region-override",
        ),
        pytest.param({"regions": ""}, {}, "no regions are configured", id="empty-regions"),
        pytest.param({"regions": " , "}, {}, "no regions are configured", id="blank-regions"),
        pytest.param({}, {"regions": []}, "no regions are configured", id="empty-override"),
        pytest.param(
            {},
            {"maxInstances": "0"},
            f"setting 'maxInstances' must be between 1 and {INSTANCES['MaxValue']}, got 0",
            id="maxInstances-0",
        ),
        pytest.param(
            {},
            {"maxInstances": INSTANCES["MaxValue"] + 1},
            f"setting 'maxInstances' must be between 1 and {INSTANCES['MaxValue']}, got "
            f"{INSTANCES['MaxValue'] + 1}",
            id="maxInstances-1001",
        ),
        pytest.param(
            {"maxInstances": "ten"},
            {},
            "setting 'maxInstances' must be a whole number, got 'ten'",
            id="maxInstances-text",
        ),
        pytest.param(
            {},
            {"maxPolls": 0},
            f"setting 'maxPolls' must be between 1 and {POLLS['MaxValue']}, got 0",
            id="maxPolls-0",
        ),
        pytest.param(
            {"pollSeconds": "soon"},
            {},
            "setting 'pollSeconds' must be a whole number, got 'soon'",
            id="pollSeconds-not-a-number",
        ),
        pytest.param(
            {},
            {"dryRun": "maybe"},
            "setting 'dryRun' must be true or false, got 'maybe'",
            id="dryRun-not-boolean",
        ),
        pytest.param(
            {},
            {"forensicSnapshot": "sometimes"},
            "setting 'forensicSnapshot' must be true or false, got 'sometimes'",
            id="forensicSnapshot-not-boolean",
        ),
    ],
)
def test_bad_settings_are_rejected(
    raw: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    event = make_event(top={"opsflow": overrides} if overrides else None)
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        plan.effective_settings(dict(RAW_SETTINGS, **raw), event)


def test_settings_helpers() -> None:
    assert [settings.as_bool(v, "x") for v in ("yes", "ON", "1", True)] == [True] * 4
    assert [settings.as_bool(v, "x") for v in ("no", "off", "0", False)] == [False] * 4
    assert settings.as_int("5", "x", 1, 10) == 5
    assert settings.as_list(None) == []
    assert settings.as_list(["a", " ", " b "]) == ["a", "b"]
    assert settings.overrides({}, {"dryRun"}) == {}


# ---------------------------------------------------------------- plan.parse


def test_parse_open_report_of_a_quarantine_code() -> None:
    first = planned(load("dos-report-arn.json"))
    assert "ignoredBecause" not in first
    assert first["scenario"] == "health-abuse"
    assert first["execution"] == EXECUTION
    assert first["dryRun"] is True
    assert first["ignoreDuplicate"] is False
    assert first["reported"] == {"us-east-1": [I1, I2], "eu-west-1": [I3]}
    assert first["counts"]["reported"] == 3
    assert first["event"]["typeCode"] == DOS
    assert first["event"]["account"] == ACCOUNT
    assert first["event"]["region"] is None
    assert first["dedupeKey"] == f"health-abuse#{ACCOUNT}#{ARN_EVENT}#page-1"
    assert first["dedupeExpiresAt"] == entities.dedupe_expiry(load("dos-report-arn.json"))
    assert first["settings"]["regions"] == ["us-east-1", "eu-west-1"]


def test_parse_closed_event_is_ignored() -> None:
    first = planned(load("closed-report.json"))
    assert first["reported"] == {}
    assert first["ignoredBecause"] == "the event is closed"
    assert first["resolved"] == [I1]
    assert "ignored: the event is closed" in plan.summary(first)


def test_parse_closed_event_is_ignored_even_with_open_entities() -> None:
    first = planned(make_event({"statusCode": "closed"}))
    assert first["reported"] == {}
    assert first["ignoredBecause"] == "the event is closed"


def test_parse_code_that_is_not_a_quarantine_code_is_ignored() -> None:
    first = planned(load("copyright-report.json"))
    assert first["reported"] == {}
    assert first["ignoredBecause"] == (
        f"AWS_ABUSE_COPYRIGHT_DMCA_REPORT is not one of the quarantine codes ({DOS})"
    )


def test_parse_with_no_quarantine_codes_configured_is_ignored() -> None:
    first = planned(make_event(), dict(RAW_SETTINGS, abuseCodes=""))
    assert first["reported"] == {}
    assert "none configured" in first["ignoredBecause"]


def test_parse_keeps_what_is_not_acted_on() -> None:
    first = planned(load("dos-report-unknown.json"))
    assert first["reported"] == {"us-east-1": [I5]}
    assert first["unparseable"] == ["arn:ec2-1-101002929", "203.0.113.17"]
    assert first["foreign"] == [f"arn:aws:ec2:us-east-1:{OTHER_ACCOUNT}:instance/{I1}"]


def test_parse_applies_overrides_to_the_plan() -> None:
    event = make_event(top={"opsflow": {"dryRun": "false", "ignoreDuplicate": True}})
    first = planned(event)
    assert first["dryRun"] is False
    assert first["ignoreDuplicate"] is True
    assert first["settings"]["dryRun"] is False


def test_parse_rejects_invalid_event_before_settings() -> None:
    with pytest.raises(InvalidEvent, match="detail.service is 'EC2'"):
        plan.parse(make_event({"service": "EC2"}), {}, EXECUTION)


# ---------------------------------------------------------------- plan.classify


def _searched(first: dict[str, Any]) -> dict[str, list[str]]:
    return plan.searched_regions(first)


def classify(first: dict[str, Any], *found: dict[str, Any]) -> dict[str, Any]:
    return plan.classify(first, {item["InstanceId"]: item for item in found}, _searched(first))


def test_classify_sorts_targets_and_skipped() -> None:
    first = planned(load("dos-report-arn.json"))
    result = classify(
        first,
        ec2_instance(I1, tags={"Name": "web-1", "Team": "shop"}, vpc="vpc-0aaa"),
        ec2_instance(I2, tags={"Stage": "Prod", "Name": "db"}),
    )
    assert result["batches"] == [{"us-east-1": [I1]}]
    assert result["before"] == [{"state": "running", "interfaces": [], "instances": [I1]}]
    assert plan.targets_of(result) == [{"instanceId": I1, "region": "us-east-1"}]
    assert "  - " + I1 + " 'web-1' (us-east-1), running" in (
        result["notices"]["detected"]["message"]["default"]
    )
    assert result["skipped"] == [
        {"instanceId": I2, "region": "us-east-1", "reason": "protected (Stage=Prod)"},
        {"instanceId": I3, "reason": "not found in eu-west-1"},
    ]
    assert result["targetCount"] == 1
    assert result["counts"]["skipped"] == 2
    assert result["actionable"] is True
    assert "escalate" not in result
    assert result["summary"] == f"{DOS}: 1 to quarantine, 2 skipped"
    assert "batches" not in first
    assert "reported" not in result  # the plan carries the batches, not the report


def test_classify_protected_sample_is_skipped() -> None:
    first = planned(load("dos-report-protected.json"))
    result = classify(first, ec2_instance(I4, tags={"Stage": "Prod"}))
    assert result["batches"] == []
    assert result["skipped"] == [
        {"instanceId": I4, "region": "us-east-1", "reason": "protected (Stage=Prod)"}
    ]
    assert result["actionable"] is False


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param({"Stage": "prod"}, id="value-case-differs"),
        pytest.param({"stage": "Prod"}, id="key-case-differs"),
        pytest.param({"Stage": "Dev"}, id="other-value"),
        pytest.param({}, id="untagged"),
    ],
)
def test_classify_only_exact_protected_tag_protects(tags: dict[str, str]) -> None:
    first = planned(make_event())
    result = classify(first, ec2_instance(I1, tags=tags))
    assert [t["instanceId"] for t in plan.targets_of(result)] == [I1]
    assert result["skipped"] == []


@pytest.mark.parametrize("state", ["terminated", "shutting-down"])
def test_classify_gone_instances_are_skipped(state: str) -> None:
    first = planned(make_event())
    result = classify(first, ec2_instance(I1, state=state))
    assert result["batches"] == []
    assert result["skipped"] == [
        {"instanceId": I1, "region": "us-east-1", "reason": f"already {state}"}
    ]
    assert result["actionable"] is False


@pytest.mark.parametrize("state", ["pending", "running", "stopping", "stopped"])
def test_classify_live_instances_are_targets(state: str) -> None:
    result = classify(planned(make_event()), ec2_instance(I1, state=state))
    assert plan.before_of(result)[I1]["state"] == state
    assert result["batches"] == [{"us-east-1": [I1]}]


def test_classify_not_found_names_every_region_searched() -> None:
    first = planned(load("dos-report-global.json"))
    result = classify(first)
    assert result["skipped"] == [{"instanceId": I3, "reason": "not found in us-east-1, eu-west-1"}]
    assert result["actionable"] is False
    assert (
        "Nothing to do: no reported instance can be acted on."
        in (result["notices"]["noAction"]["message"]["default"])
    )


def test_classify_instance_found_in_another_region() -> None:
    first = planned(load("dos-report-global.json"))
    result = classify(first, ec2_instance(I3, region="eu-west-1"))
    assert result["batches"] == [{"eu-west-1": [I3]}]


def test_classify_ignored_event_has_nothing_to_do() -> None:
    first = planned(load("closed-report.json"))
    result = plan.classify(first, {}, {})
    assert result["batches"] == result["skipped"] == []
    assert result["actionable"] is False
    assert "the event is closed" in result["notices"]["noAction"]["message"]["sms"]


def _many(count: int) -> list[str]:
    return [f"i-{n:017x}" for n in range(1, count + 1)]


def test_classify_more_targets_than_the_cap_escalates() -> None:
    ids = _many(3)
    event = make_event({"affectedEntities": entities_of(*ids)}, {"opsflow": {"maxInstances": 2}})
    result = classify(planned(event), *(ec2_instance(i) for i in ids))
    assert result["targetCount"] == 3
    cause = result["escalate"]["cause"]
    assert result["batches"] == [] and result["before"] == []  # nothing to act on
    assert "3 instances reported" in cause
    assert "cap of 2" in cause
    assert "nothing was changed" in cause
    assert cause in result["notices"]["escalate"]["message"]["default"]
    assert "cap 2" in result["notices"]["escalate"]["message"]["sms"]


def test_classify_exactly_at_the_cap_does_not_escalate() -> None:
    ids = _many(2)
    event = make_event({"affectedEntities": entities_of(*ids)}, {"opsflow": {"maxInstances": 2}})
    result = classify(planned(event), *(ec2_instance(i) for i in ids))
    assert result["targetCount"] == 2
    assert "escalate" not in result


def test_classify_skipped_instances_do_not_count_towards_the_cap() -> None:
    ids = _many(3)
    event = make_event({"affectedEntities": entities_of(*ids)}, {"opsflow": {"maxInstances": 1}})
    found = [ec2_instance(ids[0]), ec2_instance(ids[1], tags={"Stage": "Prod"})]
    result = classify(planned(event), *found)
    assert result["targetCount"] == 1
    assert "escalate" not in result


# ---------------------------------------------------------------- notices written by classify


def _scenarios() -> dict[str, dict[str, Any]]:
    many = _many(40)
    long_code = "AWS_ABUSE_" + "VERY_LONG_" * 8 + "REPORT"  # 96 of the 100 AWS Health allows
    cases: dict[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = {
        "one-target": (make_event(), RAW_SETTINGS, [ec2_instance(I1, tags={"Name": "web"})]),
        "forty-targets-paged": (
            make_event(
                {"affectedEntities": entities_of(*many), "page": "2", "totalPages": "7"},
                {"opsflow": {"dryRun": False}},
            ),
            RAW_SETTINGS,
            [ec2_instance(i, tags={"Name": "n" * 200}) for i in many],
        ),
        "long-type-code": (
            make_event({"eventTypeCode": long_code}),
            dict(RAW_SETTINGS, abuseCodes=long_code),
            [ec2_instance(I1)],
        ),
        "ignored-long-code": (
            make_event({"eventTypeCode": long_code}),
            dict(RAW_SETTINGS, abuseCodes=",".join([DOS] * 10)),
            [],
        ),
        "nothing-found": (load("dos-report-unknown.json"), RAW_SETTINGS, []),
    }
    return {
        name: classify(planned(event, raw), *found) for name, (event, raw, found) in cases.items()
    }


SCENARIOS = _scenarios()
NOTICE_KINDS = ("detected", "noAction", "escalate", "killSwitch", "dryRun")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_notice_fits_sns(name: str) -> None:
    written = SCENARIOS[name]["notices"]
    assert set(written) == set(NOTICE_KINDS)
    for kind, item in written.items():
        subject = item["subject"]
        message = item["message"]
        assert 0 < len(subject) <= notices.SUBJECT_LIMIT, kind
        assert "\n" not in subject and "\r" not in subject, kind
        assert set(message) == {"default", "sms"}, kind
        assert message["default"].strip(), kind
        assert 0 < len(message["sms"]) <= notices.SMS_LIMIT, kind
        assert "\n" not in message["sms"], kind
        json.dumps(message)


def test_detected_notice_lists_the_instances() -> None:
    ids = _many(5)
    event = make_event({"affectedEntities": entities_of(*ids)})
    result = classify(planned(event), *(ec2_instance(i) for i in ids))
    detected = result["notices"]["detected"]
    assert detected["subject"] == "opsflow: DRY RUN abuse report DOS: quarantining 5 instance(s)"
    sms = detected["message"]["sms"]
    assert sms == f"AWS abuse DOS: DRY RUN quarantining 5: {', '.join(ids[:3])}..."
    full = detected["message"]["default"]
    assert all(instance_id in full for instance_id in ids)
    assert "snapshot every volume for forensics" in full
    assert EXECUTION in full


def test_detected_notice_names_target_skipped_and_not_acted_on() -> None:
    first = planned(load("dos-report-unknown.json"))
    result = classify(first, ec2_instance(I5, tags={"Name": "scanner"}))
    full = result["notices"]["detected"]["message"]["default"]
    assert f"  - {I5} 'scanner' (us-east-1), running" in full
    assert "  - arn:ec2-1-101002929" in full
    assert "  - 203.0.113.17" in full
    assert f"  - arn:aws:ec2:us-east-1:{OTHER_ACCOUNT}:instance/{I1}" in full
    assert f"account {ACCOUNT}" in full
    sms = result["notices"]["detected"]["message"]["sms"]
    assert sms == f"AWS abuse DOS: DRY RUN quarantining 1: {I5}"


def test_detected_notice_without_dry_run() -> None:
    event = make_event(top={"opsflow": {"dryRun": False}})
    result = classify(planned(event), ec2_instance(I1))
    detected = result["notices"]["detected"]
    assert detected["subject"] == "opsflow: abuse report DOS: quarantining 1 instance(s)"
    assert "DRY RUN" not in detected["message"]["sms"]


def test_paged_notice_says_which_page() -> None:
    first = planned(load("dos-report-paged-2of2.json"))
    result = classify(first, ec2_instance(I2))
    assert "(page 2 of 2)" in result["notices"]["detected"]["message"]["default"]


def test_long_subject_is_truncated_by_the_notice() -> None:
    subject = SCENARIOS["long-type-code"]["notices"]["detected"]["subject"]
    assert len(subject) == notices.SUBJECT_LIMIT
    assert subject.endswith("...")


# ---------------------------------------------------------------- runbook_kit.errors.translate


def client_error(
    code: str | None, message: str = "", operation: str = "StopInstances"
) -> ClientError:
    response: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": 400}}
    if code is not None:
        response["Error"] = {"Code": code, "Message": message}
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        *[
            pytest.param(code, errors.Throttled, id=code)
            for code in (
                "Throttling",
                "ThrottlingException",
                "RequestLimitExceeded",
                "TooManyRequestsException",
                "SlowDown",
                "ProvisionedThroughputExceededException",
            )
        ],
        *[
            pytest.param(code, errors.AccessDenied, id=code)
            for code in (
                "AccessDenied",
                "AccessDeniedException",
                "UnauthorizedOperation",
                "AuthFailure",
            )
        ],
        *[
            pytest.param(code, errors.ResourceNotFound, id=code)
            for code in (
                "InvalidInstanceID.NotFound",
                "InvalidGroup.NotFound",
                "InvalidSnapshot.NotFound",
                "ParameterNotFound",
            )
        ],
        *[
            pytest.param(code, errors.AwsCallFailed, id=code)
            for code in (
                "InvalidParameterValue",
                "IncorrectInstanceState",
                "InvalidInstanceID.Malformed",
                "InternalError",
                "DryRunOperation",
            )
        ],
    ],
)
def test_translate_routes_on_the_error_code(code: str, expected: type[errors.RunbookError]) -> None:
    translated = errors.translate(client_error(code, "details here"), "StopInstances in us-east-1")
    assert type(translated) is expected
    assert isinstance(translated, errors.RunbookError)
    assert str(translated) == f"StopInstances in us-east-1: {code}: details here"
    assert errors.error_code(client_error(code)) == code


def test_translate_without_message_or_code() -> None:
    assert str(errors.translate(client_error("SlowDown"), "PutObject")) == "PutObject: SlowDown"
    unknown = errors.translate(client_error(None), "DescribeInstances")
    assert type(unknown) is errors.AwsCallFailed
    assert str(unknown) == "DescribeInstances: Unknown"
    assert errors.error_code(client_error(None)) == ""


# ---------------------------------------------------------------- runbook_kit.notices


def test_notice_short_texts_are_kept() -> None:
    full = "line one\n\n  line two\n"
    item = notices.notice("  opsflow:\n  short ", "sms\ttext\n", full)
    assert item == {
        "subject": "opsflow: short",
        "message": {"default": full, "sms": "sms text"},
    }


@pytest.mark.parametrize(
    ("length", "limit_attr", "field"),
    [
        pytest.param(99, "SUBJECT_LIMIT", "subject", id="subject-at-limit"),
        pytest.param(140, "SMS_LIMIT", "sms", id="sms-at-limit"),
    ],
)
def test_notice_text_at_the_limit_is_not_truncated(
    length: int, limit_attr: str, field: str
) -> None:
    text = "x" * length
    item = notices.notice(text, text, "full")
    value = item["subject"] if field == "subject" else item["message"]["sms"]
    assert value == text
    assert len(value) == getattr(notices, limit_attr)


def test_notice_long_texts_are_truncated() -> None:
    subject = "s" * 99 + "TAIL" + " more" * 50
    sms = "m" * 139 + "TAIL" + " more" * 50
    full = "f" * 10_000
    item = notices.notice(subject, sms, full)
    assert item["subject"] == "s" * 96 + "..."
    assert len(item["subject"]) == notices.SUBJECT_LIMIT == 99
    assert item["message"]["sms"] == "m" * 137 + "..."
    assert len(item["message"]["sms"]) == notices.SMS_LIMIT == 140
    assert item["message"]["default"] == full


def test_notice_counts_collapsed_whitespace_before_truncating() -> None:
    item = notices.notice("a" + " " * 500 + "b", "c" + "\n" * 500 + "d", "")
    assert item["subject"] == "a b"
    assert item["message"]["sms"] == "c d"


def test_console_link() -> None:
    link = notices.console_link("eu-west-1", EXECUTION)
    assert link == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        f"#/v2/executions/details/{EXECUTION}"
    )
    assert notices.console_link("eu-west-1", "") == ""
    assert notices.console_link("eu-west-1", None) == ""
    assert notices.console_link("eu-west-1", "run-1") == ""


# ---------------------------------------------------------------- the event's identity


def test_identity_is_the_template_rule_pattern() -> None:
    """The values Detect checks are the ones HealthAbuseRule matches, stated once each."""
    from opsflow import template as cfn

    machine = cfn.resources_of_type(cfn.cached(), "AWS::Serverless::StateMachine")
    pattern = machine["HealthAbuseStateMachine"]["Properties"]["Events"]["HealthAbuseRule"][
        "Properties"
    ]["Pattern"]
    assert pattern["source"] == [entities.SOURCE]
    assert pattern["detail-type"] == [entities.DETAIL_TYPE]
    assert pattern["detail"]["service"] == [entities.SERVICE]


@pytest.mark.parametrize(
    ("top", "detail", "message"),
    [
        pytest.param({"source": "aws.health "}, {}, "source is 'aws.health '", id="source-space"),
        pytest.param({"source": "AWS.health"}, {}, "source is 'AWS.health'", id="source-case"),
        pytest.param(
            {"detail-type": "AWS Health Abuse Event "}, {}, "detail-type is", id="type-space"
        ),
        pytest.param({"detail-type": "Manual run"}, {}, "detail-type is", id="type-manual"),
        pytest.param({}, {"service": " ABUSE"}, "detail.service is ' ABUSE'", id="service-space"),
        pytest.param({"source": 7}, {}, "source must be a string, got int", id="source-int"),
    ],
)
def test_identity_is_checked_exactly_as_the_rule_does(
    top: dict[str, Any], detail: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        entities.read(make_event(detail, top))


def test_type_code_with_spaces_is_not_a_quarantine_code() -> None:
    first = planned(make_event({"eventTypeCode": f"{DOS} "}))
    assert first["reported"] == {}
    assert "is not one of the quarantine codes" in first["ignoredBecause"]


# ---------------------------------------------------------------- entity status


@pytest.mark.parametrize("status", ["UNIMPAIRED", "UNKNOWN", "PENDING", "SOMETHING_NEW", 3])
def test_entities_not_reported_affected_are_reported_not_acted_on(status: Any) -> None:
    items = [{"entityValue": I1, "status": status}, {"entityValue": I2, "status": "IMPAIRED"}]
    items.append({"entityValue": I3})  # no status: the event itself names it affected
    report = entities.read(make_event({"affectedEntities": items}))
    assert instance_pairs(report) == [(I2, "us-east-1"), (I3, "us-east-1")]
    assert report.unaffected == [{"entity": I1, "status": str(status)}]
    assert report.resolved == []


def test_entity_statuses_are_the_ones_aws_documents() -> None:
    # AWS Health API reference, AffectedEntity.statusCode / EntityStatusCode.
    assert set(entities.ENTITY_STATUSES) == {
        "IMPAIRED", "UNIMPAIRED", "UNKNOWN", "PENDING", "RESOLVED"
    }
    assert entities.AFFECTED == {"IMPAIRED"}


def test_unaffected_entities_are_in_the_notice_and_not_targets() -> None:
    event = make_event({"affectedEntities": [{"entityValue": I1, "status": "UNIMPAIRED"}]})
    first = planned(event)
    assert first["reported"] == {}
    assert first["unaffected"] == [{"entity": I1, "status": "UNIMPAIRED"}]
    result = classify(first)
    assert result["actionable"] is False
    full = result["notices"]["noAction"]["message"]["default"]
    assert f"  - {I1}: status UNIMPAIRED" in full
    assert "1 not reported as affected" in result["summary"]


def test_an_instance_also_reported_affected_is_not_listed_unaffected() -> None:
    items = [{"entityValue": I1, "status": "UNKNOWN"}, {"entityValue": I1, "status": "IMPAIRED"}]
    report = entities.read(make_event({"affectedEntities": items}))
    assert instance_pairs(report) == [(I1, "us-east-1")]
    assert report.unaffected == []


# ---------------------------------------------------------------- the runbook's own account


def test_foreign_arn_is_foreign_when_the_event_names_no_account() -> None:
    foreign = f"arn:aws:ec2:us-east-1:{OTHER_ACCOUNT}:instance/{I1}"
    event = make_event({"affectedEntities": entities_of(foreign)}, {"account": DROP})
    first = planned(event)  # the execution ARN names the runbook's account
    assert first["reported"] == {}
    assert first["foreign"] == [foreign]
    assert first["event"]["account"] == ACCOUNT


def test_own_arn_is_acted_on_when_the_event_names_no_account() -> None:
    own = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{I3}"
    event = make_event({"affectedEntities": entities_of(own)}, {"account": DROP})
    assert planned(event)["reported"] == {"eu-west-1": [I3]}


def test_event_for_another_account_is_rejected() -> None:
    event = make_event(top={"account": OTHER_ACCOUNT})
    with pytest.raises(InvalidEvent, match=f"for account {OTHER_ACCOUNT}, and this runbook"):
        planned(event)
    with pytest.raises(InvalidEvent, match=f"for account {OTHER_ACCOUNT}"):
        planned(make_event({"affectedAccount": OTHER_ACCOUNT}, {"account": DROP}))


def test_the_runbook_account_comes_from_the_execution_or_the_function() -> None:
    from runbook_kit import accounts

    class Context:
        invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:opsflow-parse"

    assert accounts.home_account(EXECUTION, Context()) == ACCOUNT
    assert accounts.home_account("", Context()) == ACCOUNT
    assert accounts.home_account(EXECUTION, None) == ACCOUNT
    with pytest.raises(errors.AccountUnknown):
        accounts.home_account("", None)
    other = f"arn:aws:states:us-east-1:{OTHER_ACCOUNT}:execution:m:run"
    with pytest.raises(errors.AccountUnknown, match="disagree|but the function"):
        accounts.home_account(other, Context())
    with pytest.raises(errors.AccountUnknown):
        plan.parse(make_event(), dict(RAW_SETTINGS), "run-1")


# ---------------------------------------------------------------- plan.rollback_summary


def _final(instance_id: str, state: str, interfaces: dict[str, list[str]], isolated: bool,
           region: str = "us-east-1") -> dict[str, Any]:
    """An instance's final state as ``quarantine.inspect`` reads it; ``interfaces`` by interface
    ID, in device order."""
    groups = sorted({g for gs in interfaces.values() for g in gs})
    return {"instanceId": instance_id, "region": region, "state": state, "groups": groups,
            "interfaces": [",".join(sorted(gs)) for gs in interfaces.values()],
            "isolated": isolated, "quarantined": isolated and state == "stopped"}


def _rollback_plan() -> dict[str, Any]:
    first = planned(
        make_event({"affectedEntities": entities_of(I1, I2)}), {**RAW_SETTINGS, "dryRun": "false"}
    )
    found = {
        I1: {**ec2_instance(I1), "NetworkInterfaces": [
            {"NetworkInterfaceId": "eni-1", "Groups": [{"GroupId": "sg-web"}]}]},
        I2: {**ec2_instance(I2), "NetworkInterfaces": [
            {"NetworkInterfaceId": "eni-2", "Groups": [{"GroupId": "sg-web"}]}]},
    }
    return plan.classify(first, found, _searched(first))


ERROR = {"Error": "AccessDenied", "Cause": json.dumps({"errorMessage": "CreateSnapshots: no"}),
         "instanceId": I1, "region": "us-east-1"}


def test_rollback_summary_says_returned_only_when_every_instance_is_as_before() -> None:
    states = [_final(I1, "running", {"eni-1": ["sg-web"]}, False),
              _final(I2, "running", {"eni-2": ["sg-web"]}, False)]
    result = plan.rollback_summary(_rollback_plan(), states, ERROR, "restore")
    assert result["complete"] is True
    assert "Every touched instance was returned to its recorded before-state" in result["cause"]
    assert f"AccessDenied on {I1} (us-east-1): CreateSnapshots: no" in result["cause"]


def test_rollback_summary_names_every_instance_left_changed_with_its_state() -> None:
    states = [_final(I1, "running", {"eni-1": ["sg-web"]}, False),
              _final(I2, "running", {"eni-2": ["sg-iso"]}, True)]
    result = plan.rollback_summary(_rollback_plan(), states, ERROR, "restore")
    assert result["complete"] is False
    assert "returned to its recorded before-state" not in result["cause"]
    assert (f"{I2} (us-east-1): running, isolated, groups sg-iso "
            "(before: running, groups sg-web)") in result["cause"]
    assert f"Returned to before-state: {I1}." in result["cause"]
    assert result["leftChanged"] == [I2]
    assert "INCOMPLETE" in result["notice"]["subject"]


def test_rollback_summary_of_a_failed_rollback_names_what_is_left() -> None:
    states = [_final(I1, "stopping", {"eni-1": ["sg-web"]}, False),
              _final(I2, "stopped", {"eni-2": ["sg-web"]}, False)]
    busy = {"Error": "InstanceBusy", "Cause": "x is stopping", "instanceId": I1,
            "region": "us-east-1"}
    result = plan.rollback_summary(_rollback_plan(), states, ERROR, "failed", busy)
    assert result["complete"] is False
    assert result["cause"].startswith(f"Rollback failed (InstanceBusy on {I1} (us-east-1)")
    for instance_id, state in ((I1, "stopping"), (I2, "stopped")):
        assert f"{instance_id} (us-east-1): {state}, not isolated, groups sg-web" in result["cause"]
    assert "Returned to before-state: none." in result["cause"]


def test_rollback_summary_judges_a_mid_transition_before_state_by_where_it_was_going() -> None:
    rollback_plan = _rollback_plan()
    rollback_plan["before"] = [
        {"state": "pending", "interfaces": ["sg-web"], "instances": [I1]},
        {"state": "running", "interfaces": ["sg-web"], "instances": [I2]},
    ]
    states = [_final(I1, "running", {"eni-1": ["sg-web"]}, False),
              _final(I2, "running", {"eni-2": ["sg-web"]}, False)]
    assert plan.rollback_summary(rollback_plan, states, ERROR, "restore")["complete"] is True


def test_rollback_summary_of_a_dry_run_says_nothing_changed_only_when_so() -> None:
    dry = planned(make_event({"affectedEntities": entities_of(I1)}))
    dry = plan.classify(dry, {I1: {**ec2_instance(I1), "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-1", "Groups": [{"GroupId": "sg-web"}]}]}}, _searched(dry))
    same = plan.rollback_summary(dry, [_final(I1, "running", {"eni-1": ["sg-web"]}, False)],
                                 ERROR, "restore")
    assert "Nothing was changed." in same["cause"]
    moved = plan.rollback_summary(dry, [_final(I1, "running", {"eni-1": ["sg-iso"]}, True)],
                                  ERROR, "restore")
    assert "Nothing was changed" not in moved["cause"]
    assert f"{I1} (us-east-1): running, isolated, groups sg-iso" in moved["cause"]


# ---------------------------------------------------------------- plans of any size


def fleet_instance(number: int, interfaces: int = 1, own_groups: bool = False) -> dict[str, Any]:
    """Instance ``number`` as DescribeInstances returns it, with ``interfaces`` interfaces of
    two groups each: the fleet's, or (``own_groups``) groups of its own."""
    instance = ec2_instance(f"i-{number:017x}", tags={"Name": f"web-{number}"})
    owner = number if own_groups else 0
    instance["NetworkInterfaces"] = [
        {
            "NetworkInterfaceId": f"eni-{number:08x}{device:09x}",
            "Attachment": {"DeviceIndex": device},
            "Groups": [{"GroupId": f"sg-{owner:08x}{device:09x}"},
                       {"GroupId": f"sg-{owner:08x}{device + 100:09x}"}],
        }
        for device in range(interfaces)
    ]
    return instance


def fleet_plan(
    count: int, interfaces: int = 1, cap: int = 1000, own_groups: bool = False
) -> dict[str, Any]:
    found = [fleet_instance(n, interfaces, own_groups) for n in range(1, count + 1)]
    event = make_event(
        {"affectedEntities": entities_of(*(i["InstanceId"] for i in found))},
        {"opsflow": {"maxInstances": cap, "dryRun": False}},
    )
    return classify(planned(event), *found)


def test_the_state_data_limit_is_the_one_the_engine_enforces() -> None:
    from opsflow.engine import limits

    assert plan.STATE_DATA_LIMIT == limits.PAYLOAD_LIMIT
    assert plan.PLAN_LIMIT < plan.STATE_DATA_LIMIT


@pytest.mark.parametrize(
    ("interfaces", "own_groups"),
    [(3, False), (1, True)],
    ids=["alike-with-three-interfaces", "each-with-its-own-groups"],
)
def test_the_largest_cap_the_template_allows_fits_in_a_plan(
    interfaces: int, own_groups: bool
) -> None:
    """MaxInstances' MaxValue of instances fits the plan's share of a state's data: a fleet of
    alike ones (their before-state is recorded once), or each with its own groups. They travel
    in batches of at most BATCH_SIZE."""
    result = fleet_plan(INSTANCES["MaxValue"], interfaces, own_groups=own_groups)
    assert "escalate" not in result
    assert plan.payload_size(result) <= plan.PLAN_LIMIT
    assert len(plan.targets_of(result)) == INSTANCES["MaxValue"]
    assert len(result["batches"]) == -(-INSTANCES["MaxValue"] // plan.BATCH_SIZE)
    assert all(sum(map(len, b.values())) <= plan.BATCH_SIZE for b in result["batches"])
    assert len(result["before"]) == (INSTANCES["MaxValue"] if own_groups else 1)
    first = plan.targets_of(result)[0]["instanceId"]
    owner = 1 if own_groups else 0
    assert plan.before_of(result)[first] == {
        "state": "running",
        "interfaces": [
            f"sg-{owner:08x}{d:09x},sg-{owner:08x}{d + 100:09x}" for d in range(interfaces)
        ],
    }


def test_instances_too_many_to_carry_escalate_naming_the_limit() -> None:
    """The event fits, the instances found do not (15 interfaces each, each with its own
    groups): nothing is acted on, and the notice says why."""
    result = fleet_plan(1000, interfaces=15, own_groups=True)
    cause = result["escalate"]["cause"]
    assert "256 KiB" in cause and f"{plan.PLAN_LIMIT:,}" in cause
    assert result["batches"] == [] and result["before"] == []
    assert plan.payload_size(result) <= plan.PLAN_LIMIT
    assert "too many to carry" in result["notices"]["escalate"]["subject"]


def test_over_the_cap_carries_no_batches() -> None:
    result = fleet_plan(1001)
    assert "above the blast-radius cap of 1000" in result["escalate"]["cause"]
    assert result["batches"] == [] and result["before"] == []
    assert result["targetCount"] == 1001
    assert plan.payload_size(result) < 64 * 1024


def test_batches_hold_at_most_batch_size_instances_of_any_regions() -> None:
    targets = [{"instanceId": f"i-{n:017x}", "region": ("us-east-1", "eu-west-1")[n % 2]}
               for n in range(plan.BATCH_SIZE + 3)]
    batches = plan.batches_of(targets)
    assert [sum(map(len, b.values())) for b in batches] == [plan.BATCH_SIZE, 3]
    assert set(batches[0]) == {"us-east-1", "eu-west-1"}
    assert sorted(plan.targets_of({"batches": batches}), key=str) == sorted(targets, key=str)


def test_an_event_reporting_more_instances_than_a_plan_can_carry_is_invalid() -> None:
    ids = [f"i-{n:017x}" for n in range(1, 12_001)]
    event = make_event({"affectedEntities": DROP}, {"resources": ids})
    with pytest.raises(InvalidEvent) as raised:
        planned(event)
    message = str(raised.value)
    assert message.startswith("the event reports 12,000 instance(s): the plan")
    assert "Step Functions' 256 KiB (262,144-byte) limit" in message
    assert "Nothing was changed" in message


def test_notices_name_the_first_instances_and_count_the_rest() -> None:
    result = fleet_plan(1000)
    full = result["notices"]["detected"]["message"]["default"]
    listed = [line for line in full.splitlines() if line.startswith("  - i-")]
    assert len(listed) == plan.LISTED
    assert f"  ... and {1000 - plan.LISTED:,} more" in full
    for item in result["notices"].values():
        assert len(json.dumps(item)) < 16 * 1024


def test_unknown_instances_are_counted_and_listed_in_part() -> None:
    ids = [f"i-{n:017x}" for n in range(1, 2001)]
    first = planned(make_event({"affectedEntities": entities_of(*ids), "eventRegion": DROP},
                               {"region": "global"}))
    assert first["reported"] == {plan.ANY_REGION: ids}
    result = plan.classify(first, {}, _searched(first))
    assert result["actionable"] is False
    assert result["counts"]["skipped"] == 2000 and len(result["skipped"]) == plan.LISTED
    assert result["summary"] == f"{DOS}: 0 to quarantine, 2,000 skipped"
    assert "and 1,980 more" in result["notices"]["noAction"]["message"]["default"]


def test_what_is_not_acted_on_is_counted_and_cut() -> None:
    junk = [f"not-an-instance-{n}-" + "x" * 1000 for n in range(100)]
    first = planned(make_event({"affectedEntities": entities_of(*junk),
                                "eventDescription": [{"latestDescription": "d" * 100_000}]}))
    assert first["counts"]["unparseable"] == 100
    assert len(first["unparseable"]) == plan.LISTED
    assert all(len(value) <= plan.VALUE_LIMIT for value in first["unparseable"])
    assert len(first["event"]["description"]) == plan.DESCRIPTION_LIMIT
    assert "100 not instances of this account" in plan.summary(first)


def test_a_verify_check_of_a_thousand_is_bounded() -> None:
    result = fleet_plan(1000)
    states = [_final(t["instanceId"], "stopping", {"e": ["sg-iso"]}, True)
              for t in plan.targets_of(result)]
    check = plan.verified(result, states, 2)
    assert (check["attempt"], check["converged"]) == (3, False)
    assert check["summary"].startswith("0 of 1,000 instance(s) stopped, isolated, out of service and protected; waiting for")
    assert "and 997 more" in check["summary"]
    assert plan.payload_size(check) < 16 * 1024
    done = plan.verified(result, [{**s, "state": "stopped", "quarantined": True} for s in states], 0)
    assert done["converged"] is True
    assert done["summary"] == (
        "1,000 of 1,000 instance(s) stopped, isolated, out of service and protected")


def test_a_rollback_report_of_a_thousand_is_bounded() -> None:
    result = fleet_plan(1000)
    states = [_final(t["instanceId"], "stopped", {"e": ["sg-iso"]}, True)
              for t in plan.targets_of(result)]
    report = plan.rollback_summary(result, states, ERROR, "restore")
    assert report["complete"] is False
    assert report["leftChangedCount"] == 1000 and len(report["leftChanged"]) == plan.LISTED
    assert "1000 instance(s) left changed" in report["cause"]
    assert f"and {1000 - plan.LISTED:,} more" in report["cause"]
    assert len(report["cause"]) < 12_000
    assert plan.payload_size(report) < 32 * 1024
