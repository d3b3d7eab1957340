"""The emulated AWS API boundary: fault specs, fault injection, in-process Lambda, notifications."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from opsflow.engine import boundary
from opsflow.engine.boundary import Boundary, Fault, FaultSpecError, Notification, parse_fault

NO_RETRIES = Config(retries={"total_max_attempts": 1})
"""A client that reports every fault as it comes (no SDK retries)."""

REGION = "us-east-1"
IMAGE_ID = "ami-12c6146b"

Activate = Callable[[Boundary], Boundary]


# ------------------------------------------------------------------------- parse_fault
def test_parse_fault_with_count() -> None:
    fault = parse_fault("ec2:StopInstances=RequestLimitExceeded*2")
    assert (fault.service, fault.operation, fault.code, fault.count) == (
        "ec2",
        "StopInstances",
        "RequestLimitExceeded",
        2,
    )
    assert fault.spec == "ec2:StopInstances=RequestLimitExceeded*2"


def test_parse_fault_without_count_is_permanent() -> None:
    fault = parse_fault("ssm:GetParameter=AccessDeniedException")
    assert (fault.service, fault.operation, fault.code, fault.count) == (
        "ssm",
        "GetParameter",
        "AccessDeniedException",
        None,
    )
    assert fault.spec == "ssm:GetParameter=AccessDeniedException"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ec2StopInstances", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("ec2:StopInstances", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("ec2:stopInstances=RequestLimitExceeded", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("ec2:StopInstances=RequestLimitExceeded*0", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("ec2:StopInstances=RequestLimitExceeded*x", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("nosuchservice:StopInstances=Throttling", "unknown service 'nosuchservice'"),
        ("ec2:StopInstance=Throttling", "ec2 has no operation 'StopInstance'"),
    ],
)
def test_parse_fault_rejects(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as error:
        parse_fault(spec)
    text = str(error.value)
    assert message in text
    assert repr(spec) in text
    assert "\n" not in text


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        with mock_aws():
            yield


@pytest.fixture
def activate(aws: None) -> Iterator[Activate]:
    """Activate a boundary for one test; always deactivated afterwards."""

    def _activate(value: Boundary) -> Boundary:
        boundary.activate(value)
        return value

    try:
        yield _activate
    finally:
        boundary.deactivate()


@pytest.fixture
def instance_id(aws: None) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    return str(
        ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    )


def error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


# ------------------------------------------------------------------------- fault injection
# Faults are built directly: parse_fault (tested above) loads botocore models on every call.
def test_counted_fault_fails_exactly_n_times_then_succeeds(
    activate: Activate, instance_id: str
) -> None:
    active = activate(Boundary(faults=[Fault("ec2", "StopInstances", "RequestLimitExceeded", 2)]))
    ec2 = boto3.client("ec2", region_name=REGION, config=NO_RETRIES)
    for _ in range(2):
        with pytest.raises(ClientError) as error:
            ec2.stop_instances(InstanceIds=[instance_id])
        assert error_code(error.value) == "RequestLimitExceeded"
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    stopped = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
    assert [i["InstanceId"] for i in stopped] == [instance_id]
    ec2.stop_instances(InstanceIds=[instance_id])
    assert active.calls.count(("ec2", "StopInstances", REGION)) == 4


@pytest.mark.parametrize("throttles", [1, 2])
def test_faults_enter_below_the_sdks_retries(
    activate: Activate, instance_id: str, throttles: int
) -> None:
    """A throttle is injected per HTTP attempt, so the SDK's standard retries (two, as the
    functions configure them) absorb it exactly as they would on AWS: one call, N + 1 attempts."""
    fault = Fault("ec2", "StopInstances", "RequestLimitExceeded", throttles)
    active = activate(Boundary(faults=[fault]))
    ec2 = boto3.client(
        "ec2", region_name=REGION, config=Config(retries={"mode": "standard", "max_attempts": 2})
    )
    stopped = ec2.stop_instances(InstanceIds=[instance_id])
    assert stopped["ResponseMetadata"]["RetryAttempts"] == throttles
    assert fault.seen == throttles + 1
    assert active.calls.count(("ec2", "StopInstances", REGION)) == 1


def test_a_throttle_the_sdk_cannot_absorb_fails_the_call(activate: Activate, instance_id: str) -> None:
    fault = Fault("ec2", "StopInstances", "RequestLimitExceeded", 3)
    activate(Boundary(faults=[fault]))
    ec2 = boto3.client(
        "ec2", region_name=REGION, config=Config(retries={"mode": "standard", "max_attempts": 2})
    )
    with pytest.raises(ClientError) as error:
        ec2.stop_instances(InstanceIds=[instance_id])
    assert error_code(error.value) == "RequestLimitExceeded"
    assert fault.seen == 3


def test_permanent_fault_fails_every_time(activate: Activate, instance_id: str) -> None:
    activate(Boundary(faults=[Fault("ec2", "StopInstances", "UnauthorizedOperation", None)]))
    ec2 = boto3.client("ec2", region_name=REGION)
    for _ in range(5):
        with pytest.raises(ClientError) as error:
            ec2.stop_instances(InstanceIds=[instance_id])
        assert error_code(error.value) == "UnauthorizedOperation"
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "running"


def test_fault_touches_only_its_operation(activate: Activate, instance_id: str) -> None:
    activate(Boundary(faults=[Fault("ec2", "StopInstances", "UnauthorizedOperation", None)]))
    ec2 = boto3.client("ec2", region_name=REGION)
    described = ec2.describe_instances(InstanceIds=[instance_id])
    assert described["Reservations"][0]["Instances"][0]["InstanceId"] == instance_id


def test_modeled_error_code_raises_the_modeled_exception(activate: Activate) -> None:
    activate(Boundary(faults=[Fault("ssm", "GetParameter", "ParameterNotFound", 1)]))
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/opsflow/boundary", Value="off", Type="String")
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name="/opsflow/boundary")
    assert ssm.get_parameter(Name="/opsflow/boundary")["Parameter"]["Value"] == "off"


def test_hang_fault_lets_the_call_through_and_records_it(
    activate: Activate, instance_id: str
) -> None:
    active = activate(Boundary(faults=[Fault("ec2", "StopInstances", "Hang", None)]))
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.stop_instances(InstanceIds=[instance_id])
    assert active.hangs == {("ec2", "StopInstances")}


def test_deactivate_removes_the_faults(aws: None, instance_id: str) -> None:
    boundary.activate(
        Boundary(faults=[Fault("ec2", "StopInstances", "UnauthorizedOperation", None)])
    )
    boundary.deactivate()
    ec2 = boto3.client("ec2", region_name=REGION)
    assert ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]


def test_fault_fires_counts_each_matching_call() -> None:
    fault = Fault("ec2", "StopInstances", "Throttling", 1)
    assert [fault.fires() for _ in range(3)] == [True, False, False]


# ------------------------------------------------------------------------- Lambda
class InstanceNotFound(Exception):
    pass


def _echo(payload: Any) -> Any:
    return {"echo": payload}


def _missing(payload: Any) -> Any:
    raise InstanceNotFound(f"no instance {payload['instanceId']}")


def invoke(function: str, payload: Any) -> dict[str, Any]:
    client = boto3.client("lambda", region_name=REGION)
    response = client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    response["Payload"] = json.loads(response["Payload"].read())
    return dict(response)


@pytest.mark.parametrize(
    "function",
    [
        "opsflow-Echo",
        "arn:aws:lambda:us-east-1:123456789012:function:opsflow-Echo",
        "arn:aws:lambda:us-east-1:123456789012:function:opsflow-Echo:$LATEST",
    ],
)
def test_lambda_invoke_runs_the_registered_handler(activate: Activate, function: str) -> None:
    activate(Boundary(lambdas={"opsflow-Echo": _echo}))
    response = invoke(function, {"instanceId": "i-1", "n": [1, 2]})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["Payload"] == {"echo": {"instanceId": "i-1", "n": [1, 2]}}


def test_lambda_handler_exception_is_an_unhandled_function_error(activate: Activate) -> None:
    activate(Boundary(lambdas={"opsflow-Inspect": _missing}))
    response = invoke("opsflow-Inspect", {"instanceId": "i-0123"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "InstanceNotFound"
    assert response["Payload"]["errorMessage"] == "no instance i-0123"
    assert isinstance(response["Payload"]["stackTrace"], list)


def test_lambda_invoke_of_unknown_function_is_resource_not_found(activate: Activate) -> None:
    activate(Boundary(lambdas={"opsflow-Echo": _echo}))
    client = boto3.client("lambda", region_name=REGION)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as error:
        client.invoke(FunctionName="opsflow-Nope", Payload=b"{}")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "opsflow-Nope" in error.value.response["Error"]["Message"]


def test_lambda_fault_applies_before_the_handler(activate: Activate) -> None:
    calls: list[Any] = []

    def handler(payload: Any) -> str:
        calls.append(payload)
        return "ok"

    activate(
        Boundary(
            faults=[Fault("lambda", "Invoke", "TooManyRequestsException", 1)],
            lambdas={"opsflow-Echo": handler},
        )
    )
    client = boto3.client("lambda", region_name=REGION, config=NO_RETRIES)
    with pytest.raises(client.exceptions.TooManyRequestsException):
        client.invoke(FunctionName="opsflow-Echo", Payload=b"{}")
    assert calls == []
    assert invoke("opsflow-Echo", {})["Payload"] == "ok"
    assert calls == [{}]


# ------------------------------------------------------------------------- SNS
def test_sns_publish_with_json_structure_is_recorded(activate: Activate) -> None:
    active = activate(Boundary())
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="opsflow-alerts")["TopicArn"]
    message = {"default": "short default", "email": "the long e-mail body", "sms": "SMS text"}
    sns.publish(
        TopicArn=topic,
        Subject="Quarantined",
        Message=json.dumps(message),
        MessageStructure="json",
    )
    assert active.notifications == [
        Notification(
            target=topic, subject="Quarantined", message="the long e-mail body", sms="SMS text"
        )
    ]


def test_sns_publish_structure_falls_back_to_default(activate: Activate) -> None:
    active = activate(Boundary())
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="opsflow-default")["TopicArn"]
    sns.publish(TopicArn=topic, Message=json.dumps({"default": "only"}), MessageStructure="json")
    assert active.notifications == [
        Notification(target=topic, subject="", message="only", sms="only")
    ]


def test_plain_sns_publish_is_recorded_as_is(activate: Activate) -> None:
    active = activate(Boundary())
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="opsflow-plain")["TopicArn"]
    sns.publish(TopicArn=topic, Subject="S", Message="plain text")
    assert active.notifications == [
        Notification(target=topic, subject="S", message="plain text", sms="plain text")
    ]


def test_failed_publish_is_not_recorded(activate: Activate) -> None:
    active = activate(Boundary(faults=[Fault("sns", "Publish", "InternalError", 1)]))
    sns = boto3.client("sns", region_name=REGION, config=NO_RETRIES)
    topic = sns.create_topic(Name="opsflow-faulty")["TopicArn"]
    with pytest.raises(ClientError):
        sns.publish(TopicArn=topic, Message="lost")
    assert active.notifications == []


def test_a_fault_comes_before_the_worlds_own_answer(activate: Activate) -> None:
    """An override (Route 53's change propagation answers GetChange) never hides a fault."""
    boundary = Boundary(faults=[Fault("route53", "GetChange", "AccessDenied", None)])
    boundary.overrides[("route53", "GetChange")] = lambda params, region: {
        "ChangeInfo": {"Id": "/change/C1", "Status": "INSYNC", "SubmittedAt": "2026-03-14T00:00:00Z"},
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    activate(boundary)
    route53 = boto3.client("route53", region_name=REGION, config=NO_RETRIES)
    with pytest.raises(ClientError) as error:
        route53.get_change(Id="C1")
    assert error_code(error.value) == "AccessDenied"
