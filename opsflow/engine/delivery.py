"""What EventBridge does with an event it cannot deliver, and the alarm that tells a person.

On AWS (EventBridge User Guide, "Event retry policy and using dead-letter queues"): a delivery
that fails for a retriable reason is retried under the target's ``RetryPolicy``
(``MaximumRetryAttempts``, ``MaximumEventAgeInSeconds``); one that fails for missing permissions
or a missing target is not retried. Either way the event then goes to the target's dead-letter
queue, if it has one, with the message attributes ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``,
``ERROR_MESSAGE`` (and ``EXHAUSTED_RETRY_CONDITION``, ``RETRY_ATTEMPTS`` after retries);
EventBridge sends it as ``events.amazonaws.com``, so the queue's policy must allow
``sqs:SendMessage`` for the rule (``aws:SourceArn``), else the event is lost
(``InvocationsFailedToBeSentToDLQ``). SQS reports the queue's depth to CloudWatch
(``AWS/SQS`` ``ApproximateNumberOfMessagesVisible``, per ``QueueName``, every minute), and an
alarm on it publishes to its SNS actions as ``cloudwatch.amazonaws.com``, which the topic's
policy must allow for that alarm (``aws:SourceArn``).

The engine does the same for the one failure it can produce, a rule whose role may not start
its target (``NO_PERMISSIONS``, not retried): the queue and topic policies are the stack's,
evaluated for the service principal by the IAM evaluator; the depth is recorded at the virtual
time of the failure and every stack alarm on that queue's depth is evaluated on the period that
holds it (what the alarm sees at its next evaluation). Only static-threshold alarms are
evaluated here; see :mod:`opsflow.engine.alarms` for the canary's anomaly alarm.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from opsflow.engine import boundary as api
from opsflow.engine.iam import policy

EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
DEPTH_NAMESPACE = "AWS/SQS"
DEPTH_METRIC = "ApproximateNumberOfMessagesVisible"
NO_PERMISSIONS = "NO_PERMISSIONS"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def _names(principal: Any, service: str) -> bool:
    """Whether a statement's ``Principal`` covers ``service`` (a service principal or ``*``)."""
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    def listed(kind: str) -> list[str]:
        values = principal.get(kind, [])
        return [values] if isinstance(values, str) else list(values)

    return service in listed("Service") or "*" in listed("AWS")


def service_allows(
    documents: Sequence[dict[str, Any]], service: str, request: policy.Request
) -> policy.Decision:
    """The verdict of resource-based policies on a request an AWS service makes: the statements
    whose ``Principal`` covers ``service`` (``NotPrincipal`` statements do not apply to it),
    evaluated as IAM evaluates any statement: an explicit Deny wins, else an Allow is needed."""
    statements = []
    for document in documents:
        found = document.get("Statement", [])
        for statement in [found] if isinstance(found, dict) else found:
            if "Principal" in statement and _names(statement["Principal"], service):
                statements.append({k: v for k, v in statement.items() if k != "Principal"})
    document = {"Version": "2012-10-17", "Statement": statements}
    return policy.evaluate([("resource policy", document)], request)


Notice = tuple[str, str, str]
"""An alarm action to publish: topic ARN, subject, message."""


@dataclass
class Undelivered:
    """Where an undeliverable event went: ``queue`` (its dead-letter queue's ARN) when it is
    there, else ``None`` with ``why``; and the alarms that entered ALARM because of it."""

    queue: str | None
    why: str
    alarms: list[str]

    def describe(self) -> str:
        if self.queue is None:
            return f"the event is lost: {self.why}"
        text = f"the event is in the dead-letter queue {self.queue}"
        if self.alarms:
            text += f"; alarm {', '.join(self.alarms)} is in ALARM"
        return text


class DeadLetters:
    """EventBridge's dead-lettering and the queue-depth alarms, for one deployed stack."""

    def __init__(self, stack: Any, client: Callable[[str], Any], now: Callable[[], datetime]) -> None:
        self.account, self.region = stack.account, stack.region
        self.queue_policies: dict[str, list[dict[str, Any]]] = stack.queue_policies()
        self.topic_policies: dict[str, list[dict[str, Any]]] = stack.topic_policies()
        self.alarms: list[tuple[str, dict[str, Any]]] = [
            (stack.get_att(logical, "Arn"), stack.resolver.resolve(spec["Properties"]))
            for logical, spec in stack.of_type("AWS::CloudWatch::Alarm").items()
            if spec["Properties"].get("Namespace") == DEPTH_NAMESPACE
        ]
        self.client, self.now = client, now

    def send(
        self, rule_arn: str, target: dict[str, Any], event: dict[str, Any], code: str, message: str
    ) -> Undelivered:
        """Dead-letter ``event``, which the rule could not deliver to ``target`` (not retried:
        ``code`` is a permission error)."""
        queue = target.get("dead_letter")
        if not queue:
            return Undelivered(None, f"the target of {rule_arn} has no dead-letter queue", [])
        request = policy.Request(
            "sqs:SendMessage", queue, {"aws:SourceArn": rule_arn, "aws:SourceAccount": self.account}
        )
        if not service_allows(self.queue_policies.get(queue, []), EVENTS, request).allowed:
            return Undelivered(
                None, f"the policy of {queue} does not let EventBridge send for {rule_arn} "
                "(InvocationsFailedToBeSentToDLQ)", []
            )
        with api.bypass():  # EventBridge's and SQS's own calls: no faults, no role's IAM
            name = self._enqueue(rule_arn, target, queue, event, code, message)
            at = self.now()
            alarms, notices = self._evaluate(name, at)
        sns = self.client("sns")
        for topic, subject, text in notices:  # outside bypass: recorded as notifications
            sns.publish(TopicArn=topic, Subject=subject, Message=text)
        return Undelivered(queue, "", alarms)

    def destination(self, queue: str, role: str, record: dict[str, Any]) -> Undelivered:
        """Lambda sends an asynchronous invocation that failed every attempt to the function's
        ``OnFailure`` destination, an SQS queue, as the function's role (which must allow
        ``sqs:SendMessage``, else the record is lost); the queue's depth alarms as for
        EventBridge's dead letters."""
        name = queue.rsplit(":", 1)[-1]
        sqs = self.client("sqs")
        with api.bypass():
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        try:
            with api.acting_as(role):
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
        except ClientError as error:  # refused as the role: Lambda drops the record
            return Undelivered(None, f"the function's role may not send to {queue} ({error})", [])
        with api.bypass():
            self._record_depth(sqs, url, name)
            alarms, notices = self._evaluate(name, self.now())
        for topic, subject, text in notices:  # outside bypass: recorded as notifications
            self.client("sns").publish(TopicArn=topic, Subject=subject, Message=text)
        return Undelivered(queue, "", alarms)

    def _enqueue(self, rule_arn: str, target: dict[str, Any], queue: str,
                 event: dict[str, Any], code: str, message: str) -> str:
        """Send the event with EventBridge's attributes; record the queue's depth. Returns the
        queue's name."""
        name = queue.rsplit(":", 1)[-1]
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = {"RULE_ARN": rule_arn, "TARGET_ARN": target["arn"], "ERROR_CODE": code,
                      "ERROR_MESSAGE": message}
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(event),
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            },
        )
        self._record_depth(sqs, url, name)
        return name

    def _record_depth(self, sqs: Any, url: str, name: str) -> None:
        # The queue attribute behind the CloudWatch metric ApproximateNumberOfMessagesVisible.
        depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        self.client("cloudwatch").put_metric_data(
            Namespace=DEPTH_NAMESPACE,
            MetricData=[{
                "MetricName": DEPTH_METRIC,
                "Dimensions": [{"Name": "QueueName", "Value": name}],
                "Timestamp": self.now(),
                "Value": float(depth["Attributes"]["ApproximateNumberOfMessages"]),
                "Unit": "Count",
            }],
        )

    def _evaluate(self, queue_name: str, at: datetime) -> tuple[list[str], list[Notice]]:
        """Every depth alarm on ``queue_name``, on the periods ending with the one holding
        ``at``. Returns the alarms that entered ALARM and their SNS actions to publish."""
        cloudwatch = self.client("cloudwatch")
        entered: list[str] = []
        notices: list[Notice] = []
        for arn, props in self.alarms:
            dimensions = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
            if props.get("MetricName") != DEPTH_METRIC or dimensions.get("QueueName") != queue_name:
                continue
            period, periods = int(props["Period"]), int(props["EvaluationPeriods"])
            stamp = int(at.timestamp())
            end = datetime.fromtimestamp(stamp - stamp % period + period, tz=at.tzinfo)
            statistic = props["Statistic"]
            points = cloudwatch.get_metric_statistics(
                Namespace=DEPTH_NAMESPACE, MetricName=DEPTH_METRIC,
                Dimensions=[{"Name": "QueueName", "Value": queue_name}],
                StartTime=end - timedelta(seconds=period * periods), EndTime=end,
                Period=period, Statistics=[statistic],
            )["Datapoints"]
            compare = _COMPARE[props["ComparisonOperator"]]
            threshold = float(props["Threshold"])
            breaching = [float(p[statistic]) for p in points if compare(float(p[statistic]), threshold)]
            if not breaching or len(breaching) < int(props.get("DatapointsToAlarm", periods)):
                continue
            name = props["AlarmName"]
            old = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
            if old == "ALARM":
                continue
            reason = (f"Threshold Crossed: {len(breaching)} datapoint [{max(breaching)}] was "
                      f"{props['ComparisonOperator']} the threshold ({threshold}).")
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
            entered.append(name)
            notices += self._actions(arn, props, old, reason, at)
        return entered, notices

    def _actions(
        self, arn: str, props: dict[str, Any], old: str, reason: str, at: datetime
    ) -> list[Notice]:
        """The alarm's SNS actions, as CloudWatch publishes them (a JSON message), to each topic
        whose policy lets CloudWatch publish for this alarm."""
        message = json.dumps({
            "AlarmName": props["AlarmName"],
            "AlarmDescription": props.get("AlarmDescription"),
            "AWSAccountId": self.account,
            "NewStateValue": "ALARM",
            "NewStateReason": reason,
            "StateChangeTime": at.isoformat(),
            "Region": self.region,
            "AlarmArn": arn,
            "OldStateValue": old,
            "Trigger": {
                "MetricName": props["MetricName"], "Namespace": props["Namespace"],
                "Statistic": props["Statistic"].upper(), "Period": int(props["Period"]),
                "Dimensions": [{"name": d["Name"], "value": d["Value"]}
                               for d in props.get("Dimensions", [])],
                "ComparisonOperator": props["ComparisonOperator"],
                "Threshold": float(props["Threshold"]),
            },
        })
        subject = f'ALARM: "{props["AlarmName"]}" in {self.region}'[:100]
        found = []
        for topic in props.get("AlarmActions", []):
            request = policy.Request(
                "sns:Publish", topic, {"aws:SourceArn": arn, "aws:SourceAccount": self.account}
            )
            if service_allows(self.topic_policies.get(topic, []), CLOUDWATCH, request).allowed:
                found.append((topic, subject, message))
        return found
