"""AWS limits the runbooks can reach, enforced locally as AWS enforces them ("strict like AWS").

Two kinds, each limit in one place here and with one test in ``tests/unit/test_limits.py``:

* **Step Functions itself**, patched into moto's interpreter by :func:`install` (called once from
  :func:`opsflow.engine.cures.install`, after the virtual-time cures it builds on):

  - the execution's ``TimeoutSeconds`` elapses on the virtual clock: a Wait, a Retry backoff or a
    waiting Task that would outlast it ends at the deadline, the execution ends ``TIMED_OUT``
    with an ``ExecutionTimedOut`` event (error ``States.Timeout``) and records nothing after;
  - ``States.ALL`` catches and retries neither ``States.DataLimitExceeded`` nor
    ``States.Runtime``, and nothing retries or catches ``States.Runtime``;
  - 256 KiB (262,144 bytes of UTF-8 JSON) for a state's output, a task's result and a task's
    input after ``Parameters``: more fails with ``States.DataLimitExceeded``;
  - 25,000 history events: when event 25,000 would not be ``ExecutionSucceeded``, it is an
    ``ExecutionFailed`` event (``States.Runtime``) and the execution fails;

  and, in moto's DynamoDB backend, 400 KB per item counted by DynamoDB's rules.

* **API value limits**, checked at the API boundary by the hooks :func:`register` adds to a
  :class:`~opsflow.engine.boundary.Boundary` (``before_call``): each raises the service's own
  error as an :class:`~opsflow.engine.errors.AwsError`, which the boundary turns into the
  service's ``ClientError``. Times are the virtual clock's. CloudWatch PutMetricData time
  stamps, SNS Publish subject and size, SSM PutParameter value size.

* CloudFormation's parameter constraints (:func:`parameter_error`), which the local engine
  applies to every stack parameter value.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from opsflow.engine.clock import VirtualClock
from opsflow.engine.errors import AwsError

PAYLOAD_LIMIT = 262_144
"""Step Functions: at most 256 KiB of data as a UTF-8 encoded string, for a task's input and
result, a state's output and an execution's input and output."""
HISTORY_LIMIT = 25_000
"""Step Functions (Standard): events in one execution's history (a hard quota)."""
HISTORY_LIMIT_CAUSE = "The execution reached the maximum number of history events (25000)."
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
RUNTIME = "States.Runtime"
TIMEOUT = "States.Timeout"

_ATTRIBUTE = "_opsflow_limits"
"""Where an execution's :class:`_Execution` hangs: on its event manager, which the execution's
environment and every frame of it (Map iterations, Parallel branches, task frames) share."""
_local = threading.local()
"""The environment of the state this thread is evaluating (for waits that are not given it)."""


# ----------------------------------------------------------------------------- executions
class _Execution:
    """One execution's limits: its deadline on the virtual clock and its history.

    ``closed`` once a limit ended the execution: its history is sealed (nothing is recorded
    after the terminal event) and no error met while the interpreter unwinds replaces the
    limit's outcome.
    """

    def __init__(self, env: Any, clock: VirtualClock, timeout: int | None) -> None:
        self.env = env
        self.clock = clock
        self.deadline = None if timeout is None else clock.elapsed() + timeout
        self.lock = threading.RLock()
        self.sealed = False
        self.closed = False
        self.final_error: Any = None

    def remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self.clock.elapsed()

    def time_out(self) -> None:
        """The deadline is reached: end the execution ``TIMED_OUT`` now."""
        from moto.stepfunctions.parser.api import ExecutionTimedOutEventDetails, HistoryEventType
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        with self.lock:
            if self.closed or not self.env.is_running():
                return
            self.clock.advance(self.remaining())
            self.closed = True
            _original["add_event"](
                self.env.event_manager,
                context=self.env.event_history_context,
                event_type=HistoryEventType.ExecutionTimedOut,
                event_details=EventDetails(  # type: ignore[typeddict-item]  # moto types it total; it is always partial
                    executionTimedOutEventDetails=ExecutionTimedOutEventDetails(error=TIMEOUT)
                ),
            )
            self.sealed = True
            self.env.set_timed_out()
            _interrupt_callbacks(self.env)

    def exceed_history(self) -> None:
        """Event 25,000 would not end the execution successfully: it fails instead."""
        from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        details = ExecutionFailedEventDetails(error=RUNTIME, cause=HISTORY_LIMIT_CAUSE)
        self.closed = True
        self.final_error = details
        _original["add_event"](
            self.env.event_manager,
            context=self.env.event_history_context,
            event_type=HistoryEventType.ExecutionFailed,
            event_details=EventDetails(executionFailedEventDetails=details),  # type: ignore[typeddict-item]  # moto types it total; it is always partial
        )
        self.sealed = True
        self.env.set_error(details)
        _interrupt_callbacks(self.env)


_original: dict[str, Callable[..., Any]] = {}


def _execution_of(env: Any) -> _Execution | None:
    return getattr(getattr(env, "event_manager", None), _ATTRIBUTE, None)


def _interrupt_callbacks(env: Any) -> None:
    """Release the threads still waiting for a task token of the ended execution."""
    pool = getattr(env.callback_pool_manager, "_pool", {})
    for endpoint in list(pool.values()):
        endpoint.interrupt_all()


class _Evaluating:
    """``with _Evaluating(env):`` the thread's current environment is ``env``."""

    def __init__(self, env: Any) -> None:
        self.env = env

    def __enter__(self) -> None:
        self.previous = getattr(_local, "env", None)
        _local.env = self.env

    def __exit__(self, *exc: Any) -> None:
        _local.env = self.previous


def _current() -> _Execution | None:
    return _execution_of(getattr(_local, "env", None))


def _execution_timeout(clock: VirtualClock) -> None:
    """The execution's ``TimeoutSeconds`` on the virtual clock (moto waits for it in real time,
    so locally it never came). Every place the interpreter lets virtual time pass stops at the
    deadline: a Wait, a Retry backoff, a Task (or Map, Parallel) waiting for its work; a state
    about to start after the deadline does not start."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    from opsflow.engine import cures

    program_eval = Program.eval

    def eval_program(self: Any, env: Any) -> None:
        if env.is_frame():  # a Map iteration's program: its execution is already known
            return program_eval(self, env)
        timeout = self.timeout_seconds.timeout_seconds if self.timeout_seconds else None
        setattr(env.event_manager, _ATTRIBUTE, _Execution(env, clock, timeout))
        env.next_state_name = self.start_at.start_at_name
        try:  # in this thread: no real-time join, the deadline is virtual
            EvalComponent.eval(self, env)
        except Exception:  # as moto's worker thread would die: the program state tells the rest
            pass
        return None

    Program.eval = eval_program

    def eval_state(self: Any, env: Any) -> Any:
        execution = _execution_of(env)
        if execution is not None and execution.remaining() <= 0 and env.is_running():
            execution.time_out()
        return EvalComponent.eval(self, env)

    CommonStateField.eval = eval_state

    # The virtual one (cures), which takes float seconds; moto's own is typed int.
    wait_interval: Callable[..., None] = wait_function.WaitFunction._wait_interval

    def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        execution = _execution_of(env)
        if execution is None or wait_seconds < execution.remaining():
            return wait_interval(self, env, wait_seconds)
        execution.time_out()
        return None

    wait_function.WaitFunction._wait_interval = _wait_interval

    retrier_body = retrier_decl.RetrierDecl._eval_body

    def retrier_eval_body(self: Any, env: Any) -> None:
        with _Evaluating(env):
            retrier_body(self, env)

    def backoff(seconds: float) -> None:
        execution = _current()
        if execution is None or seconds < execution.remaining():
            clock.advance(seconds)
        else:
            execution.time_out()

    retrier_decl.RetrierDecl._eval_body = retrier_eval_body
    retrier_decl.time = SimpleNamespace(sleep=backoff)

    evaluate_with_timeout = execute_state.ExecutionState._evaluate_with_timeout

    def _evaluate_with_timeout(self: Any, env: Any) -> None:
        with _Evaluating(env):
            evaluate_with_timeout(self, env)

    execute_state.ExecutionState._evaluate_with_timeout = _evaluate_with_timeout

    class ExecutionDeadline(cures._Deadline):
        """A task's wait (see ``cures._Deadline``) that ends at the execution's deadline when
        that comes first: the execution times out, not the task."""

        def wait(self, timeout: float | None = None) -> bool:
            execution = _current()
            if timeout is None or execution is None or timeout < execution.remaining():
                return super().wait(timeout)
            remaining = execution.remaining()
            if remaining > 0 and super().wait(remaining):
                return True
            if self.is_set():
                return True
            execution.time_out()
            return False

    execute_state.threading = SimpleNamespace(Event=ExecutionDeadline)

    set_error = Environment.set_error

    def set_error_once(self: Any, error: Any) -> None:
        execution = _execution_of(self)
        if execution is not None and execution.closed and error is not execution.final_error:
            return  # the limit's outcome stands
        set_error(self, error)

    Environment.set_error = set_error_once


def _history_limit() -> None:
    """25,000 events per execution: when an execution has 24,999 events, event 25,000 ends it,
    successfully if it is ``ExecutionSucceeded``, else with ``States.Runtime``. A sealed history
    (the execution ended) records nothing more."""
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    add_event = EventManager.add_event
    _original["add_event"] = add_event

    def add_event_within_limits(self: Any, *args: Any, **kwargs: Any) -> int:
        execution: _Execution | None = getattr(self, _ATTRIBUTE, None)
        if execution is None:
            return int(add_event(self, *args, **kwargs))
        event_type = kwargs.get("event_type", args[1] if len(args) > 1 else None)
        with execution.lock:
            if execution.sealed:
                return len(self._history_event_list)
            if (
                len(self._history_event_list) >= HISTORY_LIMIT - 1
                and event_type != HistoryEventType.ExecutionSucceeded
            ):
                execution.exceed_history()
                return len(self._history_event_list)
            event_id = int(add_event(self, *args, **kwargs))
            if event_type in (
                HistoryEventType.ExecutionSucceeded,
                HistoryEventType.ExecutionFailed,
                HistoryEventType.ExecutionAborted,
                HistoryEventType.ExecutionTimedOut,
            ):
                execution.sealed = True
            return event_id

    EventManager.add_event = add_event_within_limits


# ----------------------------------------------------------------------------- error names
def _uncatchable_errors() -> None:
    """AWS: ``States.ALL`` "can't catch the ``States.DataLimitExceeded`` terminal error type and
    runtime error types"; a ``States.Runtime`` error "isn't retriable, and will always cause the
    execution to fail". moto's matcher lets ``States.ALL`` match every error. The same matcher
    serves Retry and Catch. A Catch or Retry naming ``States.DataLimitExceeded`` still matches it
    (AWS's restriction is on the wildcard)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import (
        ErrorEqualsDecl,
    )

    matches = ErrorEqualsDecl._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        name = getattr(env.stack[-1], "error_name", None)
        named = {getattr(error, "error_name", None) for error in self.error_names}
        if name == RUNTIME or (name == DATA_LIMIT_EXCEEDED and name not in named):
            env.stack.pop()
            env.stack.append(False)
            return
        matches(self, env)

    ErrorEqualsDecl._eval_body = _eval_body


# ----------------------------------------------------------------------------- payload size
def payload_size(value: Any) -> int:
    """Bytes of ``value`` as Step Functions counts them: its JSON as a UTF-8 string (each
    non-ASCII character its 2 to 4 UTF-8 bytes, not a 6-byte ``\\uXXXX`` escape)."""
    import json

    text = value if isinstance(value, str) else json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return len(text.encode("utf-8"))


def within_payload_limit(value: Any) -> bool:
    return payload_size(value) <= PAYLOAD_LIMIT


def _payload_limit() -> None:
    """256 KiB. moto checks a state's output and a task's result, but refuses exactly 262,144
    bytes (AWS allows "a maximum of 256 KiB"), measures a Lambda task's whole Invoke response
    instead of its payload, and never checks a task's input after ``Parameters``."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        state_task,
        state_task_lambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    for module in (state, state_task_lambda, state_task_service):
        module.is_within_size_quota = within_payload_limit  # type: ignore[attr-defined]

    lambda_task = state_task_lambda.StateTaskLambda
    verify_result = lambda_task._verify_size_quota

    def _verify_size_quota(self: Any, env: Any, value: Any) -> None:
        payload = value.get("Payload") if isinstance(value, dict) and "Payload" in value else value
        verify_result(self, env, payload)

    lambda_task._verify_size_quota = _verify_size_quota

    def checked(parameters_of: Callable[..., Any], task_input: Callable[[Any], Any]) -> Any:
        def _eval_parameters(self: Any, env: Any) -> Any:
            parameters = parameters_of(self, env)
            if not within_payload_limit(task_input(parameters)):
                error = StatesErrorNameType.StatesStatesDataLimitExceeded
                raise FailureEventException(
                    failure_event=FailureEvent(
                        env=env,
                        error_name=StatesErrorName(typ=error),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(  # type: ignore[typeddict-item]  # moto types it total; it is always partial
                            taskFailedEventDetails=TaskFailedEventDetails(
                                error=error.to_name(),
                                cause=f"The state/task '{self.name}' has an input with a size "
                                "exceeding the maximum number of bytes service limit.",
                            )
                        ),
                    )
                )
            return parameters

        return _eval_parameters

    state_task.StateTask._eval_parameters = checked(
        state_task.StateTask._eval_parameters, lambda parameters: parameters
    )
    lambda_task._eval_parameters = checked(
        lambda_task._eval_parameters, lambda parameters: parameters.get("Payload")
    )


_installed = False
_install_lock = threading.Lock()


def install(clock: VirtualClock) -> None:
    """Patch the Step Functions limits into moto's interpreter, and DynamoDB's item size into
    its backend (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _history_limit()
        _execution_timeout(clock)
        _uncatchable_errors()
        _payload_limit()
        _dynamodb_item_size()
        _installed = True


# ----------------------------------------------------------------------------- API values
Hook = Callable[[str, str, dict[str, Any]], None]


def cloudwatch_timestamps(clock: VirtualClock) -> Hook:
    """PutMetricData: "The time stamp can be up to two weeks in the past and up to two hours
    into the future" (CloudWatch concepts); other data points are refused with
    ``InvalidParameterValue`` (400)."""
    from botocore.utils import parse_to_aware_datetime

    def hook(service: str, operation: str, params: dict[str, Any]) -> None:
        if (service, operation) != ("cloudwatch", "PutMetricData"):
            return
        now = clock.now()
        for number, datum in enumerate(params.get("MetricData") or [], start=1):
            stamp = datum.get("Timestamp") if isinstance(datum, dict) else None
            if stamp is None:
                continue
            when = parse_to_aware_datetime(stamp)
            field = f"MetricData.member.{number}.Timestamp"
            if when < now - timedelta(weeks=2):
                raise AwsError(
                    "InvalidParameterValue",
                    f"The parameter {field} must specify a time within the past two weeks.",
                    400,
                )
            if when > now + timedelta(hours=2):
                raise AwsError(
                    "InvalidParameterValue",
                    f"The parameter {field} must specify a time no more than two hours in the "
                    "future.",
                    400,
                )

    return hook


SNS_MESSAGE_LIMIT = 262_144
"""SNS: "messages must be UTF-8 encoded strings and at most 256 KB in size (262,144 bytes, not
262,144 characters)"; message attributes count towards it."""
SNS_SUBJECT = re.compile(r"[!-~][ -~]{0,99}")
"""SNS: a subject is printable ASCII that begins with a letter, number or punctuation mark (not
a space), with no line breaks or control characters, and at most 100 characters."""


def sns_publish(service: str, operation: str, params: dict[str, Any]) -> None:
    """Publish: a subject SNS cannot take (see :data:`SNS_SUBJECT`), an empty message, or a
    message over 256 KB is refused with ``InvalidParameter`` (400) and SNS's message."""
    if (service, operation) != ("sns", "Publish"):
        return
    subject = params.get("Subject")
    if subject is not None and not SNS_SUBJECT.fullmatch(str(subject)):
        raise AwsError("InvalidParameter", "Invalid parameter: Subject", 400)
    message = params.get("Message")
    if not message:
        raise AwsError("InvalidParameter", "Invalid parameter: Empty message", 400)
    size = len(str(message).encode("utf-8"))
    for name, attribute in (params.get("MessageAttributes") or {}).items():
        size += len(name.encode("utf-8")) + len(str(attribute.get("DataType", "")).encode("utf-8"))
        value = attribute.get("StringValue", attribute.get("BinaryValue", b""))
        size += len(value if isinstance(value, bytes) else str(value).encode("utf-8"))
    if size > SNS_MESSAGE_LIMIT:
        raise AwsError("InvalidParameter", "Invalid parameter: Message too long", 400)


SSM_VALUE_LIMITS = {"Standard": 4096, "Advanced": 8192, "Intelligent-Tiering": 8192}
"""Parameter Store: a standard parameter's value holds up to 4 KB, an advanced one's 8 KB
(Intelligent-Tiering makes a parameter advanced when its value needs it); counted in
characters, as the error says."""
SSM_VALUE_MODEL_LIMIT = 32768
"""The PutParameter request model's own bound on ``Value`` (checked before the tier's)."""


def ssm_parameter_values(service: str, operation: str, params: dict[str, Any]) -> None:
    """PutParameter: ``ValidationException`` (400) for a value its tier cannot hold."""
    if (service, operation) != ("ssm", "PutParameter"):
        return
    value = str(params.get("Value") or "")
    if len(value) > SSM_VALUE_MODEL_LIMIT:
        raise AwsError(
            "ValidationException",
            "1 validation error detected: Value at 'value' failed to satisfy constraint: "
            f"Member must have length less than or equal to {SSM_VALUE_MODEL_LIMIT}",
            400,
        )
    tier = params.get("Tier") or "Standard"
    limit = SSM_VALUE_LIMITS.get(tier, SSM_VALUE_LIMITS["Standard"])
    if len(value) <= limit:
        return
    if limit == SSM_VALUE_LIMITS["Standard"]:
        message = (
            "Standard tier parameters support a maximum parameter value of 4096 characters. "
            "To create a larger parameter value, upgrade the parameter to use the "
            "advanced-parameter tier. For more information, see "
            "https://docs.aws.amazon.com/systems-manager/latest/userguide/"
            "parameter-store-advanced-parameters.html"
        )
    else:
        message = f"Advanced tier parameters support a maximum parameter value of {limit} characters."
    raise AwsError("ValidationException", message, 400)


DYNAMODB_ITEM_LIMIT = 400 * 1024
"""DynamoDB: "The maximum item size in DynamoDB is 400 KB, which includes both attribute name
binary length (UTF-8 length) and attribute value lengths (again binary length)"."""


def _number_size(text: Any) -> int:
    """A number: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1."""
    digits = str(text).lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def _blob_size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, bytearray)) else len(str(value).encode("utf-8"))


def attribute_size(value: dict[str, Any]) -> int:
    """One attribute value's size (``{"S": "text"}`` form) by DynamoDB's rules: a string or
    binary its bytes, a number as above, null and boolean 1 byte, a set the sum of its members,
    a list or map 3 bytes plus, per element, 1 byte and its size (and in a map its key's)."""
    (kind, content), = value.items()
    if kind == "S":
        return len(str(content).encode("utf-8"))
    if kind == "N":
        return _number_size(content)
    if kind == "B":
        return _blob_size(content)
    if kind == "SS":
        return sum(len(str(item).encode("utf-8")) for item in content)
    if kind == "NS":
        return sum(_number_size(item) for item in content)
    if kind == "BS":
        return sum(_blob_size(item) for item in content)
    if kind in ("NULL", "BOOL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(item) for item in content)
    if kind == "M":
        return 3 + sum(
            1 + len(key.encode("utf-8")) + attribute_size(item) for key, item in content.items()
        )
    raise ValueError(f"not a DynamoDB attribute value: {value!r}")


def _dynamodb_item_size() -> None:
    """400 KB per item. moto refuses items over 405,000 bytes of its own estimate (numbers by
    their text, no list or map overhead); count as DynamoDB does and refuse over 400 KB (409,600
    bytes), with moto's own errors: ``ValidationException`` "Item size has exceeded the maximum
    allowed size" (PutItem, BatchWriteItem, TransactWriteItems), "Item size to update has
    exceeded the maximum allowed size" (UpdateItem)."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    def size(name: str, value: Any) -> int:
        stored = value.to_regular_json() if isinstance(value, DynamoType) else {"S": str(value)}
        return len(name.encode("utf-8")) + attribute_size(stored)

    def __setitem__(self: Any, key: str, value: Any) -> None:
        total = sum(size(k, v) for k, v in self.items() if k != key) + size(key, value)
        if total > DYNAMODB_ITEM_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = __setitem__


def parameter_error(name: str, spec: dict[str, Any], value: Any) -> str | None:
    """CloudFormation's refusal of a stack parameter value, or None: a ``Number`` must be a
    number within ``MinValue``/``MaxValue``, any value (each item of a ``CommaDelimitedList``)
    one of ``AllowedValues`` and a full match of ``AllowedPattern``."""
    items = value if isinstance(value, list) else [value]
    for item in (str(v) for v in items):
        if spec.get("Type") == "Number":
            try:
                number = float(item)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return f"Parameter '{name}' must be a number"
            if "MinValue" in spec and number < float(spec["MinValue"]):
                return f"Parameter '{name}' must be a number not less than {spec['MinValue']}"
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                return f"Parameter '{name}' must be a number not greater than {spec['MaxValue']}"
        if "AllowedValues" in spec and item not in [str(v) for v in spec["AllowedValues"]]:
            return f"Parameter '{name}' must be one of AllowedValues"
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], item):
            return f"Parameter '{name}' must match pattern {spec['AllowedPattern']}"
    return None


def register(boundary: Any, clock: VirtualClock) -> None:
    """Check every API call through ``boundary`` against the value limits above."""
    boundary.before_call.extend([cloudwatch_timestamps(clock), sns_publish, ssm_parameter_values])
