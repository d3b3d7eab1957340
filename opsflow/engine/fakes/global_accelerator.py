"""Global Accelerator (botocore ``globalaccelerator``) for a region-failover runbook.

moto has no Global Accelerator. This fake keeps standard accelerators, their listeners and, per
listener, one endpoint group per Region whose traffic dial moves traffic between Regions.

The real API has a single endpoint, in us-west-2: ``globalaccelerator.<region>.amazonaws.com``
does not resolve for any other Region, so a client made for another Region fails before any
request is sent, with botocore's ``EndpointConnectionError`` naming that URL. This fake raises the
same exception (not a ``ClientError``: there is no service to answer with an error code).

An accelerator's ``Status`` is ``IN_PROGRESS`` for ``deploy_seconds`` of virtual time after any
change to it, its listeners or its endpoint groups (a traffic dial included), then
``DEPLOYED``; it is computed from the clock at every call, so the same inputs give the same run.
ARNs, DNS names and static IP addresses are derived from a counter and names, never random.

Request and response shapes are botocore's (``globalaccelerator`` service model): parameters are
validated against the input shape, and against the bounds and enumerations botocore leaves to the
service (``InvalidArgumentException``); timestamps are ``datetime`` objects as botocore parses
them. botocore fills a missing ``IdempotencyToken`` in the client call the boundary replaces, so
the fake fills it the same way; a token used again with the same parameters returns the resource
it created.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from botocore.exceptions import EndpointConnectionError
from botocore.model import ListShape, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

from opsflow.engine import models
from opsflow.engine.clock import VirtualClock
from opsflow.engine.errors import AwsError
from opsflow.engine.fakes import page

SERVICE_NAME = "globalaccelerator"
"""The botocore service name this fake answers for (the key in ``Boundary.fakes``)."""

API_REGION = "us-west-2"
"""The only Region whose Global Accelerator endpoint exists."""

HEALTH_STATES = ("INITIAL", "HEALTHY", "UNHEALTHY")
DEFAULT_WEIGHT = 128
DEFAULT_DIAL = 100.0
DEFAULT_HEALTH_CHECK_INTERVAL = 30
DEFAULT_THRESHOLD = 3
DEFAULT_PAGE_SIZE = 10
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")
_ARN_PREFIX = r"^arn:aws:globalaccelerator::\d{12}:accelerator/[A-Za-z0-9-]+"
_ACCELERATOR_ARN_RE = re.compile(_ARN_PREFIX + "$")
_LISTENER_ARN_RE = re.compile(_ARN_PREFIX + "/listener/[A-Za-z0-9]+$")
_ENDPOINT_GROUP_ARN_RE = re.compile(
    _ARN_PREFIX + "/listener/[A-Za-z0-9]+/endpoint-group/[A-Za-z0-9]+$"
)
_ELB_ARN_RE = re.compile(
    r"^arn:aws:elasticloadbalancing:(?P<region>[a-z0-9-]+):\d{12}:loadbalancer/"
)
_REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")

Handler = Callable[[dict[str, Any], datetime], dict[str, Any]]


@functools.cache
def service_model() -> ServiceModel:
    return models.session().get_service_model(SERVICE_NAME)


@functools.cache
def endpoint_regions() -> frozenset[str]:
    """The Regions an endpoint group can be in (botocore's list for the service)."""
    regions = models.session().get_available_regions(SERVICE_NAME)
    return frozenset(region for region in regions if _REGION_RE.match(region))


@dataclass
class _Accelerator:
    arn: str
    name: str
    ip_address_type: str
    enabled: bool
    dns_name: str
    dual_stack_dns_name: str
    ipv4: tuple[str, str]
    ipv6: tuple[str, str]
    tags: list[dict[str, str]]
    created: datetime
    modified: datetime
    deployed_at: datetime


@dataclass
class _Listener:
    arn: str
    accelerator: str
    port_ranges: list[dict[str, int]]
    protocol: str
    client_affinity: str


@dataclass
class _EndpointGroup:
    arn: str
    listener: str
    accelerator: str
    region: str
    endpoints: list[dict[str, Any]]
    dial: float
    health_check_port: int
    health_check_protocol: str
    health_check_path: str
    health_check_interval: int
    threshold: int
    port_overrides: list[dict[str, int]]


def _error(code: str, message: str) -> AwsError:
    return AwsError(code, message, 400)


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def _uuid_like(digest: bytes) -> str:
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


def _constraint_errors(value: Any, shape: Shape, path: str) -> list[str]:
    """Bounds (``max``) and enumerations of the model, which botocore's validator leaves to the
    service."""
    kind = shape.type_name
    maximum = shape.metadata.get("max")
    errors: list[str] = []
    if kind == "structure":
        for name, member in cast(StructureShape, shape).members.items():
            if name in value:
                errors += _constraint_errors(value[name], member, f"{path}.{name}".lstrip("."))
    elif kind == "list":
        if maximum is not None and len(value) > maximum:
            errors.append(f"{path} has {len(value)} items; at most {maximum} are allowed")
        for index, item in enumerate(value):
            errors += _constraint_errors(item, cast(ListShape, shape).member, f"{path}[{index}]")
    elif kind == "string":
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            errors.append(f"{path} {value!r} is not one of {', '.join(enum)}")
        if maximum is not None and len(value) > maximum:
            errors.append(f"{path} is longer than {maximum} characters")
    elif kind in ("integer", "long", "float", "double"):
        if maximum is not None and value > maximum:
            errors.append(f"{path} {value} is above the maximum {maximum}")
    return errors


class GlobalAcceleratorFake:
    """Standard accelerators, listeners and endpoint groups on a virtual clock.

    Plug in with ``Boundary(fakes={"globalaccelerator": fake})``; thread-safe (Step Functions
    Map iterations call it concurrently).
    """

    def __init__(
        self,
        clock: VirtualClock,
        account: str = "123456789012",
        deploy_seconds: float = 30,
    ) -> None:
        if deploy_seconds < 0:
            raise ValueError("deploy_seconds cannot be negative")
        self.clock = clock
        self.account = account
        self.deploy_seconds = float(deploy_seconds)
        self._lock = threading.RLock()
        self._accelerators: dict[str, _Accelerator] = {}
        self._listeners: dict[str, _Listener] = {}
        self._groups: dict[str, _EndpointGroup] = {}
        self._health: dict[str, str] = {}
        self._tokens: dict[tuple[str, str], tuple[str, str]] = {}
        self._generated_tokens = 0
        self._operations: dict[str, Handler] = {
            "CreateAccelerator": self._create_accelerator,
            "DescribeAccelerator": self._describe_accelerator_op,
            "ListAccelerators": self._list_accelerators,
            "UpdateAccelerator": self._update_accelerator,
            "CreateListener": self._create_listener,
            "DescribeListener": self._describe_listener_op,
            "ListListeners": self._list_listeners,
            "CreateEndpointGroup": self._create_endpoint_group,
            "DescribeEndpointGroup": self._describe_endpoint_group_op,
            "ListEndpointGroups": self._list_endpoint_groups,
            "UpdateEndpointGroup": self._update_endpoint_group,
            "ListTagsForResource": self._list_tags,
        }

    # ------------------------------------------------------------------ set-up and inspection
    def set_endpoint_health(self, endpoint_id: str, state: str) -> None:
        """The health state Global Accelerator reports for an endpoint, in every group holding
        it (``HEALTHY`` until set)."""
        if state not in HEALTH_STATES:
            raise ValueError(f"health state {state!r} is not one of {', '.join(HEALTH_STATES)}")
        with self._lock:
            known = {e["EndpointId"] for group in self._groups.values() for e in group.endpoints}
            if endpoint_id not in known:
                raise ValueError(f"no endpoint group holds the endpoint {endpoint_id!r}")
            self._health[endpoint_id] = state

    def endpoint_groups(self) -> list[dict[str, Any]]:
        """Every endpoint group, as the API describes it plus ``ListenerArn`` and
        ``AcceleratorArn``, in the order they were created."""
        with self._lock:
            return [
                {
                    **self._describe_group(group),
                    "ListenerArn": group.listener,
                    "AcceleratorArn": group.accelerator,
                }
                for group in self._groups.values()
            ]

    def accelerators(self) -> list[dict[str, Any]]:
        """Every accelerator as the API describes it now, in the order they were created."""
        with self._lock:
            now = self.clock.now()
            return [self._describe_accelerator(a, now) for a in self._accelerators.values()]

    # ------------------------------------------------------------------ the API
    def handle(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        if region != API_REGION:
            raise EndpointConnectionError(
                endpoint_url=f"https://globalaccelerator.{region}.amazonaws.com/",
                error=f"Global Accelerator's API has a single endpoint, in {API_REGION}",
            )
        handler = self._operations.get(operation)
        if handler is None:
            raise AwsError(
                "NotImplemented",
                f"the local Global Accelerator fake does not implement {operation} "
                f"(it implements {', '.join(sorted(self._operations))})",
                501,
            )
        params = copy.deepcopy(params)
        with self._lock:
            self._fill_token(operation, params)
            self._validate(operation, params)
            response = handler(params, self.clock.now())
        response["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "opsflow-local"}
        return response

    def _create_accelerator(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        known = self._known_token("CreateAccelerator", params)
        if known is not None:
            return {"Accelerator": self._describe_accelerator(self._accelerators[known], now)}
        name = params["Name"]
        if not _NAME_RE.match(name):
            raise _error(
                "InvalidArgumentException",
                f"Invalid Name {name!r}: up to 64 letters, digits, periods or hyphens, "
                "beginning and ending with a letter or digit.",
            )
        self._no_byoip(params)
        seed = f"{self.account}/accelerator/{len(self._accelerators)}/{name}"
        digest = _digest(seed)
        ips = _digest(f"{seed}/ip")
        dns = _digest(f"{seed}/dns").hex()[:16]
        accelerator = _Accelerator(
            arn=f"arn:aws:globalaccelerator::{self.account}:accelerator/{_uuid_like(digest)}",
            name=name,
            ip_address_type=params.get("IpAddressType", "IPV4"),
            enabled=bool(params.get("Enabled", True)),
            dns_name=f"a{dns}.awsglobalaccelerator.com",
            dual_stack_dns_name=f"a{dns}.dualstack.awsglobalaccelerator.com",
            ipv4=(
                f"75.2.{ips[0]}.{1 + ips[1] % 254}",
                f"99.83.{ips[2]}.{1 + ips[3] % 254}",
            ),
            ipv6=(
                f"2600:9000:a{ips[4] % 0x1000:03x}:{ips[5]:02x}{ips[6]:02x}::{ips[7]:x}",
                f"2600:9000:a{ips[8] % 0x1000:03x}:{ips[9]:02x}{ips[10]:02x}::{ips[11]:x}",
            ),
            tags=[{"Key": t["Key"], "Value": t["Value"]} for t in params.get("Tags", [])],
            created=now,
            modified=now,
            deployed_at=now,
        )
        self._accelerators[accelerator.arn] = accelerator
        self._remember_token("CreateAccelerator", params, accelerator.arn)
        self._changed(accelerator, now)
        return {"Accelerator": self._describe_accelerator(accelerator, now)}

    def _describe_accelerator_op(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        accelerator = self._accelerator(params["AcceleratorArn"])
        return {"Accelerator": self._describe_accelerator(accelerator, now)}

    def _list_accelerators(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        described = [self._describe_accelerator(a, now) for a in self._accelerators.values()]
        return self._page("Accelerators", described, params)

    def _update_accelerator(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        accelerator = self._accelerator(params["AcceleratorArn"])
        self._no_byoip(params)
        if "Name" in params:
            if not _NAME_RE.match(params["Name"]):
                raise _error("InvalidArgumentException", f"Invalid Name {params['Name']!r}.")
            accelerator.name = params["Name"]
        if "IpAddressType" in params:
            accelerator.ip_address_type = params["IpAddressType"]
        if "Enabled" in params:
            accelerator.enabled = bool(params["Enabled"])
        accelerator.modified = now
        self._changed(accelerator, now)
        return {"Accelerator": self._describe_accelerator(accelerator, now)}

    def _create_listener(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        accelerator = self._accelerator(params["AcceleratorArn"])
        known = self._known_token("CreateListener", params)
        if known is not None:
            return {"Listener": self._describe_listener(self._listeners[known])}
        for index, given in enumerate(params["PortRanges"]):
            if "FromPort" not in given or "ToPort" not in given:
                raise _error(
                    "InvalidPortRangeException",
                    f"PortRanges[{index}] needs both FromPort and ToPort.",
                )
        ranges = [{"FromPort": r["FromPort"], "ToPort": r["ToPort"]} for r in params["PortRanges"]]
        protocol = params["Protocol"]
        for index, port_range in enumerate(ranges):
            if port_range["FromPort"] > port_range["ToPort"]:
                raise _error(
                    "InvalidPortRangeException",
                    f"PortRanges[{index}]: FromPort {port_range['FromPort']} is above ToPort "
                    f"{port_range['ToPort']}.",
                )
        taken = [
            (r, listener.arn)
            for listener in self._listeners.values()
            if listener.accelerator == accelerator.arn and listener.protocol == protocol
            for r in listener.port_ranges
        ]
        for index, port_range in enumerate(ranges):
            others = taken + [(r, "this request") for r in ranges[:index]]
            low, high = port_range["FromPort"], port_range["ToPort"]
            for other, owner in others:
                if low <= other["ToPort"] and other["FromPort"] <= high:
                    raise _error(
                        "InvalidPortRangeException",
                        f"{protocol} ports {low}-{high} overlap ports "
                        f"{other['FromPort']}-{other['ToPort']} of {owner}.",
                    )
        count = sum(1 for li in self._listeners.values() if li.accelerator == accelerator.arn)
        listener_id = _digest(f"{accelerator.arn}/listener/{count}").hex()[:8]
        listener = _Listener(
            arn=f"{accelerator.arn}/listener/{listener_id}",
            accelerator=accelerator.arn,
            port_ranges=ranges,
            protocol=protocol,
            client_affinity=params.get("ClientAffinity", "NONE"),
        )
        self._listeners[listener.arn] = listener
        self._remember_token("CreateListener", params, listener.arn)
        self._changed(accelerator, now)
        return {"Listener": self._describe_listener(listener)}

    def _describe_listener_op(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"Listener": self._describe_listener(self._listener(params["ListenerArn"]))}

    def _list_listeners(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        accelerator = self._accelerator(params["AcceleratorArn"])
        described = [
            self._describe_listener(listener)
            for listener in self._listeners.values()
            if listener.accelerator == accelerator.arn
        ]
        return self._page("Listeners", described, params)

    def _create_endpoint_group(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        listener = self._listener(params["ListenerArn"])
        known = self._known_token("CreateEndpointGroup", params)
        if known is not None:
            return {"EndpointGroup": self._describe_group(self._groups[known])}
        region = params["EndpointGroupRegion"]
        if region not in endpoint_regions():
            raise _error(
                "InvalidArgumentException", f"EndpointGroupRegion {region!r} is not a Region."
            )
        for group in self._groups.values():
            if group.listener == listener.arn and group.region == region:
                raise _error(
                    "EndpointGroupAlreadyExistsException",
                    f"The listener {listener.arn} already has an endpoint group in {region}: "
                    f"{group.arn}.",
                )
        endpoints = self._endpoints(params.get("EndpointConfigurations", []), region)
        count = sum(1 for g in self._groups.values() if g.listener == listener.arn)
        group_id = _digest(f"{listener.arn}/endpoint-group/{count}/{region}").hex()[:12]
        protocol = params.get("HealthCheckProtocol", "TCP")
        group = _EndpointGroup(
            arn=f"{listener.arn}/endpoint-group/{group_id}",
            listener=listener.arn,
            accelerator=listener.accelerator,
            region=region,
            endpoints=endpoints,
            dial=float(params.get("TrafficDialPercentage", DEFAULT_DIAL)),
            health_check_port=params.get("HealthCheckPort", listener.port_ranges[0]["FromPort"]),
            health_check_protocol=protocol,
            health_check_path=params.get("HealthCheckPath", "/"),
            health_check_interval=self._interval(params, DEFAULT_HEALTH_CHECK_INTERVAL),
            threshold=params.get("ThresholdCount", DEFAULT_THRESHOLD),
            port_overrides=self._port_overrides(params.get("PortOverrides", []), listener),
        )
        self._groups[group.arn] = group
        self._remember_token("CreateEndpointGroup", params, group.arn)
        self._changed(self._accelerators[listener.accelerator], now)
        return {"EndpointGroup": self._describe_group(group)}

    def _describe_endpoint_group_op(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        group = self._group(params["EndpointGroupArn"])
        return {"EndpointGroup": self._describe_group(group)}

    def _list_endpoint_groups(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        listener = self._listener(params["ListenerArn"])
        described = [
            self._describe_group(group)
            for group in self._groups.values()
            if group.listener == listener.arn
        ]
        return self._page("EndpointGroups", described, params)

    def _update_endpoint_group(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        group = self._group(params["EndpointGroupArn"])
        listener = self._listeners[group.listener]
        endpoints = group.endpoints
        if "EndpointConfigurations" in params:
            endpoints = self._endpoints(params["EndpointConfigurations"], group.region)
        overrides = group.port_overrides
        if "PortOverrides" in params:
            overrides = self._port_overrides(params["PortOverrides"], listener)
        interval = self._interval(params, group.health_check_interval)
        group.endpoints = endpoints
        group.port_overrides = overrides
        group.health_check_interval = interval
        group.dial = float(params.get("TrafficDialPercentage", group.dial))
        group.health_check_port = params.get("HealthCheckPort", group.health_check_port)
        group.health_check_protocol = params.get("HealthCheckProtocol", group.health_check_protocol)
        group.health_check_path = params.get("HealthCheckPath", group.health_check_path)
        group.threshold = params.get("ThresholdCount", group.threshold)
        self._changed(self._accelerators[group.accelerator], now)
        return {"EndpointGroup": self._describe_group(group)}

    def _list_tags(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        arn = params["ResourceArn"]
        if _ENDPOINT_GROUP_ARN_RE.match(arn):
            self._group(arn)
            return {"Tags": []}
        if _LISTENER_ARN_RE.match(arn):
            self._listener(arn)
            return {"Tags": []}
        accelerator = self._accelerator(arn, "ResourceArn")
        return {"Tags": [dict(tag) for tag in accelerator.tags]}

    # ------------------------------------------------------------------ helpers
    def _changed(self, accelerator: _Accelerator, now: datetime) -> None:
        accelerator.deployed_at = now + timedelta(seconds=self.deploy_seconds)

    def _accelerator(self, arn: str, member: str = "AcceleratorArn") -> _Accelerator:
        accelerator = self._accelerators.get(arn)
        if accelerator is not None:
            return accelerator
        if not _ACCELERATOR_ARN_RE.match(arn):
            raise _error("InvalidArgumentException", f"Invalid {member} {arn}")
        raise _error("AcceleratorNotFoundException", f"Accelerator {arn} not found.")

    def _listener(self, arn: str) -> _Listener:
        listener = self._listeners.get(arn)
        if listener is not None:
            return listener
        if not _LISTENER_ARN_RE.match(arn):
            raise _error("InvalidArgumentException", f"Invalid ListenerArn {arn}")
        raise _error("ListenerNotFoundException", f"Listener {arn} not found.")

    def _group(self, arn: str) -> _EndpointGroup:
        group = self._groups.get(arn)
        if group is not None:
            return group
        if not _ENDPOINT_GROUP_ARN_RE.match(arn):
            raise _error("InvalidArgumentException", f"Invalid EndpointGroupArn {arn}")
        raise _error("EndpointGroupNotFoundException", f"Endpoint group {arn} not found.")

    def _endpoints(self, configurations: list[dict[str, Any]], region: str) -> list[dict[str, Any]]:
        endpoints: list[dict[str, Any]] = []
        for index, configuration in enumerate(configurations):
            endpoint_id = configuration.get("EndpointId")
            if not endpoint_id:
                raise _error(
                    "InvalidArgumentException", f"EndpointConfigurations[{index}]: no EndpointId."
                )
            elb = _ELB_ARN_RE.match(endpoint_id)
            if elb is not None and elb.group("region") != region:
                raise _error(
                    "InvalidArgumentException",
                    f"'{endpoint_id}' is not a valid load balancer ARN in {region}.",
                )
            if any(e["EndpointId"] == endpoint_id for e in endpoints):
                raise _error(
                    "InvalidArgumentException", f"The endpoint {endpoint_id} is listed twice."
                )
            preserved = ":loadbalancer/app/" in endpoint_id or endpoint_id.startswith("i-")
            endpoints.append(
                {
                    "EndpointId": endpoint_id,
                    "Weight": configuration.get("Weight", DEFAULT_WEIGHT),
                    "ClientIPPreservationEnabled": bool(
                        configuration.get("ClientIPPreservationEnabled", preserved)
                    ),
                }
            )
        return endpoints

    @staticmethod
    def _port_overrides(
        overrides: list[dict[str, int]], listener: _Listener
    ) -> list[dict[str, int]]:
        for index, override in enumerate(overrides):
            if "ListenerPort" not in override or "EndpointPort" not in override:
                raise _error(
                    "InvalidArgumentException",
                    f"PortOverrides[{index}] needs both ListenerPort and EndpointPort.",
                )
            port = override["ListenerPort"]
            if not any(r["FromPort"] <= port <= r["ToPort"] for r in listener.port_ranges):
                raise _error(
                    "InvalidArgumentException",
                    f"ListenerPort {port} is not in the port ranges of {listener.arn}.",
                )
        return [
            {"ListenerPort": o["ListenerPort"], "EndpointPort": o["EndpointPort"]}
            for o in overrides
        ]

    @staticmethod
    def _interval(params: dict[str, Any], default: int) -> int:
        interval = int(params.get("HealthCheckIntervalSeconds", default))
        if interval not in (10, 30):
            raise _error(
                "InvalidArgumentException",
                f"HealthCheckIntervalSeconds {interval} is not 10 or 30.",
            )
        return interval

    @staticmethod
    def _no_byoip(params: dict[str, Any]) -> None:
        if params.get("IpAddresses"):
            raise _error(
                "InvalidArgumentException",
                "IpAddresses: the account has no BYOIP address pool provisioned.",
            )

    def _describe_accelerator(self, accelerator: _Accelerator, now: datetime) -> dict[str, Any]:
        ip_sets: list[dict[str, Any]] = [
            {"IpFamily": "IPv4", "IpAddresses": list(accelerator.ipv4), "IpAddressFamily": "IPv4"}
        ]
        described: dict[str, Any] = {
            "AcceleratorArn": accelerator.arn,
            "Name": accelerator.name,
            "IpAddressType": accelerator.ip_address_type,
            "Enabled": accelerator.enabled,
            "IpSets": ip_sets,
            "DnsName": accelerator.dns_name,
            "Status": "IN_PROGRESS" if now < accelerator.deployed_at else "DEPLOYED",
            "CreatedTime": accelerator.created,
            "LastModifiedTime": accelerator.modified,
        }
        if accelerator.ip_address_type == "DUAL_STACK":
            ip_sets.append(
                {
                    "IpFamily": "IPv6",
                    "IpAddresses": list(accelerator.ipv6),
                    "IpAddressFamily": "IPv6",
                }
            )
            described["DualStackDnsName"] = accelerator.dual_stack_dns_name
        return described

    @staticmethod
    def _describe_listener(listener: _Listener) -> dict[str, Any]:
        return {
            "ListenerArn": listener.arn,
            "PortRanges": [dict(r) for r in listener.port_ranges],
            "Protocol": listener.protocol,
            "ClientAffinity": listener.client_affinity,
        }

    def _describe_group(self, group: _EndpointGroup) -> dict[str, Any]:
        described: dict[str, Any] = {
            "EndpointGroupArn": group.arn,
            "EndpointGroupRegion": group.region,
            "EndpointDescriptions": [
                {
                    "EndpointId": e["EndpointId"],
                    "Weight": e["Weight"],
                    "HealthState": self._health.get(e["EndpointId"], "HEALTHY"),
                    "ClientIPPreservationEnabled": e["ClientIPPreservationEnabled"],
                }
                for e in group.endpoints
            ],
            "TrafficDialPercentage": group.dial,
            "HealthCheckPort": group.health_check_port,
            "HealthCheckProtocol": group.health_check_protocol,
        }
        if group.health_check_protocol in ("HTTP", "HTTPS"):
            described["HealthCheckPath"] = group.health_check_path
        described.update(
            {
                "HealthCheckIntervalSeconds": group.health_check_interval,
                "ThresholdCount": group.threshold,
                "PortOverrides": [dict(o) for o in group.port_overrides],
            }
        )
        return described

    def _page(
        self, key: str, items: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        return page(
            key, items, params, DEFAULT_PAGE_SIZE,
            _error("InvalidNextTokenException", "There isn't another item to return."),
        )

    def _fill_token(self, operation: str, params: dict[str, Any]) -> None:
        shape = service_model().operation_model(operation).input_shape
        if shape is None:
            return
        for name, member in shape.members.items():
            if member.metadata.get("idempotencyToken") and name not in params:
                self._generated_tokens += 1
                params[name] = f"opsflow-generated-{self._generated_tokens}"

    def _known_token(self, operation: str, params: dict[str, Any]) -> str | None:
        """The ARN created earlier with this request's idempotency token, if any."""
        seen = self._tokens.get((operation, params["IdempotencyToken"]))
        if seen is None:
            return None
        fingerprint, arn = seen
        if fingerprint != self._fingerprint(params):
            raise _error(
                "InvalidArgumentException",
                f"IdempotencyToken {params['IdempotencyToken']!r} was used for a different "
                f"{operation} request ({arn}).",
            )
        return arn

    def _remember_token(self, operation: str, params: dict[str, Any], arn: str) -> None:
        key = (operation, params["IdempotencyToken"])
        self._tokens[key] = (self._fingerprint(params), arn)

    @staticmethod
    def _fingerprint(params: dict[str, Any]) -> str:
        rest = {k: v for k, v in params.items() if k != "IdempotencyToken"}
        return json.dumps(rest, sort_keys=True, default=str)

    def _validate(self, operation: str, params: dict[str, Any]) -> None:
        shape = service_model().operation_model(operation).input_shape
        if shape is None:
            return
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise _error(
                "InvalidArgumentException", "; ".join(report.generate_report().splitlines())
            )
        problems = _constraint_errors(params, shape, "")
        if problems:
            raise _error("InvalidArgumentException", "; ".join(problems))
