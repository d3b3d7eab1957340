"""Cures for known defects of moto's Step Functions interpreter, and virtual time.

Every cure patches moto internals, so moto's version is pinned in ``pyproject.toml`` and each
cure has its own test (``tests/unit/test_cures.py``): after an upgrade those tests show which
cures are still needed. :func:`install` is idempotent and process-wide.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.stepfunctions.parser.asl.component.common.retry import (
    jitter_strategy_decl,
    retrier_decl,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service,
    state_task_service_aws_sdk,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.eval.event import event_manager

from opsflow.engine import limits
from opsflow.engine.clock import VirtualClock

# ASL aws-sdk service names whose boto3 name differs.
SERVICE_NAMES = {
    "elasticloadbalancingv2": "elbv2",
    "servicequotas": "service-quotas",
    "cloudwatchlogs": "logs",
    "costexplorer": "ce",
}

# How AWS spells the service prefix of aws-sdk error names, where PascalCase of the ASL name
# is not it.
ERROR_PREFIXES = {
    "ec2": "Ec2",
    "ssm": "Ssm",
    "sns": "Sns",
    "sqs": "Sqs",
    "dynamodb": "DynamoDb",
    "sfn": "Sfn",
    "cloudwatch": "CloudWatch",
    "route53": "Route53",
    "elasticloadbalancingv2": "ElasticLoadBalancingV2",
    "servicequotas": "ServiceQuotas",
    "globalaccelerator": "GlobalAccelerator",
}

CLOCK = VirtualClock()
HISTORY_LISTENERS: list[Callable[[dict[str, Any]], None]] = []
"""Called with every execution history event as the interpreter records it."""
_installed = False
_lock = threading.Lock()


def error_prefix(service: str) -> str:
    """``ec2`` → ``Ec2``: the service prefix AWS uses in aws-sdk task error names."""
    lower = service.lower()
    return ERROR_PREFIXES.get(lower, lower[:1].upper() + lower[1:])


def iso_datetimes(value: Any) -> Any:
    """Replace datetimes (anywhere in a result) with ISO-8601 strings, as AWS returns them."""
    if isinstance(value, dict):
        return {k: iso_datetimes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [iso_datetimes(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _cure_service_names() -> None:
    state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES.update(SERVICE_NAMES)


def _cure_error_names() -> None:
    cls = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    cls._normalise_service_error_name = staticmethod(error_prefix)


def _cure_datetimes() -> None:
    cls = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    original = cls._eval_service_task

    def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        env.stack.append(iso_datetimes(env.stack.pop()))

    cls._eval_service_task = _eval_service_task


def _eni_groups() -> Any:
    """The security groups of one network interface, as AWS reports them."""

    def group_set(self: Any) -> Any:
        return self._group_set

    return group_set


def _cure_eni_groups() -> None:
    """moto reports an attached interface's groups as its own plus the instance's launch groups,
    so replacing an interface's groups (quarantine) never shows. AWS keeps groups per interface."""
    NetworkInterface.group_set = property(_eni_groups())


def _in_service_targets() -> Any:
    """An Auto Scaling group's target groups, kept as AWS keeps them."""

    def update_attached_target_groups(self: Any, group_name: str) -> None:
        group = self.autoscaling_groups[group_name]
        if not group.target_group_arns:
            return
        serving = {state.instance.id for state in group.active_instances()}
        resting = {state.instance.id for state in group.instance_states} - serving
        for target_group in self.elbv2_backend.describe_target_groups(
            target_group_arns=group.target_group_arns, load_balancer_arn=None, names=None
        ):
            target_group.register([{"Id": i, "Port": target_group.port} for i in sorted(serving)])
            # Scale-in deregisters what it terminates; moto terminates and leaves the target.
            gone = {
                i for i in target_group.targets
                if (instance := self.ec2_backend.get_instance_by_id(i)) is not None
                and instance.state in ("terminated", "shutting-down")
            }
            leaving = [{"Id": i} for i in sorted(resting | gone) if i in target_group.targets]
            if leaving:
                target_group.deregister(leaving)

    return update_attached_target_groups


def _cure_standby_targets() -> None:
    """moto registers every member of an Auto Scaling group with the group's target groups,
    Standby ones too, at every change of the group; AWS registers the members in service and
    deregisters an instance that enters Standby (EC2 Auto Scaling user guide, "Temporarily
    remove instances from your Auto Scaling group") and one that a scale-in terminates."""
    from moto.autoscaling.models import AutoScalingBackend

    AutoScalingBackend.update_attached_target_groups = _in_service_targets()  # type: ignore[method-assign]


def _cure_shutdown_behavior() -> None:
    """moto's ModifyInstanceAttribute ignores ``InstanceInitiatedShutdownBehavior`` and falls
    through to replacing the instance's security groups with none; EC2 sets the shutdown
    behaviour (``stop`` or ``terminate``)."""
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse._dot_value_instance_attribute_handler

    def handler(self: Any) -> bool:
        value = self._get_param("InstanceInitiatedShutdownBehavior.Value")
        if value is None:
            return bool(original(self))
        self.error_on_dryrun()
        self.ec2_backend.modify_instance_attribute(
            self._get_param("InstanceId"), "instance_initiated_shutdown_behavior", value
        )
        return True

    InstanceResponse._dot_value_instance_attribute_handler = handler  # type: ignore[method-assign]


def _virtual_time() -> None:
    def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        CLOCK.advance(wait_seconds)

    wait_function.WaitFunction._wait_interval = _wait_interval
    retrier_decl.time = SimpleNamespace(sleep=CLOCK.advance)
    # Full jitter draws uniformly in [0, interval]; locally it takes the expected value, so the
    # same run always reports the same virtual time.
    jitter_strategy_decl.random = SimpleNamespace(uniform=lambda low, high: (low + high) / 2)
    event_manager.EventManager._get_current_timestamp = staticmethod(CLOCK.now)
    # Wait Timestamp/TimestampPath compare with the virtual clock (as naive UTC, as moto parses).
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp

    def _get_wait_seconds(self: Any, env: Any) -> int:
        self.string.eval(env=env)
        text = env.stack.pop()
        when = self._from_timestamp_string(timestamp=text)
        if when is None:
            raise timestamp.FailureEventException(self._create_failure_event(env, text))
        now = CLOCK.now().replace(tzinfo=None)
        return int((when.replace(tzinfo=None) - now).total_seconds())

    timestamp.Timestamp._get_wait_seconds = _get_wait_seconds


def _virtual_sdk_backoff() -> None:
    """The SDK's retry backoff on the virtual clock. Between the attempts of a call it retries,
    botocore sleeps (``botocore.endpoint``'s ``time.sleep``): full jitter up to 1 s before a
    first retry of a throttled call, doubling at each attempt. A rehearsal paid that in real
    seconds and left it out of the run's time. While an engine's boundary is active, it now
    advances the virtual clock instead, by the jitter's expected value (as Step Functions'
    jitter above), so the same run reports the same time; outside an engine botocore sleeps
    and draws as before."""
    import random

    import botocore.endpoint
    from botocore.retries import standard

    from opsflow.engine import boundary

    def sleep(seconds: float) -> None:
        if boundary.active():
            CLOCK.advance(seconds)
        else:
            time.sleep(seconds)

    def jitter() -> float:
        return 0.5 if boundary.active() else random.random()

    init = standard.ExponentialBackoff.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if self._random is random.random:
            self._random = jitter

    __init__.original = init  # type: ignore[attr-defined]
    standard.ExponentialBackoff.__init__ = __init__  # type: ignore[method-assign]
    botocore.endpoint.time = SimpleNamespace(sleep=sleep)  # type: ignore[attr-defined]


PLACEHOLDER_SIGNATURE = "0" * 64
"""What stands for a SigV4 signature on a request to the emulation (:func:`_placeholder_signatures`)."""


def _placeholder_signatures() -> None:
    """Speed, not a defect: botocore signs every request with SigV4, a tenth of the time of a
    small call, and nothing in the emulation checks a signature: moto reads only the access key
    and the credential scope of the ``Authorization`` header. While an engine's boundary is
    active, a request gets every header signing gives it (``X-Amz-Date``, the session token,
    ``X-Amz-Content-SHA256`` where signing sets one, ``Authorization`` with the credential
    scope and the signed headers) and a placeholder for the signature, with awscrt's signer
    (botocore's default when awscrt is installed) and botocore's own alike. A client without
    credentials still raises ``NoCredentialsError``; S3's, presigned (query) and SigV4a signing
    are unchanged (each is its own class), and outside an engine botocore signs as before."""
    import botocore.auth as sigv4
    from botocore.compat import HAS_CRT

    from opsflow.engine import boundary

    def placeholder_for(cls: Any, write: Callable[[Any, Any], None]) -> None:
        original = cls.add_auth
        if hasattr(original, "original"):
            return

        def add_auth(self: Any, request: Any) -> None:
            if boundary.active() and type(self) is cls and self.credentials is not None:
                write(self, request)
            else:
                original(self, request)

        add_auth.original = original  # type: ignore[attr-defined]
        cls.add_auth = add_auth

    def botocores(signer: Any, request: Any) -> None:
        # SigV4Auth.add_auth without the canonical request and the HMACs
        request.context["timestamp"] = time.strftime(sigv4.SIGV4_TIMESTAMP, time.gmtime())
        signer._modify_request_before_signing(request)
        signer._inject_signature_to_request(request, PLACEHOLDER_SIGNATURE)

    placeholder_for(sigv4.SigV4Auth, botocores)
    if not HAS_CRT:
        return
    from botocore.crt import auth as crt

    def awscrts(signer: Any, request: Any) -> None:
        # the headers CrtSigV4Auth.add_auth has awscrt add, with a placeholder signature
        existing = signer._get_existing_sha256(request)
        signer._modify_request_before_signing(request)
        stamp = time.strftime(sigv4.SIGV4_TIMESTAMP, time.gmtime())
        request.headers["X-Amz-Date"] = stamp
        if signer.credentials.token:
            request.headers["X-Amz-Security-Token"] = signer.credentials.token
        if signer._is_streaming_checksum_payload(request):
            payload = sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER
        elif signer._should_sha256_sign_payload(request):
            payload = existing
        else:
            payload = sigv4.UNSIGNED_PAYLOAD
        if payload is not None:
            request.headers["x-amz-content-sha256"] = payload  # as awscrt spells it
        signed = ";".join(sorted(name.lower() for name in request.headers
                                 if signer._should_sign_header(name)))
        scope = f"{stamp[:8]}/{signer._region_name}/{signer._service_name}/aws4_request"
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={signer.credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={PLACEHOLDER_SIGNATURE}")

    placeholder_for(crt.CrtSigV4Auth, awscrts)


def _quiet() -> None:
    """moto's interpreter logs every caught error as a warning with its internals; the report
    says what happened, so keep those out of the terminal."""
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)


def _utc() -> None:
    """moto compares Wait ``Timestamp`` with naive local time: run the process in UTC."""
    os.environ["TZ"] = "UTC"
    if hasattr(time, "tzset"):
        time.tzset()


def _history_hook() -> None:
    original = event_manager.EventManager._publish_history_event

    def _publish_history_event(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        event = self._history_event_list[-1]
        for listener in list(HISTORY_LISTENERS):
            listener(event)

    event_manager.EventManager._publish_history_event = _publish_history_event


def flatten_event(node: Any, prefix: str = "", result: dict[str, Any] | None = None) -> dict[str, Any]:
    """EventBridge's view of an event: nested keys joined with dots, and arrays of objects
    flattened, so ``{"a": [{"b": 1}, {"b": 2}]}`` gives ``a.b = [1, 2]``."""
    result = {} if result is None else result
    if not isinstance(node, dict):
        return result
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            flatten_event(value, path, result)
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            for item in value:
                parts = flatten_event(item, path) if isinstance(item, dict) else {path: item}
                for sub, sub_value in parts.items():
                    bucket = result.setdefault(sub, [])
                    if not isinstance(bucket, list):
                        bucket = result[sub] = [bucket]
                    bucket.extend(sub_value if isinstance(sub_value, list) else [sub_value])
        else:
            result[path] = value
    return result


def _cure_event_arrays() -> None:
    """moto's pattern matcher does not look inside arrays of objects; EventBridge does (e.g.
    ``detail.affectedEntities.entityValue`` of AWS Health events)."""
    from moto.events.models import EventPattern

    EventPattern._flatten_dict = staticmethod(flatten_event)


class _Deadline(threading.Event):
    """The event a Task state waits on until its ``TimeoutSeconds``. It is set when the task
    ends, as before; :func:`expire_task_timeouts` makes a waiting task time out at once,
    advancing the virtual clock by its timeout (a local run never waits for real)."""

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return super().wait()
        with _deadline_lock:
            _deadlines.append(self)
        self.expired = False
        try:
            while not self.expired:
                if super().wait(0.05):
                    return True
            CLOCK.advance(timeout)
            return False
        finally:
            with _deadline_lock:
                _deadlines.remove(self)


_deadlines: list[_Deadline] = []
_deadline_lock = threading.Lock()


def expire_task_timeouts() -> int:
    """Make every Task state now waiting for its result time out (``States.Timeout``)."""
    with _deadline_lock:
        waiting = list(_deadlines)
    for deadline in waiting:
        deadline.expired = True
    return len(waiting)


def _virtual_task_timeouts() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state

    execute_state.threading = SimpleNamespace(Event=_Deadline)


def _cache_task_clients() -> None:
    """Speed and identity. The interpreter creates a new boto3 client for every task it runs
    (tens of milliseconds each), always with the execution's credentials (the state machine's
    role). Clients are thread-safe: keep one per service, region and role, and mark it with the
    role, so every call a task makes runs as that role (see ``boundary.principal_of``)."""
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    from opsflow.engine.boundary import PRINCIPAL_ATTRIBUTE

    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, str | None], Any] = {}
    client_lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role = getattr(state_credentials, "role_arn", None)
        key = (service, region, role)
        with client_lock:
            if key not in clients:
                client = original(region=region, service=service)
                setattr(client, PRINCIPAL_ATTRIBUTE, role)
                clients[key] = client
            return clients[key]

    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


LAMBDA_JAVA_EXCEPTIONS = "AWSLambdaException"
"""The name Step Functions gives a Lambda service error the Lambda API does not model (its
Java SDK's base exception), e.g. an AccessDeniedException from IAM."""


@functools.cache
def _lambda_exceptions() -> frozenset[str]:
    """The exceptions the Lambda API models."""
    from opsflow.engine import models

    model = models.session().get_service_model("lambda")
    return frozenset(shape for shape in model.shape_names
                     if model.shape_for(shape).metadata.get("exception"))


def lambda_error_name(error: Any) -> tuple[str, str]:
    """``Lambda.TooManyRequestsException`` for a throttled invoke, as Step Functions names
    Lambda service errors: the Lambda API's own exception name when it models it, else
    ``Lambda.AWSLambdaException``; the cause in the form Step Functions reports."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    modelled = _lambda_exceptions()
    name = code if code in modelled else LAMBDA_JAVA_EXCEPTIONS
    message = error.response.get("Error", {}).get("Message", "")
    cause = (f"{message} (Service: AWSLambda; Status Code: {status}; Error Code: {code}; "
             "Request ID: opsflow-local; Proxy: null)")
    return f"Lambda.{name}", cause


def _cure_lambda_error_names() -> None:
    """moto names every Lambda service error of a Lambda task ``Exception``; Step Functions names
    it after the Lambda exception (``Lambda.TooManyRequestsException``), so a Retry on it works."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda as m

    cls = m.StateTaskLambda
    original = cls._from_error

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            error, cause = lambda_error_name(ex)
            return m.FailureEvent(
                env=env,
                error_name=m.CustomErrorName(error),
                event_type=m.HistoryEventType.LambdaFunctionFailed,
                event_details=m.EventDetails(  # type: ignore[typeddict-item]  # moto types it total; it is always partial
                    lambdaFunctionFailedEventDetails=m.LambdaFunctionFailedEventDetails(
                        error=error, cause=cause
                    )
                ),
            )
        return original(self, env, ex)

    cls._from_error = _from_error


def _cache_json_paths() -> None:
    """Speed, not a defect: jsonpath-ng builds a new parser (and reads its tables) for every
    JSONPath the interpreter evaluates. A parsed path is only read, so keep one per text."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)


def _cache_action_names() -> None:
    """Speed, not a defect: moto lists every method of a response class (``inspect.getmembers``)
    on every request to find the action's handler, about 4 ms a call. A class's methods do not
    change while it serves, so list them once per class."""
    from moto.core import responses

    original = responses.method_names_from_class
    names: dict[type, frozenset[str]] = {}

    def method_names_from_class(clazz: Any) -> frozenset[str]:
        found = names.get(clazz)
        if found is None:
            found = names[clazz] = frozenset(original(clazz))
        return found

    responses.method_names_from_class = method_names_from_class


def _index_instances_by_id() -> None:
    """Speed, not a defect: moto finds an instance by copying every reservation and scanning
    every instance, for each call that names one (a quarantine of N instances makes O(N) such
    calls: quadratic). An index by ID answers instead; an entry is used only while its
    reservation still holds the instance, and a miss rebuilds the index from the reservations,
    so the answer (the instance, or InvalidInstanceID.NotFound) is moto's own."""
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models.instances import InstanceBackend

    def get_instance(self: Any, instance_id: str) -> Any:
        index = self.__dict__.get("_instances_by_id")
        found = index.get(instance_id) if index is not None else None
        if found is not None:
            reservation = self.reservations.get(found[0])
            if reservation is not None and any(i is found[1] for i in reservation.instances):
                return found[1]
        index = {
            instance.id: (reservation_id, instance)
            for reservation_id, reservation in list(self.reservations.items())
            for instance in reservation.instances
        }
        self.__dict__["_instances_by_id"] = index
        if instance_id in index:
            return index[instance_id][1]
        raise InvalidInstanceIdError(instance_id)

    get_instance.original = InstanceBackend.get_instance  # type: ignore[attr-defined]
    InstanceBackend.get_instance = get_instance


def _cache_attribute_keys() -> None:
    """Speed, not a defect: for every attribute of every object in a response, moto's
    serializer instantiates six alias providers to list the names the attribute may have on the
    Python object (about two thirds of describing many instances). The names depend only on the
    object's class, the attribute and its shape, so they are listed once for each."""
    from moto.core import serialize
    from moto.core.utils import MISSING, get_value

    original = serialize.AttributePicker.__call__

    def __call__(self: Any, context: Any) -> Any:
        cache = self.__dict__.get("_keys")
        if cache is None:
            cache = self.__dict__["_keys"] = {}
        obj = context.obj
        slot = (type(obj), context.key, context.shape)
        keys = cache.get(slot)
        if keys is None:
            keys = cache[slot] = tuple(self.get_possible_keys(context))
        value = None
        for possible_key in keys:
            found = get_value(obj, possible_key, MISSING)
            if found is not MISSING:
                value = found
                break
        if self.response_transformers:
            path = (context.key_path, context.key)
            transforms = self.__dict__.setdefault("_transforms", {})
            transform = transforms.get(path, MISSING)
            if transform is MISSING:
                key_path = f"{context.key_path}.{context.key}"
                transform = transforms[path] = next(
                    (t for p, t in self.response_transformers.items() if key_path.endswith(p)),
                    None,
                )
            if transform is not None:
                return transform(value)
        return value

    __call__.original = original  # type: ignore[attr-defined]
    serialize.AttributePicker.__call__ = __call__


class _Unusual(Exception):
    """A value the fast XML writer leaves to xmltodict (comments)."""


def fast_unparse(original: Callable[..., Any]) -> Callable[..., Any]:
    """xmltodict's ``unparse`` for what moto's query serializers ask of it (short empty
    elements, not pretty), written as strings instead of SAX events: the same text in a
    fraction of the time. Any other use, and any value with comments, goes to ``original``."""
    from xml.sax.saxutils import escape, quoteattr

    import xmltodict

    checked: set[str] = set()

    def name(value: Any, kind: str) -> str:
        if value not in checked:
            xmltodict._validate_name(value, kind)  # type: ignore[attr-defined]
            checked.add(value)
        return str(value)

    def text(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8", errors="replace")
        return str(value)

    def emit(key: Any, value: Any, out: list[str], root: bool = False) -> None:
        if key == "#comment":
            raise _Unusual
        tag = name(key, "element")
        if not hasattr(value, "__iter__") or isinstance(
            value, str | bytes | bytearray | memoryview | dict
        ):
            value = [value]
        for index, item in enumerate(value):
            if root and index > 0:
                raise ValueError("document with multiple roots")
            if item is None:
                item = {}
            elif not isinstance(item, dict | str):
                item = text(item)
            if isinstance(item, str):
                item = {"#text": item}
            cdata = None
            attrs: dict[str, str] = {}
            children = []
            for child_key, child in item.items():
                if child_key == "#text":
                    cdata = None if child is None else text(child)
                    continue
                if isinstance(child_key, str) and child_key.startswith("@"):
                    if child_key == "@xmlns" and isinstance(child, dict):
                        # Namespace declarations (EC2's root element has one).
                        for prefix, uri in child.items():
                            name(prefix, "attribute")
                            attrs["xmlns" + (f":{prefix}" if prefix else "")] = (
                                "" if uri is None else text(uri))
                        continue
                    attrs[name(child_key[1:], "attribute")] = (
                        "" if child is None else text(child)
                    )
                    continue
                if isinstance(child, list) and not child:
                    continue
                children.append((child_key, child))
            start = "<" + tag + "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
            mark = len(out)
            out.append(start)
            for child_key, child in children:
                emit(child_key, child, out)
            if cdata:
                out.append(escape(cdata))
            if len(out) == mark + 1:
                out[mark] = start + "/>"
            else:
                out[mark] = start + ">"
                out.append(f"</{tag}>")

    def unparse(input_dict: Any, output: Any = None, encoding: str = "utf-8",
                full_document: bool = True, short_empty_elements: bool = False,
                **kwargs: Any) -> Any:
        simple = (output is None and short_empty_elements and encoding == "utf-8"
                  and not kwargs.get("pretty") and set(kwargs) <= {"pretty"})
        if simple:
            out: list[str] = []
            if full_document:
                out.append('<?xml version="1.0" encoding="utf-8"?>\n')
            try:
                for index, (key, value) in enumerate(input_dict.items()):
                    if full_document and index:
                        raise ValueError("Document must have exactly one root.")
                    emit(key, value, out, root=full_document)
                if full_document and not input_dict:
                    raise ValueError("Document must have exactly one root.")
                return "".join(out)
            except _Unusual:
                pass
        return original(input_dict, output=output, encoding=encoding,
                        full_document=full_document, short_empty_elements=short_empty_elements,
                        **kwargs)

    unparse.original = original  # type: ignore[attr-defined]
    return unparse


def _fast_query_responses() -> None:
    """Speed, not a defect: moto writes every EC2 (and other query-protocol) response with
    xmltodict's SAX writer; :func:`fast_unparse` writes the same text directly."""
    from moto.core import serialize

    if not hasattr(serialize.xmltodict.unparse, "original"):
        serialize.xmltodict = SimpleNamespace(  # type: ignore[assignment]
            **{**vars(serialize.xmltodict), "unparse": fast_unparse(serialize.xmltodict.unparse)}
        )


def json_copy(value: Any, memo: Any = None) -> Any:
    """``copy.deepcopy`` for JSON data (dicts, lists, strings, numbers, booleans, null), several
    times faster; anything else, or a call with a memo, goes to ``copy.deepcopy``."""
    if memo is not None:
        return copy.deepcopy(value, memo)
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


_JSON_COPYING = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map",
    "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
)
"""The interpreter's modules that copy state data (inputs, results, outputs, and each value a
path selects) at every step."""


def _copy_state_data_as_json() -> None:
    """Speed, not a defect: the interpreter deep-copies a state's whole input, result and
    output at every step with ``copy.deepcopy``, a fifth of an execution's time. State data is
    JSON (Step Functions passes nothing else between states), which :func:`json_copy` copies
    with the same result."""
    import importlib

    shim = SimpleNamespace(**{**vars(copy), "deepcopy": json_copy})
    for name in _JSON_COPYING:
        module = importlib.import_module(name)
        if getattr(module, "copy", None) is copy:
            module.copy = shim  # type: ignore[attr-defined]


def _cache_user_agent_components() -> None:
    """Speed, not a defect: botocore writes every request's User-Agent from its components,
    sanitising each, character by character, twice a request (when the request is built and
    again when it is signed): a fourteenth of a rehearsal's botocore time. The sanitising is a
    pure function of the text, so its results are kept."""
    from botocore import useragent

    original = useragent.sanitize_user_agent_string_component
    if not hasattr(original, "cache_info"):
        useragent.sanitize_user_agent_string_component = functools.lru_cache(maxsize=4096)(
            original)


def _cache_timestamps() -> None:
    """Speed, not a defect: botocore parses every timestamp of a response with dateutil, a
    tenth of a census of 10,000 volumes. The emulated account's timestamps repeat (they come
    from the virtual clock), and the parse of a complete ISO 8601 date and time is a function
    of the text alone in this process (its time zone is fixed, :func:`_utc`), so those results
    are kept (a datetime is immutable). Any other value (epoch seconds, a partial text that
    dateutil completes from today's date) is parsed as before. Clients made from here on use
    it, as every engine's are."""
    import re

    from botocore import parsers

    original = parsers.DEFAULT_TIMESTAMP_PARSER
    if hasattr(original, "texts"):
        return
    texts = functools.lru_cache(maxsize=4096)(original)
    complete = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}").match

    def parse_timestamp(value: Any) -> Any:
        if type(value) is str and complete(value):
            return texts(value)
        return original(value)

    parse_timestamp.texts = texts  # type: ignore[attr-defined]
    parse_timestamp.original = original  # type: ignore[attr-defined]
    parsers.DEFAULT_TIMESTAMP_PARSER = parse_timestamp


def _cache_programs() -> None:
    """Speed, not a defect: moto parses the definition with ANTLR and builds its evaluation
    components (the program) at create and again at every start: about 0.5 s for a
    runbook-sized definition in a new process, 0.1 s even with ANTLR's caches warm. The program
    depends only on the text, so it is built once and kept pickled, in memory and on disk
    (:func:`opsflow.engine.cache.cached_blob`, keyed by the definition and moto's version);
    every execution unpickles its own fresh copy (a few ms), as moto's own build would give it.
    An invalid definition raises as before and is never stored. moto uses only the program of
    the pair it returns (the tree is for LocalStack's static analysers, which moto does not
    run), so the tree is not kept."""
    import pickle

    import moto
    from moto.stepfunctions.parser.asl.parse import asl_parser

    from opsflow.engine import cache

    original = asl_parser.AmazonStateLanguageParser.parse
    programs: dict[str, bytes] = {}
    lock = threading.Lock()

    def build(definition: str) -> bytes:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))  # a program is a deep graph of components
        try:
            return pickle.dumps(original(definition)[0], protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            sys.setrecursionlimit(limit)

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            blob = programs.get(definition)
        if blob is None:
            digest = cache.key("asl-program", moto.__version__, sys.version, definition)
            blob = cache.cached_blob("asl", digest, lambda: build(definition))
            with lock:
                programs[definition] = blob
        return pickle.loads(blob), None

    parse.forget = programs.clear  # type: ignore[attr-defined]
    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)


def _cure_task_failure_cause() -> None:
    """moto's ``SendTaskFailure`` handler reads ``error`` but never ``cause``, so a rejection's
    reason never reaches the Catch. AWS passes both (``Error`` and ``Cause`` in the caught
    output, ``error`` and ``cause`` in the TaskFailed event); the interpreter would too."""
    import inspect

    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        backend = self.stepfunction_backend
        kwargs = {"error": self._get_param("error")}
        # The static (non-executing) backend takes no cause; the interpreter's backend does.
        if "cause" in inspect.signature(backend.send_task_failure).parameters:
            kwargs["cause"] = self._get_param("cause")
        backend.send_task_failure(self._get_param("taskToken"), **kwargs)
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure


ATOMIC_LOCKS: dict[str, threading.RLock] = {}
"""One re-entrant lock per cured backend area (``ec2.security-groups``, ``ec2.tags``, …)."""


def _make_atomic(area: str, cls: type, *names: str) -> None:
    """Run the backend methods ``names`` of ``cls`` one at a time (per process), as AWS makes
    each of these calls atomic. moto checks, builds, then inserts with no lock, so concurrent
    calls (Map iterations, Parallel branches) can both pass the check. The locks are only held
    inside one backend call, which waits on no other thread."""
    lock = ATOMIC_LOCKS.setdefault(area, threading.RLock())

    def locked(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def atomic(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(*args, **kwargs)

        return atomic

    for name in names:
        setattr(cls, name, locked(getattr(cls, name)))


def _cure_security_group_races() -> None:
    """``CreateSecurityGroup``: moto looks the name up in the VPC, builds the group, then
    inserts it, so two concurrent creates of one name can both succeed; on AWS the second
    fails ``InvalidGroup.Duplicate``."""
    from moto.ec2.models.security_groups import SecurityGroupBackend

    _make_atomic("ec2.security-groups", SecurityGroupBackend, "create_security_group")


def _fast_tags_by_id() -> None:
    """Speed, not a defect: moto answers ``describe_tags`` (behind every instance, volume and
    group it serialises, and every DescribeTags) by matching regexes against every tag of the
    account, so describing N resources costs N times all tags. A filter on exact resource IDs
    is answered from those resources' rows of the tag table alone: with no other filter
    directly, else by moto's own matching of the other filters (key, value, type) on those
    rows; the same answer in the same order."""
    from moto.ec2.models.tags import EC2_PREFIX_TO_RESOURCE, TagBackend, get_prefix

    original = TagBackend.describe_tags

    def describe_tags(self: Any, filters: dict[str, list[str]] | None = None) -> Any:
        ids = (filters or {}).get("resource-id")
        if not filters or not ids or any(c in i for i in ids for c in "*?[\\"):
            return original(self, filters)
        wanted = set(ids)
        order = ids if len(ids) == 1 else [r for r in list(self.tags) if r in wanted]
        if set(filters) != {"resource-id"}:
            rows = {rid: self.tags[rid] for rid in order if rid in self.tags}
            narrowed = SimpleNamespace(VALID_TAG_FILTERS=self.VALID_TAG_FILTERS, tags=rows)
            return original(narrowed, filters)  # type: ignore[arg-type]
        return [
            {"resource_id": rid, "key": key, "value": value,
             "resource_type": EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")}
            for rid in order
            for key, value in list(self.tags.get(rid, {}).items())
        ]

    TagBackend.describe_tags = describe_tags


def _cure_tag_races() -> None:
    """EC2 tags: ``describe_tags`` (also behind every DescribeInstances, DescribeVolumes, tag
    filter, …) iterates each resource's live tag dict, so a concurrent ``CreateTags`` on any
    resource raises ``dictionary changed size during iteration``; the 50-tag limit is also
    checked before inserting. AWS serves both consistently."""
    from moto.ec2.models.tags import TagBackend

    _make_atomic(
        "ec2.tags", TagBackend, "create_tags", "delete_tags", "delete_tag_keys", "describe_tags"
    )


def _cure_dynamodb_write_races() -> None:
    """DynamoDB writes: moto reads the current item, parses and evaluates the condition, then
    stores, so two concurrent ``PutItem`` with ``attribute_not_exists`` (the dedupe record)
    can both succeed; AWS evaluates the condition and writes atomically per item."""
    from moto.dynamodb.models import DynamoDBBackend

    _make_atomic(
        "dynamodb.writes",
        DynamoDBBackend,
        "put_item",
        "update_item",
        "delete_item",
        "batch_write_item",
        "transact_write_items",
    )


def _cure_ssm_parameter_races() -> None:
    """``PutParameter``: moto reads the versions, checks ``Overwrite``, then appends, so two
    concurrent creates can both succeed and concurrent overwrites can share a version number;
    AWS gives the second create ``ParameterAlreadyExists`` and every write its own version."""
    from moto.ssm.models import SimpleSystemManagerBackend

    _make_atomic(
        "ssm.parameters",
        SimpleSystemManagerBackend,
        "put_parameter",
        "delete_parameter",
        "delete_parameters",
        "label_parameter_version",
    )


def _cure_metric_statistics_periods() -> None:
    """``GetMetricStatistics``: moto starts its periods at the first datapoint found, AWS at
    ``StartTime`` (rounded down to the minute). With daily periods from midnight, a point
    stamped 00:00 today joined yesterday's bin when the history started at noon, and today's
    value was lost. Re-bin moto's datapoints on the ``StartTime`` grid."""
    from moto.cloudwatch.models import CloudWatchBackend, Statistics

    original = CloudWatchBackend.get_metric_statistics

    @functools.wraps(original)
    def get_metric_statistics(
        self: Any,
        namespace: str,
        metric_name: str,
        start_time: datetime,
        end_time: datetime,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> list[Any]:
        start_time = start_time.replace(second=0, microsecond=0)
        found = original(
            self, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit
        )
        step = timedelta(seconds=period)
        bins: dict[datetime, Any] = {}
        for statistics in found:
            for datum in statistics.metric_data:
                at = start_time + ((datum.timestamp - start_time) // step) * step
                if at not in bins:
                    bins[at] = Statistics(stats, at)
                bins[at].metric_data.append(datum)
                bins[at].unit = datum.unit
        return [bins[at] for at in sorted(bins)]

    CloudWatchBackend.get_metric_statistics = get_metric_statistics


def _cure_closed_task_tokens() -> None:
    """moto accepts SendTaskSuccess/Failure again for a task token already answered, says
    InvalidToken for one whose execution has ended, and fails with a TypeError of its own for a
    timed-out one; AWS refuses all three with TaskTimedOut ("the task token has either expired
    or the task associated with the token has already been closed")."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser import models

    class TaskTimedOut(AWSError):
        TYPE = "TaskTimedOut"
        STATUS = 400

    def closed(backend: Any, token: Any) -> bool:
        for execution in backend._get_executions():
            worker = getattr(execution, "exec_worker", None)
            endpoint = worker.env.callback_pool_manager.get(token) if worker is not None else None
            if endpoint is None:
                continue
            return bool(
                execution.status != "RUNNING"
                or endpoint.get_outcome() is not None
                or endpoint.consumer_error is not None
            )
        return False

    def refusing_closed(method: Any) -> Any:
        @functools.wraps(method)
        def answer(self: Any, task_token: Any, *args: Any, **kwargs: Any) -> Any:
            if closed(self, task_token):
                raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
            return method(self, task_token, *args, **kwargs)

        return answer

    for name in ("send_task_success", "send_task_failure", "send_task_heartbeat"):
        method = getattr(models.StepFunctionsParserBackend, name)
        setattr(models.StepFunctionsParserBackend, name, refusing_closed(method))


def install() -> VirtualClock:
    """Apply every cure once per process and return the virtual clock."""
    global _installed
    with _lock:
        if not _installed:
            _utc()
            _cure_service_names()
            _cure_error_names()
            _cure_datetimes()
            _cure_eni_groups()
            _cure_standby_targets()
            _cure_shutdown_behavior()
            _quiet()
            _history_hook()
            _cache_programs()
            _cure_event_arrays()
            _virtual_task_timeouts()
            _cache_task_clients()
            _cure_lambda_error_names()
            _cure_closed_task_tokens()
            _cache_json_paths()
            _cache_action_names()
            _cache_attribute_keys()
            _index_instances_by_id()
            _fast_query_responses()
            _copy_state_data_as_json()
            _cache_user_agent_components()
            _cache_timestamps()
            _cure_task_failure_cause()
            _cure_security_group_races()
            _fast_tags_by_id()
            _cure_tag_races()
            _cure_dynamodb_write_races()
            _cure_ssm_parameter_races()
            _cure_metric_statistics_periods()
            _virtual_time()
            _virtual_sdk_backoff()
            _placeholder_signatures()
            limits.install(CLOCK)  # AWS limits, on the virtual time above
            _installed = True
    return CLOCK
