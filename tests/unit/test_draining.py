"""Targets drain on the virtual clock (``opsflow/engine/dynamics.py``, ``TargetDraining``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from opsflow.engine import boundary as api
from opsflow.engine import dynamics
from opsflow.engine.boundary import Boundary, parse_fault
from opsflow.engine.clock import VirtualClock

REGION = "us-east-1"


@pytest.fixture
def world() -> Iterator[tuple[VirtualClock, Boundary, Any, str, str]]:
    clock = VirtualClock()
    edge = Boundary()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.88.0.0/16")["Vpc"]["VpcId"]
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)[
            "Instances"][0]["InstanceId"]
        elbv2 = boto3.client("elbv2", region_name=REGION)
        group = elbv2.create_target_group(Name="drain", Protocol="TCP", Port=443, VpcId=vpc,
                                          TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        elbv2.modify_target_group_attributes(TargetGroupArn=group, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
        elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
        draining = dynamics.TargetDraining(clock, edge)
        api.activate(edge)
        draining.activate()
        try:
            yield clock, edge, elbv2, group, instance
        finally:
            dynamics.deactivate_draining()
            api.deactivate()


def states(elbv2: Any, group: str) -> dict[str, str]:
    return {d["Target"]["Id"]: d["TargetHealth"]["State"]
            for d in elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]}


def test_a_deregistered_target_drains_for_its_groups_delay(world: Any) -> None:
    clock, _, elbv2, group, instance = world
    elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    assert states(elbv2, group) == {instance: "draining"}
    clock.advance(29)
    assert states(elbv2, group) == {instance: "draining"}
    clock.advance(1)
    assert states(elbv2, group) == {}


def test_registering_again_ends_the_draining(world: Any) -> None:
    _, _, elbv2, group, instance = world
    elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    assert states(elbv2, group) == {instance: "healthy"}


def test_a_hanging_deregistration_drains_for_ever(world: Any) -> None:
    clock, edge, elbv2, group, instance = world
    edge.faults.append(parse_fault("elbv2:DeregisterTargets=Hang"))
    elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    clock.advance(3600)
    assert states(elbv2, group) == {instance: "draining"}
