"""One test per AWS limit of ``opsflow.engine.limits``, named for what AWS does, run on moto with
its interpreter switched on; then the template's time budgets (``opsflow validate``) and the
engine's CloudFormation parameter constraints, and a rehearsal that meets the execution timeout.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from opsflow import template as cfn
from opsflow import validate
from opsflow.engine import boundary as api
from opsflow.engine import cures, limits

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/opsflow-test"
MOCK_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
POLL_LIMIT_SECONDS = 30.0
TIMEOUT = 3600


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    cures.install()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        with mock_aws(config=MOCK_CONFIG):
            yield


class Run:
    def __init__(self, description: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.status: str = description["status"]
        self.error: str | None = description.get("error")
        self.cause: str | None = description.get("cause")
        self.events = events

    @property
    def entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events
                if "stateEnteredEventDetails" in e]

    @property
    def virtual_seconds(self) -> float:
        first, last = (datetime.fromisoformat(self.events[i]["timestamp"]) for i in (0, -1))
        return (last - first).total_seconds()


def expire_waiting_tasks() -> None:
    """What the engine does when nobody answers a task token: let its wait elapse."""
    deadline = time.monotonic() + 5
    while not cures.expire_task_timeouts() and time.monotonic() < deadline:
        time.sleep(0.01)


def run(definition: dict[str, Any], execution_input: Any = None, expire: bool = False) -> Run:
    """Run ``definition`` once on a reset clock; the events are the history as recorded."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"limit-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    events: list[dict[str, Any]] = []
    cures.CLOCK.reset()
    cures.HISTORY_LISTENERS.append(events.append)
    try:
        if expire:
            threading.Thread(target=expire_waiting_tasks, daemon=True).start()
        arn = sfn.start_execution(
            stateMachineArn=machine,
            name=f"run-{uuid.uuid4().hex[:12]}",
            input=json.dumps(execution_input if execution_input is not None else {}),
        )["executionArn"]
        deadline = time.monotonic() + POLL_LIMIT_SECONDS
        while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                sfn.stop_execution(executionArn=arn, error="test.Timeout")
                pytest.fail(f"still RUNNING after {POLL_LIMIT_SECONDS:.0f} s of real time")
            time.sleep(0.01)
    finally:
        cures.HISTORY_LISTENERS.remove(events.append)
    return Run(description, events)


def missing_parameter_task(**extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:ssm:getParameter",
        "Parameters": {"Name": "/opsflow/test/missing"},
        **extra,
    }


def topic() -> str:
    sns = boto3.client("sns", region_name=REGION)
    return str(sns.create_topic(Name=f"limits-{uuid.uuid4().hex[:8]}")["TopicArn"])


# ------------------------------------------------------------------------- execution timeout
CAUGHT = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
AFTER = {"After": {"Type": "Pass", "End": True}, "Caught": {"Type": "Pass", "End": True}}
TOKEN_TASK = {"Type": "Task", "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
              "Parameters": {"Message.$": "$$.Task.Token"}, "TimeoutSeconds": 7200,
              "Catch": CAUGHT, "Next": "After"}
MAP_OF_WAITS = {"Type": "Map", "ItemsPath": "$.items", "Catch": CAUGHT, "Next": "After",
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Hold",
                                  "States": {"Hold": {"Type": "Wait", "Seconds": 7200,
                                                      "End": True}}}}


@pytest.mark.parametrize(
    ("first", "status"),
    [
        pytest.param({"Type": "Wait", "Seconds": 7200, "Next": "After"}, "TIMED_OUT", id="wait"),
        pytest.param({"Type": "Wait", "Seconds": 3599, "Next": "After"}, "SUCCEEDED",
                     id="wait-within-the-timeout"),
        pytest.param(missing_parameter_task(
            Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3000, "MaxAttempts": 3,
                    "BackoffRate": 2}], Catch=CAUGHT, Next="After"), "TIMED_OUT",
            id="retry-backoff"),
        pytest.param(TOKEN_TASK, "TIMED_OUT", id="task-waiting-for-a-token"),
        pytest.param(MAP_OF_WAITS, "TIMED_OUT", id="wait-in-a-map-iteration"),
    ],
)
def test_an_execution_times_out_at_its_timeout_seconds_on_the_virtual_clock(
    aws: None, first: dict[str, Any], status: str
) -> None:
    """AWS stops the execution at TimeoutSeconds: TIMED_OUT, an ExecutionTimedOut event
    (States.Timeout) and nothing after it, whatever the state was waiting for."""
    first = copy.deepcopy(first)
    if first is not None and "Message.$" in first.get("Parameters", {}):
        first["Parameters"]["TopicArn"] = topic()
    definition = {"TimeoutSeconds": TIMEOUT, "StartAt": "First", "States": {"First": first, **AFTER}}
    result = run(definition, {"items": [1]}, expire=first["Type"] == "Task")

    assert result.status == status
    if status == "SUCCEEDED":
        return
    last = result.events[-1]
    assert last["type"] == "ExecutionTimedOut"
    assert last["executionTimedOutEventDetails"]["error"] == "States.Timeout"
    kinds = [e["type"] for e in result.events]
    assert kinds.count("ExecutionTimedOut") == 1
    assert not {"TaskTimedOut", "ExecutionFailed", "ExecutionSucceeded"} & set(kinds)
    assert "Caught" not in result.entered and "After" not in result.entered
    assert result.virtual_seconds == TIMEOUT
    assert cures.CLOCK.elapsed() == TIMEOUT


# ------------------------------------------------------------------------- uncatchable errors
def big_item_table() -> str:
    """A table holding one item whose GetItem result is over 256 KiB (under DynamoDB's 400 KB)."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    name = f"limits-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=name, Item={"pk": {"S": "big"}, "blob": {"S": "x" * 300_000}})
    return name


def get_big_item(table: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
            "Parameters": {"TableName": table, "Key": {"pk": {"S": "big"}}}, **extra}


@pytest.mark.parametrize(
    ("error", "handles", "status", "attempts"),
    [
        ("States.Runtime", ["States.ALL"], "FAILED", 1),
        ("States.Runtime", ["States.Runtime"], "FAILED", 1),
        ("States.DataLimitExceeded", ["States.ALL"], "FAILED", 1),
        ("States.DataLimitExceeded", ["States.DataLimitExceeded"], "SUCCEEDED", 3),
    ],
)
def test_states_all_catches_neither_data_limit_exceeded_nor_runtime(
    aws: None, error: str, handles: list[str], status: str, attempts: int
) -> None:
    """AWS: States.ALL "can't catch the States.DataLimitExceeded terminal error type and runtime
    error types", and States.Runtime "isn't retriable, and will always cause the execution to
    fail". Naming States.DataLimitExceeded itself retries and catches it."""
    handling = {
        "Retry": [{"ErrorEquals": handles, "IntervalSeconds": 1, "MaxAttempts": 2}],
        "Catch": [{"ErrorEquals": handles, "Next": "Caught"}],
        "End": True,
    }
    if error == "States.Runtime":  # a Parameters path that is not in the input
        task = missing_parameter_task(**handling)
        task["Parameters"] = {"Name.$": "$.missing"}
    else:
        task = get_big_item(big_item_table(), **handling)
    result = run({"StartAt": "Task",
                  "States": {"Task": task, "Caught": {"Type": "Pass", "End": True}}})

    assert result.status == status
    failed = [e for e in result.events if e["type"] == "TaskFailed"]
    assert len(failed) == attempts
    assert {e["taskFailedEventDetails"]["error"] for e in failed} == {error}
    if status == "FAILED":
        assert result.error == error
        assert "Caught" not in result.entered
    else:
        assert "Caught" in result.entered


# ------------------------------------------------------------------------- 256 KiB payloads
def doubled() -> dict[str, Any]:
    """A Pass state whose output is ``{"a": s, "bb": s}``: 2 x len(s) + 16 bytes."""
    return {"StartAt": "Double", "States": {"Double": {
        "Type": "Pass", "Parameters": {"a.$": "$.s", "bb.$": "$.s"}, "End": True}}}


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("state output of exactly 262,144 bytes", "SUCCEEDED"),
        ("state output of 262,145 bytes", "FAILED"),
        ("state output over 262,144 bytes of UTF-8 in fewer characters", "FAILED"),
        ("task input after Parameters over 262,144 bytes", "FAILED"),
        ("task result over 262,144 bytes", "FAILED"),
    ],
)
def test_payloads_over_256_kib_fail_with_data_limit_exceeded(
    aws: None, case: str, status: str
) -> None:
    """AWS: at most 256 KiB of data as a UTF-8 encoded string for a state's output, a
    connector's (task's) output and a state's input after Parameters; else
    States.DataLimitExceeded."""
    if case.startswith("state output of exactly"):
        definition, given = doubled(), {"s": "x" * 131_064}
    elif case.startswith("state output of 262,145"):
        definition, given = doubled(), {"s": "x" * 131_064 + "y"}
    elif case.startswith("state output over"):
        definition, given = doubled(), {"s": "\u00e9" * 65_533}  # 2 bytes each
    elif case.startswith("task input"):
        task = missing_parameter_task(End=True)
        task["Parameters"] = {"Name.$": "$.s", "Description.$": "$.s"}
        definition, given = {"StartAt": "Task", "States": {"Task": task}}, {"s": "x" * 140_000}
    else:
        definition, given = {"StartAt": "Task", "States": {
            "Task": get_big_item(big_item_table(), End=True)}}, {}
    result = run(definition, given)

    assert result.status == status, result.cause
    if status == "FAILED":
        assert result.error == "States.DataLimitExceeded"
    if case.startswith("task input"):  # refused before calling: never a Parameter Store error
        assert "TaskScheduled" not in [e["type"] for e in result.events]


# ------------------------------------------------------------------------- 25,000 events
def loop(times: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``times`` rounds of a Pass and a Choice (4 events each): 4 x times + 4 events in all."""
    return {"StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"},
                  "Next": "Again?"},
        "Again?": {"Type": "Choice", "Default": "Done", "Choices": [
            {"Variable": "$.i", "NumericLessThan": times, "Next": "Count"}]},
        "Done": {"Type": "Succeed"},
    }}, {"i": 0}


@pytest.mark.parametrize(("times", "status"), [(6249, "SUCCEEDED"), (6250, "FAILED")])
def test_an_execution_ends_at_25000_history_events(aws: None, times: int, status: str) -> None:
    """AWS: "When an execution reaches 24,999 events, it waits for the next event to happen. If
    the event number 25,000 is ExecutionSucceeded, the execution finishes successfully. If [it]
    isn't ExecutionSucceeded, the ExecutionFailed event is logged and the state machine
    execution fails" (States.Runtime: "The execution reached the maximum number of history
    events (25000).")."""
    result = run(*loop(times))

    assert result.status == status
    assert len(result.events) == limits.HISTORY_LIMIT
    last = result.events[-1]
    assert last["id"] == limits.HISTORY_LIMIT
    if status == "SUCCEEDED":
        assert last["type"] == "ExecutionSucceeded"
    else:
        assert last["type"] == "ExecutionFailed"
        assert last["executionFailedEventDetails"] == {
            "error": "States.Runtime",
            "cause": "The execution reached the maximum number of history events (25000).",
        }
        assert (result.error, result.cause) == ("States.Runtime", limits.HISTORY_LIMIT_CAUSE)


# ------------------------------------------------------------------------- API value limits
@pytest.fixture
def checked(aws: None) -> Iterator[api.Boundary]:
    """Every call goes through a boundary with the value limits, on a reset virtual clock."""
    cures.CLOCK.reset()
    boundary = api.Boundary()
    limits.register(boundary, cures.CLOCK)
    api.activate(boundary)
    try:
        yield boundary
    finally:
        api.deactivate()


def test_a_limit_refuses_a_call_as_the_service_does(checked: api.Boundary) -> None:
    """An AwsError a before_call hook raises reaches the caller as the service's own
    ClientError (modelled class, code, message, HTTP status), and the service never sees it."""
    from opsflow.engine.errors import AwsError

    def refuse(service: str, operation: str, params: dict[str, Any]) -> None:
        if (service, operation) == ("sns", "CreateTopic"):
            raise AwsError("InvalidParameter", "Invalid parameter: Name", 400)

    checked.before_call.append(refuse)
    sns = boto3.client("sns", region_name=REGION)
    with pytest.raises(sns.exceptions.InvalidParameterException) as raised:
        sns.create_topic(Name="refused-by-a-hook")
    assert raised.value.response["Error"] == {"Code": "InvalidParameter",
                                              "Message": "Invalid parameter: Name"}
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    checked.before_call.remove(refuse)
    assert not [t for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":refused-by-a-hook")]


def refusal(call: Any, **params: Any) -> tuple[str, str, int] | None:
    try:
        call(**params)
    except ClientError as error:
        return (error.response["Error"]["Code"], error.response["Error"]["Message"],
                error.response["ResponseMetadata"]["HTTPStatusCode"])
    return None


@pytest.mark.parametrize(
    ("offset", "refused"),
    [
        (-timedelta(weeks=2), None),
        (-timedelta(weeks=2, seconds=1), "must specify a time within the past two weeks."),
        (timedelta(hours=2), None),
        (timedelta(hours=2, seconds=1), "must specify a time no more than two hours in the future."),
    ],
)
def test_put_metric_data_takes_two_weeks_back_to_two_hours_ahead(
    checked: api.Boundary, offset: timedelta, refused: str | None
) -> None:
    """CloudWatch: a data point's time stamp "can be up to two weeks in the past and up to two
    hours into the future" (of the virtual clock, here); else InvalidParameterValue."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    answer = refusal(cloudwatch.put_metric_data, Namespace="opsflow/Test", MetricData=[
        {"MetricName": "Fine", "Value": 1.0, "Timestamp": cures.CLOCK.now()},
        {"MetricName": "Tested", "Value": 1.0, "Timestamp": cures.CLOCK.now() + offset},
    ])
    if refused is None:
        assert answer is None
    else:
        assert answer == ("InvalidParameterValue",
                          f"The parameter MetricData.member.2.Timestamp {refused}", 400)


@pytest.mark.parametrize(
    ("subject", "message", "refused"),
    [
        ("x" * 100, "hello", None),
        ("Quarantined i-0123: stopped, isolated (3/3) - see #ops!", "hello", None),
        ("x" * 101, "hello", "Invalid parameter: Subject"),
        ("R\u00e9serv\u00e9: not ASCII", "hello", "Invalid parameter: Subject"),
        ("two\nlines", "hello", "Invalid parameter: Subject"),
        ("a\ttab", "hello", "Invalid parameter: Subject"),
        (" leading space", "hello", "Invalid parameter: Subject"),
        ("", "hello", "Invalid parameter: Subject"),
        ("ok", "", "Invalid parameter: Empty message"),
        ("ok", "x" * 262_144, None),
        ("ok", "x" * 262_145, "Invalid parameter: Message too long"),
        ("ok", "\u00e9" * 131_073, "Invalid parameter: Message too long"),
    ],
)
def test_sns_publish_refuses_bad_subjects_and_messages_over_256_kb(
    checked: api.Boundary, subject: str, message: str, refused: str | None
) -> None:
    """SNS: a subject of printable ASCII, beginning with a letter, number or punctuation mark,
    with no line breaks or control characters, at most 100 characters; a message "at most
    256 KB in size (262,144 bytes, not 262,144 characters)"; else InvalidParameter."""
    sns = boto3.client("sns", region_name=REGION)
    answer = refusal(sns.publish, TopicArn=topic(), Subject=subject, Message=message)
    assert answer == (None if refused is None else ("InvalidParameter", refused, 400))
    assert len(checked.notifications) == (1 if refused is None else 0)


@pytest.mark.parametrize(
    ("tier", "length", "refused"),
    [
        (None, 4096, None),
        (None, 4097, "Standard tier parameters support a maximum parameter value of 4096 "
                     "characters."),
        ("Standard", 4097, "Standard tier parameters support a maximum parameter value of 4096 "
                           "characters."),
        ("Advanced", 8192, None),
        ("Advanced", 8193, "Advanced tier parameters support a maximum parameter value of 8192 "
                           "characters."),
    ],
)
def test_ssm_put_parameter_refuses_a_value_its_tier_cannot_hold(
    checked: api.Boundary, tier: str | None, length: int, refused: str | None
) -> None:
    """Parameter Store: a standard parameter holds 4 KB (4,096 characters), an advanced one
    8 KB; else ValidationException."""
    ssm = boto3.client("ssm", region_name=REGION)
    extra = {"Tier": tier} if tier else {}
    answer = refusal(ssm.put_parameter, Name=f"/opsflow/test/{uuid.uuid4().hex[:8]}",
                     Value="x" * length, Type="String", **extra)
    if refused is None:
        assert answer is None
    else:
        assert answer is not None and answer[0] == "ValidationException" and answer[2] == 400
        assert answer[1].startswith(refused)


@pytest.mark.parametrize(
    ("item", "refused"),
    [
        # 2 + 1 ("pk": "k") + 1 + 409,596 ("v": ...) = 409,600 bytes
        ({"v": {"S": "x" * 409_596}}, False),
        ({"v": {"S": "x" * 409_597}}, True),
        # a map costs 3 bytes, and 1 byte and its key per element: 3 + 1 + (3 + 1 + 1 + N)
        ({"m": {"M": {"a": {"S": "x" * 409_591}}}}, False),
        ({"m": {"M": {"a": {"S": "x" * 409_592}}}}, True),
        # a number: 1 byte per two significant digits, plus 1 ("123456": 4): 3 + 1 + N + 1 + 4
        ({"v": {"S": "x" * 409_591}, "n": {"N": "123456"}}, False),
        ({"v": {"S": "x" * 409_592}, "n": {"N": "123456"}}, True),
    ],
)
def test_dynamodb_refuses_items_over_400_kb(
    checked: api.Boundary, item: dict[str, Any], refused: bool
) -> None:
    """DynamoDB: "The maximum item size in DynamoDB is 400 KB, which includes both attribute
    name binary length (UTF-8 length) and attribute value lengths"; else ValidationException."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    name = f"limits-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    answer = refusal(ddb.put_item, TableName=name, Item={"pk": {"S": "k"}, **item})
    assert answer == (("ValidationException", "Item size has exceeded the maximum allowed size",
                       400) if refused else None)


# ------------------------------------------------------------------------- time budgets
def template_copy(tmp_path: Path, **bounds: dict[str, Any]) -> Path:
    """A copy of template.yaml with some parameters' fields changed (None removes one)."""
    template = cfn.load()
    for name, fields in bounds.items():
        for key, value in fields.items():
            if value is None:
                template["Parameters"][name].pop(key, None)
            else:
                template["Parameters"][name][key] = value
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    return path


def test_validate_finds_every_machine_within_its_timeout() -> None:
    checks = validate.check_budgets()
    assert {c.name for c in checks} == {
        "time budget HealthAbuseStateMachine",
        "time budget RegionFailoverStateMachine",
        "time budget EbsQuotaForecastStateMachine",
    }
    assert all(c.ok for c in checks), [c.detail for c in checks if not c.ok]


@pytest.mark.parametrize(
    ("bounds", "machine", "says"),
    [
        ({"VerifyPollSeconds": {"MaxValue": 3600}, "VerifyMaxPolls": {"MaxValue": 200}},
         "HealthAbuseStateMachine", "worst case 720000 s of waiting"),
        ({"ApprovalTimeoutSeconds": {"MaxValue": 3000}}, "RegionFailoverStateMachine",
         "ApprovalTimeoutSeconds=3000"),
        ({"FailoverMaxPolls": {"MaxValue": None}}, "RegionFailoverStateMachine",
         "no MaxValue for FailoverMaxPolls"),
    ],
)
def test_validate_refuses_parameter_bounds_that_outlast_the_execution_timeout(
    tmp_path: Path, bounds: dict[str, dict[str, Any]], machine: str, says: str
) -> None:
    checks = {c.name: c for c in validate.check_budgets(template_copy(tmp_path, **bounds))}
    check = checks[f"time budget {machine}"]
    assert not check.ok
    assert says in check.detail
    assert all(c.ok for name, c in checks.items() if name != check.name)


def test_validate_takes_each_samconfig_environment_as_it_deploys(tmp_path: Path) -> None:
    """An environment's overrides fix those parameters: a small enough value passes."""
    template = template_copy(tmp_path, ApprovalTimeoutSeconds={"MaxValue": 3000})
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text('[prod.deploy.parameters]\nparameter_overrides = '
                         '"RequireApproval=true ApprovalTimeoutSeconds=600"\n', encoding="utf-8")
    checks = {c.name: c for c in validate.check_budgets(template, samconfig)}
    assert checks["time budget RegionFailoverStateMachine"].ok
    samconfig.write_text('[prod.deploy.parameters]\nparameter_overrides = '
                         '"RequireApproval=true"\n', encoding="utf-8")
    checks = {c.name: c for c in validate.check_budgets(template, samconfig)}
    assert not checks["time budget RegionFailoverStateMachine"].ok
    assert "[prod]" in checks["time budget RegionFailoverStateMachine"].detail


# ------------------------------------------------------------------------- stack parameters
@pytest.mark.parametrize(
    ("name", "value", "refused"),
    [
        ("MaxInstances", "5000", "Parameter 'MaxInstances' must be a number not greater than 1000"),
        ("MaxInstances", "0", "Parameter 'MaxInstances' must be a number not less than 1"),
        ("MaxInstances", "many", "Parameter 'MaxInstances' must be a number"),
        ("DryRun", "maybe", "Parameter 'DryRun' must be one of AllowedValues"),
        ("AlertPhoneNumber", "555-0100",
         "Parameter 'AlertPhoneNumber' must match pattern ^(\\+[1-9][0-9]{6,14})?$"),
        ("MaxInstances", "1000", None),
    ],
)
def test_the_engine_refuses_parameter_values_as_cloudformation_does(
    name: str, value: str, refused: str | None
) -> None:
    from opsflow.engine.runner import EngineError, LocalEngine

    engine = LocalEngine(parameters={name: value})
    if refused is None:
        assert engine.parameters()[name] == value
    else:
        with pytest.raises(EngineError) as raised:
            engine.parameters()
        assert str(raised.value) == refused


# ------------------------------------------------------------------------- a rehearsal
def test_a_rehearsed_approval_wait_longer_than_the_execution_ends_timed_out() -> None:
    """region-failover with a 7,200 s approval wait (a bound the template forbids, allowed in a
    copy of it) under the machine's TimeoutSeconds of 3,600: nobody answers, and the execution
    ends exactly as AWS ends it, TIMED_OUT at 3,600 s, with traffic unmoved."""
    from opsflow.engine.runner import LocalEngine
    from tests.conftest import load_event

    engine = LocalEngine(
        parameters={"RequireApproval": "true", "ApprovalTimeoutSeconds": "7200"},
        scenarios=["region-failover"],
    )
    engine.template = copy.deepcopy(engine.template)
    engine.template["Parameters"]["ApprovalTimeoutSeconds"]["MaxValue"] = 86400
    with engine:
        execution = engine.run("region-failover", load_event("region-failover/alarm-primary.json"))

        assert execution.status == "TIMED_OUT", execution.cause
        assert execution.history[-1]["type"] == "ExecutionTimedOut"
        assert execution.history[-1]["executionTimedOutEventDetails"]["error"] == "States.Timeout"
        assert "Act: Wait for approval" in execution.states
        assert "Act: Not approved" not in execution.states
        assert execution.virtual_seconds == pytest.approx(TIMEOUT, abs=1)
        assert not [e for e in execution.effects if e["field"] == "weight"]
