"""One test per cure in ``opsflow.engine.cures``, run on moto with its interpreter switched on.

moto's version is pinned because every cure patches its internals; after an upgrade these tests
show which cures still work (and, by removing a cure, whether it is still needed).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from opsflow.engine import cures
from opsflow.engine.clock import DEFAULT_START

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/opsflow-test"
MOCK_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
POLL_LIMIT_SECONDS = 10.0
MISSING_PARAMETER = "/opsflow/test/missing"
PARAMETER = "/opsflow/test/present"
IMAGE_ID = "ami-12c6146b"


def sdk(service: str, action: str) -> str:
    return f"arn:aws:states:::aws-sdk:{service}:{action}"


def get_missing_parameter(**extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": sdk("ssm", "getParameter"),
        "Parameters": {"Name": MISSING_PARAMETER},
        **extra,
    }


class Run:
    def __init__(self, description: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.status: str = description["status"]
        self.output: Any = json.loads(description["output"]) if "output" in description else None
        self.error: str | None = description.get("error")
        self.history = history


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    """One emulated account for the module (botocore models load once); names are unique."""
    cures.install()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        with mock_aws(config=MOCK_CONFIG):
            yield


def run(definition: dict[str, Any], execution_input: Any = None) -> Run:
    """Create ``definition``, run it once, wait (bounded) for the end, return what AWS reports."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"cure-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine,
        name=f"run-{uuid.uuid4().hex[:12]}",
        input=json.dumps(execution_input if execution_input is not None else {}),
    )["executionArn"]
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    while True:
        description = sfn.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            sfn.stop_execution(executionArn=arn, error="test.Timeout")
            pytest.fail(f"execution still RUNNING after {POLL_LIMIT_SECONDS:.0f} s real time")
        time.sleep(0.01)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return Run(description, history)


# ------------------------------------------------------------------------- (a) error names
def test_error_names_are_pascal_case_as_in_aws(aws: None) -> None:
    definition = {
        "StartAt": "Read",
        "States": {
            "Read": get_missing_parameter(
                Catch=[
                    {
                        "ErrorEquals": ["Ssm.ParameterNotFoundException"],
                        "ResultPath": "$.error",
                        "Next": "Caught",
                    }
                ],
                End=True,
            ),
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    result = run(definition)
    assert result.status == "SUCCEEDED"
    assert result.output["error"]["Error"] == "Ssm.ParameterNotFoundException"


def test_uncaught_error_name_is_reported_as_aws_spells_it(aws: None) -> None:
    result = run({"StartAt": "Read", "States": {"Read": get_missing_parameter(End=True)}})
    assert result.status == "FAILED"
    assert result.error == "Ssm.ParameterNotFoundException"


@pytest.mark.parametrize(
    ("service", "prefix"),
    [("ec2", "Ec2"), ("elasticloadbalancingv2", "ElasticLoadBalancingV2"), ("lambda", "Lambda")],
)
def test_error_prefix(service: str, prefix: str) -> None:
    assert cures.error_prefix(service) == prefix


# ------------------------------------------------------------------------- (b) datetimes
def test_datetimes_in_sdk_results_become_iso_strings(aws: None) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value="on", Type="String")
    definition = {
        "StartAt": "Read",
        "States": {
            "Read": {
                "Type": "Task",
                "Resource": sdk("ssm", "getParameter"),
                "Parameters": {"Name": PARAMETER},
                "End": True,
            }
        },
    }
    result = run(definition)
    assert result.status == "SUCCEEDED"
    parameter = result.output["Parameter"]
    assert parameter["Value"] == "on"
    modified = parameter["LastModifiedDate"]
    assert isinstance(modified, str)
    assert isinstance(datetime.fromisoformat(modified), datetime)


def test_iso_datetimes_reaches_nested_values() -> None:
    moment = datetime(2026, 3, 14, 3, 12, tzinfo=UTC)
    value = {"a": [moment, {"b": date(2026, 3, 14)}], "c": 1}
    assert cures.iso_datetimes(value) == {
        "a": ["2026-03-14T03:12:00+00:00", {"b": "2026-03-14"}],
        "c": 1,
    }


# ------------------------------------------------------------------------- (c) service names
def test_service_name_map_goes_from_unknown_names_to_boto3_names() -> None:
    available = set(boto3.session.Session().get_available_services())
    assert set(cures.SERVICE_NAMES).isdisjoint(available)
    assert set(cures.SERVICE_NAMES.values()) <= available


def test_elasticloadbalancingv2_service_name_maps_to_elbv2(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    elbv2 = boto3.client("elbv2", region_name=REGION)
    elbv2.create_load_balancer(Name="cure-nlb", Subnets=[subnet], Type="network")
    definition = {
        "StartAt": "Describe",
        "States": {
            "Describe": {
                "Type": "Task",
                "Resource": sdk("elasticloadbalancingv2", "describeLoadBalancers"),
                "Parameters": {},
                "End": True,
            }
        },
    }
    result = run(definition)
    assert result.status == "SUCCEEDED", result.error
    assert [lb["LoadBalancerName"] for lb in result.output["LoadBalancers"]] == ["cure-nlb"]


def test_servicequotas_service_name_maps_to_service_quotas(aws: None) -> None:
    definition = {
        "StartAt": "Quotas",
        "States": {
            "Quotas": {
                "Type": "Task",
                "Resource": sdk("servicequotas", "listAWSDefaultServiceQuotas"),
                "Parameters": {"ServiceCode": "vpc"},
                "End": True,
            }
        },
    }
    result = run(definition)
    assert result.status == "SUCCEEDED", result.error
    assert result.output["Quotas"]
    assert {quota["ServiceCode"] for quota in result.output["Quotas"]} == {"vpc"}


# ------------------------------------------------------------------------- (d) virtual time
def test_wait_and_retry_run_on_virtual_time(aws: None) -> None:
    definition = {
        "StartAt": "Wait an hour",
        "States": {
            "Wait an hour": {"Type": "Wait", "Seconds": 3600, "Next": "Read"},
            "Read": get_missing_parameter(
                Retry=[
                    {
                        "ErrorEquals": ["Ssm.ParameterNotFoundException"],
                        "IntervalSeconds": 100,
                        "MaxAttempts": 2,
                        "BackoffRate": 2,
                    }
                ],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
                End=True,
            ),
            "Done": {"Type": "Succeed"},
        },
    }
    cures.CLOCK.reset()
    started = time.monotonic()
    result = run(definition)
    real = time.monotonic() - started
    assert result.status == "SUCCEEDED"
    assert real < 5.0
    # 3600 s of Wait, then two retries: 100 s, then 100 s x 2.
    assert cures.CLOCK.elapsed() == pytest.approx(3600 + 100 + 200)
    stamps = [event["timestamp"] for event in result.history]
    assert stamps == sorted(stamps)
    assert stamps[0] == DEFAULT_START
    assert stamps[-1] - stamps[0] >= timedelta(seconds=3600)


# ------------------------------------------------------------------------- (e) ENI groups
def test_replacing_an_attached_interfaces_groups_shows_only_the_new_ones(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    launch = ec2.create_security_group(GroupName="launch", Description="launch", VpcId=vpc)[
        "GroupId"
    ]
    isolation = ec2.create_security_group(GroupName="isolation", Description="iso", VpcId=vpc)[
        "GroupId"
    ]
    instance = ec2.run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        SecurityGroupIds=[launch],
    )["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]

    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[isolation])

    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
    interfaces = described["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    groups = {i["NetworkInterfaceId"]: [g["GroupId"] for g in i["Groups"]] for i in interfaces}
    assert groups[eni] == [isolation]
    interface = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert [g["GroupId"] for g in interface["Groups"]] == [isolation]


# ------------------------------------------------------------------------- (f) jitter
def test_full_jitter_is_deterministic(aws: None) -> None:
    definition = {
        "StartAt": "Read",
        "States": {
            "Read": get_missing_parameter(
                Retry=[
                    {
                        "ErrorEquals": ["States.ALL"],
                        "IntervalSeconds": 100,
                        "MaxAttempts": 2,
                        "BackoffRate": 2,
                        "JitterStrategy": "FULL",
                    }
                ],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
                End=True,
            ),
            "Done": {"Type": "Succeed"},
        },
    }
    elapsed = []
    for _ in range(2):
        cures.CLOCK.reset()
        assert run(definition).status == "SUCCEEDED"
        elapsed.append(cures.CLOCK.elapsed())
    assert elapsed[0] == elapsed[1]
    # Full jitter draws in [0, interval]; locally it takes the middle: (100 + 200) / 2.
    assert elapsed[0] == pytest.approx(150)


# ------------------------------------------------------------------------- the SDK's backoff
def test_the_sdks_retry_backoff_runs_on_the_virtual_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call the SDK retries: inside an engine, botocore's wait between the attempts advances
    the virtual clock by the expected value of its jitter (0.5 s for a first throttling retry,
    1 s for the next), never sleeping; outside, botocore sleeps its own random draw."""
    import botocore.endpoint
    from botocore.config import Config
    from botocore.retries import standard

    from opsflow.engine.boundary import parse_fault
    from opsflow.engine.runner import LocalEngine

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s of real time")

    with LocalEngine(scenarios=["health-abuse"],
                     faults=[parse_fault("ec2:DescribeRegions=RequestLimitExceeded*2")]) as engine:
        ec2 = boto3.client("ec2", region_name=REGION,
                           config=Config(retries={"mode": "standard", "max_attempts": 3}))
        monkeypatch.setattr(time, "sleep", no_sleep)
        start = engine.clock.elapsed()
        ec2.describe_regions()
        assert engine.clock.elapsed() - start == pytest.approx(0.5 + 1.0)
        assert engine.faults[0].seen == 3  # two throttled attempts, then the answer
        monkeypatch.undo()
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    botocore.endpoint.time.sleep(0.25)  # what botocore calls between attempts
    assert slept == [0.25]
    draws = {standard.ExponentialBackoff(throttling_detector=None)._random() for _ in range(5)}
    assert len(draws) > 1  # botocore's own random draw again


@pytest.mark.parametrize("payload_signing", [True, False])
@pytest.mark.parametrize("token", [None, "a-session-token"])
@pytest.mark.parametrize("kind", ["botocore", "awscrt"])
def test_a_placeholder_signature_gives_a_request_the_headers_signing_gives_it(
    kind: str, token: str | None, payload_signing: bool
) -> None:
    """Inside an engine, each SigV4 signer (awscrt's and botocore's own) gives a request the
    same headers its signing gives, the same credential scope and signed headers, and a
    placeholder where the signature goes; outside an engine it signs."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.crt import auth as crt

    from opsflow.engine import boundary

    cures.install()
    cls = crt.CrtSigV4Auth if kind == "awscrt" else botocore.auth.SigV4Auth
    credentials = Credentials("AKIAEXAMPLEKEY000001", "a-secret", token)

    def request() -> Any:
        made = AWSRequest(method="POST", url="https://ec2.eu-west-1.amazonaws.com/",
                          data=b"Action=DescribeVpcs&Version=2016-11-15", headers={
                              "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                              "User-Agent": "opsflow-test"})
        made.context["payload_signing_enabled"] = payload_signing
        return made

    def seen(made: Any) -> tuple[dict[str, str], str, str]:
        headers = {name: value.decode() if isinstance(value, bytes) else value
                   for name, value in made.headers.items()}
        stamp = headers.pop("X-Amz-Date")
        authorization = headers.pop("Authorization").replace(stamp[:8], "DATE")
        head, signature = authorization.rsplit("Signature=", 1)
        assert len(stamp) == 16 and stamp.endswith("Z")
        return headers, head, signature

    signed = request()
    cls(credentials, "ec2", "eu-west-1").add_auth(signed)
    boundary.activate(boundary.Boundary())
    try:
        placed = request()
        cls(credentials, "ec2", "eu-west-1").add_auth(placed)
    finally:
        boundary.deactivate()
    headers, head, signature = seen(signed)
    assert seen(placed) == (headers, head, cures.PLACEHOLDER_SIGNATURE)
    assert "Credential=AKIAEXAMPLEKEY000001/DATE/eu-west-1/ec2/aws4_request" in head
    assert len(signature) == 64 and signature != cures.PLACEHOLDER_SIGNATURE


def test_moto_reads_the_account_and_region_of_a_placeholder_signature(aws: None) -> None:
    """moto finds a request's account from its access key and, where its URL names no region,
    its region from the credential scope; both are read from a placeholder-signed request as
    from a signed one. A client without credentials is refused as botocore refuses it."""
    from botocore.exceptions import NoCredentialsError
    from moto.core.responses import BaseResponse

    from opsflow.engine import boundary

    other = "111111111111"
    boundary.activate(boundary.Boundary())
    try:
        held = boto3.client("sts", region_name="eu-west-1").assume_role(
            RoleArn=f"arn:aws:iam::{other}:role/reader", RoleSessionName="session")["Credentials"]
        sts = boto3.client("sts", region_name="eu-west-1", aws_access_key_id=held["AccessKeyId"],
                           aws_secret_access_key=held["SecretAccessKey"],
                           aws_session_token=held["SessionToken"])
        sent: list[Any] = []
        sts.meta.events.register("before-send.*", lambda request, **_: sent.append(request))
        assert sts.get_caller_identity()["Account"] == other
        headers = {name: value.decode() if isinstance(value, bytes) else value
                   for name, value in sent[-1].headers.items()}
        assert headers["Authorization"].endswith(f"Signature={cures.PLACEHOLDER_SIGNATURE}")
        assert BaseResponse().get_region_from_url(
            SimpleNamespace(headers=headers), "https://global.amazonaws.com/") == "eu-west-1"
        del headers["Authorization"]  # the region above is the scope's, not moto's default
        assert BaseResponse().get_region_from_url(
            SimpleNamespace(headers=headers), "https://global.amazonaws.com/") == "us-east-1"
        session = boto3.session.Session()
        session._session.get_component("credential_provider").providers = []
        with pytest.raises(NoCredentialsError):
            session.client("ec2", region_name=REGION).describe_vpcs()
    finally:
        boundary.deactivate()


# ------------------------------------------------------------------------- Wait Timestamp in UTC
def test_process_runs_in_utc_so_wait_timestamp_is_not_shifted(aws: None) -> None:
    assert os.environ["TZ"] == "UTC"
    cures.CLOCK.reset()
    target = cures.CLOCK.now().astimezone(UTC) + timedelta(hours=1)
    definition = {
        "StartAt": "Until",
        "States": {
            "Until": {
                "Type": "Wait",
                "Timestamp": target.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "End": True,
            }
        },
    }
    cures.CLOCK.reset()
    assert run(definition).status == "SUCCEEDED"
    assert 3590 <= cures.CLOCK.elapsed() <= 3600


def test_wait_timestamp_follows_the_virtual_clock(aws: None) -> None:
    until = (DEFAULT_START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    definition = {
        "StartAt": "Until",
        "States": {"Until": {"Type": "Wait", "TimestampPath": "$.until", "End": True}},
    }
    cures.CLOCK.reset()
    assert run(definition, {"until": until}).status == "SUCCEEDED"
    assert cures.CLOCK.elapsed() == pytest.approx(3600)


# ------------------------------------------------------------------------- history hook
def test_history_listeners_see_every_event(aws: None) -> None:
    seen: list[dict[str, Any]] = []
    cures.HISTORY_LISTENERS.append(seen.append)
    try:
        result = run({"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True}}})
    finally:
        cures.HISTORY_LISTENERS.remove(seen.append)
    assert result.status == "SUCCEEDED"
    assert [e["type"] for e in seen] == [e["type"] for e in result.history]


# ------------------------------------------------------------------------- quiet logs
def test_interpreter_warnings_are_silenced() -> None:
    cures.install()
    assert not logging.getLogger("moto.stepfunctions").isEnabledFor(logging.WARNING)


# ------------------------------------------------------------------------- EventBridge arrays
def test_flatten_event_joins_nested_keys_with_dots() -> None:
    event = {"source": "aws.health", "detail": {"service": "EBS", "scope": {"code": "ACCOUNT"}}}
    assert cures.flatten_event(event) == {
        "source": "aws.health",
        "detail.service": "EBS",
        "detail.scope.code": "ACCOUNT",
    }


def test_flatten_event_flattens_arrays_of_objects_into_lists() -> None:
    event = {
        "detail": {
            "affectedEntities": [
                {"entityValue": "first", "status": {"code": "open"}, "tags": ["a", "b"]},
                {"entityValue": "second", "tags": ["c"]},
            ]
        }
    }
    assert cures.flatten_event(event) == {
        "detail.affectedEntities.entityValue": ["first", "second"],
        "detail.affectedEntities.status.code": ["open"],
        "detail.affectedEntities.tags": ["a", "b", "c"],
    }


def test_flatten_event_keeps_arrays_of_scalars_and_empty_values() -> None:
    event = {"resources": ["arn:aws:ec2:one", "arn:aws:ec2:two"], "none": [], "detail": {}}
    assert cures.flatten_event(event) == {
        "resources": ["arn:aws:ec2:one", "arn:aws:ec2:two"],
        "none": [],
        "detail": {},
    }
    assert cures.flatten_event(["not", "an", "object"]) == {}


def threshold_breach(*services: str) -> dict[str, Any]:
    """An AWS Health Service Quotas threshold-breach event naming one entity per service."""
    entities = [
        {"entityValue": f"Service: {service} | Quota Name: Some quota | Utilization: 80.0%"}
        for service in services
    ]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": "123456789012",
        "time": "2026-03-14T02:18:36Z",
        "region": REGION,
        "resources": [entity["entityValue"] for entity in entities],
        "detail": {
            "service": "SERVICEQUOTAS",
            "eventTypeCode": "AWS_SERVICEQUOTAS_THRESHOLD_BREACH",
            "affectedEntities": entities,
        },
    }


@pytest.mark.parametrize(
    ("services", "matches"),
    [
        (("ebs",), True),
        (("cloudtrail", "ebs"), True),
        (("cloudtrail",), False),
        (("ec2", "cloudtrail"), False),
    ],
)
def test_event_patterns_look_inside_arrays_of_objects(
    services: tuple[str, ...], matches: bool
) -> None:
    from moto.events.models import EventPattern

    cures.install()
    pattern = {"detail": {"affectedEntities": {"entityValue": [{"prefix": "Service: ebs |"}]}}}
    event: Any = threshold_breach(*services)
    assert EventPattern.load(json.dumps(pattern)).matches_event(event) is matches


# ------------------------------------------------------------------------- program cache
def test_programs_are_built_once_and_every_execution_gets_its_own(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from opsflow.engine import cache

    cures.install()
    monkeypatch.setattr(cache, "DIR", tmp_path)
    definition = json.dumps(
        {
            "Comment": f"cache-{uuid.uuid4().hex}",
            "StartAt": "Only",
            "States": {"Only": {"Type": "Pass", "Result": {"n": 1}, "End": True}},
        }
    )
    first, _ = AmazonStateLanguageParser.parse(definition)
    second, _ = AmazonStateLanguageParser.parse(definition)
    assert isinstance(first, Program) and isinstance(second, Program)
    assert second is not first
    assert second.states is not first.states
    assert second.start_at is not first.start_at
    assert second.start_at.start_at_name == "Only"
    entries = list(tmp_path.glob("asl-*.bin"))
    assert len(entries) == 1
    # Another process reads the stored program: the entry is what it gets.
    other = json.dumps({"StartAt": "Else", "States": {"Else": {"Type": "Succeed"}}})
    stored, _ = AmazonStateLanguageParser.parse(other)
    entry = next(e for e in tmp_path.glob("asl-*.bin") if e != entries[0])
    entries[0].write_bytes(entry.read_bytes())
    AmazonStateLanguageParser.parse.forget()  # type: ignore[attr-defined]
    read, _ = AmazonStateLanguageParser.parse(definition)
    assert read.start_at.start_at_name == "Else" != first.start_at.start_at_name
    assert stored.start_at.start_at_name == "Else"


def test_a_definition_with_a_syntax_error_still_raises() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import (
        AmazonStateLanguageParser,
        ASLParserException,
    )

    cures.install()
    broken = '{"StartAt": "Only", "States": {'
    for _ in range(2):
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse(broken)


# ------------------------------------------------------------------------- virtual task timeouts
def test_task_timeout_elapses_on_the_virtual_clock(aws: None) -> None:
    """A task waiting for a token that never comes times out when the engine says so,
    advancing the clock by its TimeoutSeconds instead of waiting for real."""
    import threading

    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name=f"approvals-{uuid.uuid4().hex[:8]}")["TopicArn"]
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
                "Parameters": {"TopicArn": topic, "Message.$": "$$.Task.Token"},
                "TimeoutSeconds": 900,
                "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "TimedOut"}],
                "End": True,
            },
            "TimedOut": {"Type": "Pass", "End": True},
        },
    }

    def expire() -> None:
        deadline = time.monotonic() + 5
        while not cures.expire_task_timeouts() and time.monotonic() < deadline:
            time.sleep(0.01)

    cures.CLOCK.reset()
    threading.Thread(target=expire, daemon=True).start()
    started = time.monotonic()
    result = run(definition)
    assert result.status == "SUCCEEDED"
    assert any(e.get("stateEnteredEventDetails", {}).get("name") == "TimedOut" for e in result.history)
    assert cures.CLOCK.elapsed() >= 900
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------------- speed cures
def test_task_clients_are_reused(aws: None) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    cures.install()
    first = lambda_eval_utils.boto_client_for(region=REGION, service="lambda")
    again = lambda_eval_utils.boto_client_for(region=REGION, service="lambda")
    assert first is again


def test_json_paths_are_parsed_once() -> None:
    from moto.stepfunctions.parser.asl.utils import json_path

    cures.install()
    assert json_path.parse("$.plan.targets[0]") is json_path.parse("$.plan.targets[0]")


# ------------------------------------------------------------------------- SendTaskFailure cause
def scheduled_token(sfn: Any, execution_arn: str) -> str:
    """The task token a ``.waitForTaskToken`` task published (bounded wait)."""
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    while time.monotonic() < deadline:
        events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        for event in events:
            if event["type"] == "TaskScheduled":
                parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
                return str(parameters["Message"])
        time.sleep(0.01)
    pytest.fail("no TaskScheduled event")


def test_send_task_failure_passes_error_and_cause_to_the_catch(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name=f"approvals-{uuid.uuid4().hex[:8]}")["TopicArn"]
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
                "Parameters": {"TopicArn": topic, "Message.$": "$$.Task.Token"},
                "TimeoutSeconds": 900,
                "Catch": [
                    {
                        "ErrorEquals": ["Approval.Rejected"],
                        "ResultPath": "$.rejection",
                        "Next": "No",
                    }
                ],
                "End": True,
            },
            "No": {"Type": "Pass", "End": True},
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"cure-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:12]}", input="{}"
    )["executionArn"]
    token = scheduled_token(sfn, arn)
    sfn.send_task_failure(
        taskToken=token, error="Approval.Rejected", cause="on-call: instance is a honeypot"
    )
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still RUNNING"
        time.sleep(0.01)
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"])["rejection"] == {
        "Error": "Approval.Rejected",
        "Cause": "on-call: instance is a honeypot",
    }
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    failed = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert failed and failed[0]["error"] == "Approval.Rejected"
    assert failed[0]["cause"] == "on-call: instance is a honeypot"


# ------------------------------------------------------------------------- atomic backend calls
RACERS = 16


def race(action: Callable[[int], Any]) -> Counter[str]:
    """Start ``action(i)`` in ``RACERS`` threads at once; count ``ok`` and each error code."""
    start = threading.Barrier(RACERS)
    outcomes: Counter[str] = Counter()
    outcome_lock = threading.Lock()

    def racer(i: int) -> None:
        start.wait()
        try:
            action(i)
            outcome = "ok"
        except ClientError as error:
            outcome = error.response["Error"]["Code"]
        except Exception as error:  # noqa: BLE001 - moto's internal errors are the finding
            outcome = f"{type(error).__name__}: {error}"
        with outcome_lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(POLL_LIMIT_SECONDS)
    return outcomes


def slowed(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` with a pause after it, to hold a race window open (a thread switch there
    is what happens, unforced, in about one health-abuse run in fifteen)."""

    def slow(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        time.sleep(0.002)
        return result

    return slow


def test_concurrent_creates_of_one_security_group_name_make_one_group(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.models.security_groups import SecurityGroupBackend

    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    name = f"isolation-{uuid.uuid4().hex[:8]}"
    lookup = SecurityGroupBackend.get_security_group_by_name_or_id
    monkeypatch.setattr(SecurityGroupBackend, "get_security_group_by_name_or_id", slowed(lookup))

    outcomes = race(
        lambda i: ec2.create_security_group(GroupName=name, Description="iso", VpcId=vpc)
    )

    assert outcomes == Counter({"ok": 1, "InvalidGroup.Duplicate": RACERS - 1})
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": [name]}]
    )["SecurityGroups"]
    assert len(groups) == 1


def test_describe_tags_is_consistent_while_other_threads_tag(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.models import tags as tag_models

    ec2 = boto3.client("ec2", region_name=REGION)
    instances = ec2.run_instances(ImageId=IMAGE_ID, MinCount=4, MaxCount=4)["Instances"]
    ids = [instance["InstanceId"] for instance in instances]
    for instance_id in ids:
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "opsflow:seed", "Value": "x"}])
    monkeypatch.setattr(tag_models, "get_prefix", slowed(tag_models.get_prefix))

    def tag_or_read(i: int) -> None:
        if i % 2:
            for n in range(3):
                ec2.create_tags(Resources=[ids[i % 4]], Tags=[{"Key": f"k{i}-{n}", "Value": "v"}])
        else:
            ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": ids}])
            ec2.describe_instances(InstanceIds=[ids[i % 4]])

    assert race(tag_or_read) == Counter({"ok": RACERS})
    described = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": ids}])["Tags"]
    assert len(described) == len(ids) + (RACERS // 2) * 3


def test_concurrent_conditional_puts_of_one_key_store_one_item(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.models import table as table_models

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    name = f"dedupe-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    condition = table_models.get_filter_expression
    monkeypatch.setattr(table_models, "get_filter_expression", slowed(condition))

    outcomes = race(
        lambda i: dynamodb.put_item(
            TableName=name,
            Item={"pk": {"S": "event-1"}, "writer": {"N": str(i)}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    )

    assert outcomes == Counter({"ok": 1, "ConditionalCheckFailedException": RACERS - 1})


def test_concurrent_parameter_creates_and_overwrites_are_serialised(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ssm import models as ssm_models

    ssm = boto3.client("ssm", region_name=REGION)
    created = f"/opsflow/race/{uuid.uuid4().hex[:8]}"
    overwritten = f"/opsflow/race/{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(ssm_models, "utcnow", slowed(ssm_models.utcnow))

    creates = race(lambda i: ssm.put_parameter(Name=created, Value=str(i), Type="String"))
    overwrites = race(
        lambda i: ssm.put_parameter(Name=overwritten, Value=str(i), Type="String", Overwrite=True)
    )

    assert creates == Counter({"ok": 1, "ParameterAlreadyExists": RACERS - 1})
    assert overwrites == Counter({"ok": RACERS})
    history = ssm.get_parameter_history(Name=overwritten, MaxResults=50)["Parameters"]
    assert sorted(p["Version"] for p in history) == list(range(1, RACERS + 1))


# ------------------------------------------------------------------------- metric periods
def test_metric_statistics_periods_start_at_start_time(aws: None) -> None:
    """Daily periods from midnight: yesterday noon and today 00:00 are two days, as in AWS
    (moto started its periods at the first datapoint, noon, and merged them)."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    namespace = f"opsflow/cure-{uuid.uuid4().hex[:8]}"
    today = datetime(2026, 3, 14, tzinfo=UTC)
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": "Usage", "Timestamp": today - timedelta(hours=12), "Value": 1.0},
            {"MetricName": "Usage", "Timestamp": today, "Value": 2.0},
            {"MetricName": "Usage", "Timestamp": today + timedelta(hours=6), "Value": 3.0},
        ],
    )
    found = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="Usage",
        StartTime=today - timedelta(days=2),
        EndTime=today + timedelta(days=1),
        Period=86400,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    points = sorted((p["Timestamp"], p["Maximum"], p["SampleCount"]) for p in found)
    assert points == [(today - timedelta(days=1), 1.0, 1.0), (today, 3.0, 2.0)]


def test_a_closed_task_token_is_refused_with_task_timed_out(aws: None) -> None:
    """After a token was answered (its execution ended or not), AWS refuses another answer with
    TaskTimedOut; moto accepted it, or said InvalidToken."""
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name=f"approvals-{uuid.uuid4().hex[:8]}")["TopicArn"]
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
                "Parameters": {"TopicArn": topic, "Message.$": "$$.Task.Token"},
                "TimeoutSeconds": 900,
                "Next": "Hold",
            },
            "Hold": {"Type": "Wait", "Seconds": 1, "End": True},
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"cure-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:12]}", input="{}"
    )["executionArn"]
    token = scheduled_token(sfn, arn)
    sfn.send_task_success(taskToken=token, output="{}")
    for answer in (
        lambda: sfn.send_task_success(taskToken=token, output="{}"),
        lambda: sfn.send_task_failure(taskToken=token, error="Late", cause="too late"),
    ):
        with pytest.raises(sfn.exceptions.TaskTimedOut):
            answer()
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still RUNNING"
        time.sleep(0.01)
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output="{}")


def test_tags_by_resource_id_are_what_moto_would_list(aws: None) -> None:
    """The fast answer for exact resource IDs gives moto's own answer, in its order."""
    ec2 = boto3.client("ec2", region_name=REGION)
    volumes = [ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"] for _ in range(3)]
    for index, volume in enumerate(volumes):
        ec2.create_tags(Resources=[volume], Tags=[{"Key": f"k{j}", "Value": str(index)} for j in range(3)])
    from moto.ec2.models import ec2_backends

    backend = ec2_backends["123456789012"][REGION]
    for ids in ([volumes[1]], [volumes[2], volumes[0]]):
        fast = backend.describe_tags(filters={"resource-id": ids})
        # A trailing wildcard takes moto's own path, and matches only these (IDs have one length).
        slow = backend.describe_tags(filters={"resource-id": [f"{v}*" for v in ids]})
        assert fast == slow
        assert {t["resource_id"] for t in fast} == set(ids) and len(fast) == 3 * len(ids)
        # With other filters, moto's own matching of them on those resources' rows.
        for other in ({"key": ["k1"]}, {"key": ["k*"], "value": ["2"]},
                      {"resource-type": ["volume"], "key": ["k0", "k2"]}, {"key": ["none"]}):
            fast = backend.describe_tags(filters={"resource-id": ids, **other})
            slow = backend.describe_tags(filters={"resource-id": [f"{v}*" for v in ids],
                                                  **other})
            assert fast == slow, other
        assert len(backend.describe_tags(filters={"resource-id": ids, "key": ["k1"]})) == len(ids)


# ------------------------------------------------------------------------- state data copies
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_state_data_is_copied_as_deepcopy_copies_it(value: Any) -> None:
    copied = cures.json_copy(value)
    assert copied == copy.deepcopy(value)
    if isinstance(value, dict | list) and value:
        assert copied is not value
        copied.clear()
        assert value  # the original is untouched


def test_non_json_data_and_memos_still_go_to_deepcopy() -> None:
    stamp = datetime(2026, 3, 14, tzinfo=UTC)
    nested = {"a": [{"when": stamp, "raw": bytearray(b"x")}]}
    copied = cures.json_copy(nested)
    assert copied == nested and copied["a"][0]["raw"] is not nested["a"][0]["raw"]
    memo: dict[int, Any] = {}
    assert cures.json_copy([1], memo) == [1] and memo


def test_the_interpreter_copies_state_data_as_json() -> None:
    import importlib

    cures.install()
    for name in cures._JSON_COPYING:
        assert importlib.import_module(name).copy.deepcopy is cures.json_copy, name


@given(st.text(max_size=40), st.booleans())
def test_user_agent_components_are_sanitised_as_botocore_does(text: str, allow_hash: bool) -> None:
    from botocore import useragent

    cures.install()
    kept = useragent.sanitize_user_agent_string_component
    assert kept.cache_info() is not None  # type: ignore[attr-defined]
    assert kept(text, allow_hash) == kept.__wrapped__(text, allow_hash)  # type: ignore[attr-defined]


@given(st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
    .flatmap(lambda moment: st.sampled_from([
        moment.isoformat(), moment.isoformat(timespec="milliseconds"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), moment.strftime("%a, %d %b %Y %H:%M:%S GMT")])),
    st.sampled_from(["12:00:00", "Monday", "2024-05", "2024-05-03", "2024-05-03T10"]),
    st.text(max_size=30), st.integers(0, 2**31), st.floats(0, 2**31)))
def test_response_timestamps_are_parsed_as_botocore_parses_them(value: object) -> None:
    """The parse of a complete ISO 8601 date and time is kept and read again; every parse is
    the same datetime botocore's own gives (its zone included), or the same error for a text it
    refuses (never kept); numbers and partial texts (which dateutil completes from today's
    date) are not kept."""
    from botocore import parsers

    cures.install()
    parse = parsers.DEFAULT_TIMESTAMP_PARSER
    original = parse.original  # type: ignore[attr-defined]

    def outcome(parser: Any) -> Any:
        try:
            moment = parser(value)
        except ValueError as error:
            return "ValueError", str(error)
        return moment, moment.tzinfo, moment.utcoffset()

    expected = outcome(original)
    assert outcome(parse) == expected
    hits = parse.texts.cache_info().hits  # type: ignore[attr-defined]
    assert outcome(parse) == expected
    kept = (isinstance(value, str) and expected[0] != "ValueError"
            and re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", value) is not None)
    assert parse.texts.cache_info().hits == hits + kept  # type: ignore[attr-defined]
    assert parsers.QueryParser()._timestamp_parser is parse


def test_action_names_are_listed_once_per_class() -> None:
    from moto.core import responses
    from moto.ec2.responses import EC2Response

    cures.install()
    first = responses.method_names_from_class(EC2Response)
    assert "describe_instances" in first
    assert responses.method_names_from_class(EC2Response) is first


def test_responses_are_serialized_as_moto_serializes_them(aws: None) -> None:
    from moto.core import serialize

    cures.install()
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=3, MaxCount=3, SubnetId=subnet,
                      TagSpecifications=[{"ResourceType": "instance",
                                          "Tags": [{"Key": "Stage", "Value": "Dev"}]}])
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)

    def everything() -> list[Any]:
        return [ec2.describe_instances()["Reservations"], ec2.describe_volumes()["Volumes"],
                ec2.describe_security_groups()["SecurityGroups"], ec2.describe_subnets()["Subnets"]]

    cached = everything()
    picked = serialize.AttributePicker.__call__
    serialize.AttributePicker.__call__ = picked.original  # type: ignore[attr-defined]
    try:
        assert everything() == cached
    finally:
        serialize.AttributePicker.__call__ = picked
    assert sum(len(reservation["Instances"]) for reservation in cached[0]) >= 3


# ------------------------------------------------------------------------- query responses
NAMES = st.sampled_from(["item", "instanceId", "tagSet", "a", "B-1", "x.y", "bad name", "<x", ""])
XML_LEAVES = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
              | st.text(alphabet=st.sampled_from("ab &<>\"'\n\t\r\u00e9"), max_size=6)
              | st.binary(max_size=3))


def _xml_values() -> Any:
    return st.recursive(
        XML_LEAVES,
        lambda inner: (
            st.lists(inner, max_size=3) | st.tuples(inner) | st.tuples()
            | st.dictionaries(NAMES | st.sampled_from(["#text", "@id", "@x y", "@xmlns"]), inner,
                              max_size=4)
            | st.fixed_dictionaries({"@xmlns": st.dictionaries(
                st.sampled_from(["", "ec2", "x y"]), st.none() | st.text(max_size=4),
                max_size=2)}, optional={"item": inner})
        ),
        max_leaves=12,
    )


@given(st.dictionaries(NAMES, _xml_values(), max_size=3), st.booleans())
def test_query_responses_are_written_as_xmltodict_writes_them(
    body: dict[str, Any], document: bool
) -> None:
    import xmltodict

    fast = cures.fast_unparse(xmltodict.unparse)
    options = {"full_document": document, "short_empty_elements": True, "pretty": False}
    try:
        expected: Any = xmltodict.unparse(body, **options)
    except ValueError as error:
        expected = ValueError(str(error))
    try:
        written: Any = fast(body, **options)
    except ValueError as error:
        written = ValueError(str(error))
    assert type(written) is type(expected) and str(written) == str(expected)


def test_an_ec2_response_with_its_namespace_is_written_by_the_fast_writer() -> None:
    import xmltodict

    body = {"DescribeInstancesResponse": {
        "@xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/", "requestId": "r-1",
        "reservationSet": {"item": [{"reservationId": "r-a"}, {"reservationId": "r-b"}]}}}
    fast = cures.fast_unparse(lambda *a, **k: (_ for _ in ()).throw(AssertionError("slow path")))
    options = {"full_document": True, "short_empty_elements": True, "pretty": False}
    assert fast(body, **options) == xmltodict.unparse(body, **options)


def test_moto_writes_query_responses_with_the_fast_writer() -> None:
    from moto.core import serialize

    cures.install()
    assert serialize.xmltodict.unparse.original is not None  # type: ignore[attr-defined]
    assert serialize.xmltodict.unparse({"a": {"@n": "1", "b": [1, None]}},
                                       full_document=False, short_empty_elements=True,
                                       pretty=False) == '<a n="1"><b>1</b><b/></a>'


# ------------------------------------------------------------------------- Auto Scaling, ELB
def _served_instance(name: str) -> tuple[str, str]:
    """An instance in service in a new Auto Scaling group with a target group; (ID, TG ARN)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    instance = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=subnet)[
        "Instances"][0]["InstanceId"]
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": IMAGE_ID})
    target_group = boto3.client("elbv2", region_name=REGION).create_target_group(
        Name=name, Protocol="TCP", Port=443, VpcId=vpc, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": name},
        MinSize=0, MaxSize=3, DesiredCapacity=0, VPCZoneIdentifier=subnet,
        TargetGroupARNs=[target_group])
    autoscaling.attach_instances(AutoScalingGroupName=name, InstanceIds=[instance])
    return instance, target_group


def _targets(target_group: str) -> set[str]:
    health = boto3.client("elbv2", region_name=REGION).describe_target_health(
        TargetGroupArn=target_group)["TargetHealthDescriptions"]
    return {d["Target"]["Id"] for d in health}


def test_a_standby_member_stays_out_of_its_groups_target_groups(aws: None) -> None:
    instance, target_group = _served_instance("cure-standby")
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    assert instance in _targets(target_group)
    autoscaling.enter_standby(AutoScalingGroupName="cure-standby", InstanceIds=[instance],
                              ShouldDecrementDesiredCapacity=False)
    assert instance not in _targets(target_group)
    # Any later change of the group (here, its desired capacity) must not register it again.
    autoscaling.set_desired_capacity(AutoScalingGroupName="cure-standby", DesiredCapacity=2)
    assert instance not in _targets(target_group)
    assert len(_targets(target_group)) == 2
    autoscaling.exit_standby(AutoScalingGroupName="cure-standby", InstanceIds=[instance])
    assert instance in _targets(target_group)
    # A scale-in deregisters the instance it terminates.
    autoscaling.set_instance_protection(AutoScalingGroupName="cure-standby",
                                        InstanceIds=[instance], ProtectedFromScaleIn=True)
    autoscaling.set_desired_capacity(AutoScalingGroupName="cure-standby", DesiredCapacity=1)
    assert _targets(target_group) == {instance}


def test_modify_instance_attribute_sets_the_shutdown_behaviour(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    group = ec2.create_security_group(GroupName="cure-shutdown", Description="x")["GroupId"]
    instance = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1,
                                 SecurityGroupIds=[group])["Instances"][0]["InstanceId"]
    ec2.modify_instance_attribute(InstanceId=instance,
                                  InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    value = ec2.describe_instance_attribute(
        InstanceId=instance, Attribute="instanceInitiatedShutdownBehavior"
    )["InstanceInitiatedShutdownBehavior"]["Value"]
    assert value == "terminate"
    described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in described["SecurityGroups"]] == [group]


def test_instances_are_found_by_id_as_moto_finds_them(aws: None) -> None:
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import InstanceBackend

    cures.install()
    ec2 = boto3.client("ec2", region_name=REGION)
    made = [i["InstanceId"] for i in ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=3, MaxCount=3)["Instances"]]
    backend = ec2_backends["123456789012"][REGION]
    original = InstanceBackend.get_instance.original  # type: ignore[attr-defined]
    for instance_id in made:
        assert backend.get_instance(instance_id) is original(backend, instance_id)
    later = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    assert backend.get_instance(later["InstanceId"]).id == later["InstanceId"]  # a miss rebuilds
    reservation = next(r for r in backend.reservations.values()
                       if any(i.id == made[0] for i in r.instances))
    reservation.instances = [i for i in reservation.instances if i.id != made[0]]
    for lookup in (backend.get_instance, lambda i: original(backend, i)):
        with pytest.raises(InvalidInstanceIdError):
            lookup(made[0])  # gone from its reservation: moto's answer, not the stale entry
    with pytest.raises(InvalidInstanceIdError):
        backend.get_instance("i-0000000000000000f")
    assert ec2.describe_instances(InstanceIds=[made[1]])["Reservations"][0]["Instances"][0][
        "InstanceId"] == made[1]
