"""What keeps an instance in service, and what keeps its evidence: taken away before the
quarantine, given back by a rollback.

Before an instance is isolated it leaves its Auto Scaling group (``Standby``, or detached, per
``AutoScalingMode``; either way the group keeps its desired capacity and launches a replacement,
and neither terminates nor replaces the instance behind the runbook's back) and every target
group and classic load balancer it serves, and the runbook waits (boundedly: the state machine's
retry of :class:`TargetsDraining`) for its connections to drain. Each part of the before-state
is recorded in the instance's tags first, so a rollback works from what the account says.

Auto Scaling and Elastic Load Balancing have no ``DryRun``: a dry run reports what each call
would do, from the account as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from health_abuse.plan import BEFORE_STATE, QUARANTINED_BY, tags_of
from runbook_kit import aws
from runbook_kit.errors import RunbookError, call, translate

Client = Callable[[str, str], Any]
"""(service, region) → a boto3 client."""
BEFORE_ASG = "opsflow:before-asg"
BEFORE_TARGETS = "opsflow:before-targets"
BEFORE_ELBS = "opsflow:before-elbs"
TAG_VALUE_LIMIT = 256
"""Characters of an EC2 tag value; a longer record is split over ``key``, ``key-2``, ..."""
STANDBY, DETACH = "standby", "detach"
ASG_CALL_LIMIT = 20
"""Instances per EnterStandby, ExitStandby, DetachInstances or AttachInstances call."""
ASG_DESCRIBE_LIMIT = 50
"""Instances per DescribeAutoScalingInstances call."""
NO_DRY_RUN = "not checked: the API has no DryRun; would"


class TargetsDraining(RunbookError):
    """A deregistered target is still draining; the state machine retries, within its bound."""


def client(service: str, region: str) -> Any:
    return aws.client(service, region)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def split_record(key: str, items: list[str]) -> list[dict[str, str]]:
    """``items`` as tags ``key``, ``key-2``, ...: each value space-separated items within
    :data:`TAG_VALUE_LIMIT` characters (an item never contains a space)."""
    values: list[str] = []
    for item in items:
        if len(item) > TAG_VALUE_LIMIT:
            raise RunbookError(f"cannot record {item[:60]}...: longer than a tag value")
        if values and len(values[-1]) + 1 + len(item) <= TAG_VALUE_LIMIT:
            values[-1] += " " + item
        else:
            values.append(item)
    return [
        {"Key": key if n == 0 else f"{key}-{n + 1}", "Value": value}
        for n, value in enumerate(values)
    ]


def read_record(tags: dict[str, str], key: str) -> list[str]:
    items: list[str] = []
    n = 1
    while True:
        value = tags.get(key if n == 1 else f"{key}-{n}")
        if value is None:
            return items
        items += value.split()
        n += 1


def record_keys(tags: dict[str, str], key: str) -> list[str]:
    return [k for k in tags if k == key or (k.startswith(f"{key}-") and k[len(key) + 1:].isdigit())]


# ------------------------------------------------------------------------------------ looking
def memberships(client_for: Client, region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Instance ID → its Auto Scaling membership (``group``, ``state``, ``protected``)."""
    found: dict[str, dict[str, Any]] = {}
    autoscaling = client_for("autoscaling", region)
    for chunk in _chunks(sorted(ids), ASG_DESCRIBE_LIMIT):
        for page in _pages(autoscaling, "describe_auto_scaling_instances",
                           f"DescribeAutoScalingInstances in {region}", InstanceIds=chunk):
            for item in page.get("AutoScalingInstances", []):
                found[item["InstanceId"]] = {
                    "group": item["AutoScalingGroupName"],
                    "state": item["LifecycleState"],
                    "protected": bool(item.get("ProtectedFromScaleIn")),
                }
    return found


def _pages(api: Any, method: str, what: str, **kwargs: Any) -> list[dict[str, Any]]:
    try:
        return list(api.get_paginator(method).paginate(**kwargs))
    except ClientError as error:
        raise translate(error, what) from error


def registrations(client_for: Client, region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Instance ID → the target groups it is a target of (ARN → (port, health state), draining
    included) and the classic load balancers it is registered with."""
    wanted = set(ids)
    found: dict[str, dict[str, Any]] = {i: {"targets": {}, "elbs": []} for i in ids}
    elbv2 = client_for("elbv2", region)
    for page in _pages(elbv2, "describe_target_groups", f"DescribeTargetGroups in {region}"):
        for group in page.get("TargetGroups", []):
            if group.get("TargetType", "instance") != "instance":
                continue
            arn = group["TargetGroupArn"]
            health = call(f"DescribeTargetHealth of {group['TargetGroupName']} in {region}",
                          elbv2.describe_target_health, TargetGroupArn=arn)
            for item in health.get("TargetHealthDescriptions", []):
                target = item["Target"]
                if target["Id"] in wanted:
                    found[target["Id"]]["targets"][arn] = (
                        int(target.get("Port", group.get("Port", 0))),
                        item.get("TargetHealth", {}).get("State", ""),
                    )
    classic = client_for("elb", region)
    for page in _pages(classic, "describe_load_balancers", f"DescribeLoadBalancers in {region}"):
        for balancer in page.get("LoadBalancerDescriptions", []):
            for instance in balancer.get("Instances", []):
                if instance["InstanceId"] in wanted:
                    found[instance["InstanceId"]]["elbs"].append(balancer["LoadBalancerName"])
    return found


def service_line(member: dict[str, Any] | None, registered: dict[str, Any]) -> str:
    """One instance's service, compact (the plan holds it for up to 1,000 instances): its
    group and lifecycle state, the target groups (``name/id``) and classic load balancers that
    send it traffic. Draining targets count: traffic still reaches them."""
    parts = []
    if member:
        parts.append(f"asg={member['group']}:{member['state']}")
    for arn in sorted(registered.get("targets", {})):
        parts.append("tg=" + arn.split(":targetgroup/", 1)[-1])
    for name in sorted(set(registered.get("elbs", []))):
        parts.append(f"elb={name}")
    return ";".join(parts)


def in_service(line: str) -> list[str]:
    """What still serves traffic or keeps the instance in its group, from a :func:`service_line`."""
    return [part for part in line.split(";") if part and not part.endswith((":Standby",))]


def look(client_for: Client, region: str, ids: list[str]) -> dict[str, str]:
    """Instance ID → its :func:`service_line`, as the account has it now."""
    members = memberships(client_for, region, ids)
    registered = registrations(client_for, region, ids)
    return {i: service_line(members.get(i), registered.get(i, {})) for i in ids}


# ------------------------------------------------------------------------------------ acting
def take_out(
    client_for: Client,
    region: str,
    instances: dict[str, dict[str, Any]],
    mode: str,
    execution: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Take every instance of one region out of service: record, leave the group, deregister,
    then fail :class:`TargetsDraining` while any deregistered target still drains. Idempotent:
    a retry records nothing twice and repeats no call already done. ``instances`` are the
    instances' descriptions (with ``Tags``)."""
    ids = sorted(instances)
    members = memberships(client_for, region, ids)
    registered = registrations(client_for, region, ids)
    ec2 = client_for("ec2", region)
    counts: dict[str, int] = {}

    def count(name: str, n: int = 1) -> None:
        counts[name] = counts.get(name, 0) + n

    if not dry_run:
        alike: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for instance_id in ids:
            tags = tags_of(instances[instance_id])
            if QUARANTINED_BY in tags:
                continue  # recorded already (a retry), or held by an earlier run
            member = members.get(instance_id)
            record = [
                {"Key": QUARANTINED_BY, "Value": execution},
                {"Key": BEFORE_STATE, "Value": instances[instance_id]["State"]["Name"]},
            ]
            if member and member["state"] == "InService":
                protected = "protected" if member["protected"] else "unprotected"
                value = f"{mode}:{protected}:{member['group']}"
                if len(value) > TAG_VALUE_LIMIT:
                    raise RunbookError(f"cannot record the group of {instance_id}: name too long")
                record.append({"Key": BEFORE_ASG, "Value": value})
            targets = registered[instance_id]["targets"]
            record += split_record(BEFORE_TARGETS, [
                f"{arn}@{port}" for arn, (port, state) in sorted(targets.items())
                if state != "draining"
            ])
            record += split_record(BEFORE_ELBS, sorted(registered[instance_id]["elbs"]))
            alike.setdefault(tuple((t["Key"], t["Value"]) for t in record), []).append(instance_id)
        # One call per distinct record (a fleet of alike instances shares one).
        for record_items, members_of in sorted(alike.items()):
            for chunk in _chunks(members_of, 200):
                call(f"CreateTags on {', '.join(chunk[:3])} in {region}", ec2.create_tags,
                     Resources=chunk, Tags=[{"Key": k, "Value": v} for k, v in record_items])
            count("recorded", len(members_of))

    autoscaling = client_for("autoscaling", region)
    by_group: dict[str, list[str]] = {}
    for instance_id, member in members.items():
        if member["state"] == "InService":
            by_group.setdefault(member["group"], []).append(instance_id)
        elif member["state"] not in ("Standby",) and mode == STANDBY:
            # Pending, or between states: the retry finds it in service or in standby.
            raise RunbookError(f"{instance_id} is {member['state']} in group {member['group']}")
    for group, members_in in sorted(by_group.items()):
        for chunk in _chunks(sorted(members_in), ASG_CALL_LIMIT):
            what = f"{'EnterStandby' if mode == STANDBY else 'DetachInstances'} of " \
                   f"{', '.join(chunk)} from {group} in {region}"
            if dry_run:
                count(f"{NO_DRY_RUN} {'enter standby' if mode == STANDBY else 'detach'}",
                      len(chunk))
                continue
            if mode == STANDBY:
                call(what, autoscaling.enter_standby, AutoScalingGroupName=group,
                     InstanceIds=chunk, ShouldDecrementDesiredCapacity=False)
            else:
                call(what, autoscaling.detach_instances, AutoScalingGroupName=group,
                     InstanceIds=chunk, ShouldDecrementDesiredCapacity=False)
            count("leftGroup", len(chunk))

    if not dry_run and by_group:
        # Leaving the group deregisters it from the group's own target groups: look again.
        registered = registrations(client_for, region, ids)
    elbv2 = client_for("elbv2", region)
    by_target_group: dict[str, list[dict[str, Any]]] = {}
    draining: list[str] = []
    for instance_id in ids:
        for arn, (port, state) in registered[instance_id]["targets"].items():
            if state == "draining":
                draining.append(f"{instance_id} from {arn.split(':targetgroup/', 1)[-1]}")
            else:
                by_target_group.setdefault(arn, []).append({"Id": instance_id, "Port": port})
    for arn, targets in sorted(by_target_group.items()):
        if dry_run:
            count(f"{NO_DRY_RUN} deregister from a target group", len(targets))
            continue
        call(f"DeregisterTargets from {arn.split(':targetgroup/', 1)[-1]} in {region}",
             elbv2.deregister_targets, TargetGroupArn=arn, Targets=targets)
        count("deregistered", len(targets))
        draining += [f"{t['Id']} from {arn.split(':targetgroup/', 1)[-1]}" for t in targets]
    classic = client_for("elb", region)
    by_balancer: dict[str, list[str]] = {}
    for instance_id in ids:
        for name in registered[instance_id]["elbs"]:
            by_balancer.setdefault(name, []).append(instance_id)
    for name, members_of in sorted(by_balancer.items()):
        if dry_run:
            count(f"{NO_DRY_RUN} deregister from a classic load balancer", len(members_of))
            continue
        call(f"DeregisterInstancesFromLoadBalancer {name} in {region}",
             classic.deregister_instances_from_load_balancer, LoadBalancerName=name,
             Instances=[{"InstanceId": i} for i in members_of])
        count("deregisteredClassic", len(members_of))
    if draining and not dry_run:
        still = _still_draining(client_for, region, ids)
        if still:
            raise TargetsDraining(
                f"{len(still)} target(s) still draining in {region}: {'; '.join(still[:5])}"
                f"{' ...' if len(still) > 5 else ''}"
            )
    return counts


def _still_draining(client_for: Client, region: str, ids: list[str]) -> list[str]:
    registered = registrations(client_for, region, ids)
    return [
        f"{instance_id} from {arn.split(':targetgroup/', 1)[-1]}"
        for instance_id in ids
        for arn, (_, state) in registered[instance_id]["targets"].items()
        if state == "draining"
    ]


# ------------------------------------------------------------------------------------ restoring
def give_back(client_for: Client, region: str, instance: dict[str, Any]) -> list[str]:
    """Return one instance to the service its tags record, in the reverse order of
    :func:`take_out`: registered again with each classic load balancer and target group, then
    back in its group (``ExitStandby``, or ``AttachInstances`` if it was detached), the group's
    desired capacity then lowered by the one the return added, with the instance protected from
    scale-in for that change (its own protection restored after). Returns what was done."""
    instance_id = instance["InstanceId"]
    tags = tags_of(instance)
    done: list[str] = []
    classic = client_for("elb", region)
    elbv2 = client_for("elbv2", region)
    elbs = read_record(tags, BEFORE_ELBS)
    if elbs:
        described = call(f"DescribeLoadBalancers {', '.join(elbs)} in {region}",
                         classic.describe_load_balancers, LoadBalancerNames=elbs)
        elbs = [
            b["LoadBalancerName"] for b in described["LoadBalancerDescriptions"]
            if instance_id not in {i["InstanceId"] for i in b.get("Instances", [])}
        ]
    targets = []
    for item in read_record(tags, BEFORE_TARGETS):
        arn, _, port = item.rpartition("@")
        health = call(f"DescribeTargetHealth of {instance_id} in {arn.split(':targetgroup/', 1)[-1]}",
                      elbv2.describe_target_health, TargetGroupArn=arn,
                      Targets=[{"Id": instance_id, "Port": int(port)}])
        states = {d["TargetHealth"].get("Reason") == "Target.NotRegistered"
                  or d["TargetHealth"]["State"] == "draining"
                  for d in health.get("TargetHealthDescriptions", [])}
        if states != {False}:
            targets.append(item)
    for name in elbs:
        call(f"RegisterInstancesWithLoadBalancer {name} of {instance_id} in {region}",
             classic.register_instances_with_load_balancer, LoadBalancerName=name,
             Instances=[{"InstanceId": instance_id}])
        done.append(f"elb={name}")
    for item in targets:
        arn, _, port = item.rpartition("@")
        call(f"RegisterTargets of {instance_id} with {arn.split(':targetgroup/', 1)[-1]} in "
             f"{region}", elbv2.register_targets, TargetGroupArn=arn,
             Targets=[{"Id": instance_id, "Port": int(port)}])
        done.append("tg=" + arn.split(":targetgroup/", 1)[-1])
    recorded = tags.get(BEFORE_ASG)
    if recorded:
        mode, protection, group = recorded.split(":", 2)
        member = memberships(client_for, region, [instance_id]).get(instance_id)
        autoscaling = client_for("autoscaling", region)
        if member is None or member["state"] != "InService":
            if member is not None and member["state"] == "Standby":
                call(f"ExitStandby of {instance_id} into {group} in {region}",
                     autoscaling.exit_standby, AutoScalingGroupName=group,
                     InstanceIds=[instance_id])
            elif member is None:
                call(f"AttachInstances of {instance_id} to {group} in {region}",
                     autoscaling.attach_instances, AutoScalingGroupName=group,
                     InstanceIds=[instance_id])
            else:
                raise RunbookError(f"{instance_id} is {member['state']} in group {group}")
            _undo_replacement(autoscaling, region, group, instance_id, protection == "protected")
        done.append(f"asg={group}:InService")
    return done


def _undo_replacement(
    autoscaling: Any, region: str, group: str, instance_id: str, protected: bool
) -> None:
    """Lower ``group``'s desired capacity by the one an instance's return added (the group
    launched a replacement when it left), keeping the instance itself from the scale-in."""
    described = call(f"DescribeAutoScalingGroups {group} in {region}",
                     autoscaling.describe_auto_scaling_groups,
                     AutoScalingGroupNames=[group])["AutoScalingGroups"]
    if not described:
        raise RunbookError(f"group {group} not found in {region}")
    desired = int(described[0]["DesiredCapacity"])
    if desired - 1 < int(described[0]["MinSize"]):
        return
    call(f"SetInstanceProtection of {instance_id} in {group} ({region})",
         autoscaling.set_instance_protection, AutoScalingGroupName=group,
         InstanceIds=[instance_id], ProtectedFromScaleIn=True)
    try:
        call(f"SetDesiredCapacity of {group} in {region}", autoscaling.set_desired_capacity,
             AutoScalingGroupName=group, DesiredCapacity=desired - 1, HonorCooldown=False)
    finally:
        if not protected:
            call(f"SetInstanceProtection of {instance_id} in {group} ({region})",
                 autoscaling.set_instance_protection, AutoScalingGroupName=group,
                 InstanceIds=[instance_id], ProtectedFromScaleIn=False)

