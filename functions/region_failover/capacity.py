"""Capacity before traffic: the target region's EC2 Auto Scaling group is scaled up before any
traffic moves into it, its own instances must be healthy in the target group, and a rollback
puts the recorded size back.

The group has the same name in both regions (``AutoScalingGroupName``). How many instances the
target needs: ``StandbyCapacity`` when set, else the desired capacity of the region traffic
leaves, read at pre-flight (which an outage of that region may refuse: then set
``StandbyCapacity``); never fewer than ``MinHealthyTargets``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runbook_kit.errors import RunbookError, call

ClientFor = Callable[..., Any]


class CapacityNotReady(RunbookError):
    """The scaled group's instances did not become healthy in time."""


def group(client_for: ClientFor, region: str, name: str) -> dict[str, Any] | None:
    """The group as DescribeAutoScalingGroups describes it, or None when it does not exist."""
    autoscaling = client_for("autoscaling", region)
    found = call("DescribeAutoScalingGroups", autoscaling.describe_auto_scaling_groups,
                 AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return found[0] if found else None


def size(described: dict[str, Any]) -> dict[str, int]:
    return {"min": int(described["MinSize"]), "desired": int(described["DesiredCapacity"]),
            "max": int(described["MaxSize"])}


def resize(client_for: ClientFor, region: str, name: str, minimum: int, desired: int) -> None:
    autoscaling = client_for("autoscaling", region)
    call("UpdateAutoScalingGroup", autoscaling.update_auto_scaling_group,
         AutoScalingGroupName=name, MinSize=minimum, DesiredCapacity=desired)


def healthy_members(client_for: ClientFor, region: str, name: str,
                    target_group_arn: str) -> tuple[int, int]:
    """(healthy, in service): the group's InService instances, and how many of them the target
    group reports healthy."""
    described = group(client_for, region, name)
    members = {i["InstanceId"] for i in (described or {}).get("Instances", [])
               if i.get("LifecycleState") == "InService"}
    elbv2 = client_for("elbv2", region)
    health = call("DescribeTargetHealth", elbv2.describe_target_health,
                  TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
    healthy = {t["Target"]["Id"] for t in health if t["TargetHealth"]["State"] == "healthy"}
    return len(members & healthy), len(members)


def describe(capacity: dict[str, Any] | None, now: dict[str, int] | None) -> str:
    """The capacity part of a report, from the group as it is now."""
    if not capacity:
        return ""
    before = capacity["before"]
    where = f"{capacity['group']} in {capacity['region']}"
    if now is None:
        return f" Capacity of {where}: unknown (the group could not be read)."
    return (f" Capacity of {where}: min {now['min']}, desired {now['desired']} (recorded before: "
            f"min {before['min']}, desired {before['desired']}).")
