"""Outcome tests for what the ebs-quota-forecast runbook reads and decides (pure, no AWS)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ebs_quota import quotas
from runbook_kit.errors import InvalidEvent
from runbook_kit.parameters import PARAMETERS
from runbook_kit.parameters import SETTINGS as SOURCES

EVENTS = Path(__file__).resolve().parents[2] / "events" / "ebs-quota-forecast"
ACCOUNT = "123456789012"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:opsflow-ebs-quota-forecast:run-1"
GP2 = "L-D18FCD1D"
GP3 = "L-7A658B76"
IO1 = "L-FD252861"
SNAPSHOTS = "L-309BACF6"
GP3_NAME = "Storage for General Purpose SSD (gp3) volumes, in TiB"
GP2_NAME = "Storage for General Purpose SSD (gp2) volumes, in TiB"
SNAPSHOTS_NAME = "Snapshots per Region"
START = date(2025, 12, 15)

# What the state machine passes: template parameters, every one a string.
RAW_SETTINGS: dict[str, Any] = {
    "dryRun": "true",
    "regions": "us-east-1,eu-west-1,ap-southeast-2",
    "quotaCodes": ",".join(quotas.QUOTAS),
    "horizonDays": "30",
    "thresholdPercent": "80",
    "headroomPercent": "25",
    "historyDays": "90",
}
CONFIG: dict[str, Any] = {"horizonDays": 30, "thresholdPercent": 80, "headroomPercent": 25}


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def trigger(event: Any, **settings: Any) -> dict[str, Any]:
    return quotas.read_trigger(event, {**RAW_SETTINGS, **settings}, EXECUTION)


def series(days: int, value: Callable[[int], float]) -> list[tuple[date, float]]:
    return [(START + timedelta(days=i), value(i)) for i in range(days)]


# ------------------------------------------------------------------------------ read_trigger
def test_daily_schedule_is_a_schedule_trigger_as_of_the_event_day() -> None:
    plan = trigger(load("daily-schedule.json"))
    assert plan["scenario"] == "ebs-quota-forecast"
    assert plan["execution"] == EXECUTION
    assert plan["trigger"] == "schedule"
    assert plan["reported"] == []
    assert plan["dryRun"] is True
    assert plan["ignoreDuplicate"] is False
    assert plan["settings"] == {
        "regions": ["us-east-1", "eu-west-1", "ap-southeast-2"],
        "quotaCodes": list(quotas.QUOTAS),
        "horizonDays": 30,
        "thresholdPercent": 80,
        "headroomPercent": 25,
        "historyDays": 90,
        "dryRun": True,
        "asOf": "2026-03-14",
    }
    assert plan["dedupeKey"] == f"ebs-quota-forecast#{ACCOUNT}#schedule#2026-03-14"
    expires = datetime(2026, 3, 28, tzinfo=UTC)
    assert plan["dedupeExpiresAt"] == int(expires.timestamp())


def test_health_breach_for_ebs_reports_the_quota_and_its_utilization() -> None:
    plan = trigger(load("health-threshold-breach.json"))
    assert plan["trigger"] == "health"
    assert plan["reported"] == [{"quotaName": GP3_NAME, "utilization": 80.0}]
    assert plan["settings"]["asOf"] == "2026-03-14"
    assert plan["settings"]["quotaCodes"] == list(quotas.QUOTAS)


def test_health_breach_keeps_only_the_ebs_entities() -> None:
    event = load("health-threshold-breach.json")
    entities = event["detail"]["affectedEntities"]
    entities.insert(
        0, {"entityValue": "Service: ec2 | Quota Name: Running instances | Utilization: 95.5%"}
    )
    entities.append(
        {"entityValue": "Service: EBS | Quota Name: Snapshots per Region | Utilization: 91.2%"}
    )
    entities.append("not an entity")
    plan = trigger(event)
    assert plan["reported"] == [
        {"quotaName": GP3_NAME, "utilization": 80.0},
        {"quotaName": SNAPSHOTS_NAME, "utilization": 91.2},
    ]


def test_manual_rerun_applies_its_overrides() -> None:
    plan = trigger(load("manual-rerun.json"), regions="us-east-1")
    assert plan["trigger"] == "manual"
    assert plan["settings"]["regions"] == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert plan["settings"]["horizonDays"] == 45
    assert plan["settings"]["thresholdPercent"] == 80
    assert plan["settings"]["asOf"] == "2026-03-14"


def test_manual_overrides_of_mode_and_day() -> None:
    event = load("manual-rerun.json")
    event["opsflow"] = {
        "dryRun": False,
        "ignoreDuplicate": "yes",
        "asOf": "2026-03-10",
        "regions": "eu-west-1, eu-central-1",
        "thresholdPercent": 70,
        "headroomPercent": "50",
    }
    plan = trigger(event)
    assert plan["dryRun"] is False
    assert plan["settings"]["dryRun"] is False
    assert plan["ignoreDuplicate"] is True
    assert plan["settings"]["asOf"] == "2026-03-10"
    assert plan["dedupeKey"] == f"ebs-quota-forecast#{ACCOUNT}#manual#2026-03-10"
    assert plan["settings"]["regions"] == ["eu-west-1", "eu-central-1"]
    assert plan["settings"]["thresholdPercent"] == 70
    assert plan["settings"]["headroomPercent"] == 50


def test_quota_codes_setting_narrows_the_managed_quotas() -> None:
    plan = trigger(load("daily-schedule.json"), quotaCodes=f"{GP3}, {SNAPSHOTS}")
    assert plan["settings"]["quotaCodes"] == [GP3, SNAPSHOTS]


def _without_detail(event: dict[str, Any]) -> None:
    del event["detail"]


def _other_event_type(event: dict[str, Any]) -> None:
    event["detail"]["eventTypeCode"] = "AWS_EBS_VOLUME_LOST"


def _entities_not_a_list(event: dict[str, Any]) -> None:
    event["detail"]["affectedEntities"] = {"entityValue": "Service: ebs"}


def _unknown_source(event: dict[str, Any]) -> None:
    event["source"] = "aws.ec2"


def _bad_time(event: dict[str, Any]) -> None:
    event["time"] = "yesterday at six"


def _no_time(event: dict[str, Any]) -> None:
    del event["time"]


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("daily-schedule.json", _unknown_source, r"not a trigger of this runbook.*aws\.ec2"),
        (
            "health-threshold-breach.json",
            _other_event_type,
            r"eventTypeCode is 'AWS_EBS_VOLUME_LOST', expected AWS_SERVICEQUOTAS_THRESHOLD_BREACH",
        ),
        ("health-threshold-breach.json", _without_detail, "no detail object"),
        ("health-threshold-breach.json", _entities_not_a_list, "affectedEntities must be a list"),
        ("daily-schedule.json", _bad_time, "'yesterday at six' is not an ISO-8601 timestamp"),
        ("daily-schedule.json", _no_time, "no time"),
    ],
)
def test_events_that_are_not_triggers_are_rejected(
    name: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    event = load(name)
    change(event)
    with pytest.raises(InvalidEvent, match=message):
        trigger(event)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("malformed-health-event.json", "affectedEntities must be a list"),
        ("health-breach-other-service.json", "names no EBS quota"),
    ],
)
def test_sample_events_that_are_rejected(name: str, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        trigger(load(name))


@pytest.mark.parametrize("event", [[], "event", None, 42])
def test_an_event_that_is_not_an_object_is_rejected(event: Any) -> None:
    with pytest.raises(InvalidEvent, match="must be a JSON object, got"):
        trigger(event)


def test_a_non_string_entity_value_is_rejected_as_invalid() -> None:
    event = load("health-threshold-breach.json")
    event["detail"]["affectedEntities"] = [{"entityValue": 80}]
    with pytest.raises(InvalidEvent, match="names no EBS quota"):
        trigger(event)


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ("", "no regions are configured"),
        (" , ", "no regions are configured"),
        ("us-east-1,Mars", "region 'Mars' is not an AWS region name"),
        ("us-east-1,US-EAST-1", "region 'US-EAST-1' is not an AWS region name"),
        ("us-east", "region 'us-east' is not an AWS region name"),
    ],
)
def test_bad_or_empty_regions_are_rejected(regions: str, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        trigger(load("daily-schedule.json"), regions=regions)


def test_an_empty_region_override_is_rejected() -> None:
    event = load("manual-rerun.json")
    event["opsflow"]["regions"] = []
    with pytest.raises(InvalidEvent, match="no regions are configured"):
        trigger(event)


def test_an_unknown_quota_code_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="unknown EBS quota code.*L-NOPE"):
        trigger(load("daily-schedule.json"), quotaCodes=f"{GP3},L-NOPE")


@pytest.mark.parametrize("key", ["quotaCodes", "horizon", "historyDays"])
def test_an_unknown_override_key_is_rejected(key: str) -> None:
    event = load("manual-rerun.json")
    event["opsflow"][key] = "1"
    with pytest.raises(InvalidEvent, match=f"unknown override.*{key}.*allowed"):
        trigger(event)


def _bound(key: str, which: str) -> int:
    """A setting's bound as the template states it (through the generated parameters)."""
    return int(PARAMETERS[str(SOURCES[quotas.SCENARIO][key])][which])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("horizonDays", _bound("horizonDays", "MinValue") - 1),
        ("horizonDays", _bound("horizonDays", "MaxValue") + 1),
        ("horizonDays", "soon"),
        ("thresholdPercent", _bound("thresholdPercent", "MinValue") - 1),
        ("thresholdPercent", _bound("thresholdPercent", "MaxValue") + 1),
        ("headroomPercent", _bound("headroomPercent", "MinValue") - 1),
        ("headroomPercent", _bound("headroomPercent", "MaxValue") + 1),
        ("dryRun", "maybe"),
    ],
)
def test_out_of_range_overrides_are_rejected(key: str, value: Any) -> None:
    event = load("manual-rerun.json")
    event["opsflow"][key] = value
    with pytest.raises(InvalidEvent, match=f"setting '{key}' must be"):
        trigger(event)


@pytest.mark.parametrize(
    ("key", "which"),
    [
        ("horizonDays", "MinValue"),
        ("horizonDays", "MaxValue"),
        ("thresholdPercent", "MinValue"),
        ("thresholdPercent", "MaxValue"),
        ("headroomPercent", "MaxValue"),
    ],
)
def test_overrides_at_the_bounds_are_accepted(key: str, which: str) -> None:
    event = load("manual-rerun.json")
    event["opsflow"][key] = _bound(key, which)
    assert trigger(event)["settings"][key] == _bound(key, which)


def test_an_override_message_names_the_template_bound() -> None:
    event = load("manual-rerun.json")
    event["opsflow"]["horizonDays"] = 1000
    with pytest.raises(InvalidEvent) as raised:
        trigger(event)
    assert str(raised.value) == (
        f"setting 'horizonDays' must be between {_bound('horizonDays', 'MinValue')} and "
        f"{_bound('horizonDays', 'MaxValue')}, got 1000"
    )


@pytest.mark.parametrize("name", sorted(RAW_SETTINGS))
def test_a_setting_the_state_machine_did_not_pass_is_an_invalid_event(name: str) -> None:
    raw = {key: value for key, value in RAW_SETTINGS.items() if key != name}
    with pytest.raises(InvalidEvent, match=f"setting '{name}' is missing"):
        quotas.read_trigger(load("daily-schedule.json"), raw, EXECUTION)


def test_no_quota_codes_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent, match="no EBS quota codes are configured"):
        trigger(load("daily-schedule.json"), quotaCodes="")


def test_dedupe_key_is_per_account_trigger_and_day() -> None:
    early, late, next_day, other = (load("daily-schedule.json") for _ in range(4))
    early["time"] = "2026-03-14T00:00:01Z"
    late["time"] = "2026-03-14T23:59:59Z"
    next_day["time"] = "2026-03-15T00:00:01Z"
    other["account"] = "210987654321"
    keys = [trigger(event)["dedupeKey"] for event in (early, late, next_day, other)]
    assert keys[0] == keys[1] == f"ebs-quota-forecast#{ACCOUNT}#schedule#2026-03-14"
    assert keys[2] == f"ebs-quota-forecast#{ACCOUNT}#schedule#2026-03-15"
    assert keys[3] == "ebs-quota-forecast#210987654321#schedule#2026-03-14"
    # A Health breach later the same day is a delivery of its own, not a duplicate of the run.
    breach = trigger(load("health-threshold-breach.json"))["dedupeKey"]
    assert breach.startswith(f"ebs-quota-forecast#{ACCOUNT}#health#2026-03-14#")
    assert breach != keys[0]


# ------------------------------------------------------------------------------ census
class FakePaginator:
    def __init__(self, pages: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls = calls

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(kwargs)
        return iter(self.pages)


class FakeEc2:
    """Just what ``census`` uses of an EC2 client: two paginators over fixed pages."""

    def __init__(self, volumes: list[list[dict[str, Any]]], snapshots: list[int]) -> None:
        self.pages = {
            "describe_volumes": [{"Volumes": page} for page in volumes],
            "describe_snapshots": [
                {"Snapshots": [{"SnapshotId": f"snap-{n}-{i}"} for i in range(n)]}
                for n in snapshots
            ],
        }
        self.calls: dict[str, list[dict[str, Any]]] = {name: [] for name in self.pages}

    def get_paginator(self, name: str) -> FakePaginator:
        return FakePaginator(self.pages[name], self.calls[name])


def volume(kind: str, size: int) -> dict[str, Any]:
    return {"VolumeId": f"vol-{kind}-{size}", "VolumeType": kind, "Size": size}


def test_census_sums_gib_per_volume_type_and_counts_snapshots_across_pages() -> None:
    ec2 = FakeEc2(
        volumes=[
            [volume("gp3", 1000), volume("gp2", 8), volume("gp3", 500)],
            [],
            [volume("io2", 4096), volume("gp3", 24)],
        ],
        snapshots=[1000, 0, 37],
    )
    counted = quotas.census(ec2, "eu-west-1")
    assert counted == {
        "region": "eu-west-1",
        "counted": True,
        "volumes": 5,
        "gib": {"gp3": 1524, "gp2": 8, "io2": 4096},
        "snapshots": 1037,
    }
    assert all(call["OwnerIds"] == ["self"] for call in ec2.calls["describe_snapshots"])
    assert ec2.calls["describe_snapshots"] and ec2.calls["describe_volumes"]


def test_census_of_an_empty_region() -> None:
    counted = quotas.census(FakeEc2(volumes=[[]], snapshots=[0]), "us-east-1")
    assert counted["gib"] == {}
    assert counted["volumes"] == 0
    assert counted["snapshots"] == 0


# ------------------------------------------------------------------------------ usage, metric
def test_usage_is_tib_for_storage_quotas_and_a_count_for_snapshots() -> None:
    counted = {"gib": {"gp3": 1536, "gp2": 1000}, "snapshots": 42}
    assert quotas.usage_of(GP3, counted) == 1.5
    assert quotas.usage_of(GP2, counted) == 0.9766
    assert quotas.usage_of(IO1, counted) == 0.0
    assert quotas.usage_of(SNAPSHOTS, counted) == 42.0


def test_metric_names_and_dimensions() -> None:
    assert quotas.metric(SNAPSHOTS) == ("SnapshotCount", [])
    assert quotas.metric(GP3) == ("StorageTiB", [{"Name": "VolumeType", "Value": "gp3"}])
    storage = [code for code in quotas.QUOTAS if code != SNAPSHOTS]
    types = {quotas.metric(code)[1][0]["Value"] for code in storage}
    assert types == {quotas.QUOTAS[code]["volumeType"] for code in storage}
    assert len(types) == len(storage)


# ------------------------------------------------------------------------------ desired_value
def test_desired_value_is_the_upper_forecast_plus_headroom_rounded_up() -> None:
    assert quotas.desired_value(42.1, 50.0, GP3, 25) == 53.0


def test_desired_value_is_always_above_the_current_quota() -> None:
    assert quotas.desired_value(1.0, 50.0, GP3, 25) == 51.0
    assert quotas.desired_value(40.0, 50.0, GP3, 25) == 51.0
    assert quotas.desired_value(1.0, 50.5, GP3, 0) == 51.0
    assert quotas.desired_value(10.0, 10_000.0, SNAPSHOTS, 25) == 11_000.0


def test_desired_snapshots_round_up_to_thousands() -> None:
    assert quotas.desired_value(9_000.0, 10_000.0, SNAPSHOTS, 25) == 12_000.0
    assert quotas.desired_value(10_001.0, 10_000.0, SNAPSHOTS, 0) == 11_000.0
    assert quotas.desired_value(24_100.0, 10_000.0, SNAPSHOTS, 0) == 25_000.0


@pytest.mark.parametrize(
    ("upper", "code", "expected"),
    [(50.0, GP3, 55.0), (100.0, GP3, 110.0), (100_000.0, SNAPSHOTS, 110_000.0)],
)
def test_desired_value_does_not_overshoot_an_exact_whole_value(
    upper: float, code: str, expected: float
) -> None:
    assert quotas.desired_value(upper, 1.0, code, 10) == expected


# ------------------------------------------------------------------------------ assess
def assess(
    history: list[tuple[date, float]],
    quota: float = 50.0,
    open_requests: list[dict[str, Any]] | None = None,
    code: str = GP3,
) -> dict[str, Any]:
    return quotas.assess(code, GP3_NAME, history, quota, "applied", open_requests or [], CONFIG)


def test_flat_usage_far_below_the_threshold_is_ok() -> None:
    result = assess(series(60, lambda _: 5.0))
    assert result["decision"] == "ok"
    assert result["usage"] == 5.0
    assert result["threshold"] == 40.0
    assert result["forecast"]["crossingDateUpper"] is None
    assert "desiredValue" not in result
    assert "=" in result["chart"] and "*" in result["chart"]


def test_growth_that_stays_below_the_threshold_within_the_horizon_is_ok() -> None:
    result = assess(series(90, lambda i: 10.0 + 0.1 * i))
    assert result["decision"] == "ok"
    assert result["forecast"]["upper"] < result["threshold"]


def test_linear_growth_crossing_within_the_horizon_asks_for_more() -> None:
    result = assess(series(90, lambda i: 10.0 + 0.3 * i))
    assert result["decision"] == "request"
    assert result["quotaCode"] == GP3
    assert result["unit"] == "TiB"
    assert result["quotaSource"] == "applied"
    assert result["usage"] == pytest.approx(36.7)
    crossing = result["forecast"]["crossingDateUpper"]
    assert crossing is not None
    assert result["usage"] < result["threshold"]
    assert crossing <= result["forecast"]["horizonDate"]
    assert result["desiredValue"] > result["quota"]
    assert result["desiredValue"] == float(int(result["desiredValue"]))
    assert result["desiredValue"] >= result["forecast"]["upper"] * 1.25
    assert "=" in result["chart"]


def test_an_open_request_is_reported_instead_of_asking_again() -> None:
    open_request = {"Id": "req-1", "Status": "CASE_OPENED", "DesiredValue": 60.0}
    result = assess(series(90, lambda i: 10.0 + 0.3 * i), open_requests=[open_request])
    assert result["decision"] == "already-requested"
    assert result["openRequest"] == open_request
    assert "desiredValue" not in result


def test_a_quota_never_used_is_unused() -> None:
    result = assess(series(30, lambda _: 0.0))
    assert result["decision"] == "unused"
    assert result["usage"] == 0.0
    assert "forecast" not in result and "chart" not in result
    assert assess([])["decision"] == "unused"


def test_usage_already_above_the_threshold_asks_for_more() -> None:
    result = assess(series(20, lambda _: 45.0))
    assert result["decision"] == "request"
    assert result["desiredValue"] > 50.0


def test_snapshot_growth_asks_for_thousands() -> None:
    result = assess(series(90, lambda i: 100.0 * i), quota=10_000.0, code=SNAPSHOTS)
    assert result["decision"] == "request"
    assert result["unit"] == "snapshots"
    assert result["desiredValue"] % 1000 == 0
    assert result["desiredValue"] > 10_000.0


# ------------------------------------------------------------------------------ decide
DENIED_CAUSE = json.dumps(
    {
        "errorType": "AccessDenied",
        "errorMessage": "EBS census in eu-west-1: UnauthorizedOperation: nope",
    }
)


def regions_with_one_of_each() -> list[dict[str, Any]]:
    growing = series(90, lambda i: 10.0 + 0.3 * i)
    open_request = {"Id": "req-77", "Status": "PENDING", "DesiredValue": 60.0}
    us_east = {
        "region": "us-east-1",
        "counted": True,
        "volumes": 4,
        "gib": {"gp3": 37_581, "gp2": 37_581},
        "snapshots": 12,
        "assessments": [
            quotas.assess(GP3, GP3_NAME, growing, 50.0, "applied", [], CONFIG),
            quotas.assess(GP2, GP2_NAME, growing, 50.0, "AWS default", [open_request], CONFIG),
            quotas.assess(
                SNAPSHOTS,
                SNAPSHOTS_NAME,
                series(30, lambda _: 12.0),
                100_000.0,
                "AWS default",
                [],
                CONFIG,
            ),
            {
                "quotaCode": IO1,
                "quotaName": IO1,
                "decision": "unused",
                "unit": "TiB",
                "usage": 0.0,
                "quota": 0.0,
                "quotaSource": "not read",
            },
        ],
    }
    eu_west = {
        "region": "eu-west-1",
        "counted": False,
        "error": "AccessDenied",
        "cause": DENIED_CAUSE,
    }
    return [us_east, eu_west]


def test_decide_gathers_targets_waiting_requests_and_uncounted_regions() -> None:
    plan = trigger(load("daily-schedule.json"), regions="us-east-1,eu-west-1")
    regions = regions_with_one_of_each()
    decided = quotas.decide(plan, regions)

    assert [(t["region"], t["quotaCode"]) for t in decided["targets"]] == [("us-east-1", GP3)]
    target = decided["targets"][0]
    assert target["quotaName"] == GP3_NAME
    assert target["current"] == 50.0
    assert target["desiredValue"] == regions[0]["assessments"][0]["desiredValue"]
    assert target["forecast"] == regions[0]["assessments"][0]["forecast"]
    assert decided["targetCount"] == 1
    assert decided["actionable"] is True
    assert len(decided["alreadyRequested"]) == 1
    assert "req-77" in decided["alreadyRequested"][0]
    assert "PENDING" in decided["alreadyRequested"][0]
    assert decided["summary"] == (
        "1 increase(s) to request, 1 already requested, 1 region(s) not counted"
    )
    assert [r["region"] for r in decided["regions"]] == ["us-east-1", "eu-west-1"]
    assert all("assessments" not in r for r in decided["regions"])
    assert "targets" not in plan


def test_the_report_names_the_regions_not_counted_and_why() -> None:
    plan = trigger(load("daily-schedule.json"), regions="us-east-1,eu-west-1")
    report = quotas.decide(plan, regions_with_one_of_each())["report"]
    assert "NOT COUNTED" in report
    assert "EBS census in eu-west-1: UnauthorizedOperation: nope" in report
    assert "AccessDenied" in report
    assert GP3 in report and "req-77" in report
    assert "=" in report


def test_every_notice_fits_sns() -> None:
    plan = trigger(load("daily-schedule.json"), regions="us-east-1,eu-west-1")
    notices = quotas.decide(plan, regions_with_one_of_each())["notices"]
    assert set(notices) == {"detected", "noAction", "killSwitch", "dryRun", "escalate"}
    for notice in notices.values():
        assert 0 < len(notice["subject"]) < 100
        assert 0 < len(notice["message"]["sms"]) <= 140
        assert set(notice["message"]) == {"default", "sms"}
    assert "NOT counted" in notices["noAction"]["message"]["sms"]
    assert notices["detected"]["subject"].startswith("opsflow: DRY RUN ")


def test_decide_with_nothing_to_do() -> None:
    plan = trigger(load("daily-schedule.json"), regions="us-east-1")
    quiet = {
        "region": "us-east-1",
        "counted": True,
        "volumes": 1,
        "gib": {"gp3": 5120},
        "snapshots": 0,
        "assessments": [
            quotas.assess(GP3, GP3_NAME, series(60, lambda _: 5.0), 50.0, "applied", [], CONFIG)
        ],
    }
    decided = quotas.decide(plan, [quiet])
    assert decided["targets"] == []
    assert decided["actionable"] is False
    assert decided["summary"] == "0 increase(s) to request, 0 already requested"
    assert "NOT COUNTED" not in decided["report"]
    assert "(none)" in decided["report"]


# ------------------------------------------------------------------------------ check
def request(status: str, case: str = "", ident: str = "req-1") -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "Id": ident,
        "QuotaCode": GP3,
        "DesiredValue": 53.0,
        "Status": status,
        "CaseId": case,
    }


@pytest.mark.parametrize("status", quotas.ACCEPTED)
def test_accepted_statuses_pass_the_check(status: str) -> None:
    accepted, lines = quotas.check([request(status), request("APPROVED", ident="req-2")])
    assert accepted is True
    assert len(lines) == 2


@pytest.mark.parametrize("status", quotas.REJECTED)
def test_a_rejected_request_fails_the_check(status: str) -> None:
    accepted, lines = quotas.check([request("APPROVED"), request(status, ident="req-2")])
    assert accepted is False
    assert status in lines[1]


def test_check_lines_name_the_request_and_the_case() -> None:
    _, lines = quotas.check(
        [request("CASE_OPENED", case="case-123"), request("PENDING", ident="req-2")]
    )
    assert "req-1" in lines[0] and "case-123" in lines[0]
    assert lines[0].startswith(f"us-east-1 {GP3} -> 53: CASE_OPENED")
    assert "req-2" in lines[1] and "case" not in lines[1]


# ------------------------------------------------------------------------------ metric stamps
AS_OF = date(2026, 3, 14)
SCHEDULE_AT = datetime(2026, 3, 14, 6, 0, 4, tzinfo=UTC)
HEALTH_AT = datetime(2026, 3, 14, 22, 0, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("as_of", "now", "stamp"),
    [
        (AS_OF, SCHEDULE_AT, datetime(2026, 3, 14, tzinfo=UTC)),
        (AS_OF, HEALTH_AT, datetime(2026, 3, 14, tzinfo=UTC)),
        # A run that crossed midnight keeps its day.
        (AS_OF, datetime(2026, 3, 15, 0, 0, 3, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC)),
        # An asOf override in the future is never stamped ahead of the run.
        (date(2026, 3, 15), HEALTH_AT, HEALTH_AT),
    ],
)
def test_metric_stamp_is_on_the_day_and_never_after_now(
    as_of: date, now: datetime, stamp: datetime
) -> None:
    from ebs_quota import app

    assert app.metric_stamp(as_of, now) == stamp
    assert app.metric_stamp(as_of, now) <= now


class FakeCloudWatch:
    """Stores datapoints; answers GetMetricStatistics as CloudWatch does: periods on the
    ``StartTime`` grid, ``[StartTime, EndTime)``."""

    def __init__(self) -> None:
        self.points: list[dict[str, Any]] = []
        self.puts: list[list[dict[str, Any]]] = []

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:  # noqa: N803
        self.puts.append(MetricData)
        self.points.extend({"Namespace": Namespace, **datum} for datum in MetricData)

    def get_metric_statistics(self, **query: Any) -> dict[str, Any]:
        start, end, step = query["StartTime"], query["EndTime"], timedelta(seconds=query["Period"])
        bins: dict[datetime, float] = {}
        for point in self.points:
            if (point["Namespace"], point["MetricName"], point["Dimensions"]) != (
                query["Namespace"],
                query["MetricName"],
                query["Dimensions"],
            ) or not start <= point["Timestamp"] < end:
                continue
            at = start + ((point["Timestamp"] - start) // step) * step
            bins[at] = max(bins.get(at, point["Value"]), point["Value"])
        return {"Datapoints": [{"Timestamp": at, "Maximum": v} for at, v in bins.items()]}


class FakeServiceQuotas:
    def get_service_quota(self, ServiceCode: str, QuotaCode: str) -> dict[str, Any]:  # noqa: N803
        return {"Quota": {"Value": 200.0, "QuotaName": GP3_NAME}}

    def list_requested_service_quota_change_history_by_quota(self, **_: Any) -> dict[str, Any]:
        return {"RequestedQuotas": []}


def test_forecast_never_writes_a_datapoint_after_now_and_keeps_one_point_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 06:00 schedule and a 22:00 Health breach the same day: every datapoint is stamped
    at or before the run's time (CloudWatch refuses more than 2 h ahead), and the history the
    forecast reads has one point a day, today's the higher of the two counts."""
    from types import SimpleNamespace

    from ebs_quota import app

    cloudwatch, service_quotas = FakeCloudWatch(), FakeServiceQuotas()
    name, dimensions = quotas.metric(GP3)
    for days_back in range(30, 0, -1):
        cloudwatch.points.append({
            "Namespace": quotas.NAMESPACE, "MetricName": name, "Dimensions": dimensions,
            "Timestamp": datetime.combine(AS_OF - timedelta(days=days_back), datetime.min.time(),
                                          UTC) + timedelta(hours=12),
            "Value": 40.0 + 0.1 * (30 - days_back),
        })
    clients = {"cloudwatch": cloudwatch, "service-quotas": service_quotas}
    monkeypatch.setattr(app.aws, "client", lambda service, region: clients[service])
    context = SimpleNamespace(function_name="ForecastRegion", memory_limit_in_mb=256,
                              invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:"
                              "function:ForecastRegion", aws_request_id="test")
    health = {**load("health-threshold-breach.json"), "time": "2026-03-14T22:00:00Z"}
    runs = [(load("daily-schedule.json"), SCHEDULE_AT, 44_000), (health, HEALTH_AT, 45_000)]
    for event, now, gib in runs:
        settings = trigger(event, quotaCodes=GP3)["settings"]
        assert settings["asOf"] == AS_OF.isoformat()
        monkeypatch.setattr(app, "_now", lambda now=now: now)
        census = {"region": "us-east-1", "counted": True, "volumes": 9, "gib": {"gp3": gib},
                  "snapshots": 0}
        result = app.forecast_region({"census": census, "settings": settings}, context)
        written = cloudwatch.puts[-1]
        assert written and all(datum["Timestamp"] <= now for datum in written)
        assert {datum["Timestamp"].date() for datum in written} == {AS_OF}
        assert result["assessments"][0]["usage"] == round(gib / 1024, 4)

    assert cloudwatch.puts[0][0]["Timestamp"] == cloudwatch.puts[1][0]["Timestamp"]
    history = app._history(cloudwatch, GP3, AS_OF, 90)
    days = [day for day, _ in history]
    assert days == sorted(set(days)) and len(days) == 31
    assert history[-1] == (AS_OF, round(45_000 / 1024, 4))


# ------------------------------------------------------------------------------ identity, nothing counted
def test_trigger_identities_are_the_template_rule_patterns() -> None:
    from opsflow import template as cfn

    machine = cfn.resources_of_type(cfn.cached(), "AWS::Serverless::StateMachine")
    events = machine["EbsQuotaForecastStateMachine"]["Properties"]["Events"]
    breach = events["QuotaBreachRule"]["Properties"]["Pattern"]
    assert breach["source"] == [quotas.HEALTH_SOURCE]
    assert breach["detail-type"] == [quotas.HEALTH_EVENT]
    assert breach["detail"]["service"] == [quotas.HEALTH_SERVICE]
    assert breach["detail"]["eventTypeCode"] == [quotas.HEALTH_CODE]
    # A schedule rule's events are EventBridge's "Scheduled Event" from aws.events.
    assert events["DailyForecast"]["Type"] in ("Schedule", "ScheduleV2")
    schedule = load("daily-schedule.json")
    assert (schedule["source"], schedule["detail-type"]) == (
        quotas.SCHEDULE_SOURCE, quotas.SCHEDULE_EVENT
    )
    assert load("manual-rerun.json")["source"] == quotas.MANUAL_SOURCE


@pytest.mark.parametrize(
    ("field", "value"),
    [("source", "aws.events "), ("detail-type", "Scheduled Event "), ("source", "opsflow.Manual")],
)
def test_trigger_identity_is_checked_exactly(field: str, value: str) -> None:
    event = load("daily-schedule.json")
    event[field] = value
    with pytest.raises(InvalidEvent, match="not a trigger of this runbook"):
        trigger(event)


def test_health_breach_of_another_service_code_is_rejected() -> None:
    event = load("health-threshold-breach.json")
    event["detail"]["service"] = "EC2"
    with pytest.raises(InvalidEvent, match="detail.service is 'EC2', expected 'SERVICEQUOTAS'"):
        trigger(event)


def test_no_region_counted_escalates_naming_every_region_and_why() -> None:
    plan = trigger(load("daily-schedule.json"), regions="us-east-1,eu-west-1")
    regions = [
        {"region": region, "counted": False, "error": "AccessDenied", "cause": DENIED_CAUSE}
        for region in ("us-east-1", "eu-west-1")
    ]
    decided = quotas.decide(plan, regions)

    assert decided["targets"] == []
    assert decided["actionable"] is True  # so the skeleton reaches its escalation guard
    cause = decided["escalate"]["cause"]
    assert cause.startswith("No region could be counted")
    for region in ("us-east-1", "eu-west-1"):
        assert f"{region}: AccessDenied: EBS census in eu-west-1: UnauthorizedOperation" in cause
    assert cause in decided["notices"]["escalate"]["message"]["default"]
    assert "ESCALATED" in decided["notices"]["escalate"]["subject"]


def test_some_regions_counted_is_not_escalated() -> None:
    plan = trigger(load("daily-schedule.json"), regions="us-east-1,eu-west-1")
    assert "escalate" not in quotas.decide(plan, regions_with_one_of_each())
