"""Resource-based policies as an AWS service principal meets them (the dead-letter queue's for
EventBridge, the alert topic's for CloudWatch alarms): only statements naming the service, or
everyone, apply; an explicit Deny wins; conditions are IAM's."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow.engine import delivery
from opsflow.engine.iam.policy import Request

QUEUE = "arn:aws:sqs:us-east-1:123456789012:opsflow-EventDeadLetterQueue"
RULE = "arn:aws:events:us-east-1:123456789012:rule/opsflow-HealthAbuseRule"
OTHER_RULE = "arn:aws:events:us-east-1:123456789012:rule/someone-elses"


def allow(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "sqs:SendMessage",
            "Resource": QUEUE, **extra}


def verdict(*statements: dict[str, Any], source: str = RULE) -> bool:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    request = Request("sqs:SendMessage", QUEUE, {"aws:SourceArn": source})
    return delivery.service_allows([document], delivery.EVENTS, request).allowed


ONLY_THE_RULE = {"Condition": {"ArnEquals": {"aws:SourceArn": [RULE]}}}


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        ({"Service": "events.amazonaws.com"}, True),
        ({"Service": ["sns.amazonaws.com", "events.amazonaws.com"]}, True),
        ("*", True),
        ({"AWS": "*"}, True),
        ({"Service": "cloudwatch.amazonaws.com"}, False),
        ({"AWS": "arn:aws:iam::123456789012:root"}, False),
    ],
)
def test_only_statements_naming_the_service_or_everyone_apply(principal: Any, allowed: bool) -> None:
    assert verdict(allow(principal)) is allowed


def test_the_source_arn_condition_admits_only_the_named_rules() -> None:
    statement = allow({"Service": "events.amazonaws.com"}, **ONLY_THE_RULE)
    assert verdict(statement, source=RULE)
    assert not verdict(statement, source=OTHER_RULE)


def test_an_explicit_deny_wins_and_no_statement_is_an_implicit_deny() -> None:
    deny = {**allow("*"), "Effect": "Deny"}
    assert not verdict(allow({"Service": "events.amazonaws.com"}), deny)
    assert not verdict()
