"""An event EventBridge cannot deliver is not lost: it lands in the stack's dead-letter queue with
EventBridge's attributes, the queue's depth reaches CloudWatch, and the queue's alarm tells the
alert topic. The queue's policy decides which rules may dead-letter there (aws:SourceArn)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from opsflow.engine import delivery
from opsflow.engine.runner import NotDelivered
from tests.conftest import load_event
from tests.workflow.test_iam_rehearsals import take_away

SCENARIO = "health-abuse"
EVENT = "health-abuse/dos-report-arn.json"


def _queue(engine: Any) -> str:
    (logical,) = engine.stack.of_type("AWS::SQS::Queue")
    return str(engine.stack.physical_name(logical))


def _messages(name: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return list(sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []))


def _refuse_start(engine: Any) -> Any:
    """The rule's role loses states:StartExecution, as deleting it from template.yaml would."""
    (rule,) = [r for r in engine.match(load_event(EVENT)) if r.scenario == SCENARIO]
    take_away(rule.role, "states:StartExecution")(engine)
    return rule


def test_every_rule_target_dead_letters_to_the_queue_with_a_retry_policy(engine: Any) -> None:
    queue_arn = engine.stack.get_att(next(iter(engine.stack.of_type("AWS::SQS::Queue"))), "Arn")
    rules = engine.stack.rules()
    assert rules
    for rule in rules.values():
        for target in rule.targets:
            assert target["dead_letter"] == queue_arn, rule.logical
            assert set(target["retry"]) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}
    # The queue lets exactly the stack's rules send, and no one else.
    (documents,) = engine.stack.queue_policies().values()
    (statement,) = documents[0]["Statement"]
    assert sorted(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
        r.arn for r in rules.values()
    )


def test_a_refused_delivery_lands_in_the_queue_and_alarms_the_alert_topic(engine: Any) -> None:
    rule = _refuse_start(engine)
    event = load_event(EVENT)
    before = len(engine.boundary.notifications)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")

    with pytest.raises(NotDelivered, match="dead-letter queue .*undelivered-events is in ALARM"):
        engine.run(SCENARIO, event, rule=rule)

    # No execution exists; the event is in the queue, with what EventBridge attaches.
    assert sfn.list_executions(stateMachineArn=engine.state_machines[SCENARIO])["executions"] == []
    (message,) = _messages(_queue(engine))
    assert json.loads(message["Body"]) == event
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"] == rule.arn
    assert attributes["TARGET_ARN"] == engine.state_machines[SCENARIO]
    assert attributes["ERROR_CODE"] == delivery.NO_PERMISSIONS
    assert "states:StartExecution" in attributes["ERROR_MESSAGE"]

    # The queue's depth reached CloudWatch, and the alarm on it went off and notified.
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    now = engine.clock.now()
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": _queue(engine)}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5),
        Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in points] == [1.0]
    (alarm,) = [a for a in cloudwatch.describe_alarms()["MetricAlarms"]
                if a.get("Namespace") == "AWS/SQS"]
    assert alarm["StateValue"] == "ALARM"
    topic = engine.stack.ref("AlertTopic")
    sent = [n for n in engine.boundary.notifications[before:] if n.target == topic]
    assert len(sent) == 1
    assert json.loads(sent[0].message)["AlarmName"] == alarm["AlarmName"]


def test_a_queue_policy_that_does_not_name_the_rule_loses_the_event(engine: Any) -> None:
    rule = _refuse_start(engine)
    for documents in engine.dead_letters.queue_policies.values():
        for document in documents:
            condition = document["Statement"][0]["Condition"]["ArnEquals"]
            condition["aws:SourceArn"] = [a for a in condition["aws:SourceArn"] if a != rule.arn]

    with pytest.raises(NotDelivered, match="the event is lost: .*InvocationsFailedToBeSentToDLQ"):
        engine.run(SCENARIO, load_event(EVENT), rule=rule)

    assert _messages(_queue(engine)) == []
    (alarm,) = [a for a in boto3.client("cloudwatch", region_name="us-east-1")
                .describe_alarms()["MetricAlarms"] if a.get("Namespace") == "AWS/SQS"]
    assert alarm["StateValue"] == "OK"


def test_the_alarm_notifies_only_where_the_topic_policy_lets_cloudwatch_publish(
    engine: Any,
) -> None:
    rule = _refuse_start(engine)
    topic = engine.stack.ref("AlertTopic")
    engine.dead_letters.topic_policies[topic] = [
        {"Version": "2012-10-17", "Statement": [
            s for s in engine.dead_letters.topic_policies[topic][0]["Statement"]
            if s["Principal"] != {"Service": delivery.CLOUDWATCH}
        ]}
    ]
    before = len(engine.boundary.notifications)

    with pytest.raises(NotDelivered, match="is in ALARM"):
        engine.run(SCENARIO, load_event(EVENT), rule=rule)

    assert len(_messages(_queue(engine))) == 1
    assert [n for n in engine.boundary.notifications[before:] if n.target == topic] == []
