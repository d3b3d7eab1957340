"""Capacity before traffic: the target region's Auto Scaling group is scaled and its own
instances healthy before any traffic moves; rollback puts the recorded size back, only once the
traffic is back.

Assertions read the groups, the routing control states and the order of the calls made.
"""

from __future__ import annotations

from typing import Any

import boto3

from tests.conftest import load_event

SCENARIO = "region-failover"
PRIMARY, STANDBY = "us-east-2", "us-east-1"
BEFORE = {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
AFTER = {f"web-{STANDBY}": "On", f"web-{PRIMARY}": "Off"}
WITH_CAPACITY = {"AutoScalingGroupName": "web", "TrafficMechanism": "arc"}


def size(region: str) -> tuple[int, int]:
    """(min, desired) of the region's group."""
    group = boto3.client("autoscaling", region_name=region).describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    return group["MinSize"], group["DesiredCapacity"]


def states(engine: Any) -> dict[str, str]:
    return dict(engine.fakes["route53-recovery-cluster"].states())


def first_call(engine: Any, operation: str) -> int:
    return next(i for i, call in enumerate(engine.boundary.calls) if call[1] == operation)


def test_capacity_is_scaled_and_healthy_before_traffic_moves(engine_factory: Any) -> None:
    engine = engine_factory(**WITH_CAPACITY)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert size(STANDBY) == (3, 3)  # the primary's desired capacity
    assert states(engine) == AFTER
    assert first_call(engine, "UpdateAutoScalingGroup") < first_call(
        engine, "UpdateRoutingControlStates")
    states_run = execution.states
    assert states_run.index("Act: Check capacity") < states_run.index(
        "Act: Record and shift traffic")


def test_standby_that_cannot_scale_escalates_and_moves_nothing(engine_factory: Any) -> None:
    engine = engine_factory(StandbyCapacity="10", **WITH_CAPACITY)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.error == "Runbook.Escalated", execution.cause
    assert f"{STANDBY}'s group web cannot scale to 10 instances: its MaxSize is 6" in execution.cause
    assert size(STANDBY) == (0, 0)
    assert states(engine) == BEFORE
    assert not [c for c in engine.boundary.calls if c[1] == "UpdateAutoScalingGroup"]


def test_capacity_that_cannot_be_checked_rolls_back_and_moves_no_traffic(
    engine_factory: Any,
) -> None:
    engine = engine_factory(("elbv2:DescribeTargetHealth=AccessDenied",), **WITH_CAPACITY)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "Traffic was not moved" in execution.cause
    assert "Capacity of web in us-east-1: min 0, desired 0" in execution.cause
    assert size(STANDBY) == (0, 0)
    assert states(engine) == BEFORE
    assert engine.fakes["route53-recovery-cluster"].updates == []


def test_verify_failure_restores_traffic_then_capacity(engine_factory: Any) -> None:
    engine = engine_factory(("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
                            **WITH_CAPACITY)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert states(engine) == BEFORE
    assert size(STANDBY) == (0, 0)
    assert "recorded before: min 0, desired 0" in execution.cause
    updates = [i for i, c in enumerate(engine.boundary.calls)
               if c[1] in ("UpdateRoutingControlStates", "UpdateAutoScalingGroup")]
    names = [engine.boundary.calls[i][1] for i in updates]
    assert names == ["UpdateAutoScalingGroup", "UpdateRoutingControlStates",
                     "UpdateRoutingControlStates", "UpdateAutoScalingGroup"]


def test_a_configured_standby_capacity_does_not_read_the_region_left(engine_factory: Any) -> None:
    engine = engine_factory(("autoscaling@us-east-2:DescribeAutoScalingGroups=InternalFailure",),
                            StandbyCapacity="4", **WITH_CAPACITY)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert size(STANDBY) == (4, 4)


def test_without_standby_capacity_an_unreadable_primary_escalates(engine_factory: Any) -> None:
    engine = engine_factory(("autoscaling@us-east-2:DescribeAutoScalingGroups=InternalFailure",),
                            **WITH_CAPACITY)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.error == "Runbook.Escalated", execution.cause
    assert "set StandbyCapacity" in execution.cause
    assert size(STANDBY) == (0, 0) and states(engine) == BEFORE


def test_capacity_dry_run_scales_nothing(engine_factory: Any) -> None:
    engine = engine_factory(**WITH_CAPACITY)
    event = load_event("region-failover/alarm-primary.json")
    event["opsflow"] = {"dryRun": True}
    execution = engine.run(SCENARIO, event)

    assert execution.outcome == "dry-run", execution.cause
    assert size(STANDBY) == (0, 0) and states(engine) == BEFORE


def test_failback_puts_the_standby_back_to_its_size_before_the_failover(
    engine_factory: Any,
) -> None:
    engine = engine_factory(**WITH_CAPACITY)
    assert engine.run(SCENARIO, load_event("region-failover/alarm-primary.json")).outcome == (
        "mitigated")
    assert size(STANDBY) == (3, 3)

    execution = engine.run(SCENARIO, load_event("region-failover/failback.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert states(engine) == BEFORE
    assert size(STANDBY) == (0, 0)  # as the world had it before the failover
    assert size(PRIMARY) == (3, 3)
    # Only after the failback was verified, with the traffic gone from the standby.
    calls = [c[1] for c in engine.boundary.calls]
    last_shift = max(i for i, op in enumerate(calls) if op == "UpdateRoutingControlStates")
    last_resize = max(i for i, op in enumerate(calls) if op == "UpdateAutoScalingGroup")
    assert last_resize > last_shift
    recorded = next(e for e in execution.history
                    if (e.get("stateExitedEventDetails") or {}).get("name")
                    == "Verify: Record verified move")
    assert "put back to min 0, desired 0" in recorded["stateExitedEventDetails"]["output"]


def test_a_failover_rolled_back_leaves_no_size_for_a_failback_to_restore(
    engine_factory: Any,
) -> None:
    engine = engine_factory(("route53-recovery-cluster:ListRoutingControls=AccessDeniedException*6",),
                            **WITH_CAPACITY)
    assert engine.run(SCENARIO, load_event("region-failover/alarm-primary.json")).error == (
        "Runbook.RolledBack")
    state = boto3.client("ssm", region_name=STANDBY).get_parameter(
        Name="/opsflow/region-failover/state")["Parameter"]["Value"]
    assert "scaledForFailover" not in state
