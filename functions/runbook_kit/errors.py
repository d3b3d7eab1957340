"""Typed errors: the state machine's Retry and Catch route on these class names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "PriorRequestNotComplete",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure"}
)


MESSAGE_LIMIT = 8000
"""Characters of an error's message kept: it becomes the run's cause (Step Functions keeps 32,768
characters of a cause, and the error travels in the state beside the plan); a message quoting
an event's value may be as long as the event."""


class RunbookError(Exception):
    """Base of every error a runbook function raises on purpose; its message is cut to
    :data:`MESSAGE_LIMIT` characters."""

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str) and len(args[0]) > MESSAGE_LIMIT:
            text = args[0]
            cut = len(text) - MESSAGE_LIMIT + 40
            args = (f"{text[: MESSAGE_LIMIT - 40]} ... ({cut:,} characters cut)",)
        super().__init__(*args)


class InvalidEvent(RunbookError):
    """The input is not an event this runbook can act on; nothing was changed."""


class AccountUnknown(RunbookError):
    """The runbook cannot tell which account it runs in, so it cannot tell its own resources."""


class Throttled(RunbookError):
    """An AWS API throttled the call; the state machine retries with backoff."""


class AccessDenied(RunbookError):
    """The function's role may not make a call; a person must fix IAM."""


class ResourceNotFound(RunbookError):
    """A resource named in the plan no longer exists."""


class AwsCallFailed(RunbookError):
    """Any other AWS error, with the service's code and message."""


def translate(error: ClientError, what: str) -> RunbookError:
    """Turn a botocore ``ClientError`` into the typed error the state machine routes on."""
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", "")
    text = f"{what}: {code}: {message}".rstrip(": ")
    if code in THROTTLING_CODES:
        return Throttled(text)
    if code in ACCESS_DENIED_CODES:
        return AccessDenied(text)
    if code.endswith(("NotFound", "NotFoundException")):
        return ResourceNotFound(text)
    return AwsCallFailed(text)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call an AWS API; a ``ClientError`` becomes the typed error the state machine routes on."""
    try:
        return fn(**kwargs)
    except ClientError as error:
        raise translate(error, what) from error


def require(payload: Any, *keys: str) -> None:
    """Refuse a payload that is not an object holding ``keys`` (``InvalidEvent``)."""
    if not isinstance(payload, dict):
        raise InvalidEvent(f"the payload must be a JSON object, got {type(payload).__name__}")
    missing = [key for key in keys if key not in payload]
    if missing:
        raise InvalidEvent(f"the payload lacks {', '.join(missing)}")
