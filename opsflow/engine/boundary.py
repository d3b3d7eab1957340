"""The emulated AWS API boundary: every botocore call of the process passes through here.

State-machine tasks (moto's interpreter calls AWS through boto3) and Lambda code alike, so one
mechanism gives: in-process Lambda invocation, fault injection, fakes for APIs moto lacks, the
world's time-dependent behaviour, and a record of the notifications sent.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.client
import botocore.endpoint
from botocore.exceptions import EndpointConnectionError
from botocore.response import StreamingBody

from opsflow.engine import models
from opsflow.engine.errors import AwsError

FAULT_RE = re.compile(
    r"^(?P<service>[a-z0-9-]+)(?:@(?P<region>[a-z]{2}(?:-[a-z]+)+-\d))?:(?P<operation>[A-Z][A-Za-z0-9]+)=(?P<code>[A-Za-z][A-Za-z0-9.]*)"
    r"(?:\*(?P<count>[1-9][0-9]*))?$"
)
HANG = "Hang"
"""A fault code that does not fail the call but stops the change from ever completing
(e.g. ``ec2:StopInstances=Hang``: the instance stays ``stopping``)."""

_STATUS = {
    "RequestLimitExceeded": 503,
    "Throttling": 400,
    "ThrottlingException": 400,
    "TooManyRequestsException": 429,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "UnauthorizedOperation": 403,
    "AccessDenied": 403,
    "AccessDeniedException": 400,
}


class FaultSpecError(ValueError):
    """A ``--fault`` specification that cannot be understood."""


@dataclass
class Fault:
    service: str
    operation: str
    code: str
    count: int | None
    """Fail this many times, then succeed; ``None``: always."""
    region: str | None = None
    """Only calls to this region (``ec2@eu-west-1:DescribeVolumes=...``); ``None``: every region."""
    seen: int = 0

    @property
    def spec(self) -> str:
        tail = f"*{self.count}" if self.count is not None else ""
        where = f"@{self.region}" if self.region else ""
        return f"{self.service}{where}:{self.operation}={self.code}{tail}"

    def fires(self) -> bool:
        self.seen += 1
        return self.count is None or self.seen <= self.count


@functools.lru_cache(maxsize=1)
def _services() -> frozenset[str]:
    return frozenset(models.session().get_available_services())


@functools.lru_cache(maxsize=64)
def _operations(service: str) -> frozenset[str]:
    return frozenset(models.session().get_service_model(service).operation_names)


def parse_fault(spec: str) -> Fault:
    """``ec2:StopInstances=RequestLimitExceeded*2`` → a :class:`Fault` (checked against botocore)."""
    match = FAULT_RE.match(spec.strip())
    if not match:
        raise FaultSpecError(
            f"bad fault {spec!r}: expected SERVICE[@REGION]:Operation=ErrorCode[*N], "
            "e.g. ec2:StopInstances=RequestLimitExceeded*2"
        )
    service, operation = match.group("service"), match.group("operation")
    if service not in _services():
        raise FaultSpecError(f"bad fault {spec!r}: unknown service {service!r}")
    if operation not in _operations(service):
        raise FaultSpecError(f"bad fault {spec!r}: {service} has no operation {operation!r}")
    count = match.group("count")
    return Fault(
        service, operation, match.group("code"), int(count) if count else None, match.group("region")
    )


LambdaHandler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Notification:
    target: str
    subject: str
    message: str
    sms: str


@dataclass
class Boundary:
    """What the patched ``_make_api_call`` consults. One per local engine."""

    faults: list[Fault] = field(default_factory=list)
    lambdas: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    """Function name → callable(payload) returning the handler's result (raises on error)."""
    fakes: dict[str, Any] = field(default_factory=dict)
    """botocore service name → fake with ``handle(operation, params, region)``."""
    before_call: list[Callable[[str, str, dict[str, Any]], None]] = field(default_factory=list)
    after_call: list[Callable[[str, str, dict[str, Any], Any], None]] = field(default_factory=list)
    overrides: dict[tuple[str, str], Callable[[dict[str, Any], str], Any]] = field(
        default_factory=dict
    )
    """(service, operation) → handler that may answer instead of the emulation (None: pass)."""
    notifications: list[Notification] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    on_call: list[Callable[[str, str, str, str | None, dict[str, Any], Any, str | None], None]] = (
        field(default_factory=list)
    )
    """Told of every recorded call once it has ended: service, operation, region, principal,
    params, result (None on error) and error code (None on success)."""
    hangs: set[tuple[str, str]] = field(default_factory=set)
    authorizer: Any = None
    """:class:`opsflow.engine.iam.enforce.Authorizer`, or None for no IAM enforcement."""
    roles: dict[str, str] = field(default_factory=dict)
    """Function name → the role ARN its handler runs as."""
    unreachable: set[str] = field(default_factory=set)
    """Regions whose every API endpoint is down (a Region outage): each attempt of a call to
    them fails with a connection error, below the SDK's retries."""
    server_errors: dict[str, int] = field(default_factory=dict)
    """Regions of ``unreachable`` whose endpoints answer with this HTTP status (a 5xx) instead of
    refusing connections: the outage as a service that is up but failing."""
    unreachable_services: set[str] = field(default_factory=set)
    """Services whose API does not answer anywhere (e.g. ``route53``: its control plane)."""
    engine_errors: list[str] = field(default_factory=list)
    """Defects of the engine itself met during a run; the run reports them as an engine error."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, service: str, operation: str, region: str | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.service == service
                    and fault.operation == operation
                    and fault.region in (None, region)
                    and fault.fires()
                ):
                    return fault
        return None


_active: Boundary | None = None


def active() -> bool:
    """Whether an engine's boundary routes this process's botocore calls (:func:`activate`)."""
    return _active is not None
_local = threading.local()


class bypass:
    """Calls made by this thread inside ``with bypass():`` skip faults, hooks and records (fakes
    and in-process Lambdas still answer): the engine building or observing the account must not
    trip the faults meant for the runbook."""

    def __enter__(self) -> None:
        _local.bypass = True

    def __exit__(self, *exc: Any) -> None:
        _local.bypass = False
_original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
_original_get_response = botocore.endpoint.Endpoint._get_response  # type: ignore[attr-defined]
_patch_lock = threading.Lock()


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}


def _error(code: str, message: str, status: int) -> tuple[_Http, dict[str, Any]]:
    return _Http(status), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "opsflow-local"},
    }


def _lambda_response(boundary: Boundary, params: dict[str, Any]) -> dict[str, Any]:
    name = str(params.get("FunctionName", ""))
    short = name.split(":function:")[-1].split(":")[0]
    if short not in boundary.lambdas:
        raise AwsError("ResourceNotFoundException", f"Function not found: {name}", 404)
    raw = params.get("Payload") or b"{}"
    if hasattr(raw, "read"):
        raw = raw.read()
    payload = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    headers: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    caller = getattr(_local, "principal", None)
    _local.principal = boundary.roles.get(short)
    try:
        result = boundary.lambdas[short](payload)
        body = json.dumps(result).encode()
    except Exception as exc:  # the Lambda runtime reports any exception the same way
        body = json.dumps(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__)[-3:],
            }
        ).encode()
        headers["FunctionError"] = "Unhandled"
    finally:
        _local.principal = caller
    headers["Payload"] = StreamingBody(io.BytesIO(body), len(body))
    headers["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "opsflow-local"}
    return headers


def published_texts(params: dict[str, Any]) -> tuple[str, str]:
    """What an SNS ``Publish`` delivers by e-mail and by SMS: the message, or with
    ``MessageStructure=json`` each protocol's entry (``default`` for a protocol not named)."""
    message = str(params.get("Message", ""))
    sms = message
    if params.get("MessageStructure") == "json":
        try:
            structure = json.loads(message)
            message = structure.get("email") or structure.get("default", "")
            sms = structure.get("sms") or structure.get("default", "")
        except ValueError:
            pass
    return message, sms


def _record_publish(boundary: Boundary, params: dict[str, Any]) -> None:
    target = params.get("TopicArn") or params.get("TargetArn") or params.get("PhoneNumber") or ""
    message, sms = published_texts(params)
    with boundary.lock:
        boundary.notifications.append(
            Notification(target=target, subject=str(params.get("Subject", "")), message=message, sms=sms)
        )


def principal_of(client: Any) -> str | None:
    """The IAM role a call runs as: the state machine's role for its tasks (set on the clients
    moto's interpreter creates with the execution's credentials), else the function's role while
    an in-process Lambda handler runs, else None (the engine or a test acting as the operator)."""
    return getattr(client, PRINCIPAL_ATTRIBUTE, None) or getattr(_local, "principal", None)


PRINCIPAL_ATTRIBUTE = "_opsflow_principal"


@contextlib.contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """Calls made in the block run as ``principal`` (an AWS service acting with a role the
    stack gives it, e.g. Lambda sending a failed event to a function's destination)."""
    caller = getattr(_local, "principal", None)
    _local.principal = principal
    try:
        yield
    finally:
        _local.principal = caller


def _raise(client: Any, operation_name: str, error: tuple[_Http, dict[str, Any]]) -> None:
    http, parsed = error
    error_class = client.exceptions.from_code(parsed["Error"]["Code"])
    raise error_class(parsed, operation_name)


def _tell(
    boundary: Boundary, client: Any, operation: str, params: dict[str, Any], result: Any,
    error: str | None,
) -> None:
    for told in list(boundary.on_call):
        told(client.meta.service_model.service_name, operation, client.meta.region_name,
             principal_of(client), params, result, error)


def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
    """Above botocore's retries: records, hooks, IAM. The request then goes through botocore as
    usual (retries included), and :func:`_get_response` answers each attempt."""
    boundary = _active
    if boundary is None:
        return _original(self, operation_name, api_params)
    service = self.meta.service_model.service_name
    region = self.meta.region_name
    bypassed = getattr(_local, "bypass", False)
    if not bypassed:
        with boundary.lock:
            boundary.calls.append((service, operation_name, region))
        try:
            for hook in boundary.before_call:
                hook(service, operation_name, api_params)
        except AwsError as exc:
            _tell(boundary, self, operation_name, api_params, None, exc.code)
            _raise(self, operation_name, _error(exc.code, exc.message, exc.status))
        principal = principal_of(self)
        if principal is not None and boundary.authorizer is not None:
            try:
                denial = boundary.authorizer.authorize(
                    principal, self, operation_name, api_params, region
                )
            except Exception as exc:  # an engine defect: never let it pass as the runbook's
                with boundary.lock:
                    boundary.engine_errors.append(
                        f"IAM evaluation of {service}:{operation_name} failed: "
                        f"{type(exc).__name__}: {exc}"
                    )
                raise
            if denial is not None:
                _tell(boundary, self, operation_name, api_params, None, denial.code)
                _raise(self, operation_name, _error(denial.code, denial.message, denial.status))
    stack = getattr(_local, "requests", None)
    if stack is None:
        stack = _local.requests = []
    stack.append((service, operation_name, region, api_params, bypassed))
    try:
        result = _original(self, operation_name, api_params)
    except Exception as exc:
        if not bypassed:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            _tell(boundary, self, operation_name, api_params, None, str(code))
        raise
    finally:
        stack.pop()
    if not bypassed:
        _tell(boundary, self, operation_name, api_params, result, None)
        if service == "sns" and operation_name == "Publish":
            _record_publish(boundary, api_params)
        for after in boundary.after_call:
            after(service, operation_name, api_params, result)
    return result


def _answer(boundary: Boundary, service: str, operation: str, region: str,
            params: dict[str, Any], bypassed: bool) -> tuple[_Http, dict[str, Any]] | None:
    """One attempt of a request, below botocore's retries: an injected fault, else the world's
    own answer (an override such as Route 53's change propagation), an in-process Lambda, a
    fake, or None for moto to answer."""
    if not bypassed:
        fault = boundary.fault_for(service, operation, region)
        if fault is not None and fault.code == HANG:
            with boundary.lock:
                boundary.hangs.add((service, operation))
        elif fault is not None:
            return _error(fault.code, f"Injected fault ({fault.spec})", _STATUS.get(fault.code, 400))
    try:
        override = None if bypassed else boundary.overrides.get((service, operation))
        answer = override(params, region) if override is not None else None
        if answer is not None:
            return _Http(200), answer
        if service == "lambda" and operation == "Invoke":
            return _Http(200), _lambda_response(boundary, params)
        fake = boundary.fakes.get(service)
        # A fake answers its whole service, or only the operations it names (``operations``:
        # the part of a service moto has that moto lacks).
        if fake is not None and operation in getattr(fake, "operations", (operation,)):
            result = fake.handle(operation, params, region)
            result.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RequestId": "opsflow-local"})
            return _Http(200), result
    except AwsError as exc:
        return _error(exc.code, exc.message, exc.status)
    return None


SERVER_ERRORS = {500: "InternalFailure", 503: "ServiceUnavailable"}
"""The error code a Region in outage answers with, by HTTP status (the codes AWS's query and
JSON services use; botocore's standard retry mode retries both)."""


def _get_response(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
    boundary = _active
    stack = getattr(_local, "requests", None)
    if boundary is not None and stack:
        service, operation, region, params, bypassed = stack[-1]
        if operation == operation_model.name and not bypassed and (
            region in boundary.unreachable or service in boundary.unreachable_services
        ):
            status = boundary.server_errors.get(region)
            if status is not None and service not in boundary.unreachable_services:
                return _error(SERVER_ERRORS.get(status, "InternalFailure"),
                              f"the service is unavailable in {region}", status), None
            return None, EndpointConnectionError(endpoint_url=request.url)
        if operation == operation_model.name:
            answered = _answer(boundary, service, operation, region, params, bypassed)
            if answered is not None:
                return answered, None
    return _original_get_response(self, request, operation_model, context)


def activate(boundary: Boundary) -> None:
    """Route every botocore call of the process through ``boundary``."""
    global _active
    with _patch_lock:
        _active = boundary
        botocore.client.BaseClient._make_api_call = _make_api_call  # type: ignore[attr-defined]
        botocore.endpoint.Endpoint._get_response = _get_response  # type: ignore[attr-defined]


def deactivate() -> None:
    global _active
    with _patch_lock:
        _active = None
        botocore.client.BaseClient._make_api_call = _original  # type: ignore[attr-defined]
        botocore.endpoint.Endpoint._get_response = _original_get_response  # type: ignore[attr-defined]
