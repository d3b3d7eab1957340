"""The local anomaly-detection alarm: band, evaluation, reason, and the EventBridge event."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from opsflow.engine import alarms
from opsflow.engine.alarms import ALARM, INSUFFICIENT_DATA, OK, AlarmSpec, Evaluation

START = datetime(2026, 3, 14, 0, 0, tzinfo=UTC)
REGION = "us-east-1"
ACCOUNT = "123456789012"
NAME = f"opsflow-canary-{REGION}"
MINUTE = timedelta(minutes=1)
BASE_MS, NOISE_MS = 120.0, 10.0
INJECT_AT = START + timedelta(hours=6)
INJECT_FOR = timedelta(minutes=15)

EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
AWS_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")

ALARM_DEFINITION: dict[str, Any] = {
    "AlarmName": NAME,
    "AlarmDescription": "Canary response time above the expected band",
    "ComparisonOperator": "GreaterThanUpperThreshold",
    "EvaluationPeriods": 3,
    "DatapointsToAlarm": 3,
    "ThresholdMetricId": "ad1",
    "Metrics": [
        {
            "Id": "m1",
            "MetricStat": {
                "Metric": {
                    "Namespace": "opsflow/Canary",
                    "MetricName": "CanaryResponseTime",
                    "Dimensions": [{"Name": "Region", "Value": REGION}],
                },
                "Period": 60,
                "Stat": "Average",
            },
            "ReturnData": True,
        },
        {
            "Id": "ad1",
            "Expression": "ANOMALY_DETECTION_BAND(m1, 2)",
            "Label": "CanaryResponseTime (expected)",
            "ReturnData": True,
        },
    ],
}


def make_spec(**changes: Any) -> AlarmSpec:
    fields: dict[str, Any] = {
        "name": NAME,
        "region": REGION,
        "account": ACCOUNT,
        "metric_name": "CanaryResponseTime",
        "namespace": "opsflow/Canary",
        "dimensions": {"Region": REGION},
        "description": "Canary response time above the expected band",
    }
    fields.update(changes)
    return AlarmSpec(**fields)


def steady(hours: float = 7, seed: int = 7) -> list[tuple[datetime, float]]:
    return alarms.synthetic_history(
        REGION, START, START + timedelta(hours=hours), BASE_MS, NOISE_MS, seed
    )


def incident(seed: int = 7) -> list[tuple[datetime, float]]:
    return alarms.with_latency(
        steady(seed=seed), INJECT_AT, INJECT_AT + INJECT_FOR, 300.0, 20.0, seed
    )


def run(
    spec: AlarmSpec,
    series: list[tuple[datetime, float]],
    first: datetime,
    last: datetime,
    state: str = OK,
) -> list[tuple[datetime, Evaluation]]:
    """Evaluate every minute, 20 s past the minute, as CloudWatch does (a little after the period)."""
    results = []
    now = first + timedelta(seconds=20)
    while now <= last:
        evaluation = alarms.evaluate(spec, series, now, state)
        results.append((now, evaluation))
        state = evaluation.state
        now += MINUTE
    return results


def transition(
    spec: AlarmSpec, series: list[tuple[datetime, float]]
) -> tuple[datetime, Evaluation, Evaluation]:
    """The first OK -> ALARM of the incident: when, the evaluation, and the one before it."""
    results = run(spec, series, INJECT_AT - timedelta(minutes=10), INJECT_AT + INJECT_FOR)
    for (_, before), (now, after) in zip(results, results[1:], strict=False):
        if after.state == ALARM:
            return now, after, before
    raise AssertionError("the alarm never fired")


# --- band ------------------------------------------------------------------------------------


def test_band_contains_normal_noise_about_95_percent_of_the_time() -> None:
    inside = total = 0
    for seed in (1, 2):
        series = alarms.synthetic_history(
            REGION, START, START + timedelta(hours=12), BASE_MS, NOISE_MS, seed
        )
        for index in range(180, len(series)):
            at, value = series[index]
            lower, upper = alarms.band(series[index - 180 : index], at)
            inside += lower <= value <= upper
            total += 1
    assert 0.94 <= inside / total <= 0.97


def test_band_is_mean_plus_minus_width_times_std_of_the_trailing_window() -> None:
    at = START + timedelta(hours=4)
    history = [(at - MINUTE * (i + 1), 100.0 + (10.0 if i % 2 else -10.0)) for i in range(60)]
    history += [(at, 10_000.0), (at - timedelta(hours=3, minutes=1), 10_000.0)]
    lower, upper = alarms.band(history, at, width=2.0)
    spread = (60 * 100.0 / 59) ** 0.5  # sample standard deviation of ±10 around 100
    assert lower == pytest.approx(100.0 - 2 * spread)
    assert upper == pytest.approx(100.0 + 2 * spread)
    assert alarms.band(history, at, width=3.0)[1] == pytest.approx(100.0 + 3 * spread)


def test_band_spread_has_a_floor_on_a_flat_series() -> None:
    at = START + timedelta(hours=4)
    flat = [(at - MINUTE * (i + 1), 100.0) for i in range(60)]
    assert alarms.band(flat, at) == pytest.approx((96.0, 104.0))  # 2 % of the mean
    tiny = [(at - MINUTE * (i + 1), 10.0) for i in range(60)]
    assert alarms.band(tiny, at) == pytest.approx((8.0, 12.0))  # 1 ms


def test_band_needs_enough_training_data() -> None:
    at = START + timedelta(hours=1)
    few = [(at - MINUTE * (i + 1), 100.0) for i in range(alarms.MIN_TRAINING_POINTS - 1)]
    with pytest.raises(alarms.NotTrained):
        alarms.band(few, at)


# --- evaluation -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 8])
def test_steady_noisy_series_stays_ok(seed: int) -> None:
    series = steady(seed=seed)
    results = run(make_spec(), series, START + timedelta(hours=3), START + timedelta(hours=7))
    assert len(results) == 240
    assert {e.state for _, e in results} == {OK}
    assert not any(e.changed for _, e in results)


def test_injected_latency_alarms_after_exactly_three_breaching_minutes() -> None:
    series = incident()
    results = run(
        make_spec(), series, INJECT_AT - timedelta(minutes=30), INJECT_AT + timedelta(minutes=30)
    )
    changes = [(now, e.state) for now, e in results if e.changed]
    first_alarm = INJECT_AT + timedelta(minutes=3, seconds=20)
    ok_again = INJECT_AT + INJECT_FOR + timedelta(minutes=1, seconds=20)
    assert changes == [(first_alarm, ALARM), (ok_again, OK)]

    by_time = dict(results)
    fired = by_time[first_alarm]
    assert [t for t, _ in fired.datapoints] == [INJECT_AT + MINUTE * i for i in range(3)]
    assert fired.breaching == 3
    before = by_time[first_alarm - MINUTE]
    assert before.state == OK and before.breaching == 2
    assert all(e.state == ALARM for now, e in results if first_alarm <= now < ok_again)


def test_alarm_reason_and_reason_data_as_cloudwatch_writes_them() -> None:
    now, fired, _ = transition(make_spec(), incident())
    upper = fired.upper
    assert upper is not None
    values = [v for _, v in fired.datapoints]
    assert all(v is not None and v > upper for v in values)
    listed = ", ".join(
        f"{v!r} (14/03/26 06:0{minute}:00)" for minute, v in reversed(list(enumerate(values)))
    )
    assert fired.reason == (
        f"Thresholds Crossed: 3 out of the last 3 datapoints [{listed}] were greater than the "
        f"upper thresholds [{upper!r}, {upper!r}, {upper!r}] "
        "(minimum 3 datapoints for OK -> ALARM transition)."
    )
    data = fired.reason_data
    assert list(data) == [
        "version",
        "queryDate",
        "startDate",
        "period",
        "recentDatapoints",
        "recentUpperThresholds",
        "evaluatedDatapoints",
    ]
    assert data["version"] == "1.0"
    assert data["queryDate"] == "2026-03-14T06:03:20.000+0000"
    assert data["startDate"] == "2026-03-14T06:00:00.000+0000"
    assert data["period"] == 60
    assert data["recentDatapoints"] == values  # oldest first
    assert data["recentUpperThresholds"] == [upper] * 3
    assert data["evaluatedDatapoints"] == [  # newest first
        {"timestamp": f"2026-03-14T06:0{m}:00.000+0000", "value": values[m], "threshold": upper}
        for m in (2, 1, 0)
    ]
    assert json.loads(fired.reason_data_json) == data
    assert " " not in fired.reason_data_json


def test_ok_reason_lists_the_datapoints_that_keep_it_ok() -> None:
    results = dict(run(make_spec(), incident(), INJECT_AT, INJECT_AT + timedelta(minutes=3)))
    ok = results[INJECT_AT + timedelta(minutes=2, seconds=20)]
    assert ok.state == OK
    upper = ok.upper
    _, oldest = ok.datapoints[0]
    assert ok.reason == (
        f"Thresholds Crossed: 1 out of the last 3 datapoints [{oldest!r} (14/03/26 05:59:00)] "
        f"was not greater than the upper thresholds [{upper!r}] "
        "(minimum 1 datapoint for ALARM -> OK transition)."
    )
    stamps = [d["timestamp"][11:16] for d in ok.reason_data["evaluatedDatapoints"]]
    assert stamps == ["06:01", "06:00", "05:59"]  # scanned until OK was certain


def test_too_little_history_is_insufficient_data() -> None:
    series = steady(hours=0.4)
    evaluation = alarms.evaluate(make_spec(), series, START + timedelta(minutes=20), OK)
    assert evaluation.state == INSUFFICIENT_DATA
    assert evaluation.changed
    assert evaluation.upper is None
    assert evaluation.reason == "Insufficient Data: 3 datapoints were unknown."
    assert evaluation.reason_data["recentDatapoints"] == []
    assert [list(d) for d in evaluation.reason_data["evaluatedDatapoints"]] == [["timestamp"]] * 3
    assert "startDate" not in evaluation.reason_data


def test_a_silent_canary_is_insufficient_data() -> None:
    series = steady(hours=4)
    later = START + timedelta(hours=4, minutes=10)
    evaluation = alarms.evaluate(make_spec(), series, later, INSUFFICIENT_DATA)
    assert evaluation.state == INSUFFICIENT_DATA
    assert not evaluation.changed


def test_a_missing_datapoint_does_not_block_the_decision() -> None:
    series = steady(hours=4)
    gap = START + timedelta(hours=3, minutes=58)
    holed = [(t, v) for t, v in series if t != gap]
    evaluation = alarms.evaluate(make_spec(), holed, START + timedelta(hours=4), OK)
    assert evaluation.state == OK
    assert [v is None for _, v in evaluation.datapoints] == [False, True, False]


def test_every_sample_of_a_period_is_averaged() -> None:
    series = alarms.synthetic_history(
        REGION, START, START + timedelta(hours=4), BASE_MS, NOISE_MS, 3, step=timedelta(seconds=20)
    )
    assert len(series) == 720
    evaluation = alarms.evaluate(make_spec(), series, START + timedelta(hours=4), OK)
    assert evaluation.state == OK
    stamp, value = evaluation.datapoints[-1]
    samples = [v for t, v in series if stamp <= t < stamp + MINUTE]
    assert len(samples) == 3 and value == pytest.approx(sum(samples) / 3)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="time zone"):
        alarms.evaluate(make_spec(), steady(hours=4), datetime(2026, 3, 14, 4, 0), OK)


# --- the alarm definition ---------------------------------------------------------------------


def test_spec_from_describe_alarms_in_moto() -> None:
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.put_metric_alarm(**ALARM_DEFINITION)
        item = cloudwatch.describe_alarms(AlarmNames=[NAME])["MetricAlarms"][0]
    spec = AlarmSpec.from_describe_alarms(item)
    assert spec == make_spec(
        band_label="CanaryResponseTime (expected)",
        band_expression="ANOMALY_DETECTION_BAND(m1, 2)",
    )
    assert spec.arn == item["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{NAME}"
    assert (spec.period, spec.evaluation_periods, spec.datapoints_to_alarm) == (60, 3, 3)
    assert spec.band_width == 2.0


def test_spec_band_width_defaults_to_two_and_reads_decimals() -> None:
    item = json.loads(json.dumps(ALARM_DEFINITION))
    item["Metrics"][1]["Expression"] = "ANOMALY_DETECTION_BAND(m1)"
    assert AlarmSpec.from_describe_alarms(item, region=REGION, account=ACCOUNT).band_width == 2.0
    item["Metrics"][1]["Expression"] = "ANOMALY_DETECTION_BAND(m1, 0.8)"
    assert AlarmSpec.from_describe_alarms(item, region=REGION, account=ACCOUNT).band_width == 0.8


def test_spec_rejects_alarms_it_cannot_evaluate() -> None:
    static = {
        "AlarmName": "static",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:static",
        "MetricName": "CanaryResponseTime",
        "Namespace": "opsflow/Canary",
        "Threshold": 500.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 3,
    }
    with pytest.raises(ValueError, match="not an anomaly-detection alarm"):
        AlarmSpec.from_describe_alarms(static)
    both_sides = dict(
        ALARM_DEFINITION, ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold"
    )
    with pytest.raises(ValueError, match="GreaterThanUpperThreshold"):
        AlarmSpec.from_describe_alarms(both_sides, region=REGION, account=ACCOUNT)
    with pytest.raises(ValueError, match="DatapointsToAlarm"):
        make_spec(datapoints_to_alarm=4)


# --- the event --------------------------------------------------------------------------------


def alarm_event() -> tuple[dict[str, Any], AlarmSpec, datetime, Evaluation, Evaluation]:
    spec = make_spec(band_label="CanaryResponseTime (expected)")
    now, fired, before = transition(spec, incident())
    event = alarms.state_change_event(
        spec,
        fired,
        before.state,
        before.reason,
        now,
        previous_reason_data=before.reason_data_json,
        previous_timestamp=before.query_date,
    )
    return event, spec, now, fired, before


def test_event_has_every_key_aws_sends() -> None:
    event, *_ = alarm_event()
    assert list(event) == [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    detail = event["detail"]
    assert set(detail) == {"alarmName", "state", "previousState", "configuration"}
    assert set(detail["state"]) == {"value", "reason", "reasonData", "timestamp"}
    assert set(detail["previousState"]) == {"value", "reason", "reasonData", "timestamp"}
    configuration = detail["configuration"]
    assert set(configuration) == {"description", "metrics"}
    metric, band = configuration["metrics"]
    assert set(metric) == {"id", "metricStat", "returnData"}
    assert set(metric["metricStat"]) == {"metric", "period", "stat"}
    assert set(metric["metricStat"]["metric"]) == {"namespace", "name", "dimensions"}
    assert set(band) == {"id", "expression", "label", "returnData"}
    assert json.loads(json.dumps(event)) == event


def test_event_values() -> None:
    event, spec, now, fired, before = alarm_event()
    assert event["version"] == "0"
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["source"] == "aws.cloudwatch"
    assert (event["account"], event["region"]) == (ACCOUNT, REGION)
    assert event["resources"] == [spec.arn]
    assert event["time"] == "2026-03-14T06:03:20Z"
    assert EVENT_TIME.match(event["time"])
    detail = event["detail"]
    assert detail["alarmName"] == NAME
    assert detail["state"]["value"] == "ALARM"
    assert detail["previousState"]["value"] == "OK"
    assert detail["state"]["reason"] == fired.reason
    assert detail["previousState"]["reason"] == before.reason
    for state in (detail["state"], detail["previousState"]):
        assert AWS_TIMESTAMP.match(state["timestamp"])
        assert isinstance(state["reasonData"], str)
        data = json.loads(state["reasonData"])
        assert AWS_TIMESTAMP.match(data["queryDate"]) and AWS_TIMESTAMP.match(data["startDate"])
    assert detail["state"]["timestamp"] == "2026-03-14T06:03:20.000+0000"
    assert detail["previousState"]["timestamp"] == "2026-03-14T06:02:20.000+0000"
    assert json.loads(detail["state"]["reasonData"]) == fired.reason_data
    assert detail["configuration"]["metrics"] == [
        {
            "id": "m1",
            "metricStat": {
                "metric": {
                    "namespace": "opsflow/Canary",
                    "name": "CanaryResponseTime",
                    "dimensions": {"Region": REGION},
                },
                "period": 60,
                "stat": "Average",
            },
            "returnData": True,
        },
        {
            "id": "ad1",
            "expression": "ANOMALY_DETECTION_BAND(m1, 2)",
            "label": "CanaryResponseTime (expected)",
            "returnData": True,
        },
    ]


def test_event_id_is_a_deterministic_uuid5() -> None:
    first, spec, now, fired, before = alarm_event()
    again, *_ = alarm_event()
    assert first["id"] == again["id"]
    assert uuid.UUID(first["id"]).version == 5
    later = alarms.state_change_event(spec, fired, "OK", before.reason, now + MINUTE)
    assert later["id"] != first["id"]
    assert "reasonData" not in later["detail"]["previousState"]


# --- synthetic series -------------------------------------------------------------------------


def test_synthetic_history_is_deterministic_and_realistic() -> None:
    series = steady(hours=2)
    assert series == steady(hours=2)
    assert series != steady(hours=2, seed=8)
    other = alarms.synthetic_history("us-east-2", START, START + timedelta(hours=2), 120, 10, 7)
    assert [v for _, v in other] != [v for _, v in series]
    assert [t for t, _ in series] == [START + MINUTE * i for i in range(120)]
    values = [v for _, v in series]
    mean = sum(values) / len(values)
    assert 110 < mean < 130 and min(values) >= 1.0
    assert len(set(values)) > 100


def test_with_latency_shifts_only_the_window() -> None:
    series = steady(hours=7)
    shifted = incident()
    assert shifted == incident()
    for (t, before), (t2, after) in zip(series, shifted, strict=True):
        assert t == t2
        if INJECT_AT <= t < INJECT_AT + INJECT_FOR:
            assert 280.0 - 1e-6 <= after - before <= 320.0 + 1e-6
        else:
            assert after == before


def test_too_sparse_a_range_keeps_the_state() -> None:
    spec = make_spec(evaluation_periods=3, datapoints_to_alarm=2)
    series = steady(hours=4)
    keep = START + timedelta(hours=3, minutes=59)
    sparse = [(t, v) for t, v in series if t < START + timedelta(hours=3, minutes=57) or t == keep]
    now = START + timedelta(hours=4)
    still_ok = alarms.evaluate(spec, sparse, now, OK)
    assert still_ok.state == OK and not still_ok.changed
    assert still_ok.reason.startswith("Thresholds Crossed: 1 out of the last 3 datapoints [")
    assert still_ok.reason.endswith("(minimum 2 datapoints for ALARM -> OK transition).")
    still_alarm = alarms.evaluate(spec, sparse, now, ALARM)
    assert still_alarm.state == ALARM and not still_alarm.changed
    assert still_alarm.reason.startswith("Unchanged: 1 of the last 3 datapoints present")
    assert alarms.evaluate(spec, sparse, now, INSUFFICIENT_DATA).state == INSUFFICIENT_DATA
