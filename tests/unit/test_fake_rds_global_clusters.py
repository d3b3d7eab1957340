"""The Aurora Global Database fake (RDS DescribeGlobalClusters, SwitchoverGlobalCluster,
FailoverGlobalCluster), through real boto3 clients and the emulated API boundary, on a
virtual clock; every other RDS operation stays moto's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from opsflow.engine import boundary
from opsflow.engine.boundary import Boundary
from opsflow.engine.clock import VirtualClock
from opsflow.engine.fakes import rds_global_clusters as fake_module
from opsflow.engine.fakes.rds_global_clusters import GlobalClusterFake
from tests.shapes import assert_matches_shape

ONE_TRY = Config(retries={"max_attempts": 1})
OHIO = "arn:aws:rds:us-east-2:123456789012:cluster:shop-us-east-2"
VIRGINIA = "arn:aws:rds:us-east-1:123456789012:cluster:shop-us-east-1"


@dataclass
class World:
    fake: GlobalClusterFake
    clock: VirtualClock
    edge: Boundary

    def call(self, method: str, region: str = "us-east-1", **params: Any) -> dict[str, Any]:
        client = boto3.client("rds", region_name=region, config=ONE_TRY)
        response: dict[str, Any] = getattr(client, method)(**params)
        operation = client.meta.method_to_api_mapping[method]
        output = client.meta.service_model.operation_model(operation).output_shape
        assert output is not None
        assert_matches_shape({k: v for k, v in response.items() if k != "ResponseMetadata"},
                             output, operation)
        return response

    def fails(self, method: str, region: str = "us-east-1", **params: Any) -> str:
        with pytest.raises(ClientError) as error:
            getattr(boto3.client("rds", region_name=region, config=ONE_TRY), method)(**params)
        return str(error.value.response["Error"]["Code"])

    def shop(self) -> dict[str, Any]:
        found: dict[str, Any] = self.call("describe_global_clusters",
                                          GlobalClusterIdentifier="shop")["GlobalClusters"][0]
        return found

    def writer(self) -> str:
        return next(m["DBClusterArn"] for m in self.shop()["GlobalClusterMembers"] if m["IsWriter"])


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        clock = VirtualClock()
        fake = GlobalClusterFake(clock.now)
        fake.add_global_cluster("shop", {"us-east-2": "shop-us-east-2",
                                         "us-east-1": "shop-us-east-1"}, writer="us-east-2")
        edge = Boundary(fakes={"rds": fake})
        fake.unreachable = edge.unreachable
        boundary.activate(edge)
        try:
            yield World(fake, clock, edge)
        finally:
            boundary.deactivate()


def test_a_switchover_takes_its_time_then_moves_the_writer_with_no_data_lost(world: World) -> None:
    started = world.call("switchover_global_cluster", GlobalClusterIdentifier="shop",
                         TargetDbClusterIdentifier=VIRGINIA)["GlobalCluster"]
    assert started["Status"] == "switching-over"
    assert started["FailoverState"]["ToDbClusterArn"] == VIRGINIA
    assert started["FailoverState"]["IsDataLossAllowed"] is False
    world.clock.advance(fake_module.SWITCHOVER_SECONDS - 1)
    assert world.writer() == OHIO
    world.clock.advance(1)
    shop = world.shop()
    assert shop["Status"] == "available" and "FailoverState" not in shop
    assert world.writer() == VIRGINIA
    secondary = next(m for m in shop["GlobalClusterMembers"] if not m["IsWriter"])
    assert (secondary["DBClusterArn"], secondary["SynchronizationStatus"]) == (OHIO, "connected")


def test_a_switchover_needs_every_member_a_failover_only_the_target(world: World) -> None:
    world.edge.unreachable.add("us-east-2")
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=VIRGINIA) == "InvalidGlobalClusterStateFault"
    assert world.fails("failover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=VIRGINIA) == "InvalidGlobalClusterStateFault"
    assert world.writer() == OHIO

    started = world.call("failover_global_cluster", GlobalClusterIdentifier="shop",
                         TargetDbClusterIdentifier=VIRGINIA, AllowDataLoss=True)["GlobalCluster"]
    assert (started["Status"], started["FailoverState"]["IsDataLossAllowed"]) == ("failing-over", True)
    world.clock.advance(fake_module.FAILOVER_SECONDS)
    assert world.writer() == VIRGINIA
    old = next(m for m in world.shop()["GlobalClusterMembers"] if not m["IsWriter"])
    assert old["SynchronizationStatus"] == "pending-resync"
    # Until the old writer's Region answers again, nothing can bring the writer back there.
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=OHIO) == "InvalidDBClusterStateFault"
    world.edge.unreachable.discard("us-east-2")
    old = next(m for m in world.shop()["GlobalClusterMembers"] if not m["IsWriter"])
    assert old["SynchronizationStatus"] == "pending-resync"  # being rebuilt
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=OHIO) == "InvalidGlobalClusterStateFault"
    world.clock.advance(fake_module.RESYNC_SECONDS)
    old = next(m for m in world.shop()["GlobalClusterMembers"] if not m["IsWriter"])
    assert old["SynchronizationStatus"] == "connected"


def test_the_writers_region_down_refuses_its_own_endpoint(world: World) -> None:
    world.edge.unreachable.add("us-east-2")
    with pytest.raises(EndpointConnectionError):
        boto3.client("rds", region_name="us-east-2", config=ONE_TRY).describe_global_clusters()
    assert world.call("describe_global_clusters", "us-east-1")["GlobalClusters"]


def test_one_operation_at_a_time_and_each_refusal_by_its_name(world: World) -> None:
    world.call("switchover_global_cluster", GlobalClusterIdentifier="shop",
               TargetDbClusterIdentifier=VIRGINIA)
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=VIRGINIA) == "InvalidGlobalClusterStateFault"
    world.clock.advance(fake_module.SWITCHOVER_SECONDS)
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=VIRGINIA) == "InvalidDBClusterStateFault"
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="nope",
                       TargetDbClusterIdentifier=OHIO) == "GlobalClusterNotFoundFault"
    assert world.fails("switchover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier="arn:aws:rds:eu-west-1:123456789012:cluster:x"
                       ) == "DBClusterNotFoundFault"
    assert world.fails("failover_global_cluster", GlobalClusterIdentifier="shop",
                       TargetDbClusterIdentifier=OHIO, AllowDataLoss=True,
                       Switchover=True) == "InvalidParameterCombination"
    assert world.fails("describe_global_clusters",
                       GlobalClusterIdentifier="nope") == "GlobalClusterNotFoundFault"


def test_every_other_rds_operation_is_motos(world: World) -> None:
    rds = boto3.client("rds", region_name="us-east-1")
    rds.create_db_cluster(DBClusterIdentifier="other", Engine="aurora-postgresql",
                          MasterUsername="admin", MasterUserPassword="a-long-password")
    assert [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]] == ["other"]


def test_the_diff_shows_the_writer_and_each_secondarys_replication(world: World) -> None:
    before = world.fake.observe()
    world.call("switchover_global_cluster", GlobalClusterIdentifier="shop",
               TargetDbClusterIdentifier=VIRGINIA)
    world.clock.advance(fake_module.SWITCHOVER_SECONDS)
    after = world.fake.observe()
    key = "global-cluster/shop"
    assert (before[(key, "global", "writer")], after[(key, "global", "writer")]) == (
        "us-east-2", "us-east-1")
    assert after[(key, "us-east-2", "replication")] == "connected"
    assert after[(key, "us-east-1", "replication")] == "writer"
