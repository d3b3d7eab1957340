"""The Global Accelerator fake, through real boto3 clients and the emulated API boundary."""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from opsflow.engine import boundary
from opsflow.engine.boundary import Boundary
from opsflow.engine.clock import VirtualClock
from opsflow.engine.fakes.global_accelerator import GlobalAcceleratorFake
from tests.shapes import assert_matches_shape

UNVALIDATED = Config(parameter_validation=False)
"""Clients as the state-machine interpreter makes them: no client-side parameter validation, so
the fake's own validation answers, as the service would."""

API_REGION = "us-west-2"
ACCOUNT = "123456789012"
EAST = "us-east-1"
OHIO = "us-east-2"
NLB_EAST = (
    f"arn:aws:elasticloadbalancing:{EAST}:{ACCOUNT}:loadbalancer/net/web-east/0123456789abcdef"
)
NLB_OHIO = (
    f"arn:aws:elasticloadbalancing:{OHIO}:{ACCOUNT}:loadbalancer/net/web-ohio/fedcba9876543210"
)
ALB_OHIO = (
    f"arn:aws:elasticloadbalancing:{OHIO}:{ACCOUNT}:loadbalancer/app/web-ohio/00112233aabbccdd"
)
ACCELERATOR_ARN_RE = re.compile(
    rf"^arn:aws:globalaccelerator::{ACCOUNT}:accelerator/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)

@dataclass
class World:
    clock: VirtualClock
    fake: GlobalAcceleratorFake
    client: BaseClient

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call through a real boto3 client; check the response against the output shape."""
        response: dict[str, Any] = getattr(self.client, method)(**params)
        operation = self.client.meta.method_to_api_mapping[method]
        output = self.client.meta.service_model.operation_model(operation).output_shape
        body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
        assert output is not None
        assert_matches_shape(body, output, operation)
        return response

    def fails(self, method: str, **params: Any) -> ClientError:
        with pytest.raises(ClientError) as error:
            getattr(self.client, method)(**params)
        return error.value

    def status(self, accelerator_arn: str) -> str:
        found = self.call("describe_accelerator", AcceleratorArn=accelerator_arn)
        return str(found["Accelerator"]["Status"])


@dataclass
class Failover:
    """An accelerator with one TCP listener and an endpoint group in each of two Regions."""

    accelerator: dict[str, Any]
    listener: dict[str, Any]
    east: dict[str, Any]
    ohio: dict[str, Any]


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def make_world(aws: None) -> Iterator[Callable[..., World]]:
    def _make(deploy_seconds: float = 30) -> World:
        clock = VirtualClock()
        fake = GlobalAcceleratorFake(clock, account=ACCOUNT, deploy_seconds=deploy_seconds)
        boundary.activate(Boundary(fakes={"globalaccelerator": fake}))
        client = boto3.client("globalaccelerator", region_name=API_REGION, config=UNVALIDATED)
        return World(clock, fake, client)

    yield _make
    boundary.deactivate()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def build(world: World) -> Failover:
    accelerator = world.call(
        "create_accelerator",
        Name="shop",
        IpAddressType="IPV4",
        Enabled=True,
        IdempotencyToken="shop",
        Tags=[{"Key": "team", "Value": "web"}],
    )["Accelerator"]
    listener = world.call(
        "create_listener",
        AcceleratorArn=accelerator["AcceleratorArn"],
        PortRanges=[{"FromPort": 443, "ToPort": 443}],
        Protocol="TCP",
        IdempotencyToken="shop-listener",
    )["Listener"]
    groups = [
        world.call(
            "create_endpoint_group",
            ListenerArn=listener["ListenerArn"],
            EndpointGroupRegion=region,
            EndpointConfigurations=[{"EndpointId": nlb, "Weight": 128}],
            TrafficDialPercentage=dial,
            IdempotencyToken=f"shop-{region}",
        )["EndpointGroup"]
        for region, nlb, dial in ((EAST, NLB_EAST, 100.0), (OHIO, NLB_OHIO, 0.0))
    ]
    return Failover(accelerator, listener, groups[0], groups[1])


def code_of(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


# ------------------------------------------------------------------ building and describing
def test_build_accelerator_listener_and_two_endpoint_groups(world: World) -> None:
    created = world.clock.now()
    built = build(world)
    accelerator = built.accelerator
    arn = accelerator["AcceleratorArn"]
    assert ACCELERATOR_ARN_RE.match(arn), arn
    assert accelerator["Name"] == "shop"
    assert accelerator["IpAddressType"] == "IPV4"
    assert accelerator["Enabled"] is True
    assert accelerator["Status"] == "IN_PROGRESS"
    assert accelerator["CreatedTime"] == created == accelerator["LastModifiedTime"]
    assert re.fullmatch(r"a[0-9a-f]{16}\.awsglobalaccelerator\.com", accelerator["DnsName"])
    assert "DualStackDnsName" not in accelerator
    (ip_set,) = accelerator["IpSets"]
    assert ip_set["IpFamily"] == ip_set["IpAddressFamily"] == "IPv4"
    first, second = ip_set["IpAddresses"]
    assert ipaddress.ip_address(first) in ipaddress.ip_network("75.2.0.0/16")
    assert ipaddress.ip_address(second) in ipaddress.ip_network("99.83.0.0/16")

    listener = built.listener
    assert re.fullmatch(re.escape(arn) + r"/listener/[0-9a-f]{8}", listener["ListenerArn"])
    assert listener["PortRanges"] == [{"FromPort": 443, "ToPort": 443}]
    assert listener["Protocol"] == "TCP"
    assert listener["ClientAffinity"] == "NONE"

    east = world.call("describe_endpoint_group", EndpointGroupArn=built.east["EndpointGroupArn"])
    assert east["EndpointGroup"] == built.east
    assert re.fullmatch(
        re.escape(listener["ListenerArn"]) + r"/endpoint-group/[0-9a-f]{12}",
        built.east["EndpointGroupArn"],
    )
    assert built.east == {
        "EndpointGroupArn": built.east["EndpointGroupArn"],
        "EndpointGroupRegion": EAST,
        "EndpointDescriptions": [
            {
                "EndpointId": NLB_EAST,
                "Weight": 128,
                "HealthState": "HEALTHY",
                "ClientIPPreservationEnabled": False,
            }
        ],
        "TrafficDialPercentage": 100.0,
        "HealthCheckPort": 443,
        "HealthCheckProtocol": "TCP",
        "HealthCheckIntervalSeconds": 30,
        "ThresholdCount": 3,
        "PortOverrides": [],
    }
    assert built.ohio["EndpointGroupRegion"] == OHIO
    assert built.ohio["TrafficDialPercentage"] == 0.0
    assert isinstance(built.ohio["TrafficDialPercentage"], float)

    described = world.call("describe_accelerator", AcceleratorArn=arn)["Accelerator"]
    assert described == accelerator
    assert world.call("describe_listener", ListenerArn=listener["ListenerArn"])["Listener"] == (
        listener
    )
    tags = world.call("list_tags_for_resource", ResourceArn=arn)["Tags"]
    assert tags == [{"Key": "team", "Value": "web"}]
    assert world.call("list_tags_for_resource", ResourceArn=listener["ListenerArn"])["Tags"] == []


def test_lists_and_pagination(world: World) -> None:
    built = build(world)
    other = world.call("create_accelerator", Name="admin", IdempotencyToken="admin")["Accelerator"]

    listed = world.call("list_accelerators")
    assert [a["Name"] for a in listed["Accelerators"]] == ["shop", "admin"]
    assert "NextToken" not in listed
    first = world.call("list_accelerators", MaxResults=1)
    assert [a["AcceleratorArn"] for a in first["Accelerators"]] == [
        built.accelerator["AcceleratorArn"]
    ]
    second = world.call("list_accelerators", MaxResults=1, NextToken=first["NextToken"])
    assert [a["AcceleratorArn"] for a in second["Accelerators"]] == [other["AcceleratorArn"]]
    assert "NextToken" not in second
    error = world.fails("list_accelerators", NextToken="bm9wZQ==")
    assert code_of(error) == "InvalidNextTokenException"
    error = world.fails("list_accelerators", MaxResults=101)
    assert code_of(error) == "InvalidArgumentException"

    listeners = world.call("list_listeners", AcceleratorArn=built.accelerator["AcceleratorArn"])
    assert listeners["Listeners"] == [built.listener]
    assert world.call("list_listeners", AcceleratorArn=other["AcceleratorArn"])["Listeners"] == []
    groups = world.call("list_endpoint_groups", ListenerArn=built.listener["ListenerArn"])
    assert groups["EndpointGroups"] == [built.east, built.ohio]
    page = world.call(
        "list_endpoint_groups", ListenerArn=built.listener["ListenerArn"], MaxResults=1
    )
    assert [g["EndpointGroupRegion"] for g in page["EndpointGroups"]] == [EAST]
    assert "NextToken" in page


def test_status_is_deployed_after_deploy_seconds(world: World) -> None:
    built = build(world)
    arn = built.accelerator["AcceleratorArn"]
    world.clock.advance(29)
    assert world.status(arn) == "IN_PROGRESS"
    world.clock.advance(1)
    assert world.status(arn) == "DEPLOYED"


def test_dial_to_zero_redeploys_the_accelerator(world: World) -> None:
    built = build(world)
    arn = built.accelerator["AcceleratorArn"]
    world.clock.advance(60)
    assert world.status(arn) == "DEPLOYED"

    updated = world.call(
        "update_endpoint_group",
        EndpointGroupArn=built.east["EndpointGroupArn"],
        TrafficDialPercentage=0,
    )["EndpointGroup"]
    assert updated["TrafficDialPercentage"] == 0.0
    assert updated["EndpointDescriptions"] == built.east["EndpointDescriptions"]
    described = world.call(
        "describe_endpoint_group", EndpointGroupArn=built.east["EndpointGroupArn"]
    )
    assert described["EndpointGroup"]["TrafficDialPercentage"] == 0.0
    accelerator = world.call("describe_accelerator", AcceleratorArn=arn)["Accelerator"]
    assert accelerator["Status"] == "IN_PROGRESS"
    assert accelerator["LastModifiedTime"] == built.accelerator["LastModifiedTime"]
    world.clock.advance(29.5)
    assert world.status(arn) == "IN_PROGRESS"
    world.clock.advance(0.5)
    assert world.status(arn) == "DEPLOYED"

    world.call(
        "update_endpoint_group",
        EndpointGroupArn=built.ohio["EndpointGroupArn"],
        TrafficDialPercentage=100.0,
    )
    dials = {
        g["EndpointGroupRegion"]: g["TrafficDialPercentage"] for g in world.fake.endpoint_groups()
    }
    assert dials == {EAST: 0.0, OHIO: 100.0}
    assert world.status(arn) == "IN_PROGRESS"


def test_update_endpoints_and_health(world: World) -> None:
    built = build(world)
    group_arn = built.ohio["EndpointGroupArn"]
    updated = world.call(
        "update_endpoint_group",
        EndpointGroupArn=group_arn,
        EndpointConfigurations=[
            {"EndpointId": NLB_OHIO, "Weight": 200},
            {"EndpointId": ALB_OHIO},
        ],
    )["EndpointGroup"]
    assert updated["TrafficDialPercentage"] == 0.0
    assert [(e["EndpointId"], e["Weight"]) for e in updated["EndpointDescriptions"]] == [
        (NLB_OHIO, 200),
        (ALB_OHIO, 128),
    ]
    assert [e["ClientIPPreservationEnabled"] for e in updated["EndpointDescriptions"]] == [
        False,
        True,
    ]

    checked = world.call(
        "update_endpoint_group",
        EndpointGroupArn=group_arn,
        HealthCheckProtocol="HTTPS",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=10,
        PortOverrides=[{"ListenerPort": 443, "EndpointPort": 8443}],
    )["EndpointGroup"]
    assert checked["HealthCheckProtocol"] == "HTTPS"
    assert checked["HealthCheckPath"] == "/health"
    assert checked["HealthCheckIntervalSeconds"] == 10
    assert checked["PortOverrides"] == [{"ListenerPort": 443, "EndpointPort": 8443}]
    assert len(checked["EndpointDescriptions"]) == 2

    world.fake.set_endpoint_health(ALB_OHIO, "UNHEALTHY")
    world.fake.set_endpoint_health(NLB_EAST, "INITIAL")
    health = {
        e["EndpointId"]: e["HealthState"]
        for g in world.call("list_endpoint_groups", ListenerArn=built.listener["ListenerArn"])[
            "EndpointGroups"
        ]
        for e in g["EndpointDescriptions"]
    }
    assert health == {NLB_EAST: "INITIAL", NLB_OHIO: "HEALTHY", ALB_OHIO: "UNHEALTHY"}
    with pytest.raises(ValueError, match="health state"):
        world.fake.set_endpoint_health(NLB_OHIO, "SICK")
    with pytest.raises(ValueError, match="no endpoint group"):
        world.fake.set_endpoint_health("i-0123456789abcdef0", "HEALTHY")

    error = world.fails(
        "update_endpoint_group",
        EndpointGroupArn=group_arn,
        EndpointConfigurations=[{"EndpointId": NLB_EAST}],
    )
    assert code_of(error) == "InvalidArgumentException"


def test_endpoint_groups_helper(world: World) -> None:
    built = build(world)
    groups = world.fake.endpoint_groups()
    assert [g["EndpointGroupArn"] for g in groups] == [
        built.east["EndpointGroupArn"],
        built.ohio["EndpointGroupArn"],
    ]
    for group in groups:
        assert group["ListenerArn"] == built.listener["ListenerArn"]
        assert group["AcceleratorArn"] == built.accelerator["AcceleratorArn"]
    assert groups[0]["EndpointGroupRegion"] == EAST
    assert groups[0]["TrafficDialPercentage"] == 100.0
    assert [e["EndpointId"] for e in groups[1]["EndpointDescriptions"]] == [NLB_OHIO]
    (accelerator,) = world.fake.accelerators()
    assert accelerator["Status"] == "IN_PROGRESS"


def test_update_accelerator(world: World) -> None:
    built = build(world)
    arn = built.accelerator["AcceleratorArn"]
    world.clock.advance(300)
    assert world.status(arn) == "DEPLOYED"
    updated = world.call(
        "update_accelerator", AcceleratorArn=arn, Enabled=False, IpAddressType="DUAL_STACK"
    )["Accelerator"]
    assert updated["Enabled"] is False
    assert updated["Status"] == "IN_PROGRESS"
    assert updated["LastModifiedTime"] == built.accelerator["CreatedTime"] + timedelta(seconds=300)
    assert updated["DualStackDnsName"].endswith(".dualstack.awsglobalaccelerator.com")
    assert updated["DualStackDnsName"].split(".")[0] == updated["DnsName"].split(".")[0]
    families = [s["IpAddressFamily"] for s in updated["IpSets"]]
    assert families == ["IPv4", "IPv6"]
    for address in updated["IpSets"][1]["IpAddresses"]:
        assert ipaddress.ip_address(address).version == 6


def test_idempotency_tokens(world: World) -> None:
    built = build(world)
    again = world.call(
        "create_accelerator",
        Name="shop",
        IpAddressType="IPV4",
        Enabled=True,
        IdempotencyToken="shop",
        Tags=[{"Key": "team", "Value": "web"}],
    )["Accelerator"]
    assert again["AcceleratorArn"] == built.accelerator["AcceleratorArn"]
    assert len(world.call("list_accelerators")["Accelerators"]) == 1
    error = world.fails("create_accelerator", Name="other", IdempotencyToken="shop")
    assert code_of(error) == "InvalidArgumentException"

    generated = world.call("create_accelerator", Name="shop")["Accelerator"]
    assert generated["AcceleratorArn"] != built.accelerator["AcceleratorArn"]
    assert generated["DnsName"] != built.accelerator["DnsName"]
    listener = world.call(
        "create_listener",
        AcceleratorArn=generated["AcceleratorArn"],
        PortRanges=[{"FromPort": 80, "ToPort": 81}],
        Protocol="UDP",
        ClientAffinity="SOURCE_IP",
    )["Listener"]
    assert listener["ClientAffinity"] == "SOURCE_IP"


def test_same_actions_give_same_identifiers(make_world: Callable[..., World]) -> None:
    def run() -> tuple[Any, ...]:
        world = make_world()
        built = build(world)
        return (
            built.accelerator["AcceleratorArn"],
            built.accelerator["DnsName"],
            built.accelerator["IpSets"],
            built.listener["ListenerArn"],
            built.east["EndpointGroupArn"],
            built.ohio["EndpointGroupArn"],
        )

    assert run() == run()


def test_deploy_seconds(make_world: Callable[..., World]) -> None:
    world = make_world(deploy_seconds=0)
    assert build(world).accelerator["Status"] == "DEPLOYED"
    world = make_world(deploy_seconds=300)
    arn = build(world).accelerator["AcceleratorArn"]
    world.clock.advance(299)
    assert world.status(arn) == "IN_PROGRESS"
    world.clock.advance(1)
    assert world.status(arn) == "DEPLOYED"
    with pytest.raises(ValueError):
        GlobalAcceleratorFake(VirtualClock(), deploy_seconds=-1)


# ------------------------------------------------------------------ errors
def test_unknown_arns_are_not_found(world: World) -> None:
    built = build(world)
    accelerator = built.accelerator["AcceleratorArn"]
    missing = (
        f"arn:aws:globalaccelerator::{ACCOUNT}:accelerator/00000000-0000-0000-0000-000000000000"
    )
    listener = f"{accelerator}/listener/00000000"
    group = f"{built.listener['ListenerArn']}/endpoint-group/000000000000"

    for method, params, code in (
        ("describe_accelerator", {"AcceleratorArn": missing}, "AcceleratorNotFoundException"),
        ("update_accelerator", {"AcceleratorArn": missing}, "AcceleratorNotFoundException"),
        ("list_listeners", {"AcceleratorArn": missing}, "AcceleratorNotFoundException"),
        ("list_tags_for_resource", {"ResourceArn": missing}, "AcceleratorNotFoundException"),
        ("describe_listener", {"ListenerArn": listener}, "ListenerNotFoundException"),
        ("list_endpoint_groups", {"ListenerArn": listener}, "ListenerNotFoundException"),
        ("describe_endpoint_group", {"EndpointGroupArn": group}, "EndpointGroupNotFoundException"),
        (
            "update_endpoint_group",
            {"EndpointGroupArn": group, "TrafficDialPercentage": 0.0},
            "EndpointGroupNotFoundException",
        ),
    ):
        error = world.fails(method, **params)
        assert code_of(error) == code, method
        assert isinstance(error, getattr(world.client.exceptions, code))
    error = world.fails(
        "create_listener",
        AcceleratorArn=missing,
        PortRanges=[{"FromPort": 443, "ToPort": 443}],
        Protocol="TCP",
    )
    assert code_of(error) == "AcceleratorNotFoundException"
    error = world.fails("create_endpoint_group", ListenerArn=listener, EndpointGroupRegion=EAST)
    assert code_of(error) == "ListenerNotFoundException"
    error = world.fails("describe_accelerator", AcceleratorArn="not-an-arn")
    assert code_of(error) == "InvalidArgumentException"


def test_traffic_dial_out_of_range(world: World) -> None:
    built = build(world)
    for dial in (100.5, 150.0, -1.0):
        error = world.fails(
            "update_endpoint_group",
            EndpointGroupArn=built.east["EndpointGroupArn"],
            TrafficDialPercentage=dial,
        )
        assert code_of(error) == "InvalidArgumentException"
        assert "TrafficDialPercentage" in str(error)
    error = world.fails(
        "create_endpoint_group",
        ListenerArn=built.listener["ListenerArn"],
        EndpointGroupRegion="eu-west-1",
        TrafficDialPercentage=101,
    )
    assert code_of(error) == "InvalidArgumentException"
    east = world.fake.endpoint_groups()[0]
    assert east["TrafficDialPercentage"] == 100.0


def test_second_group_for_a_region_is_refused(world: World) -> None:
    built = build(world)
    error = world.fails(
        "create_endpoint_group",
        ListenerArn=built.listener["ListenerArn"],
        EndpointGroupRegion=OHIO,
        EndpointConfigurations=[{"EndpointId": ALB_OHIO}],
    )
    assert code_of(error) == "EndpointGroupAlreadyExistsException"
    assert len(world.fake.endpoint_groups()) == 2


def test_invalid_arguments(world: World) -> None:
    built = build(world)
    listener_arn = built.listener["ListenerArn"]
    for params in (
        {"EndpointGroupRegion": "mars-north-1"},
        {"EndpointGroupRegion": "eu-west-1", "EndpointConfigurations": [{"Weight": 1}]},
        {"EndpointGroupRegion": "eu-west-1", "EndpointConfigurations": [{"EndpointId": NLB_EAST}]},
        {"EndpointGroupRegion": "eu-west-1", "HealthCheckIntervalSeconds": 20},
        {"EndpointGroupRegion": "eu-west-1", "HealthCheckProtocol": "ICMP"},
        {"EndpointGroupRegion": "eu-west-1", "PortOverrides": [{"ListenerPort": 80}]},
        {
            "EndpointGroupRegion": "eu-west-1",
            "PortOverrides": [{"ListenerPort": 80, "EndpointPort": 8080}],
        },
        {
            "EndpointGroupRegion": "eu-west-1",
            "EndpointConfigurations": [{"EndpointId": "i-0123456789abcdef0", "Weight": 256}],
        },
    ):
        error = world.fails("create_endpoint_group", ListenerArn=listener_arn, **params)
        assert code_of(error) == "InvalidArgumentException", params

    error = world.fails("create_accelerator", Name="-bad-")
    assert code_of(error) == "InvalidArgumentException"
    error = world.fails("create_accelerator", Name="byoip", IpAddresses=["198.51.100.1"])
    assert code_of(error) == "InvalidArgumentException"
    error = world.fails("describe_accelerator")
    assert code_of(error) == "InvalidArgumentException"
    assert "AcceleratorArn" in str(error)

    accelerator_arn = built.accelerator["AcceleratorArn"]
    for ranges in (
        [{"FromPort": 90, "ToPort": 80}],
        [{"FromPort": 400, "ToPort": 500}],
        [{"FromPort": 80, "ToPort": 90}, {"FromPort": 85, "ToPort": 85}],
        [{"FromPort": 80}],
    ):
        error = world.fails(
            "create_listener", AcceleratorArn=accelerator_arn, PortRanges=ranges, Protocol="TCP"
        )
        assert code_of(error) == "InvalidPortRangeException", ranges
    error = world.fails(
        "create_listener",
        AcceleratorArn=accelerator_arn,
        PortRanges=[{"FromPort": 443, "ToPort": 443}],
        Protocol="SCTP",
    )
    assert code_of(error) == "InvalidArgumentException"


def test_other_operations_are_named_as_not_implemented(world: World) -> None:
    error = world.fails("list_custom_routing_accelerators")
    assert code_of(error) == "NotImplemented"
    assert "ListCustomRoutingAccelerators" in str(error)


def test_a_client_of_another_region_cannot_reach_the_api(world: World) -> None:
    client = boto3.client("globalaccelerator", region_name=EAST, config=UNVALIDATED)
    with pytest.raises(EndpointConnectionError) as error:
        client.list_accelerators()
    assert "https://globalaccelerator.us-east-1.amazonaws.com/" in str(error.value)
    with pytest.raises(EndpointConnectionError):
        client.create_accelerator(Name="east", IdempotencyToken="east")
    assert world.fake.accelerators() == []


# ------------------------------------------------------------------ threads
def test_concurrent_calls(world: World) -> None:
    built = build(world)
    accelerator_arn = built.accelerator["AcceleratorArn"]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            client = boto3.client("globalaccelerator", region_name=API_REGION, config=UNVALIDATED)
            client.create_listener(
                AcceleratorArn=accelerator_arn,
                PortRanges=[{"FromPort": 8000 + index, "ToPort": 8000 + index}],
                Protocol="TCP",
            )
            for dial in (10.0 * index, 100.0 - index):
                client.update_endpoint_group(
                    EndpointGroupArn=built.ohio["EndpointGroupArn"], TrafficDialPercentage=dial
                )
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    listeners = world.call("list_listeners", AcceleratorArn=accelerator_arn, MaxResults=100)
    assert len(listeners["Listeners"]) == 9
    assert len({li["ListenerArn"] for li in listeners["Listeners"]}) == 9
    dial = world.fake.endpoint_groups()[1]["TrafficDialPercentage"]
    assert dial in {100.0 - index for index in range(8)}
