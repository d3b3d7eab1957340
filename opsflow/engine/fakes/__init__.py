"""Small fakes for AWS APIs moto lacks, each named for the real API it stands in for and tested on
its own."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from opsflow.engine.errors import AwsError

TOKEN_PREFIX = "opsflow:"


def page(
    key: str,
    items: list[Any],
    params: dict[str, Any],
    default_size: int,
    bad_token: AwsError,
) -> dict[str, Any]:
    """One page of ``items`` under ``key``, with ``MaxResults``/``NextToken`` as AWS list calls
    take them; an unreadable or out-of-range token raises ``bad_token``."""
    size = params.get("MaxResults", default_size)
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            text = base64.b64decode(token, validate=True).decode()
            if not text.startswith(TOKEN_PREFIX):
                raise ValueError(text)
            start = int(text.removeprefix(TOKEN_PREFIX))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            start = -1
        if not 0 <= start <= len(items):
            raise bad_token
    end = start + size
    response: dict[str, Any] = {key: items[start:end]}
    if end < len(items):
        response["NextToken"] = base64.b64encode(f"{TOKEN_PREFIX}{end}".encode()).decode()
    return response
