"""The runbook-died alert's notice, from Step Functions' status-change event (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alerts import app
from hypothesis import given
from hypothesis import strategies as st

from opsflow import template as cfn

ARN = "arn:aws:states:us-east-1:123456789012:execution:opsflow-HealthAbuseStateMachine:run-1"


def status_change(**detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5b1c8e8a-0000-4000-8000-000000000000",
        "detail-type": app.DETAIL_TYPE,
        "source": app.SOURCE,
        "account": "123456789012",
        "time": "2026-12-02T03:00:00Z",
        "region": "us-east-1",
        "resources": [ARN],
        "detail": {
            "executionArn": ARN,
            "stateMachineArn": ARN.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
            "name": "run-1",
            "status": "FAILED",
            "error": "States.DataLimitExceeded",
            "cause": "The state/task returned a result with a size exceeding the limit.",
            **detail,
        },
    }


def test_the_event_identity_is_the_rules_pattern() -> None:
    rule = cfn.resources_of_type(cfn.cached(), "AWS::Events::Rule")["RunbookDiedRule"]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == [app.SOURCE]
    assert pattern["detail-type"] == [app.DETAIL_TYPE]


def test_the_e_mail_has_the_whole_cause_and_the_sms_one_line() -> None:
    cause = "a cause of many words, " * 1400  # Step Functions allows a cause of 32,768
    found = app.describe(status_change(cause=cause))

    assert cause.strip() in found["message"]["default"]
    assert "States.DataLimitExceeded" in found["message"]["default"]
    assert "console.aws.amazon.com/states" in found["message"]["default"]
    sms = found["message"]["sms"]
    assert len(sms) <= 140 and sms.endswith("(details by e-mail)")
    assert "many words" not in sms and "failed outside its runbook" in sms
    assert len(found["subject"]) < 100 and "run-1" in found["subject"]


@pytest.mark.parametrize("status, words", [("TIMED_OUT", "timed out"), ("ABORTED", "was stopped")])
def test_each_status_is_said_in_words(status: str, words: str) -> None:
    found = app.describe(status_change(status=status, error=None, cause=None))
    assert f"{words} ({status})" in found["message"]["default"]
    assert "Error: (none given)" in found["message"]["default"]


@pytest.mark.parametrize("event", [None, [], {}, {"detail": "x"},
                                   {**status_change(), "source": "aws.ec2"}])
def test_anything_else_is_refused_by_name(event: Any) -> None:
    with pytest.raises(app.InvalidEvent, match="status-change event"):
        app.describe(event)


@given(st.dictionaries(st.sampled_from(["name", "stateMachineArn", "status", "error", "cause",
                                        "executionArn"]),
                       st.one_of(st.none(), st.text(max_size=400), st.integers(), st.lists(st.text()))))
def test_any_detail_makes_a_publishable_notice(detail: dict[str, Any]) -> None:
    found = app.describe({**status_change(), "detail": detail})
    assert len(found["message"]["sms"]) <= 140
    assert 0 < len(found["subject"]) < 100
    assert json.loads(json.dumps(found["message"])) == found["message"]
