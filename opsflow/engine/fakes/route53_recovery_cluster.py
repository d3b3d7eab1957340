"""Route 53 Application Recovery Controller routing controls: the cluster data plane (botocore
``route53-recovery-cluster``) for a region-failover runbook.

moto has neither ARC API. This fake keeps what the data plane serves: clusters, each reachable
at its regional endpoints (ARC gives a cluster five, in five Regions), the routing controls of
their control panels with their states (``On``/``Off``), and the panels' assertion safety rules
(at least ``threshold`` of a set of routing controls ``On``), which an update may not break
unless it names the rule in ``SafetyRulesToOverride``.

The control plane (``route53-recovery-control-config``: creating clusters, panels, controls and
rules) is not emulated: a world sets them up with :meth:`add_cluster`, :meth:`add_routing_control`
and :meth:`add_assertion_rule`, as a deploy would before any incident.

A request is answered by the endpoint of the client's Region. A Region with no endpoint of the
cluster fails before any request is sent, with botocore's ``EndpointConnectionError``, as a
client pointed at an endpoint that does not exist does; so does an endpoint marked unreachable
(:meth:`set_unreachable`, a Region outage). Every reachable endpoint serves the same, strongly
consistent state, as ARC's cluster does.

Parameters are validated against botocore's input shape and the enumerations it leaves to the
service (``ValidationException``). An update that would break a safety rule fails with
``ValidationException`` naming the rule: the API reference names no dedicated error for it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import EndpointConnectionError
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from opsflow.engine import models
from opsflow.engine.errors import AwsError
from opsflow.engine.fakes import page

SERVICE_NAME = "route53-recovery-cluster"
"""The botocore service name this fake answers for (the key in ``Boundary.fakes``)."""
STATES = ("On", "Off")
MAX_UPDATE_ENTRIES = 25
"""Routing control states one UpdateRoutingControlStates call may set (the fake's bound; ARC
answers more with ``ServiceLimitExceededException``)."""
DEFAULT_PAGE_SIZE = 500

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@functools.cache
def service_model() -> ServiceModel:
    return models.session().get_service_model(SERVICE_NAME)


def _validation(message: str) -> AwsError:
    return AwsError("ValidationException", message, 400)


def _not_found(arn: str, kind: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"{kind} {arn} was not found", 404)


@dataclass
class _Control:
    arn: str
    name: str
    panel: str
    panel_name: str
    state: str


@dataclass
class _Rule:
    arn: str
    name: str
    panel: str
    controls: tuple[str, ...]
    threshold: int


@dataclass
class _Cluster:
    arn: str
    endpoints: dict[str, str]
    """Region → endpoint URL."""
    panels: dict[str, str] = field(default_factory=dict)
    """Control panel ARN → name."""


class RoutingControlFake:
    """ARC clusters, routing controls and safety rules; thread-safe."""

    def __init__(self, account: str = "123456789012") -> None:
        self.account = account
        self._lock = threading.RLock()
        self._clusters: dict[str, _Cluster] = {}
        self._controls: dict[str, _Control] = {}
        self._rules: dict[str, _Rule] = {}
        self._unreachable: set[str] = set()
        self.updates: list[dict[str, str]] = []
        """Every accepted update, in order: routing control ARN → new state, one dict a call."""
        self._operations: dict[str, Handler] = {
            "GetRoutingControlState": self._get,
            "ListRoutingControls": self._list,
            "UpdateRoutingControlState": self._update_one,
            "UpdateRoutingControlStates": self._update_many,
        }

    # ------------------------------------------------------------------ set-up (control plane)
    def _arn(self, *parts: str) -> str:
        digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]
        return f"arn:aws:route53-recovery-control::{self.account}:{parts[0]}/{digest}"

    def add_cluster(self, name: str, regions: list[str]) -> dict[str, Any]:
        """A cluster with one endpoint in each of ``regions`` (DescribeCluster's shape)."""
        with self._lock:
            arn = self._arn("cluster", name)
            endpoints = {
                region: f"https://host-{hashlib.sha256(f'{arn}/{region}'.encode()).hexdigest()[:8]}"
                f".{region}.route53-recovery-cluster.amazonaws.com/v1"
                for region in regions
            }
            self._clusters[arn] = _Cluster(arn, endpoints)
            return {"ClusterArn": arn, "Name": name, "Status": "DEPLOYED",
                    "ClusterEndpoints": [{"Region": r, "Endpoint": u} for r, u in endpoints.items()]}

    def add_control_panel(self, cluster_arn: str, name: str) -> str:
        with self._lock:
            cluster = self._clusters[cluster_arn]
            arn = self._arn("controlpanel", cluster_arn, name)
            cluster.panels[arn] = name
            return arn

    def add_routing_control(self, panel_arn: str, name: str, state: str = "Off") -> str:
        if state not in STATES:
            raise ValueError(f"state {state!r} is not one of {', '.join(STATES)}")
        with self._lock:
            panel_name = next(c.panels[panel_arn] for c in self._clusters.values()
                              if panel_arn in c.panels)
            arn = f"{panel_arn}/routingcontrol/{hashlib.sha256(name.encode()).hexdigest()[:16]}"
            self._controls[arn] = _Control(arn, name, panel_arn, panel_name, state)
            return arn

    def add_assertion_rule(
        self, panel_arn: str, name: str, controls: list[str], threshold: int
    ) -> str:
        """A safety rule: at least ``threshold`` of ``controls`` stay ``On`` (type ATLEAST)."""
        with self._lock:
            unknown = [c for c in controls if c not in self._controls]
            if unknown:
                raise ValueError(f"unknown routing controls {unknown}")
            arn = f"{panel_arn}/safetyrule/{hashlib.sha256(name.encode()).hexdigest()[:16]}"
            self._rules[arn] = _Rule(arn, name, panel_arn, tuple(controls), threshold)
            return arn

    def set_unreachable(self, regions: set[str] | frozenset[str]) -> None:
        """Endpoints in these Regions answer nothing (connection errors), e.g. a Region outage."""
        with self._lock:
            self._unreachable = set(regions)

    def states(self) -> dict[str, str]:
        """Routing control name → state, in the order they were created."""
        with self._lock:
            return {c.name: c.state for c in self._controls.values()}

    def observe(self) -> dict[tuple[str, str, str], Any]:
        """What the engine's before/after diff shows: each routing control's state."""
        return {(f"routing-control/{name}", "global", "state"): state
                for name, state in self.states().items()}

    # ------------------------------------------------------------------ the API (data plane)
    def handle(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self._lock:
            endpoints = {r: u for c in self._clusters.values() for r, u in c.endpoints.items()}
            if region not in endpoints or region in self._unreachable:
                url = endpoints.get(
                    region, f"https://route53-recovery-cluster.{region}.amazonaws.com/"
                )
                raise EndpointConnectionError(
                    endpoint_url=url,
                    error="no cluster endpoint answers in this Region"
                    if region not in endpoints else "the Region's endpoint is unreachable",
                )
            handler = self._operations.get(operation)
            if handler is None:
                raise AwsError("NotImplemented",
                               f"the local ARC fake does not implement {operation}", 501)
            params = copy.deepcopy(params)
            self._validate(operation, params)
            response = handler(params)
        response["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "opsflow-local"}
        return response

    def _validate(self, operation: str, params: dict[str, Any]) -> None:
        shape = service_model().operation_model(operation).input_shape
        assert shape is not None  # every operation of the service takes input
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise _validation(report.generate_report())

    def _control(self, arn: str) -> _Control:
        control = self._controls.get(arn)
        if control is None:
            raise _not_found(arn, "Routing control")
        return control

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        control = self._control(params["RoutingControlArn"])
        return {"RoutingControlArn": control.arn, "RoutingControlState": control.state,
                "RoutingControlName": control.name}

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        panel = params.get("ControlPanelArn")
        if panel is not None and all(panel not in c.panels for c in self._clusters.values()):
            raise _not_found(panel, "Control panel")
        items = [
            {"ControlPanelArn": c.panel, "ControlPanelName": c.panel_name,
             "RoutingControlArn": c.arn, "RoutingControlName": c.name,
             "RoutingControlState": c.state, "Owner": self.account}
            for c in self._controls.values()
            if panel is None or c.panel == panel
        ]
        bad = _validation("NextToken is not valid")
        return page("RoutingControls", items, params, DEFAULT_PAGE_SIZE, bad)

    def _update_one(self, params: dict[str, Any]) -> dict[str, Any]:
        entry = {"RoutingControlArn": params["RoutingControlArn"],
                 "RoutingControlState": params["RoutingControlState"]}
        return self._apply([entry], params.get("SafetyRulesToOverride") or [])

    def _update_many(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params["UpdateRoutingControlStateEntries"]
        if len(entries) > MAX_UPDATE_ENTRIES:
            raise AwsError("ServiceLimitExceededException",
                           f"at most {MAX_UPDATE_ENTRIES} routing control states a call", 402)
        return self._apply(entries, params.get("SafetyRulesToOverride") or [])

    def _apply(self, entries: list[dict[str, Any]], overrides: list[str]) -> dict[str, Any]:
        """All entries at once, or none: the states after the update are checked against every
        safety rule not overridden."""
        wanted: dict[str, str] = {}
        for entry in entries:
            state = entry["RoutingControlState"]
            if state not in STATES:
                raise _validation(f"RoutingControlState {state!r} is not one of On, Off")
            wanted[self._control(entry["RoutingControlArn"]).arn] = state
        for arn in overrides:
            if arn not in self._rules:
                raise _not_found(arn, "Safety rule")
        after = {arn: c.state for arn, c in self._controls.items()} | wanted
        for rule in self._rules.values():
            if rule.arn in overrides or not set(rule.controls) & set(wanted):
                continue
            on = sum(1 for c in rule.controls if after[c] == "On")
            if on < rule.threshold:
                raise _validation(
                    f"the update would break safety rule {rule.name} ({rule.arn}): at least "
                    f"{rule.threshold} of its routing controls must stay On, {on} would be"
                )
        for arn, state in wanted.items():
            self._controls[arn].state = state
        self.updates.append(dict(wanted))
        return {}
