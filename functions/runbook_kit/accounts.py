"""Which account the runbook runs in, and which account an ARN names (pure, no AWS calls).

A runbook acts only on its own account's resources. The account it runs in is named by its
execution's ARN (``$$.Execution.Id``, passed to every parse function) and, in a Lambda function,
by ``context.invoked_function_arn``; never by the event, which may say anything.
"""

from __future__ import annotations

import re
from typing import Any

from runbook_kit.errors import AccountUnknown

_ACCOUNT = re.compile(r"^\d{12}$")


def account_of(arn: Any) -> str:
    """The account an ARN names (``arn:partition:service:region:account:…``), else ``""``."""
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) >= 6 and parts[0] == "arn" and _ACCOUNT.match(parts[4]):
        return parts[4]
    return ""


def partition_of(arn: Any) -> str:
    """The partition an ARN names (``aws``, ``aws-cn``, ``aws-us-gov``, …), else ``""``.

    An account ID is unique only within its partition: ``arn:aws-cn:…:123456789012:…`` is not
    the resource of account 123456789012 in ``aws``."""
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) >= 6 and parts[0] == "arn" and parts[1]:
        return parts[1]
    return ""


def home_account(execution: Any, context: Any) -> str:
    """The account the runbook runs in: named by its execution's ARN and by the function's own
    ARN (``context.invoked_function_arn``). Raises ``AccountUnknown`` when neither names one and
    when they disagree, so no resource is ever judged against a guess."""
    by_execution = account_of(execution)
    by_function = account_of(getattr(context, "invoked_function_arn", None))
    if by_execution and by_function and by_execution != by_function:
        raise AccountUnknown(
            f"the execution runs in account {by_execution} but the function in {by_function}"
        )
    account = by_execution or by_function
    if not account:
        raise AccountUnknown("neither the execution nor the function ARN names an account")
    return account
