"""Typed errors: the state machine's Retry and Catch route on these class names."""

from __future__ import annotations

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


class RunbookError(Exception):
    """Base of every error a runbook function raises on purpose."""


class InvalidEvent(RunbookError):
    """The input is not an event this runbook can act on; nothing was changed."""


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
