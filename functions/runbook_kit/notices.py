"""Notices: one subject, an SMS-sized text and a full message, published in one SNS call.

The ``message`` is an SNS JSON message structure: ``default`` (e-mail and anything else: SNS
sends ``default`` to every protocol the structure does not name, so the full text is held once),
``sms`` (one GSM-7 SMS segment, 140 characters, is the aim: plain ASCII, no ellipsis character).
"""

from __future__ import annotations

from typing import Any

SMS_LIMIT = 140
SUBJECT_LIMIT = 99
"""SNS: a subject must be less than 100 characters."""


def subject_line(text: str) -> str:
    """``text`` as SNS takes a subject: printable ASCII (any other character, e.g. of an
    event's text, becomes ``?``), on one line, beginning with a visible character, and less than
    100 characters. SNS refuses any other subject, and the notice would never be sent."""
    text = "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split())).strip()
    if len(text) > SUBJECT_LIMIT:
        text = text[: SUBJECT_LIMIT - 3] + "..."
    return text or "opsflow"


def notice(subject: str, sms: str, full: str) -> dict[str, Any]:
    subject = subject_line(subject)
    sms = " ".join(sms.split())
    if len(sms) > SMS_LIMIT:
        sms = sms[: SMS_LIMIT - 3] + "..."
    return {"subject": subject, "message": {"default": full, "sms": sms}}


def console_link(region: str, execution: str | None) -> str:
    """A link to the execution in the Step Functions console (empty when not known)."""
    if not execution or not execution.startswith("arn:"):
        return ""
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution}"
    )
