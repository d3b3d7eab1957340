"""What every handler logs and traces, in one place: Powertools' Logger with the execution's ID as
correlation ID, and its Tracer (X-Ray) around the handler.

Every state-machine task passes the execution's ID (``$$.Execution.Id``) as ``executionId``, or
as ``execution`` where the task already needs it (workflows/runbook.py), so each log line of a
run carries ``correlation_id`` = the execution's ARN and can be found with one CloudWatch Logs
Insights query across every function. Handlers not started by a state machine name their own
correlation path (the Function URL's request ID, the schedule event's ID).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths

EXECUTION = "executionId || execution"
"""JMESPath of the execution's ID in a state-machine task's payload."""
FUNCTION_URL = correlation_paths.LAMBDA_FUNCTION_URL
SCHEDULE = correlation_paths.EVENT_BRIDGE
STATUS_CHANGE = "detail.executionArn"
"""The execution's ID in Step Functions' status-change event: the alert on a run that died logs
under the run's own correlation ID."""

tracer = Tracer()
"""One tracer for the process (Powertools shares its provider); the service name comes from
``POWERTOOLS_SERVICE_NAME``. Responses are not captured (``POWERTOOLS_TRACER_CAPTURE_RESPONSE``
in template.yaml): a plan can be far larger than an X-Ray segment."""

Handler = TypeVar("Handler", bound=Callable[..., Any])


def handler(logger: Logger, correlation: str = EXECUTION) -> Callable[[Handler], Handler]:
    """Decorate a Lambda handler: Lambda context and correlation ID on every log line of
    ``logger`` (the ID found at ``correlation`` in the event), an X-Ray subsegment for the
    handler with its error, if any, recorded."""

    def wrap(function: Handler) -> Handler:
        traced = tracer.capture_lambda_handler(function)
        logged = logger.inject_lambda_context(correlation_id_path=correlation)(traced)
        wrapped = functools.wraps(function)(logged)
        wrapped.correlation_id_path = correlation  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return wrap
