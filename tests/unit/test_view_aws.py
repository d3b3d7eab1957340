"""opsflow view/history --aws: a real execution read through DescribeExecution,
DescribeStateMachineForExecution and every page of GetExecutionHistory (botocore's Stubber:
requests and answers are checked against the service model; nothing reaches AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from opsflow import cli, view

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:opsflow-Demo"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-Demo:run-1"
T0 = datetime(2026, 3, 14, 3, 12, tzinfo=UTC)
DEFINITION = {
    "StartAt": "Detect: Read switch",
    "States": {
        "Detect: Read switch": {
            "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ssm:getParameter",
            "Parameters": {"Name": "/switch"}, "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "Notify: Tell",
        },
        "Notify: Tell": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish",
                         "Parameters": {"TopicArn": "t", "Message": "m"}, "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "Runbook.Escalated"},
    },
}


def _event(number: int, kind: str, previous: int, **details: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"timestamp": T0 + timedelta(seconds=number), "type": kind,
                             "id": number, "previousEventId": previous}
    event.update(details)
    return event


EVENTS = [
    _event(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}", "roleArn": "r"}),
    _event(2, "TaskStateEntered", 1, stateEnteredEventDetails={"name": "Detect: Read switch", "input": "{}"}),
    _event(3, "TaskScheduled", 2, taskScheduledEventDetails={
        "resourceType": "aws-sdk:ssm", "resource": "getParameter", "region": "eu-west-1",
        "parameters": '{"Name": "/switch"}'}),
    _event(4, "TaskFailed", 3, taskFailedEventDetails={
        "resourceType": "aws-sdk:ssm", "resource": "getParameter", "error": "Ssm.ThrottlingException",
        "cause": "Rate exceeded"}),
    _event(5, "TaskScheduled", 4, taskScheduledEventDetails={
        "resourceType": "aws-sdk:ssm", "resource": "getParameter", "region": "eu-west-1",
        "parameters": '{"Name": "/switch"}'}),
    _event(6, "TaskSucceeded", 5, taskSucceededEventDetails={
        "resourceType": "aws-sdk:ssm", "resource": "getParameter", "output": "{}"}),
    _event(7, "TaskStateExited", 6, stateExitedEventDetails={"name": "Detect: Read switch", "output": "{}"}),
    _event(8, "TaskStateEntered", 7, stateEnteredEventDetails={"name": "Notify: Tell", "input": "{}"}),
    _event(9, "TaskScheduled", 8, taskScheduledEventDetails={
        "resourceType": "sns", "resource": "publish", "region": "eu-west-1",
        "parameters": '{"TopicArn": "arn:aws:sns:eu-west-1:123456789012:t", "Subject": "s", "Message": "hello"}'}),
    _event(10, "TaskSucceeded", 9, taskSucceededEventDetails={
        "resourceType": "sns", "resource": "publish", "output": "{}"}),
    _event(11, "TaskStateExited", 10, stateExitedEventDetails={"name": "Notify: Tell", "output": "{}"}),
    _event(12, "SucceedStateEntered", 11, stateEnteredEventDetails={"name": "Done", "input": "{}"}),
    _event(13, "SucceedStateExited", 12, stateExitedEventDetails={"name": "Done", "output": "{}"}),
    _event(14, "ExecutionSucceeded", 13, executionSucceededEventDetails={
        "output": '{"outcome": "mitigated", "summary": "all done"}'}),
]


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stubber]:
    client = boto3.client("stepfunctions", region_name="eu-west-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    regions: list[str] = []

    def make(service: str, region_name: str | None = None, **kwargs: Any) -> Any:
        regions.append(str(region_name))
        return client

    monkeypatch.setattr(boto3, "client", make)
    monkeypatch.setattr(cli, "VIEWS", tmp_path)
    with Stubber(client) as stub:
        stub.add_response("describe_execution", {
            "executionArn": EXECUTION, "stateMachineArn": MACHINE, "name": "run-1",
            "status": "SUCCEEDED", "startDate": T0, "stopDate": T0 + timedelta(seconds=14),
            "input": "{}", "output": '{"outcome": "mitigated", "summary": "all done"}',
        }, {"executionArn": EXECUTION})
        stub.add_response("describe_state_machine_for_execution", {
            "stateMachineArn": MACHINE, "name": "opsflow-Demo", "definition": json.dumps(DEFINITION),
            "roleArn": "arn:aws:iam::123456789012:role/r", "updateDate": T0,
        }, {"executionArn": EXECUTION})
        stub.add_response("get_execution_history", {"events": EVENTS[:7], "nextToken": "page-2"},
                          {"executionArn": EXECUTION, "includeExecutionData": True})
        stub.add_response("get_execution_history", {"events": EVENTS[7:]},
                          {"executionArn": EXECUTION, "includeExecutionData": True,
                           "nextToken": "page-2"})
        yield stub
        stub.assert_no_pending_responses()
    assert regions == ["eu-west-1"]  # the ARN's region


def test_view_aws_draws_the_real_execution(stubbed: Stubber, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["view", "--aws", EXECUTION]) == 0
    page = (tmp_path / "run-1.html").read_text(encoding="utf-8")
    assert "MITIGATED: all done" in page
    assert "not in a real execution's history" in page  # Lambda's own calls: says so
    assert "AWS calls (2 by the state machine)" in page  # the getParameter attempt and its retry
    assert "aws-sdk:ssm:getParameter" in page
    assert f"wrote {tmp_path / 'run-1.html'}" in capsys.readouterr().out
    model = json.loads(page.split('<script type="application/json" id="model">', 1)[1]
                       .split("</script>", 1)[0])
    drawn = {n["id"]: n for n in model["nodes"]}
    assert drawn["Detect: Read switch"]["status"] == "retried"
    assert drawn["Detect: Read switch"]["retries"] == 1
    assert drawn["Notify: Tell"]["status"] == "succeeded"
    assert drawn["Failed"]["status"] == "notrun"


def test_history_aws_joins_every_page(stubbed: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["history", "--aws", EXECUTION, "--format", "aws"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in exported["events"]] == list(range(1, 15))
    assert exported["events"][0]["timestamp"] == "2026-03-14T03:12:01+00:00"
    assert "nextToken" not in exported


def test_notifications_of_a_real_execution_come_from_its_publish_tasks() -> None:
    assert view._published(EVENTS) == [{
        "target": "arn:aws:sns:eu-west-1:123456789012:t", "subject": "s", "message": "hello",
        "sms": "hello",
    }]


def test_view_aws_unknown_execution_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = boto3.client("stepfunctions", region_name="eu-west-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr(boto3, "client", lambda *a, **k: client)
    with Stubber(client) as stub:
        stub.add_client_error("describe_execution", service_error_code="ExecutionDoesNotExist",
                              service_message="Execution Does Not Exist", http_status_code=400)
        assert cli.main(["view", "--aws", EXECUTION]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ExecutionDoesNotExist" in err


def test_view_bad_arn_and_unknown_run_are_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli, "RUNS", tmp_path)
    assert cli.main(["view", "--aws", "arn:aws:states:x"]) == 2
    assert cli.main(["view", "nope"]) == 2
    assert cli.main(["history", "../etc"]) == 2
    (tmp_path / "old.json").write_text(json.dumps({"run_id": "old", "report": {}}), encoding="utf-8")
    assert cli.main(["view", "old"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and "opsflow rerun old" in lines[-1]
