"""The runbook-died alert: a runbook execution ended outside its own error handling.

``RunbookDiedRule`` (template.yaml) sends Step Functions' own status-change event here for a run
that timed out, was stopped, or failed with an error the runbook did not name (``States.*``):
the runbook could not tell anyone itself, and may have changed the account without reporting or
rolling back. This function publishes one notice: the whole error and cause by e-mail, an
SMS-sized line by SMS (an EventBridge input template to SNS could only send every protocol the
same text, cause and all).
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from runbook_kit import aws
from runbook_kit.errors import InvalidEvent
from runbook_kit.notices import console_link, notice
from runbook_kit.telemetry import STATUS_CHANGE, handler

logger = Logger(service="opsflow-alerts")
SOURCE = "aws.states"
DETAIL_TYPE = "Step Functions Execution Status Change"
"""The event's identity, exactly as ``RunbookDiedRule`` matches it (a test checks them against
the rule's pattern)."""
STATUS_WORDS = {
    "TIMED_OUT": "timed out",
    "ABORTED": "was stopped",
    "FAILED": "failed",
}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else json.dumps(value))


def describe(event: Any) -> dict[str, Any]:
    """The status-change event → the notice to publish (pure)."""
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        raise InvalidEvent("not a Step Functions status-change event: it has no detail object")
    if (event.get("source"), event.get("detail-type")) != (SOURCE, DETAIL_TYPE):
        raise InvalidEvent(
            f"not a Step Functions status-change event: source {event.get('source')!r}, "
            f"detail-type {event.get('detail-type')!r}"
        )
    detail = event["detail"]
    arn = _text(detail.get("executionArn"))
    name = _text(detail.get("name")) or arn.rsplit(":", 1)[-1] or "unknown"
    machine = _text(detail.get("stateMachineArn")).rsplit(":", 1)[-1] or "a runbook"
    status = _text(detail.get("status")) or "UNKNOWN"
    error, cause = _text(detail.get("error")), _text(detail.get("cause"))
    region = _text(event.get("region")) or os.environ.get("AWS_REGION", "")
    how = STATUS_WORDS.get(status, f"ended {status}")
    link = console_link(region, arn)
    lines = [
        f"Execution {name} of {machine} {how} ({status}) outside its runbook's own error "
        "handling.",
        "It may have changed the account without reporting or rolling back: check every "
        "resource it names, by hand, before rerunning it.",
        "",
        f"Error: {error or '(none given)'}",
        f"Cause: {cause or '(none given)'}",
    ]
    if arn:
        lines += ["", f"Execution: {arn}", link]
    body = "\n".join(lines).rstrip()
    return notice(
        f"opsflow: {machine} run {name} {how}, outside its runbook",
        f"opsflow: {machine} run {how} outside its runbook; check the account by hand "
        "(details by e-mail)",
        body,
    )


@handler(logger, STATUS_CHANGE)
def runbook_died(event: dict[str, Any], context: Any) -> dict[str, Any]:
    found = describe(event)
    topic = os.environ["ALERT_TOPIC_ARN"]
    region = topic.split(":")[3] or os.environ.get("AWS_REGION", "")
    answer = aws.client("sns", region).publish(
        TopicArn=topic,
        Subject=found["subject"],
        Message=json.dumps(found["message"]),
        MessageStructure="json",
    )
    logger.info("runbook died", extra={"messageId": answer["MessageId"]})
    return {"messageId": answer["MessageId"], "subject": found["subject"]}
