"""Instances stop on the virtual clock (``opsflow/engine/dynamics.py``, ``Ec2Dynamics``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from opsflow.engine import boundary as api
from opsflow.engine import dynamics
from opsflow.engine.boundary import Boundary
from opsflow.engine.clock import VirtualClock

REGION = "us-east-1"


@pytest.fixture
def world() -> Iterator[tuple[VirtualClock, Any, dynamics.Ec2Dynamics, list[str]]]:
    clock = VirtualClock()
    edge = Boundary()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        ids = [i["InstanceId"] for i in ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=3, MaxCount=3)["Instances"]]
        stopping = dynamics.Ec2Dynamics(clock, edge, stop_seconds=40)
        api.activate(edge)
        dynamics.activate(stopping)
        try:
            yield clock, ec2, stopping, ids
        finally:
            dynamics.deactivate()
            api.deactivate()


def states(ec2: Any, ids: list[str]) -> list[str]:
    found = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(
        InstanceIds=ids)["Reservations"] for i in r["Instances"]}
    return [found[i] for i in ids]


def test_a_stop_completes_once_its_time_has_passed(world: Any) -> None:
    clock, ec2, stopping, ids = world
    ec2.stop_instances(InstanceIds=ids[:2])
    clock.advance(20)
    ec2.stop_instances(InstanceIds=ids[2:])

    assert states(ec2, ids) == ["stopping", "stopping", "stopping"]
    assert stopping.pending() == 3
    clock.advance(20)
    assert states(ec2, ids) == ["stopped", "stopped", "stopping"]
    clock.advance(20)
    assert states(ec2, ids) == ["stopped", "stopped", "stopped"]
    assert stopping.pending() == 0


def test_a_stop_started_again_keeps_only_its_latest_due_time(world: Any) -> None:
    """Stopped, started before the stop completed (moto allows it), stopped again: the first
    stop's time passing does not complete the second stop."""
    clock, ec2, stopping, ids = world
    ec2.stop_instances(InstanceIds=ids[:1])
    clock.advance(30)
    ec2.start_instances(InstanceIds=ids[:1])
    assert stopping.pending() == 0  # running again: nothing is stopping
    ec2.stop_instances(InstanceIds=ids[:1])
    clock.advance(15)  # the first stop would be due now
    assert states(ec2, ids[:1]) == ["stopping"]
    clock.advance(25)
    assert states(ec2, ids[:1]) == ["stopped"]
