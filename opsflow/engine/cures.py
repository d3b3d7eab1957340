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
from datetime import date, datetime
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
    """Speed, not a defect: the interpreter creates a new boto3 client for every task it runs
    (tens of milliseconds each). Clients are thread-safe, so keep one per service and region."""
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    client_lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return original(region=region, service=service, state_credentials=state_credentials)
        with client_lock:
            if (service, region) not in clients:
                clients[(service, region)] = original(region=region, service=service)
            return clients[(service, region)]

    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


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
            _quiet()
            _history_hook()
            _cache_parse_trees()
            _cure_event_arrays()
            _virtual_task_timeouts()
            _cache_task_clients()
            _cache_json_paths()
            _virtual_time()
            _installed = True
    return CLOCK
