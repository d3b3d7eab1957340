"""No silent failure on AWS: a run that ends outside its own error handling (here stopped by
hand mid-act; likewise an uncatchable error or the execution timeout) still reaches a person,
through the stack's RunbookDiedRule on Step Functions' own status-change event, which invokes
RunbookDiedFunction: the whole cause by e-mail, one line by SMS."""

from __future__ import annotations

import json
from typing import Any

import boto3

from opsflow import rehearsals
from opsflow.engine.runner import ALERT_ATTEMPTS
from tests.conftest import load_event

SCENARIO = "health-abuse"


def stopper(engine: Any) -> Any:
    """Stop the run as an operator would, once it has acted and before it verifies."""
    return rehearsals.stopper(engine, SCENARIO, "Verify: Start checks")


def alerts(execution: Any) -> list[dict[str, Any]]:
    return [n for n in execution.notifications if "outside its runbook" in n["message"]]


def test_a_stopped_run_is_reported_by_eventbridge(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"),
                           on_event=stopper(engine))

    assert execution.status == "ABORTED"
    found = alerts(execution)
    assert len(found) == 1
    assert execution.name in found[0]["message"] and "ABORTED" in found[0]["message"]
    assert "console.aws.amazon.com/states" in found[0]["message"]
    assert len(found[0]["sms"]) <= 140 and "outside its runbook" in found[0]["sms"]
    assert execution.undelivered == []


def test_an_alert_eventbridge_may_not_deliver_is_dead_lettered_and_alarmed(
    engine: Any,
) -> None:
    # As if RunbookDiedPermission were deleted from template.yaml.
    engine.function_policies.clear()

    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"),
                           on_event=stopper(engine))

    assert execution.status == "ABORTED"
    assert alerts(execution) == []
    (why,) = execution.undelivered
    assert "cannot invoke" in why and "dead-letter queue" in why
    sqs = boto3.client("sqs", region_name="us-east-1")
    (url,) = sqs.list_queues()["QueueUrls"]
    messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert messages[0]["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
    assert execution.name in messages[0]["Body"]
    assert [n for n in execution.notifications if n["subject"].startswith("ALARM:")]


def test_an_alert_that_cannot_publish_is_retried_then_reported_undelivered(
    engine: Any,
) -> None:
    role = engine.functions["RunbookDiedFunction"].role
    principal = next(p for p in engine.principals.values() if p.arn == role)
    principal.policies = [(name, doc) for name, doc in principal.policies
                          if "PublishTheAlert" not in str(doc)]

    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"),
                           on_event=stopper(engine))

    assert execution.status == "ABORTED"
    assert alerts(execution) == []
    (why,) = execution.undelivered
    assert f"failed {ALERT_ATTEMPTS} times" in why and "AuthorizationError" in why
    assert "its record is in the dead-letter queue" in why
    denied = [c for c in engine.authorizer.calls if not c.allowed and c.action == "sns:Publish"]
    assert len(denied) == ALERT_ATTEMPTS
    # Lambda's OnFailure destination: the record, sent as the function's role, and the alarm.
    sqs = boto3.client("sqs", region_name="us-east-1")
    (url,) = sqs.list_queues()["QueueUrls"]
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == ALERT_ATTEMPTS
    assert record["requestPayload"]["detail"]["name"] == execution.name
    sent = [c for c in engine.authorizer.calls if c.action == "sqs:SendMessage"]
    assert [(c.principal, c.allowed) for c in sent] == [(role, True)]
    assert [n for n in execution.notifications if n["subject"].startswith("ALARM:")]


def test_a_run_that_ends_in_its_own_named_state_is_not_reported_twice(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/malformed-no-detail.json"))

    assert execution.error == "Runbook.InvalidEvent"
    assert not [n for n in execution.notifications if "outside its runbook" in n["message"]]
