"""The approval function: signed links, the pages behind them, and what reaches Step Functions.

No AWS: Step Functions, SNS and Secrets Manager are small fakes that record what they are asked.
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from approval import app, links
from botocore.exceptions import ClientError
from runbook_kit.errors import InvalidEvent

from tests.conftest import load_event

KEY = b"k" * 64
OTHER_KEY = b"o" * 64
NOW = 1_773_458_100.0  # 2026-03-14 03:15 UTC
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAb0XfjNdqAGv+token/with=chars"
WHAT = "opsflow: APPROVE region failover us-east-2 -> us-east-1?"
BASE = "https://abc123.lambda-url.us-east-1.on.aws/"


class FakeSfn:
    def __init__(self, error: str | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def _call(self, name: str, **kwargs: Any) -> dict[str, Any]:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, name)
        self.calls.append((name, kwargs))
        return {}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskSuccess", **kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskFailure", **kwargs)


class FakeSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.published.append(kwargs)
        return {"MessageId": "m-1"}


class Key:
    """The key source ``respond`` is given; counts reads of the secret."""

    def __init__(self, key: bytes = KEY) -> None:
        self.key, self.reads = key, 0

    def __call__(self) -> bytes:
        self.reads += 1
        return self.key


def signed(action: str = "approve", expires: int = int(NOW) + 900, key: bytes = KEY) -> dict[str, str]:
    return links.sign(key, links.Link(action, expires, WHAT, TOKEN))


def request(method: str, fields: dict[str, str] | None = None, path: str = "/",
            epoch: float = NOW, form: dict[str, str] | None = None) -> app.Request:
    return app.Request(
        method=method,
        path=path,
        query=urlencode(fields or {}) if method != "POST" else "",
        body=urlencode({**(fields or {}), **(form or {})}) if method == "POST" else "",
        source_ip="198.51.100.7",
        user_agent="pytest",
        epoch=epoch,
    )


def form_fields(body: str) -> dict[str, str]:
    """The fields a browser would submit from the page's form."""
    class Reader(HTMLParser):
        fields: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            if tag in ("input", "textarea") and named.get("name"):
                self.fields[str(named["name"])] = named.get("value") or ""

    reader = Reader()
    reader.fields = {}
    reader.feed(body)
    return reader.fields


# ------------------------------------------------------------------------- links
def test_a_signed_link_verifies() -> None:
    fields = links.parse(urlsplit(links.url(BASE, signed())).query)
    assert links.verify(fields, NOW, Key()) == links.Link("approve", int(NOW) + 900, WHAT, TOKEN)


@pytest.mark.parametrize(
    ("field", "value"),
    [("token", TOKEN + "x"), ("what", "opsflow: something else"), ("expires", str(int(NOW) + 99999)),
     ("sig", signed()["sig"][:-2] + "AA"), ("sig", "ünïcode")],
)
def test_a_changed_field_breaks_the_signature(field: str, value: str) -> None:
    fields = {**signed(), field: value}
    with pytest.raises(links.BadLink, match="not valid"):
        links.verify(fields, NOW, Key())


def test_a_reject_link_cannot_be_turned_into_an_approval() -> None:
    fields = {**signed("reject"), "action": "approve"}
    with pytest.raises(links.BadLink, match="not valid"):
        links.verify(fields, NOW, Key())


def test_a_link_signed_with_another_key_is_refused() -> None:
    with pytest.raises(links.BadLink, match="not signed by this deployment"):
        links.verify(signed(key=OTHER_KEY), NOW, Key())


def test_an_expired_link_is_refused_without_reading_the_key() -> None:
    key = Key()
    with pytest.raises(links.BadLink, match="expired"):
        links.verify(signed(expires=int(NOW)), NOW, key)
    assert key.reads == 0


@pytest.mark.parametrize("missing", links.FIELDS)
def test_an_incomplete_link_is_refused_without_reading_the_key(missing: str) -> None:
    key = Key()
    fields = {k: v for k, v in signed().items() if k != missing}
    with pytest.raises(links.BadLink, match="incomplete"):
        links.verify(fields, NOW, key)
    assert key.reads == 0


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(links.BadLink, match="not valid"):
        links.verify({**signed(), "action": "delete"}, NOW, Key())


def test_a_repeated_field_makes_a_link_ambiguous() -> None:
    text = urlencode(signed()) + "&action=reject"
    with pytest.raises(links.BadLink):
        links.parse(text)


def test_sign_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ValueError):
        links.sign(KEY, links.Link("maybe", 1, WHAT, TOKEN))
    with pytest.raises(ValueError):
        links.sign(KEY, links.Link("approve", 1, WHAT, "t" * 2049))


# ------------------------------------------------------------------------- pages
def test_get_shows_a_confirmation_form_and_sends_nothing() -> None:
    sfn = FakeSfn()
    page = app.respond(request("GET", signed("reject")), Key(), sfn)

    assert page.status == 200 and page.title == "Reject?"
    assert '<form method="post" action="/">' in page.body
    fields = form_fields(page.body)
    assert {k: v for k, v in fields.items() if k in links.FIELDS} == signed("reject")
    assert {"name", "reason"} <= set(fields)
    assert sfn.calls == []


def test_pages_are_not_cached_framed_or_leaked_by_referer() -> None:
    headers = app.respond(request("GET", signed()), Key(), FakeSfn()).response()["headers"]
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "form-action 'self'" in headers["Content-Security-Policy"]


def test_what_is_escaped_on_the_page() -> None:
    fields = links.sign(KEY, links.Link("approve", int(NOW) + 60, "<script>x</script>", TOKEN))
    body = app.respond(request("GET", fields), Key(), FakeSfn()).response()["body"]
    assert "<script>x" not in body and "&lt;script&gt;x" in body


def test_post_of_an_approval_sends_task_success_with_who_and_when() -> None:
    sfn = FakeSfn()
    page = app.respond(request("POST", signed(), form={"name": "  Ana   Lopez "}), Key(), sfn)

    assert page.status == 200 and page.title == "Approved"
    ((name, call),) = sfn.calls
    assert name == "SendTaskSuccess" and call["taskToken"] == TOKEN
    output = json.loads(call["output"])
    assert output["approved"] is True
    assert output["by"] == "Ana Lopez"
    assert output["at"] == "2026-03-14T03:15:00+00:00"
    assert output["sourceIp"] == "198.51.100.7"


def test_post_of_a_rejection_sends_the_reason_as_the_cause() -> None:
    sfn = FakeSfn()
    form = {"name": "Ana", "reason": "primary is\nrecovering"}
    page = app.respond(request("POST", signed("reject"), form=form), Key(), sfn)

    assert page.status == 200 and page.title == "Rejected"
    ((name, call),) = sfn.calls
    assert name == "SendTaskFailure" and call["error"] == "Runbook.Rejected"
    assert call["cause"] == "Rejected by Ana (198.51.100.7) at 2026-03-14T03:15:00+00:00: primary is recovering"


def test_a_rejection_without_reason_says_so() -> None:
    sfn = FakeSfn()
    app.respond(request("POST", signed("reject")), Key(), sfn)
    assert sfn.calls[0][1]["cause"].endswith("an unnamed approver (198.51.100.7) at "
                                             "2026-03-14T03:15:00+00:00: no reason given")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "fields",
    [
        {**signed(), "token": TOKEN + "x"},
        {**signed("reject"), "action": "approve"},
        signed(key=OTHER_KEY),
        signed(expires=int(NOW) - 1),
        {k: v for k, v in signed().items() if k != "sig"},
        {},
    ],
    ids=["tampered-token", "reject-as-approve", "other-key", "expired", "no-signature", "nothing"],
)
def test_a_bad_link_answers_403_and_sends_nothing(method: str, fields: dict[str, str]) -> None:
    sfn = FakeSfn()
    page = app.respond(request(method, fields), Key(), sfn)
    assert page.status == 403
    assert "Nothing was changed" in page.body
    assert sfn.calls == []


def test_a_post_reads_the_form_not_the_query() -> None:
    sfn = FakeSfn()
    bad = app.Request("POST", "/", urlencode(signed()), "", "198.51.100.7", "pytest", NOW)
    assert app.respond(bad, Key(), sfn).status == 403
    assert sfn.calls == []


@pytest.mark.parametrize(
    ("code", "status", "title"),
    [("TaskTimedOut", 410, "No longer waiting"), ("TaskDoesNotExist", 410, "No longer waiting"),
     ("InvalidToken", 410, "No longer waiting"), ("ThrottlingException", 503, "Try again")],
)
def test_a_token_no_longer_waiting_gets_a_readable_page(code: str, status: int, title: str) -> None:
    page = app.respond(request("POST", signed()), Key(), FakeSfn(error=code))
    assert (page.status, page.title) == (status, title)


def test_other_step_functions_errors_are_raised() -> None:
    with pytest.raises(ClientError):
        app.respond(request("POST", signed()), Key(), FakeSfn(error="AccessDeniedException"))


def test_other_methods_and_paths_change_nothing() -> None:
    sfn = FakeSfn()
    assert app.respond(request("PUT", signed()), Key(), sfn).status == 405
    assert app.respond(request("GET", signed(), path="/favicon.ico"), Key(), sfn).status == 404
    assert sfn.calls == []


# ------------------------------------------------------------------------- Function URL events
def _url_event(method: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    event = load_event("region-failover/functions/ApprovalFunction.json")
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    event.pop("queryStringParameters", None)
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode()
        event["isBase64Encoded"] = True
    return event


def test_request_reads_a_function_url_event() -> None:
    form = urlencode({**signed(), "name": "Ana"})
    parsed = app.Request.from_event(_url_event("POST", body=form))
    assert parsed.method == "POST" and parsed.path == "/"
    assert parsed.body == form  # base64 decoded
    assert parsed.source_ip == "198.51.100.7"
    assert parsed.epoch == 1_773_459_900.0


def test_the_sample_event_is_an_expired_link_and_needs_no_aws() -> None:
    key = Key()
    page = app.respond(app.Request.from_event(load_event(
        "region-failover/functions/ApprovalFunction.json")), key, FakeSfn())
    assert page.status == 403 and "expired" in page.body
    assert key.reads == 0


# ------------------------------------------------------------------------- the request
def approval_payload(**overrides: Any) -> dict[str, Any]:
    payload = load_event("region-failover/functions/RequestApprovalFunction.json")
    payload.update(taskToken=TOKEN, answerUrl=BASE, enteredTime="2026-03-14T03:15:00.000Z")
    payload.update(overrides)
    return payload


def test_the_request_publishes_two_signed_links_and_no_raw_token() -> None:
    sns = FakeSns()
    result = app.publish_request(approval_payload(), KEY, sns, now=0)

    ((published,),) = [sns.published]
    message = json.loads(published["Message"])
    assert published["MessageStructure"] == "json"
    assert published["Subject"] == WHAT
    email = message["email"]
    found = {}
    for link in [w for w in email.split() if w.startswith(BASE)]:
        fields = links.parse(urlsplit(link).query)
        found[fields["action"]] = links.verify(fields, NOW, Key())
    assert set(found) == {"approve", "reject"}
    assert {link.expires for link in found.values()} == {int(NOW) + 900}  # entered + timeout
    assert email.replace(urlencode({"token": TOKEN}), "").count(TOKEN) == 0
    assert "Task token" not in email and "SendTaskSuccess" not in email
    assert message["default"] == email
    assert TOKEN not in json.dumps(result) and "sig" not in json.dumps(result)


def test_the_sms_is_sms_sized_and_points_to_the_email() -> None:
    sns = FakeSns()
    app.publish_request(approval_payload(), KEY, sns, now=0)
    sms = json.loads(sns.published[0]["Message"])["sms"]
    assert sms == "opsflow: Approve failover us-east-2 -> us-east-1? See the e-mail to answer."

    long = approval_payload()
    long["notice"]["message"]["sms"] = "x" * 300
    app.publish_request(long, KEY, sns, now=0)
    sms = json.loads(sns.published[1]["Message"])["sms"]
    assert len(sms) <= 140 and sms.endswith("See the e-mail to answer.")


def test_without_entered_time_the_links_expire_from_now() -> None:
    sns = FakeSns()
    payload = approval_payload()
    del payload["enteredTime"]
    app.publish_request(payload, KEY, sns, now=NOW)
    link = next(w for w in json.loads(sns.published[0]["Message"])["email"].split()
                if w.startswith(BASE))
    assert parse_qs(urlsplit(link).query)["expires"] == [str(int(NOW) + 900)]


@pytest.mark.parametrize(
    "change",
    [{"answerUrl": "http://insecure.example/"}, {"taskToken": ""}, {"notice": "text"},
     {"timeoutSeconds": 0}, {"enteredTime": "yesterday"}],
)
def test_a_bad_request_payload_is_refused(change: dict[str, Any]) -> None:
    sns = FakeSns()
    with pytest.raises(InvalidEvent):
        app.publish_request(approval_payload(**change), KEY, sns, now=NOW)
    assert sns.published == []


# ------------------------------------------------------------------------- the key
class FakeSecrets:
    def __init__(self, value: str) -> None:
        self.value = value
        self.asked: list[str] = []

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs["SecretId"])
        return {"SecretString": self.value, "Name": kwargs["SecretId"]}


def test_the_key_is_read_from_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:1:secret:key-abcdef"
    monkeypatch.setenv(app.SECRET_ENV, arn)
    secrets = FakeSecrets("one")
    assert app.signing_key(secrets) == b"one"
    assert secrets.asked == [arn]


def test_no_secret_configured_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(app.SECRET_ENV, raising=False)
    with pytest.raises(InvalidEvent, match=app.SECRET_ENV):
        app.signing_key(FakeSecrets("x"))
