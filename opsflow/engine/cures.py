"""Cures for known defects of moto's Step Functions interpreter, and virtual time.

Every cure patches moto internals, so moto's version is pinned in ``pyproject.toml`` and each
cure has its own test (``tests/unit/test_cures.py``): after an upgrade those tests show which
cures are still needed. :func:`install` is idempotent and process-wide.
"""

from __future__ import annotations

import functools
import logging
import os
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


def lambda_error_name(error: Any) -> tuple[str, str]:
    """``Lambda.TooManyRequestsException`` for a throttled invoke, as Step Functions names
    Lambda service errors: the Lambda API's own exception name when it models it, else
    ``Lambda.AWSLambdaException``; the cause in the form Step Functions reports."""
    import botocore.session

    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    model = botocore.session.get_session().get_service_model("lambda")
    modelled = {shape for shape in model.shape_names if model.shape_for(shape).metadata.get("exception")}
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


def _cache_parse_trees() -> None:
    """Speed, not a defect: moto parses the definition with ANTLR at create and again at every
    start (hundreds of ms for a runbook-sized definition). The parse tree depends only on the
    text and is only read afterwards, so keep it; evaluation components are still built fresh
    for every execution."""
    from antlr4 import CommonTokenStream, InputStream
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse import asl_parser

    trees: dict[str, Any] = {}
    tree_lock = threading.Lock()

    def parse(definition: str) -> tuple[Any, Any]:
        with tree_lock:
            tree = trees.get(definition)
        if tree is None:
            listener = asl_parser.SyntaxErrorListener()
            parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
            parser.removeErrorListeners()
            parser.addErrorListener(listener)
            tree = parser.state_machine()
            if listener.errors:
                raise asl_parser.ASLParserException(errors=listener.errors)
            with tree_lock:
                trees[definition] = tree
        return asl_parser.Preprocessor().visit(tree), tree

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
    group it serialises) by matching a regex against every tag of the account, so describing N
    instances costs N times all tags. A filter on exact resource IDs alone is answered from the
    per-resource tag table, in the same order moto would give."""
    from moto.ec2.models.tags import EC2_PREFIX_TO_RESOURCE, TagBackend, get_prefix

    original = TagBackend.describe_tags

    def describe_tags(self: Any, filters: dict[str, list[str]] | None = None) -> Any:
        ids = (filters or {}).get("resource-id")
        if not filters or set(filters) != {"resource-id"} or not ids or any(
            "*" in i or "?" in i or "\\" in i for i in ids
        ):
            return original(self, filters)
        wanted = set(ids)
        order = ids if len(ids) == 1 else [r for r in list(self.tags) if r in wanted]
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
            _cache_parse_trees()
            _cure_event_arrays()
            _virtual_task_timeouts()
            _cache_task_clients()
            _cure_lambda_error_names()
            _cure_closed_task_tokens()
            _cache_json_paths()
            _cure_task_failure_cause()
            _cure_security_group_races()
            _fast_tags_by_id()
            _cure_tag_races()
            _cure_dynamodb_write_races()
            _cure_ssm_parameter_races()
            _cure_metric_statistics_periods()
            _virtual_time()
            limits.install(CLOCK)  # AWS limits, on the virtual time above
            _installed = True
    return CLOCK
