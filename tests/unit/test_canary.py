"""The canary Lambda: measure each region, publish CanaryResponseTime, read it back; and how
the region-failover runbook reads the alarm event that latency raises."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
from moto import mock_aws
from region_failover import app as failover
from runbook_kit.parameters import PARAMETERS
from runbook_kit.parameters import SETTINGS as SOURCES

from functions.region_failover import canary

CONTEXT = SimpleNamespace(
    function_name="opsflow-CanaryFunction",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:opsflow-CanaryFunction",
    aws_request_id="canary-test",
)
"""What Lambda passes the handler (Powertools' Logger reads it)."""

ENDPOINTS = {
    "us-east-1": "https://use1.shop.example.com/health",
    "us-east-2": "https://use2.shop.example.com/health",
}
STAMP = datetime(2026, 3, 14, 3, 12, tzinfo=UTC)


class FakeFetch:
    """Answers per URL: a number of ms, or an exception to raise; records every call."""

    def __init__(self, answers: dict[str, float | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def __call__(self, url: str, timeout: float) -> float:
        with self._lock:
            self.calls.append((url, timeout))
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        return answer


def put_metric_data_shape() -> Any:
    model = botocore.session.get_session().get_service_model("cloudwatch")
    return model.operation_model("PutMetricData").input_shape


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 500 if self.path.startswith("/broken") else 200
        body = b"ok" * 1000
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# --- measure ----------------------------------------------------------------------------------


def test_measure_fast_slow_and_failing_regions() -> None:
    endpoints = {**ENDPOINTS, "eu-west-1": "https://euw1.shop.example.com/health"}
    fetch = FakeFetch(
        {
            ENDPOINTS["us-east-1"]: 42.5,
            ENDPOINTS["us-east-2"]: 2600.0,
            endpoints["eu-west-1"]: urllib.error.URLError("connection refused"),
        }
    )
    result = canary.measure(endpoints, fetch=fetch, timeout=5.0)
    assert result == {"us-east-1": 42.5, "us-east-2": 2600.0, "eu-west-1": None}
    assert list(result) == list(endpoints)
    assert sorted(fetch.calls) == sorted((url, 5.0) for url in endpoints.values())


def test_measure_treats_an_answer_past_the_timeout_as_failed() -> None:
    fetch = FakeFetch({ENDPOINTS["us-east-1"]: 2000.1, ENDPOINTS["us-east-2"]: TimeoutError()})
    assert canary.measure(ENDPOINTS, fetch=fetch, timeout=2.0) == {
        "us-east-1": None,
        "us-east-2": None,
    }


def test_measure_times_a_real_get(server: str) -> None:
    endpoints = {"us-east-1": f"{server}/health", "us-east-2": f"{server}/broken"}
    result = canary.measure(endpoints, timeout=2.0)
    assert result["us-east-2"] is None  # HTTP 500 is a failed probe
    assert result["us-east-1"] is not None and 0.0 < result["us-east-1"] < 2000.0


@pytest.mark.parametrize(
    ("endpoints", "timeout"),
    [
        ({}, 5.0),
        ({"us-east-1": "ftp://example.com/"}, 5.0),
        ({"us-east-1": "not a url"}, 5.0),
        ({"": "https://example.com/"}, 5.0),
        (ENDPOINTS, 0),
        (ENDPOINTS, -1.0),
        (ENDPOINTS, float("nan")),
    ],
)
def test_measure_rejects_bad_configuration(endpoints: dict[str, str], timeout: float) -> None:
    with pytest.raises(ValueError):
        canary.measure(endpoints, fetch=FakeFetch({}), timeout=timeout)


# --- metric data ------------------------------------------------------------------------------


def test_metric_data_records_a_failed_probe_as_the_timeout() -> None:
    data = canary.metric_data({"us-east-1": 42.5, "us-east-2": None}, STAMP, timeout=5.0)
    assert data == [
        {
            "MetricName": "CanaryResponseTime",
            "Dimensions": [{"Name": "Region", "Value": "us-east-1"}],
            "Timestamp": STAMP,
            "Value": 42.5,
            "Unit": "Milliseconds",
        },
        {
            "MetricName": "CanaryResponseTime",
            "Dimensions": [{"Name": "Region", "Value": "us-east-2"}],
            "Timestamp": STAMP,
            "Value": 5000.0,
            "Unit": "Milliseconds",
        },
    ]


def test_metric_data_validates_against_the_put_metric_data_shape() -> None:
    shape = put_metric_data_shape()
    data = canary.metric_data({"us-east-1": 42.5, "us-east-2": None}, STAMP)
    validate_parameters({"Namespace": canary.NAMESPACE, "MetricData": data}, shape)
    broken = [dict(data[0], Value="42.5")]
    with pytest.raises(ParamValidationError):
        validate_parameters({"Namespace": canary.NAMESPACE, "MetricData": broken}, shape)


# --- publish and handler ----------------------------------------------------------------------


def test_publish_to_cloudwatch_and_read_back() -> None:
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        for minute, ms in enumerate([40.0, 44.0, None]):
            measurements = {"us-east-1": ms, "us-east-2": 90.0}
            stamp = STAMP + timedelta(minutes=minute)
            assert canary.publish(cloudwatch, canary.metric_data(measurements, stamp)) == 2

        def read(region: str) -> list[tuple[datetime, float, float]]:
            points = cloudwatch.get_metric_statistics(
                Namespace="opsflow/Canary",
                MetricName="CanaryResponseTime",
                Dimensions=[{"Name": "Region", "Value": region}],
                StartTime=STAMP - timedelta(minutes=5),
                EndTime=STAMP + timedelta(minutes=5),
                Period=60,
                Statistics=["Average", "SampleCount"],
            )["Datapoints"]
            return sorted((p["Timestamp"], p["Average"], p["SampleCount"]) for p in points)

        east1 = read("us-east-1")
        assert [(avg, n) for _, avg, n in east1] == [(40.0, 1.0), (44.0, 1.0), (5000.0, 1.0)]
        assert [t for t, *_ in east1] == [STAMP + timedelta(minutes=m) for m in range(3)]
        assert [avg for _, avg, _ in read("us-east-2")] == [90.0, 90.0, 90.0]


def test_publish_splits_into_calls_of_at_most_1000() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def put_metric_data(self, **kwargs: Any) -> None:
            self.calls.append(kwargs)

    recorder = Recorder()
    data = canary.metric_data({f"r{i}": float(i) for i in range(2500)}, STAMP)
    assert canary.publish(recorder, data) == 2500
    assert [len(c["MetricData"]) for c in recorder.calls] == [1000, 1000, 500]
    assert {c["Namespace"] for c in recorder.calls} == {"opsflow/Canary"}


def test_handler_measures_publishes_and_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = FakeFetch({ENDPOINTS["us-east-1"]: 75.25, ENDPOINTS["us-east-2"]: OSError("reset")})
    monkeypatch.setattr(canary, "fetch_url", fetch)
    monkeypatch.setenv("ENDPOINTS", json.dumps(ENDPOINTS))
    monkeypatch.setenv("TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        result = canary.handler({"source": "aws.events"}, CONTEXT)
        listed = boto3.client("cloudwatch", region_name="us-east-1").list_metrics(
            Namespace="opsflow/Canary"
        )["Metrics"]
    assert result == {"us-east-1": 75.25, "us-east-2": None}
    assert {fetch.calls[0][1], fetch.calls[1][1]} == {3.0}
    assert sorted(m["Dimensions"][0]["Value"] for m in listed) == ["us-east-1", "us-east-2"]
    assert {m["MetricName"] for m in listed} == {"CanaryResponseTime"}


@pytest.mark.parametrize(
    ("endpoints", "timeout", "message"),
    [
        (None, "5", "ENDPOINTS is not set"),
        ("{not json", "5", "not valid JSON"),
        ('["https://example.com/"]', "5", "non-empty object"),
        ('{"us-east-1": "example.com"}', "5", "http\\(s\\) URL"),
        ('{"us-east-1": "https://example.com/"}', "soon", "TIMEOUT_SECONDS"),
        ('{"us-east-1": "https://example.com/"}', "0", "positive"),
    ],
)
def test_handler_rejects_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, endpoints: str | None, timeout: str, message: str
) -> None:
    if endpoints is None:
        monkeypatch.delenv("ENDPOINTS", raising=False)
    else:
        monkeypatch.setenv("ENDPOINTS", endpoints)
    monkeypatch.setenv("TIMEOUT_SECONDS", timeout)
    monkeypatch.setattr(canary, "fetch_url", FakeFetch({}))
    with pytest.raises(ValueError, match=message):
        canary.handler({}, CONTEXT)


def test_handler_default_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = FakeFetch({"https://example.com/": 10.0})
    monkeypatch.setattr(canary, "fetch_url", fetch)
    monkeypatch.setattr(canary, "publish", lambda cloudwatch, data: len(data))
    monkeypatch.setenv("ENDPOINTS", '{"us-east-1": "https://example.com/"}')
    monkeypatch.delenv("TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert canary.handler({}, CONTEXT) == {"us-east-1": 10.0}
    assert fetch.calls == [("https://example.com/", 5.0)]


# ---------------------------------------------------------------- region-failover: reading events

def passed_settings(**computed: str) -> dict[str, str]:
    """What the state machine passes with the template's defaults: each setting's parameter
    default, and ``computed`` for those the template computes (resources, the region)."""
    raw = {
        name: computed[name] if parameter is None else str(PARAMETERS[parameter]["Default"])
        for name, parameter in SOURCES[failover.SCENARIO].items()
    }
    raw.update(computed)
    return raw


FAILOVER_SETTINGS = passed_settings(
    alarms="opsflow-canary-us-east-1=us-east-1,opsflow-canary-us-east-2=us-east-2",
    alarmRegion="us-east-1",
    stateParameter="/opsflow/region-failover/state",
)
FAILOVER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:opsflow-failover:run-1"


def alarm(**top: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "account": "123456789012",
        "time": "2026-03-14T03:30:00Z",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:opsflow-canary-us-east-1"],
        "detail": {
            "alarmName": "opsflow-canary-us-east-1",
            "state": {"value": "ALARM", "timestamp": "2026-03-14T03:30:00.000+0000"},
            "previousState": {"value": "OK"},
        },
    }
    event.update(top)
    return event


def test_alarm_identity_is_the_template_rule_pattern() -> None:
    from opsflow import template as cfn

    machine = cfn.resources_of_type(cfn.cached(), "AWS::Serverless::StateMachine")
    pattern = machine["RegionFailoverStateMachine"]["Properties"]["Events"]["CanaryAlarmRule"][
        "Properties"
    ]["Pattern"]
    assert pattern["source"] == [failover.ALARM_SOURCE]
    assert pattern["detail-type"] == [failover.ALARM_EVENT]


@pytest.mark.parametrize(
    "time", ["yesterday", "", "2026-13-01T00:00:00Z", None, 1710387000, "14 Mar 2026 03:30"]
)
def test_alarm_time_must_be_iso(time: Any) -> None:
    with pytest.raises(failover.InvalidEvent, match="time"):
        failover.parse(alarm(time=time), FAILOVER_SETTINGS, FAILOVER_EXECUTION)


@pytest.mark.parametrize("time", ["2026-03-14T03:30:00Z", "2026-03-14T03:30:00+00:00",
                                  "2026-03-14T03:30:00", "2026-03-14T03:30:00.123Z"])
def test_alarm_time_in_iso_forms_is_read(time: str) -> None:
    plan = failover.parse(alarm(time=time), FAILOVER_SETTINGS, FAILOVER_EXECUTION)
    assert plan["time"] == time
    assert failover.traffic.instant(time).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ({"account": "210987654321"}, "for account '210987654321'"),
        ({"resources": ["arn:aws:cloudwatch:us-east-1:210987654321:alarm:x"]}, "of account"),
        ({"source": "aws.cloudwatch "}, "not a trigger of this runbook"),
        ({"detail-type": "CloudWatch Alarm State Change "}, "not a trigger of this runbook"),
    ],
)
def test_alarm_of_another_account_or_identity_is_rejected(
    top: dict[str, Any], message: str
) -> None:
    with pytest.raises(failover.InvalidEvent, match=message):
        failover.parse(alarm(**top), FAILOVER_SETTINGS, FAILOVER_EXECUTION)


def test_alarm_parse_needs_the_runbook_account() -> None:
    from runbook_kit.errors import AccountUnknown

    with pytest.raises(AccountUnknown):
        failover.parse(alarm(), FAILOVER_SETTINGS, "run-1")
    assert failover.parse(alarm(), FAILOVER_SETTINGS, "run-1", "123456789012")["from"] == (
        "us-east-1"
    )


# ---------------------------------------------------------------- region-failover: settings


def test_failover_settings_are_the_template_defaults_typed() -> None:
    config = failover.parse(alarm(), FAILOVER_SETTINGS, FAILOVER_EXECUTION)["settings"]
    assert config["pollSeconds"] == int(PARAMETERS["FailoverPollSeconds"]["Default"])
    assert config["maxPolls"] == int(PARAMETERS["FailoverMaxPolls"]["Default"])
    assert config["approvalTimeoutSeconds"] == int(PARAMETERS["ApprovalTimeoutSeconds"]["Default"])
    assert config["dryRun"] is True and config["requireApproval"] is False
    assert config["mechanism"] == "route53"
    assert config["stateParameter"] == "/opsflow/region-failover/state"


@pytest.mark.parametrize("name", sorted(FAILOVER_SETTINGS))
def test_a_failover_setting_not_passed_is_an_invalid_event(name: str) -> None:
    raw = {key: value for key, value in FAILOVER_SETTINGS.items() if key != name}
    with pytest.raises(failover.InvalidEvent, match=f"setting '{name}' is missing"):
        failover.parse(alarm(), raw, FAILOVER_EXECUTION)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"requireApproval": "maybe"}, "setting 'requireApproval' must be true or false"),
        ({"dryRun": 2}, "setting 'dryRun' must be true or false, got 2"),
        ({"maxPolls": 5}, "unknown override(s) maxPolls"),
    ],
)
def test_failover_overrides_are_held_to_the_template(
    override: dict[str, Any], message: str
) -> None:
    with pytest.raises(failover.InvalidEvent, match=re.escape(message)):
        failover.parse(alarm(opsflow=override), FAILOVER_SETTINGS, FAILOVER_EXECUTION)


def test_failover_template_values_are_typed_as_their_parameters() -> None:
    raw = {**FAILOVER_SETTINGS, "maxPolls": " 7 ", "targetGroups": "us-east-1=tg-a, us-east-2=tg-b"}
    config = failover.parse(alarm(), raw, FAILOVER_EXECUTION)["settings"]
    assert config["maxPolls"] == 7
    assert config["targetGroups"] == {"us-east-1": "tg-a", "us-east-2": "tg-b"}
    with pytest.raises(failover.InvalidEvent, match="setting 'maxPolls' must be a whole number"):
        failover.parse(alarm(), {**raw, "maxPolls": "ten"}, FAILOVER_EXECUTION)


def test_failover_rerun_overrides_are_typed() -> None:
    event = alarm(opsflow={"requireApproval": "true", "dryRun": False, "ignoreCooldown": True})
    config = failover.parse(event, FAILOVER_SETTINGS, FAILOVER_EXECUTION)["settings"]
    assert (config["requireApproval"], config["dryRun"], config["ignoreCooldown"]) == (
        True, False, True
    )
