"""Signed approve/reject links. Pure: no AWS, no clock (``now`` is an argument).

A link carries a task token, the action (``approve`` or ``reject``), an expiry (epoch seconds,
the end of the approval's timeout), ``what`` is being approved (the request's subject, shown on
the confirmation page) and an HMAC-SHA256 signature over all four with the deployment's signing
key. Changing any of them, or signing with another key, breaks the signature; a reject link
cannot be turned into an approve link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

VERSION = "opsflow-approval/1"
"""Part of the signed message: a later link format cannot be confused with this one."""
ACTIONS = ("approve", "reject")
FIELDS = ("action", "expires", "what", "token", "sig")
MAX_TOKEN = 2048
"""Step Functions: a task token is at most 2048 characters."""
MAX_WHAT = 200


class BadLink(Exception):
    """A link that is incomplete, altered, expired or not signed with this deployment's key.
    The message is short and safe to show on the 403 page."""


@dataclass(frozen=True)
class Link:
    action: str
    expires: int
    what: str
    token: str


def signature(key: bytes, link: Link) -> str:
    """The link's HMAC-SHA256 (base64url, no padding) over an unambiguous encoding of its fields."""
    message = json.dumps(
        [VERSION, link.action, link.expires, link.what, link.token],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(key: bytes, link: Link) -> dict[str, str]:
    """The link's fields, signature included, as query or form parameters."""
    if link.action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {link.action!r}")
    if not link.token or len(link.token) > MAX_TOKEN:
        raise ValueError("the task token must have 1 to 2048 characters")
    link = Link(link.action, link.expires, link.what[:MAX_WHAT], link.token)
    return {
        "action": link.action,
        "expires": str(link.expires),
        "what": link.what,
        "token": link.token,
        "sig": signature(key, link),
    }


def url(base: str, fields: Mapping[str, str]) -> str:
    """``base`` (the function's URL) with the signed fields as its query string."""
    return base.rstrip("/") + "/?" + urlencode({name: fields[name] for name in FIELDS})


def parse(text: str) -> dict[str, str]:
    """Query string or form body → fields; a repeated field makes the link ambiguous."""
    try:
        parsed = parse_qs(text or "", keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    except ValueError:
        raise BadLink("This link is not valid.") from None
    if any(len(values) != 1 for values in parsed.values()):
        raise BadLink("This link is not valid.")
    return {name: values[0] for name, values in parsed.items()}


def verify(fields: Mapping[str, str], now: float, key: Callable[[], bytes]) -> Link:
    """The link ``fields`` describe, if it is complete, unexpired and signed with ``key``.

    The cheap checks come first; ``key`` (which reads the secret) is only called for a link
    that could be genuine.
    """
    missing = [name for name in FIELDS if not fields.get(name)]
    if missing:
        raise BadLink("This link is incomplete: open the whole link from the e-mail.")
    action, expires, token = fields["action"], fields["expires"], fields["token"]
    if action not in ACTIONS or not expires.isdigit() or len(token) > MAX_TOKEN:
        raise BadLink("This link is not valid.")
    if len(fields["what"]) > MAX_WHAT:
        raise BadLink("This link is not valid.")
    link = Link(action=action, expires=int(expires), what=fields["what"], token=token)
    if now >= link.expires:
        raise BadLink("This link has expired: the runbook is no longer waiting for an answer.")
    expected = signature(key(), link).encode("ascii")
    if not hmac.compare_digest(expected, fields["sig"].encode("utf-8")):
        raise BadLink("This link is not valid: it was altered, or not signed by this deployment.")
    return link
