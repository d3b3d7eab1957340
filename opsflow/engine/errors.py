"""Errors raised at the emulated AWS API boundary."""

from __future__ import annotations


class AwsError(Exception):
    """An AWS API error as a service would return it: code, message and HTTP status.

    Raised by the fakes and by fault injection; the boundary turns it into a botocore
    ``ClientError`` so callers see exactly what a real service returns.
    """

    def __init__(self, code: str, message: str = "", status: int = 400) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code
        self.status = status
