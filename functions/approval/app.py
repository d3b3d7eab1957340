"""Human approval by signed links: AWS's human-approval pattern without a raw task token.

``request_approval`` is invoked by the state machine (``lambda:invoke.waitForTaskToken``): it
signs an approve and a reject link for the task token (:mod:`approval.links`) and publishes them
in the approval notice; the task then waits for an answer. ``answer`` serves those links behind
the function's URL (AuthType NONE: approvers click links in an e-mail, the signature is the
authority). GET shows a confirmation page whose form POSTs back, so a link previewer or mail
scanner that fetches the URL answers nothing; the POST answers the task: ``SendTaskSuccess``
(who and when, from the request) or ``SendTaskFailure`` ``Runbook.Rejected`` with the reason typed.

Neither the links nor the key ever go into a result or a log: a link is a bearer credential.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from botocore.exceptions import ClientError
from runbook_kit import aws
from runbook_kit.errors import THROTTLING_CODES, InvalidEvent, call, error_code, require
from runbook_kit.notices import SMS_LIMIT, console_link
from runbook_kit.settings import as_int
from runbook_kit.telemetry import FUNCTION_URL, handler

from approval import links

logger = Logger(service="opsflow-approval")
SECRET_ENV = "SIGNING_KEY_SECRET_ARN"
"""The ARN of the Secrets Manager secret holding the signing key (template: ``!Ref``)."""
REJECTED = "Runbook.Rejected"
MAX_NAME, MAX_REASON, MAX_AGENT = 100, 1000, 200
SMS_HINT = " See the e-mail to answer."
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
"""No caching, no token in a Referer, no framing (clickjacking the button), forms post home."""
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;line-height:1.4}"
    "main{max-width:32rem;margin:auto}label,input,textarea,button{display:block;width:100%;"
    "box-sizing:border-box;margin:.4rem 0}input,textarea{padding:.5rem;font-size:1rem}"
    "button{padding:.8rem;font-size:1.1rem}.small{color:#555;font-size:.9rem}"
)


# ------------------------------------------------------------------------------- the key
def signing_key(client: Any) -> bytes:
    """The signing key, read from Secrets Manager through ``client``. Read once per invocation
    that needs it, not kept: approvals are rare, and each function's own role is what reads it."""
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise InvalidEvent(f"the function has no {SECRET_ENV} environment variable")
    found = call("GetSecretValue", client.get_secret_value, SecretId=secret)
    return str(found["SecretString"]).encode("utf-8")


def _region() -> str:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise InvalidEvent("no AWS_REGION in the environment")
    return region


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ------------------------------------------------------------------------------- request
def publish_request(payload: Any, key: bytes, sns: Any, now: float) -> dict[str, Any]:
    """Sign the two links for ``payload['taskToken']`` and publish the approval notice.

    ``payload``: ``taskToken``, ``notice`` (``subject`` and an SNS message structure with
    ``default`` and ``sms``), ``timeoutSeconds``, ``topicArn``, ``answerUrl`` (the approval
    function's URL) and optionally ``execution`` and ``enteredTime`` (when the waiting state was
    entered, ``$$.State.EnteredTime``; else ``now``): the links expire when the wait does.
    """
    require(payload, "taskToken", "notice", "timeoutSeconds", "topicArn", "answerUrl")
    notice = payload["notice"]
    if not isinstance(notice, dict) or not isinstance(notice.get("message"), dict):
        raise InvalidEvent("notice must be an object with subject and message")
    token = payload["taskToken"]
    if not isinstance(token, str) or not 0 < len(token) <= links.MAX_TOKEN:
        raise InvalidEvent("taskToken must be a string of 1 to 2048 characters")
    base = str(payload["answerUrl"])
    if not base.startswith("https://"):
        raise InvalidEvent(f"answerUrl must be the approval function's https URL, got {base!r}")
    expires = int(_epoch(payload.get("enteredTime"), now)) + as_int(
        payload["timeoutSeconds"], "timeoutSeconds", 1, 31_536_000
    )
    subject = str(notice.get("subject") or "opsflow: approval needed")
    url = {
        action: links.url(base, links.sign(key, links.Link(action, expires, subject, token)))
        for action in links.ACTIONS
    }
    message = notice["message"]
    full = str(message.get("email") or message.get("default") or subject)
    console = console_link(_region_of(str(payload.get("execution", ""))), payload.get("execution"))
    body = (
        f"{full}\n\n"
        f"To APPROVE, open:\n{url['approve']}\n\n"
        f"To REJECT, open:\n{url['reject']}\n\n"
        "Each link opens a page where you confirm; opening it changes nothing. The links expire "
        f"at {_iso(expires)}, when the runbook stops waiting: without an answer it escalates "
        "and changes nothing."
        + (f"\n\nExecution: {console}" if console else "")
    )
    sms = " ".join(str(message.get("sms") or message.get("default") or subject).split())
    if not sms.lower().startswith("opsflow"):
        sms = f"opsflow: {sms}"
    room = SMS_LIMIT - len(SMS_HINT)
    sms = (sms if len(sms) <= room else sms[: room - 3] + "...") + SMS_HINT
    result = call(
        "Publish",
        sns.publish,
        TopicArn=payload["topicArn"],
        Subject=subject,
        MessageStructure="json",
        Message=json.dumps({"default": body, "email": body, "sms": sms}),
    )
    logger.info("approval requested", extra={"expires": _iso(expires)})
    return {"published": result.get("MessageId", ""), "expires": _iso(expires)}


def _epoch(timestamp: Any, default: float) -> float:
    if not timestamp:
        return default
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidEvent(f"enteredTime must be an ISO-8601 time, got {timestamp!r}") from None


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and arn.startswith("arn:") else ""


# ------------------------------------------------------------------------------- answer
@dataclass(frozen=True)
class Request:
    """What ``answer`` reads of a Function URL request (payload format 2.0)."""

    method: str
    path: str
    query: str
    body: str
    source_ip: str
    user_agent: str
    epoch: float
    """When the request reached the URL (``requestContext.timeEpoch``)."""

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        url = LambdaFunctionUrlEvent(event)
        context = url.request_context
        query = event.get("rawQueryString")
        if query is None:
            query = urlencode(url.query_string_parameters or {})
        epoch_ms = event.get("requestContext", {}).get("timeEpoch")
        return cls(
            method=str(context.http.method or "").upper(),
            path=url.raw_path or "/",
            query=query,
            body=url.decoded_body or "",
            source_ip=str(context.http.source_ip or "unknown"),
            user_agent=str(context.http.user_agent or "")[:MAX_AGENT],
            epoch=epoch_ms / 1000 if isinstance(epoch_ms, int | float) else time.time(),
        )


@dataclass
class Page:
    status: int
    title: str
    body: str
    """An HTML fragment, already escaped."""
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        document = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>"
            f"<body><main><h1>{html.escape(self.title)}</h1>{self.body}</main></body></html>"
        )
        return {
            "statusCode": self.status,
            "headers": {**HEADERS, **self.headers},
            "body": document,
            "isBase64Encoded": False,
        }


def _p(text: str, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"<p{attribute}>{html.escape(text)}</p>"


def respond(request: Request, key: Callable[[], bytes], sfn: Any) -> Page:
    """The page for one request to an approve/reject link. Only a POST of a genuine, unexpired
    link's form calls Step Functions; everything else changes nothing."""
    if request.path not in ("", "/"):
        return Page(404, "Not found", _p("There is nothing here."))
    if request.method not in ("GET", "POST"):
        return Page(405, "Method not allowed", _p("Open the link from the e-mail."),
                    {"Allow": "GET, POST"})
    try:
        fields = links.parse(request.query if request.method == "GET" else request.body)
        link = links.verify(fields, request.epoch, key)
    except links.BadLink as bad:
        logger.info("link refused", extra={"method": request.method, "sourceIp": request.source_ip})
        return Page(403, "Link not accepted", _p(str(bad)) + _p("Nothing was changed.", "small"))
    if request.method == "GET":
        return _confirm(link, fields)
    return _answer(link, fields, request, sfn)


def _confirm(link: links.Link, fields: dict[str, str]) -> Page:
    approve = link.action == "approve"
    verb = "Approve" if approve else "Reject"
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(fields[name])}">'
        for name in links.FIELDS
    )
    reason = (
        ""
        if approve
        else '<label for="reason">Reason (it goes into the escalation)</label>'
        f'<textarea id="reason" name="reason" maxlength="{MAX_REASON}" rows="3"></textarea>'
    )
    body = (
        _p(link.what)
        + _p("Approving lets the runbook act now." if approve
             else "Rejecting stops the runbook: it escalates and changes nothing.")
        + f'<form method="post" action="/">{hidden}'
        + '<label for="name">Your name</label>'
        + f'<input id="name" name="name" maxlength="{MAX_NAME}" autocomplete="name">'
        + f'{reason}<button type="submit">{verb}</button></form>'
        + _p(f"This link expires at {_iso(link.expires)}.", "small")
    )
    return Page(200, f"{verb}?", body)


def _answer(link: links.Link, form: dict[str, str], request: Request, sfn: Any) -> Page:
    by = " ".join(form.get("name", "").split())[:MAX_NAME] or "an unnamed approver"
    at = datetime.fromtimestamp(request.epoch, UTC).isoformat(timespec="seconds")
    try:
        if link.action == "approve":
            output = {"approved": True, "by": by, "at": at, "sourceIp": request.source_ip,
                      "userAgent": request.user_agent, "what": link.what}
            sfn.send_task_success(taskToken=link.token, output=json.dumps(output))
        else:
            reason = " ".join(form.get("reason", "").split())[:MAX_REASON] or "no reason given"
            cause = f"Rejected by {by} ({request.source_ip}) at {at}: {reason}"
            sfn.send_task_failure(taskToken=link.token, error=REJECTED, cause=cause)
    except ClientError as error:
        code = error_code(error)
        logger.info("answer not taken", extra={"code": code, "action": link.action})
        # Step Functions says TaskTimedOut both for a wait that timed out and for a task
        # already answered or closed ("expired or already closed").
        if code in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            return Page(410, "No longer waiting", _p(
                "This request was already answered, or the runbook stopped waiting for an "
                "answer; nothing was changed by this link."))
        if code in THROTTLING_CODES:
            return Page(503, "Try again", _p("Step Functions is busy: go back and submit again."))
        raise
    logger.info("answered", extra={"action": link.action, "sourceIp": request.source_ip})
    if link.action == "approve":
        return Page(200, "Approved", _p(link.what) + _p(f"Approved by {by} at {at}. The runbook goes on."))
    return Page(200, "Rejected", _p(link.what) + _p(f"Rejected by {by} at {at}. The runbook "
                                                     "escalates and changes nothing."))


# ------------------------------------------------------------------------------- handlers
@handler(logger)
def request_approval(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    region = _region()
    topic = payload.get("topicArn") if isinstance(payload, dict) else ""
    topic_region = _region_of(str(topic or "")) or region
    key = signing_key(aws.client("secretsmanager", region))
    return publish_request(payload, key, aws.client("sns", topic_region), time.time())


@handler(logger, FUNCTION_URL)
def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    region = _region()
    page = respond(
        Request.from_event(event),
        key=lambda: signing_key(aws.client("secretsmanager", region)),
        sfn=aws.client("stepfunctions", region),
    )
    return page.response()
