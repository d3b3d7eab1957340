"""The EC2 side of a quarantine: look, record, isolate, snapshot, stop, check, restore.

Every function takes ``ec2_for(region) -> EC2 client`` so tests and the local engine supply
their own. The before-state is recorded on the resources themselves (tags), so a rollback
works from what the account says, even after a partial failure in another Map iteration.
Each step is idempotent: a retried call never overwrites the recorded before-state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError
from health_abuse.plan import (
    BEFORE_GROUPS,
    BEFORE_STATE,
    ISOLATION_ROLE,
    ISOLATION_ROLE_TAG,
    QUARANTINED_BY,
    interfaces_of,
    tags_of,
)
from runbook_kit.errors import ResourceNotFound, RunbookError, call, error_code, translate

Ec2For = Callable[[str], Any]
UNCHECKED_WITHOUT_GROUP = "not checked: the isolation group does not exist yet"


class InstanceBusy(RunbookError):
    """The instance is between states (e.g. still stopping); the state machine retries later."""


def _dry(what: str, fn: Callable[..., Any], **kwargs: Any) -> str:
    """Make a call with ``DryRun=True``: ``ok`` when EC2 says it would have succeeded."""
    try:
        fn(DryRun=True, **kwargs)
    except ClientError as error:
        if error_code(error) == "DryRunOperation":
            return "ok"
        raise translate(error, f"{what} (dry run)") from error
    return "ok"


def find_instances(ec2_for: Ec2For, wanted: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Describe instances by ID in each region (a filter, so unknown IDs are simply absent)."""
    by_region: dict[str, list[str]] = {}
    for instance_id, regions in wanted.items():
        for region in regions:
            by_region.setdefault(region, []).append(instance_id)
    found: dict[str, dict[str, Any]] = {}
    for region in sorted(by_region):
        ids = sorted(set(by_region[region]))
        for start in range(0, len(ids), 200):
            batch = ids[start : start + 200]
            paginator = ec2_for(region).get_paginator("describe_instances")
            try:
                pages = list(paginator.paginate(Filters=[{"Name": "instance-id", "Values": batch}]))
            except ClientError as error:
                raise translate(error, f"DescribeInstances in {region}") from error
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        instance["Region"] = region
                        found.setdefault(instance["InstanceId"], instance)
    return found


def describe(ec2_for: Ec2For, instance_id: str, region: str) -> dict[str, Any]:
    found = find_instances(ec2_for, {instance_id: [region]})
    if instance_id not in found:
        raise ResourceNotFound(f"instance {instance_id} not found in {region}")
    return found[instance_id]


def enis(instance: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        instance.get("NetworkInterfaces", []), key=lambda e: e["Attachment"]["DeviceIndex"]
    )


def groups_of(eni: dict[str, Any]) -> list[str]:
    return sorted(g["GroupId"] for g in eni.get("Groups", []))


def isolation_group(ec2: Any, vpc_id: str, name: str, dry_run: bool) -> tuple[str | None, str]:
    """Find or create the isolating security group of a VPC: no inbound, no outbound rules."""
    existing = call(
        "DescribeSecurityGroups",
        ec2.describe_security_groups,
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [name]},
        ],
    )["SecurityGroups"]
    if existing:
        return existing[0]["GroupId"], "exists"
    spec = {
        "GroupName": name,
        "Description": "opsflow quarantine: no inbound or outbound traffic",
        "VpcId": vpc_id,
        "TagSpecifications": [
            {
                "ResourceType": "security-group",
                "Tags": [
                    {"Key": ISOLATION_ROLE_TAG, "Value": ISOLATION_ROLE},
                    {"Key": "Name", "Value": name},
                ],
            }
        ],
    }
    if dry_run:
        return None, _dry("CreateSecurityGroup", ec2.create_security_group, **spec)
    try:
        group_id = ec2.create_security_group(**spec)["GroupId"]
    except ClientError as error:
        if error_code(error) == "InvalidGroup.Duplicate":
            return isolation_group(ec2, vpc_id, name, dry_run)
        raise translate(error, "CreateSecurityGroup") from error
    group = call("DescribeSecurityGroups", ec2.describe_security_groups, GroupIds=[group_id])
    egress = group["SecurityGroups"][0].get("IpPermissionsEgress", [])
    if egress:
        call(
            "RevokeSecurityGroupEgress",
            ec2.revoke_security_group_egress,
            GroupId=group_id,
            IpPermissions=egress,
        )
    return group_id, "created"


def isolate(
    ec2_for: Ec2For, target: dict[str, Any], group_name: str, execution: str, dry_run: bool
) -> dict[str, Any]:
    """Record the before-state, then move every network interface to the isolating group."""
    instance_id, region = target["instanceId"], target["region"]
    ec2 = ec2_for(region)
    instance = describe(ec2_for, instance_id, region)
    tags = tags_of(instance)
    group_id, group_status = isolation_group(ec2, instance["VpcId"], group_name, dry_run)
    interfaces = enis(instance)
    if dry_run:
        checks = {"createSecurityGroup": group_status}
        checks["createTags"] = _dry(
            "CreateTags",
            ec2.create_tags,
            Resources=[instance_id],
            Tags=[{"Key": QUARANTINED_BY, "Value": execution}],
        )
        for eni in interfaces:
            check = f"modifyNetworkInterface {eni['NetworkInterfaceId']}"
            if group_id is None:
                # The move can only be checked into the isolation group, which a dry run does
                # not create: the first real run creates it, then moves the interface.
                checks[check] = UNCHECKED_WITHOUT_GROUP
                continue
            checks[check] = _dry(
                "ModifyNetworkInterfaceAttribute",
                ec2.modify_network_interface_attribute,
                NetworkInterfaceId=eni["NetworkInterfaceId"],
                Groups=[group_id],
            )
        return {"instanceId": instance_id, "region": region, "dryRun": True, "checks": checks}

    if QUARANTINED_BY not in tags:
        call(
            "CreateTags",
            ec2.create_tags,
            Resources=[instance_id],
            Tags=[
                {"Key": QUARANTINED_BY, "Value": execution},
                {"Key": BEFORE_STATE, "Value": instance["State"]["Name"]},
            ],
        )
    moved = []
    for eni in interfaces:
        eni_id = eni["NetworkInterfaceId"]
        current = groups_of(eni)
        if current == [group_id]:
            continue
        eni_tags = call(
            "DescribeTags",
            ec2.describe_tags,
            Filters=[
                {"Name": "resource-id", "Values": [eni_id]},
                {"Name": "key", "Values": [BEFORE_GROUPS]},
            ],
        )["Tags"]
        if not eni_tags:
            call(
                "CreateTags",
                ec2.create_tags,
                Resources=[eni_id],
                Tags=[{"Key": BEFORE_GROUPS, "Value": ",".join(current)}],
            )
        call(
            "ModifyNetworkInterfaceAttribute",
            ec2.modify_network_interface_attribute,
            NetworkInterfaceId=eni_id,
            Groups=[group_id],
        )
        moved.append({"networkInterfaceId": eni_id, "before": current})
    return {
        "instanceId": instance_id,
        "region": region,
        "isolationGroup": group_id,
        "isolationGroupStatus": group_status,
        "moved": moved,
    }


def snapshot(
    ec2_for: Ec2For, target: dict[str, Any], execution: str, dry_run: bool
) -> dict[str, Any]:
    """Snapshot every EBS volume of the instance, crash-consistent across volumes."""
    instance_id, region = target["instanceId"], target["region"]
    ec2 = ec2_for(region)
    spec = {
        "InstanceSpecification": {"InstanceId": instance_id, "ExcludeBootVolume": False},
        "Description": f"opsflow forensic snapshot of {instance_id} ({execution})",
        "TagSpecifications": [
            {
                "ResourceType": "snapshot",
                "Tags": [
                    {"Key": QUARANTINED_BY, "Value": execution},
                    {"Key": "opsflow:forensic-of", "Value": instance_id},
                ],
            }
        ],
        "CopyTagsFromSource": "volume",
    }
    if dry_run:
        return {
            "instanceId": instance_id,
            "dryRun": True,
            "createSnapshots": _dry("CreateSnapshots", ec2.create_snapshots, **spec),
        }
    result = call("CreateSnapshots", ec2.create_snapshots, **spec)
    return {
        "instanceId": instance_id,
        "snapshots": sorted(s["SnapshotId"] for s in result.get("Snapshots", [])),
    }


def stop(ec2_for: Ec2For, target: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    instance_id, region = target["instanceId"], target["region"]
    ec2 = ec2_for(region)
    if dry_run:
        return {
            "instanceId": instance_id,
            "dryRun": True,
            "stopInstances": _dry("StopInstances", ec2.stop_instances, InstanceIds=[instance_id]),
        }
    result = call("StopInstances", ec2.stop_instances, InstanceIds=[instance_id])
    change = result["StoppingInstances"][0]
    return {
        "instanceId": instance_id,
        "before": change["PreviousState"]["Name"],
        "now": change["CurrentState"]["Name"],
    }


def inspect(
    ec2_for: Ec2For, targets: Iterable[dict[str, Any]], group_name: str
) -> list[dict[str, Any]]:
    """The current state of each target: power state, groups, whether it is quarantined."""
    wanted = {t["instanceId"]: [t["region"]] for t in targets}
    found = find_instances(ec2_for, wanted)
    report = []
    isolation: dict[tuple[str, str], str | None] = {}
    for instance_id, (region,) in wanted.items():
        instance = found.get(instance_id)
        if instance is None:
            report.append(
                {
                    "instanceId": instance_id,
                    "region": region,
                    "state": "missing",
                    "groups": [],
                    "interfaces": {},
                    "isolated": False,
                    # Terminated by someone meanwhile: it attacks nobody any more.
                    "quarantined": True,
                }
            )
            continue
        key = (region, instance.get("VpcId", ""))
        if key not in isolation:
            groups = call(
                "DescribeSecurityGroups",
                ec2_for(region).describe_security_groups,
                Filters=[
                    {"Name": "vpc-id", "Values": [key[1]]},
                    {"Name": "group-name", "Values": [group_name]},
                ],
            )["SecurityGroups"]
            isolation[key] = groups[0]["GroupId"] if groups else None
        group_ids = sorted({g for eni in enis(instance) for g in groups_of(eni)})
        isolated = isolation[key] is not None and group_ids == [isolation[key]]
        state = instance["State"]["Name"]
        gone = state in ("terminated", "shutting-down")
        report.append(
            {
                "instanceId": instance_id,
                "region": region,
                "state": state,
                "groups": group_ids,
                "interfaces": interfaces_of(instance),
                "isolated": isolated,
                "quarantined": gone or (isolated and state == "stopped"),
            }
        )
    return report


def restore(ec2_for: Ec2For, target: dict[str, Any], execution: str) -> dict[str, Any]:
    """Return one instance to the before-state recorded by ``execution``. Instances this
    execution did not quarantine (untouched, or held by an earlier run) are left alone."""
    instance_id, region = target["instanceId"], target["region"]
    ec2 = ec2_for(region)
    try:
        instance = describe(ec2_for, instance_id, region)
    except ResourceNotFound:
        return {"instanceId": instance_id, "region": region, "restored": False, "state": "missing"}
    tags = tags_of(instance)
    if tags.get(QUARANTINED_BY) != execution:
        owner = tags.get(QUARANTINED_BY)
        return {"instanceId": instance_id, "region": region, "restored": False,
                "reason": f"quarantined by {owner}" if owner else "not touched"}
    restored_groups = []
    for eni in enis(instance):
        eni_id = eni["NetworkInterfaceId"]
        eni_tags = call(
            "DescribeTags",
            ec2.describe_tags,
            Filters=[
                {"Name": "resource-id", "Values": [eni_id]},
                {"Name": "key", "Values": [BEFORE_GROUPS]},
            ],
        )["Tags"]
        if not eni_tags:
            continue
        before = [g for g in eni_tags[0]["Value"].split(",") if g]
        if before and groups_of(eni) != sorted(before):
            call(
                "ModifyNetworkInterfaceAttribute",
                ec2.modify_network_interface_attribute,
                NetworkInterfaceId=eni_id,
                Groups=before,
            )
        call("DeleteTags", ec2.delete_tags, Resources=[eni_id], Tags=[{"Key": BEFORE_GROUPS}])
        restored_groups.append({"networkInterfaceId": eni_id, "groups": before})

    state = instance["State"]["Name"]
    before_state = tags.get(BEFORE_STATE)
    started = False
    if before_state == "running" and state != "running":
        if state in ("stopping", "pending"):
            raise InstanceBusy(f"{instance_id} is {state}; it can be started once it is stopped")
        if state == "stopped":
            call("StartInstances", ec2.start_instances, InstanceIds=[instance_id])
            started = True
    if QUARANTINED_BY in tags or BEFORE_STATE in tags:
        call(
            "DeleteTags",
            ec2.delete_tags,
            Resources=[instance_id],
            Tags=[{"Key": QUARANTINED_BY}, {"Key": BEFORE_STATE}],
        )
    touched = bool(restored_groups) or before_state is not None
    return {
        "instanceId": instance_id,
        "region": region,
        "restored": touched,
        "started": started,
        "groups": restored_groups,
    }
