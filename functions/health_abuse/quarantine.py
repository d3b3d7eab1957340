"""The EC2 side of a quarantine: look, record, isolate, snapshot, stop, check, restore.

Every function takes ``ec2_for(region) -> EC2 client`` so tests and the local engine supply
their own. The act and restore functions take a *batch* (region → instance IDs, at most
``plan.BATCH_SIZE`` of them) and use EC2's multi-resource calls where it has them. The
before-state is recorded on the resources themselves (tags), so a rollback works from what the
account says, even after a partial failure in another Map iteration. Each step is idempotent: a
retried call never overwrites the recorded before-state. A failure names the instance (or the
call and region) it happened on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError
from health_abuse import service
from health_abuse.plan import (
    BEFORE_GROUPS,
    BEFORE_STATE,
    ISOLATION_ROLE,
    ISOLATION_ROLE_TAG,
    LISTED,
    QUARANTINED_BY,
    groups_by_interface,
    tags_of,
)
from health_abuse.service import read_record, split_record
from runbook_kit.errors import (
    InvalidEvent,
    ResourceNotFound,
    RunbookError,
    call,
    error_code,
    translate,
)

Ec2For = Callable[[str], Any]
Batch = dict[str, list[str]]
"""Region → instance IDs: one iteration of the act or restore Map."""
UNCHECKED_WITHOUT_GROUP = "not checked: the isolation group does not exist yet"
FILTER_VALUES = 200
"""Values per EC2 filter in one Describe call."""
STATUS_IDS = 100
"""Instance IDs in one DescribeInstanceStatus call (EC2's limit)."""
SETTLED_STATES = ("stopped", "terminated", "shutting-down")
"""The power states in which a verify check reads all of an instance."""


BEFORE_PROTECTION = "opsflow:before-protection"
BEFORE_DELETE_ON_TERMINATION = "opsflow:before-delete-on-termination"
BEFORE_PROFILE = "opsflow:before-profile"
FORENSIC_OF = "opsflow:forensic-of"
EVENT = "opsflow:event"
CONTAINED = "termination=true;shutdown=stop"
"""The protections of a quarantined instance, as :func:`protection_line` writes them."""
NO_DRY_RUN = "not checked: the API has no DryRun; would"


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


def _chunks(items: list[str], size: int = FILTER_VALUES) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def batch_of(payload: dict[str, Any]) -> Batch:
    """The batch a task was given: ``batch`` (region → IDs), or one ``instance``
    (``{"instanceId", "region"}``, as a person invoking the function by hand gives it)."""
    if "batch" in payload:
        batch = payload["batch"]
        if not isinstance(batch, dict) or not all(
            isinstance(ids, list) and all(isinstance(i, str) for i in ids)
            for ids in batch.values()
        ):
            raise InvalidEvent("batch must map each region to a list of instance IDs")
        return {str(region): list(ids) for region, ids in batch.items()}
    instance = payload["instance"]
    if not isinstance(instance, dict) or not {"instanceId", "region"} <= set(instance):
        raise InvalidEvent("instance must be an object with instanceId and region")
    return {str(instance["region"]): [str(instance["instanceId"])]}


def _each_region(batch: Batch, work: Callable[[str, list[str]], None]) -> None:
    """``work(region, ids)`` for every region of the batch. A failure in one region does not
    keep the others from being done (as separate Map iterations would not): the first one is
    raised once every region has been tried."""
    first: RunbookError | None = None
    for region, ids in batch.items():
        try:
            work(region, ids)
        except RunbookError as error:
            first = first or error
    if first is not None:
        raise first


def _described(ec2_for: Ec2For, region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    found = find_instances(ec2_for, {instance_id: [region] for instance_id in ids})
    missing = [instance_id for instance_id in ids if instance_id not in found]
    if missing:
        raise ResourceNotFound(
            f"instance(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
            f"not found in {region}"
        )
    return found


def _recorded(ec2: Any, resource_ids: list[str], key: str) -> dict[str, str]:
    """Resource ID → the value of its tag ``key``, for those that have it."""
    values: dict[str, str] = {}
    for chunk in _chunks(resource_ids):
        paginator = ec2.get_paginator("describe_tags")
        try:
            pages = list(paginator.paginate(Filters=[
                {"Name": "resource-id", "Values": chunk},
                {"Name": "key", "Values": [key]},
            ]))
        except ClientError as error:
            raise translate(error, "DescribeTags") from error
        for page in pages:
            for tag in page.get("Tags", []):
                values[tag["ResourceId"]] = tag["Value"]
    return values


def _tag(ec2: Any, what: str, resources: list[str], tags: list[dict[str, str]]) -> None:
    for chunk in _chunks(resources):
        call(what, ec2.create_tags, Resources=chunk, Tags=tags)


def _by_region(wanted: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """(region, its instance IDs sorted, once each) for ``wanted`` (ID → regions), by region."""
    by_region: dict[str, set[str]] = {}
    for instance_id, regions in wanted.items():
        for region in regions:
            by_region.setdefault(region, set()).add(instance_id)
    return [(region, sorted(by_region[region])) for region in sorted(by_region)]


def find_instances(ec2_for: Ec2For, wanted: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Describe instances by ID in each region (a filter, so unknown IDs are simply absent)."""
    found: dict[str, dict[str, Any]] = {}
    for region, ids in _by_region(wanted):
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


def power_states(ec2_for: Ec2For, wanted: dict[str, list[str]]) -> dict[str, str] | None:
    """Instance ID → power state, from DescribeInstanceStatus (every state included): a small
    answer for each instance where a description is a large one. ``None`` when a region does
    not know one of the IDs (EC2 then refuses the whole call; describing, by filter, does not)."""
    states: dict[str, str] = {}
    for region, ids in _by_region(wanted):
        for start in range(0, len(ids), STATUS_IDS):
            try:
                answer = ec2_for(region).describe_instance_status(
                    InstanceIds=ids[start : start + STATUS_IDS], IncludeAllInstances=True)
            except ClientError as error:
                if error_code(error).startswith("InvalidInstanceID."):
                    return None
                raise translate(error, f"DescribeInstanceStatus in {region}") from error
            for status in answer.get("InstanceStatuses", []):
                states[status["InstanceId"]] = status["InstanceState"]["Name"]
    return states


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


def protections(
    ec2: Any, region: str, found: dict[str, dict[str, Any]], attributes: bool = True,
    checking: bool = False,
) -> dict[str, dict[str, Any]]:
    """Instance ID → what keeps its disks and credentials: termination protection
    (``termination``), shutdown behaviour (``shutdown``), the devices whose volume is deleted on
    termination (``deleteOnTermination``), the instance profile (``profile``, ``association``).
    Without ``attributes``, only what the instances' descriptions say (no termination
    protection or shutdown behaviour, which EC2 gives one instance and attribute per call; the
    profile without its association). ``checking`` (a verify): the shutdown behaviour is read
    only of an instance whose record says the act changed it (else it is as recorded), the
    profile from the description."""
    result: dict[str, dict[str, Any]] = {}
    for instance_id, instance in found.items():
        if not attributes:
            result[instance_id] = {
                "termination": None, "shutdown": None,
                "deleteOnTermination": sorted(
                    m["DeviceName"] for m in instance.get("BlockDeviceMappings", [])
                    if (m.get("Ebs") or {}).get("DeleteOnTermination")
                ),
                "volumes": [],
                "profile": (instance.get("IamInstanceProfile") or {}).get("Arn"),
                "association": None,
            }
            continue
        if checking:
            recorded = dict(part.split("=", 1) for part in
                            tags_of(instance).get(BEFORE_PROTECTION, "").split(";") if "=" in part)
            changed_shutdown = recorded.get("shutdown", "unknown") != "stop"
        termination = call(
            f"DescribeInstanceAttribute of {instance_id} in {region}",
            ec2.describe_instance_attribute, InstanceId=instance_id,
            Attribute="disableApiTermination",
        )["DisableApiTermination"]["Value"]
        shutdown = "stop" if checking and not changed_shutdown else call(
            f"DescribeInstanceAttribute of {instance_id} in {region}",
            ec2.describe_instance_attribute, InstanceId=instance_id,
            Attribute="instanceInitiatedShutdownBehavior",
        )["InstanceInitiatedShutdownBehavior"]["Value"]
        result[instance_id] = {
            "termination": bool(termination),
            "shutdown": shutdown,
            "deleteOnTermination": sorted(
                m["DeviceName"] for m in instance.get("BlockDeviceMappings", [])
                if (m.get("Ebs") or {}).get("DeleteOnTermination")
            ),
            "volumes": sorted(
                m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", [])
                if (m.get("Ebs") or {}).get("VolumeId")
            ),
            "profile": (instance.get("IamInstanceProfile") or {}).get("Arn") if checking else None,
            "association": None,
        }
    for chunk in _chunks(sorted(found) if attributes and not checking else []):
        paginator = ec2.get_paginator("describe_iam_instance_profile_associations")
        try:
            pages = list(paginator.paginate(Filters=[
                {"Name": "instance-id", "Values": chunk},
                {"Name": "state", "Values": ["associating", "associated"]},
            ]))
        except ClientError as error:
            raise translate(error, f"DescribeIamInstanceProfileAssociations in {region}") from error
        for page in pages:
            for association in page.get("IamInstanceProfileAssociations", []):
                if association["InstanceId"] in result:
                    result[association["InstanceId"]].update(
                        profile=association["IamInstanceProfile"]["Arn"],
                        association=association["AssociationId"],
                    )
    return result


def protection_line(protection: dict[str, Any]) -> str:
    """One instance's protections, compact (the plan holds it for up to 1,000 instances)."""
    parts = []
    if protection["termination"] is not None:
        parts.append(f"termination={str(protection['termination']).lower()}")
    if protection["shutdown"] is not None:
        parts.append(f"shutdown={protection['shutdown']}")
    if protection["deleteOnTermination"]:
        parts.append("deleteOnTermination=" + ",".join(protection["deleteOnTermination"]))
    if protection["profile"]:
        parts.append(f"profile={protection['profile']}")
    return ";".join(parts)


def _protection_record(now: dict[str, Any]) -> list[dict[str, str]]:
    tags = [{"Key": BEFORE_PROTECTION, "Value":
             f"termination={str(now['termination']).lower()};shutdown={now['shutdown']}"}]
    tags += split_record(BEFORE_DELETE_ON_TERMINATION, now["deleteOnTermination"])
    if now["profile"]:
        tags.append({"Key": BEFORE_PROFILE, "Value": now["profile"]})
    return tags


def _tag_alike(ec2: Any, region: str, records: dict[str, list[dict[str, str]]]) -> None:
    """Tag each resource with its record, one CreateTags call per distinct record."""
    alike: dict[str, list[str]] = {}
    for resource, tags in records.items():
        alike.setdefault(json.dumps(tags, sort_keys=True), []).append(resource)
    for key, resources in sorted(alike.items()):
        _tag(ec2, f"CreateTags on {', '.join(resources[:3])} in {region}", sorted(resources),
             json.loads(key))


def _protect(
    ec2: Any, region: str, instance_id: str, now: dict[str, Any],
    dry_run: bool, checked: Callable[[str, str], None],
) -> None:
    """Termination protection on, shutdown behaviour ``stop``, no volume deleted on
    termination, the instance profile disassociated (recorded before, see
    :func:`_protection_record`), each only if needed (a retry repeats nothing)."""
    changes: list[tuple[str, dict[str, Any]]] = []
    if not now["termination"]:
        changes.append(("terminationProtection", {"DisableApiTermination": {"Value": True}}))
    if now["shutdown"] != "stop":
        changes.append(("shutdownBehavior", {"InstanceInitiatedShutdownBehavior": {"Value": "stop"}}))
    if now["deleteOnTermination"]:
        changes.append(("deleteOnTermination", {"BlockDeviceMappings": [
            {"DeviceName": device, "Ebs": {"DeleteOnTermination": False}}
            for device in now["deleteOnTermination"]
        ]}))
    for name, change in changes:
        what = f"ModifyInstanceAttribute ({name}) of {instance_id} in {region}"
        if dry_run:
            checked(name, _dry(what, ec2.modify_instance_attribute, InstanceId=instance_id, **change))
            continue
        call(what, ec2.modify_instance_attribute, InstanceId=instance_id, **change)
    if now["association"]:
        if dry_run:
            checked("disassociateIamInstanceProfile", f"{NO_DRY_RUN} disassociate")
            return
        call(f"DisassociateIamInstanceProfile of {instance_id} in {region}",
             ec2.disassociate_iam_instance_profile, AssociationId=now["association"])


def _tag_volumes(
    ec2: Any, region: str, instance_id: str, volumes: list[str], execution: str, event: str,
    dry_run: bool, checked: Callable[[str, str], None],
) -> None:
    if not volumes:
        return
    tags = [{"Key": QUARANTINED_BY, "Value": execution}, {"Key": FORENSIC_OF, "Value": instance_id}]
    if event:
        tags.append({"Key": EVENT, "Value": event})
    what = f"CreateTags on the volumes of {instance_id} in {region}"
    if dry_run:
        checked("tagVolumes", _dry(what, ec2.create_tags, Resources=volumes, Tags=tags))
        return
    call(what, ec2.create_tags, Resources=volumes, Tags=tags)


def isolate(
    ec2_for: Ec2For, batch: Batch, group_name: str, execution: str, dry_run: bool,
    event: str = "",
) -> dict[str, Any]:
    """Record each instance's before-state, then move every network interface of it to the
    isolating group of its VPC. Returns what was done (or, for a dry run, checked), counted."""
    counts: Counter[str] = Counter()
    made: Counter[str] = Counter()
    checks: dict[str, Counter[str]] = {}

    def checked(name: str, outcome: str) -> None:
        checks.setdefault(name, Counter())[outcome] += 1

    def one(region: str, ids: list[str]) -> None:
        ec2 = ec2_for(region)
        found = _described(ec2_for, region, ids)
        groups = {
            vpc: isolation_group(ec2, vpc, group_name, dry_run)
            for vpc in sorted({found[i]["VpcId"] for i in ids})
        }
        made.update(status for _, status in groups.values())
        moves = [
            (instance_id, eni, groups[found[instance_id]["VpcId"]][0])
            for instance_id in ids
            for eni in enis(found[instance_id])
        ]
        guarded = protections(ec2, region, found)
        if not dry_run:
            _tag_alike(ec2, region, {
                instance_id: _protection_record(guarded[instance_id]) for instance_id in ids
                if tags_of(found[instance_id]).get(QUARANTINED_BY) == execution
                and BEFORE_PROTECTION not in tags_of(found[instance_id])
            })
        for instance_id in ids:
            _protect(ec2, region, instance_id, guarded[instance_id], dry_run, checked)
            _tag_volumes(ec2, region, instance_id, guarded[instance_id]["volumes"], execution,
                         event, dry_run, checked)
        if dry_run:
            checked("createTags", _dry(
                "CreateTags", ec2.create_tags, Resources=ids,
                Tags=[{"Key": QUARANTINED_BY, "Value": execution}],
            ))
            for instance_id, eni, group_id in moves:
                if group_id is None:
                    # The move can only be checked into the isolation group, which a dry run
                    # does not create: the first real run creates it, then moves the interface.
                    checked("modifyNetworkInterfaceAttribute", UNCHECKED_WITHOUT_GROUP)
                    continue
                checked("modifyNetworkInterfaceAttribute", _dry(
                    f"ModifyNetworkInterfaceAttribute of {instance_id} in {region}",
                    ec2.modify_network_interface_attribute,
                    NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[group_id],
                ))
            return

        # Record first, for every instance of the batch (a retry never overwrites a record):
        # the instance's tags, then its interfaces' (a restore removes them in the reverse
        # order), so only the interfaces of an instance already marked can carry a record.
        untagged: dict[str, list[str]] = {}
        for instance_id in ids:
            if QUARANTINED_BY not in tags_of(found[instance_id]):
                state = found[instance_id]["State"]["Name"]
                untagged.setdefault(state, []).append(instance_id)
        for state, chunk in sorted(untagged.items()):
            _tag(ec2, f"CreateTags on instances in {region}", chunk, [
                {"Key": QUARANTINED_BY, "Value": execution},
                {"Key": BEFORE_STATE, "Value": state},
            ])
        to_move = [(i, eni, group) for i, eni, group in moves if groups_of(eni) != [group]]
        marked = {i for i in ids if QUARANTINED_BY in tags_of(found[i])}
        recorded = _recorded(
            ec2, [eni["NetworkInterfaceId"] for i, eni, _ in to_move if i in marked],
            BEFORE_GROUPS,
        )
        unrecorded: dict[str, list[str]] = {}
        for _, eni, _ in to_move:
            if eni["NetworkInterfaceId"] not in recorded:
                unrecorded.setdefault(",".join(groups_of(eni)), []).append(
                    eni["NetworkInterfaceId"]
                )
        for value, chunk in sorted(unrecorded.items()):
            _tag(ec2, f"CreateTags on interfaces in {region}", chunk,
                 [{"Key": BEFORE_GROUPS, "Value": value}])
        for instance_id, eni, group_id in to_move:
            call(
                f"ModifyNetworkInterfaceAttribute of {eni['NetworkInterfaceId']} "
                f"({instance_id}) in {region}",
                ec2.modify_network_interface_attribute,
                NetworkInterfaceId=eni["NetworkInterfaceId"],
                Groups=[group_id],
            )
        counts["interfacesMoved"] += len(to_move)

    _each_region(batch, one)
    result: dict[str, Any] = {
        "instances": sum(len(ids) for ids in batch.values()),
        "isolationGroups": dict(made),
    }
    if dry_run:
        return {"dryRun": True, **result,
                "checks": {name: dict(outcomes) for name, outcomes in checks.items()}}
    return {**result, "interfacesMoved": counts["interfacesMoved"]}


def snapshot(
    ec2_for: Ec2For, batch: Batch, execution: str, dry_run: bool, event: str = ""
) -> dict[str, Any]:
    """Snapshot every EBS volume of each instance, crash-consistent across its volumes, each
    snapshot tagged with the execution, the instance and the event."""
    snapshots = 0
    checks: Counter[str] = Counter()

    def one(region: str, ids: list[str]) -> None:
        nonlocal snapshots
        ec2 = ec2_for(region)
        for instance_id in ids:
            spec = {
                "InstanceSpecification": {"InstanceId": instance_id, "ExcludeBootVolume": False},
                "Description": f"opsflow forensic snapshot of {instance_id} ({execution})",
                "TagSpecifications": [
                    {
                        "ResourceType": "snapshot",
                        "Tags": [
                            {"Key": QUARANTINED_BY, "Value": execution},
                            {"Key": FORENSIC_OF, "Value": instance_id},
                            *([{"Key": EVENT, "Value": event}] if event else []),
                        ],
                    }
                ],
                "CopyTagsFromSource": "volume",
            }
            what = f"CreateSnapshots of {instance_id} in {region}"
            if dry_run:
                checks[_dry(what, ec2.create_snapshots, **spec)] += 1
                continue
            result = call(what, ec2.create_snapshots, **spec)
            snapshots += len(result.get("Snapshots", []))

    _each_region(batch, one)
    if dry_run:
        return {"dryRun": True, "checks": {"createSnapshots": dict(checks)}}
    return {"instances": sum(len(ids) for ids in batch.values()), "snapshots": snapshots}


def stop(ec2_for: Ec2For, batch: Batch, dry_run: bool) -> dict[str, Any]:
    """Stop every instance of the batch: one StopInstances call per region."""
    before: Counter[str] = Counter()
    checks: Counter[str] = Counter()

    def one(region: str, ids: list[str]) -> None:
        ec2 = ec2_for(region)
        what = f"StopInstances in {region}"
        if dry_run:
            checks[_dry(what, ec2.stop_instances, InstanceIds=ids)] += len(ids)
            return
        result = call(what, ec2.stop_instances, InstanceIds=ids)
        for change in result["StoppingInstances"]:
            before[change["PreviousState"]["Name"]] += 1

    _each_region(batch, one)
    if dry_run:
        return {"dryRun": True, "checks": {"stopInstances": dict(checks)}}
    return {"instances": sum(before.values()), "before": dict(before)}


def inspect(
    ec2_for: Ec2For, targets: Iterable[dict[str, Any]], group_name: str,
    client_for: service.Client = service.client, every: bool = True,
) -> list[dict[str, Any]]:
    """The current state of each target (``{"instanceId", "region"}``): power state, groups,
    service (Auto Scaling, load balancers) and protections, whether it is quarantined: stopped,
    isolated, out of service and protected. ``every``: read the service and protections of
    every target (a report); else only of those stopped and isolated (a verify check: the
    rest are not quarantined anyway). A verify check reads the power state of every target
    first and describes only those settled (stopped or gone) and the first ``LISTED`` (its
    notice lists them): one still stopping is reported by its state alone (``isolated``
    ``None``: not read)."""
    wanted = {t["instanceId"]: [t["region"]] for t in targets}
    states = {} if every else power_states(ec2_for, wanted) or {}
    first = list(wanted)[:LISTED]
    unsettled = {i: s for i, s in states.items() if s not in SETTLED_STATES and i not in first}
    found = find_instances(ec2_for, {i: r for i, r in wanted.items() if i not in unsettled})
    report = []
    isolation: dict[tuple[str, str], str | None] = {}
    for instance_id, (region,) in wanted.items():
        instance = found.get(instance_id)
        if instance_id in unsettled:
            report.append({
                "instanceId": instance_id, "region": region, "state": unsettled[instance_id],
                "groups": [], "interfaces": [], "isolated": None, "quarantined": False,
            })
            continue
        if instance is None:
            report.append(
                {
                    "instanceId": instance_id,
                    "region": region,
                    "state": "missing",
                    "groups": [],
                    "interfaces": [],
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
                "interfaces": groups_by_interface(instance),
                "isolated": isolated,
                "quarantined": gone or (isolated and state == "stopped"),
            }
        )
    by_region: dict[str, list[dict[str, Any]]] = {}
    for item in report:
        if item["state"] in ("missing", "terminated", "shutting-down"):
            continue
        if every or item["quarantined"]:
            by_region.setdefault(item["region"], []).append(item)
    # A report reads every protection of the instances it lists (the first LISTED); of the
    # rest, what their descriptions say (their before-states hold no more).
    listed = {item["instanceId"] for item in report[:LISTED]}
    for region, items in sorted(by_region.items()):
        lines = service.look(client_for, region, [i["instanceId"] for i in items])
        ec2 = ec2_for(region)
        guarded = protections(ec2, region, {
            i["instanceId"]: found[i["instanceId"]] for i in items
            if not every or i["instanceId"] in listed
        }, checking=not every)
        if every:
            guarded.update(protections(ec2, region, {
                i["instanceId"]: found[i["instanceId"]] for i in items
                if i["instanceId"] not in listed
            }, attributes=False))
        for item in items:
            item["service"] = lines[item["instanceId"]]
            item["protection"] = protection_line(guarded[item["instanceId"]])
            contained = not service.in_service(item["service"]) and item["protection"] == CONTAINED
            item["contained"] = contained
            item["quarantined"] = item["quarantined"] and contained
    return report


def before_service(
    ec2_for: Ec2For, found: dict[str, dict[str, Any]], client_for: service.Client = service.client
) -> dict[str, tuple[str, str]]:
    """Instance ID → (service line, protection line) of each found instance, as detected (the
    protections its description gives: volumes deleted on termination, instance profile; its
    termination protection and shutdown behaviour are recorded in its tags when it is acted on)."""
    by_region: dict[str, dict[str, dict[str, Any]]] = {}
    for instance_id, instance in found.items():
        by_region.setdefault(instance["Region"], {})[instance_id] = instance
    result: dict[str, tuple[str, str]] = {}
    for region, instances in sorted(by_region.items()):
        lines = service.look(client_for, region, sorted(instances))
        guarded = protections(ec2_for(region), region, instances, attributes=False)
        for instance_id in instances:
            result[instance_id] = (lines[instance_id], protection_line(guarded[instance_id]))
    return result


class _Forget:
    """The record tags to delete once what they record is given back, gathered over a batch and
    deleted in as few DeleteTags calls as there are sets of keys (a tag key deleted without a
    value goes whatever its value). A resource's tags are deleted only after its own restore has
    gone through; a failure before that leaves them for the retry."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, ...], list[str]] = {}

    def add(self, resource: str, keys: Iterable[str]) -> None:
        self.keys.setdefault(tuple(sorted(keys)), []).append(resource)

    def delete(self, ec2: Any, region: str) -> None:
        for keys, resources in sorted(self.keys.items()):
            for chunk in _chunks(resources):
                call(f"DeleteTags on {', '.join(chunk[:3])}{' ...' if len(chunk) > 3 else ''} "
                     f"in {region}", ec2.delete_tags, Resources=chunk,
                     Tags=[{"Key": key} for key in keys])


def _restore_one(
    ec2: Any, instance: dict[str, Any], region: str, execution: str, recorded: dict[str, str],
    client_for: service.Client, forget: _Forget,
) -> dict[str, Any]:
    """Return one instance to the before-state recorded by ``execution`` (``recorded``: each
    interface's recorded groups); its record tags, and each restored interface's, go to
    ``forget``. Instances this execution did not quarantine (untouched, or held by an earlier
    run) are left alone."""
    instance_id = instance["InstanceId"]
    tags = tags_of(instance)
    if tags.get(QUARANTINED_BY) != execution:
        owner = tags.get(QUARANTINED_BY)
        return {"restored": False, "reason": f"quarantined by {owner}" if owner else "not touched"}
    interfaces = enis(instance)
    restored_groups = 0
    for eni in interfaces:
        eni_id = eni["NetworkInterfaceId"]
        if eni_id not in recorded:
            continue
        before = [g for g in recorded[eni_id].split(",") if g]
        if before and groups_of(eni) != sorted(before):
            call(
                f"ModifyNetworkInterfaceAttribute of {eni_id} ({instance_id}) in {region}",
                ec2.modify_network_interface_attribute,
                NetworkInterfaceId=eni_id,
                Groups=before,
            )
        forget.add(eni_id, [BEFORE_GROUPS])
        restored_groups += 1

    state = instance["State"]["Name"]
    before_state = tags.get(BEFORE_STATE)
    started = False
    if before_state == "running" and state != "running":
        if state in ("stopping", "pending"):
            raise InstanceBusy(f"{instance_id} is {state}; it can be started once it is stopped")
        if state == "stopped":
            call(f"StartInstances of {instance_id} in {region}", ec2.start_instances,
                 InstanceIds=[instance_id])
            started = True
    _unprotect(ec2, region, instance_id, tags)
    returned = service.give_back(client_for, region, instance)
    forget.add(instance_id, [
        key for key in tags
        if key in (QUARANTINED_BY, BEFORE_STATE, BEFORE_PROTECTION, BEFORE_PROFILE,
                   service.BEFORE_ASG)
        or any(key in service.record_keys(tags, record) for record in (
            BEFORE_DELETE_ON_TERMINATION, service.BEFORE_TARGETS, service.BEFORE_ELBS))
    ])
    return {"restored": bool(restored_groups) or before_state is not None, "started": started,
            "service": returned}


def _unprotect(ec2: Any, region: str, instance_id: str, tags: dict[str, str]) -> None:
    """Give an instance back the protections its tags record (the reverse of ``_protect``)."""
    recorded = dict(
        part.split("=", 1) for part in tags.get(BEFORE_PROTECTION, "").split(";") if "=" in part
    )
    what = f"ModifyInstanceAttribute of {instance_id} in {region}"
    if tags.get(BEFORE_PROFILE):
        current = call(
            f"DescribeIamInstanceProfileAssociations of {instance_id} in {region}",
            ec2.describe_iam_instance_profile_associations,
            Filters=[{"Name": "instance-id", "Values": [instance_id]},
                     {"Name": "state", "Values": ["associating", "associated"]}],
        )["IamInstanceProfileAssociations"]
        if not current:
            call(f"AssociateIamInstanceProfile of {instance_id} in {region}",
                 ec2.associate_iam_instance_profile, InstanceId=instance_id,
                 IamInstanceProfile={"Arn": tags[BEFORE_PROFILE]})
    devices = read_record(tags, BEFORE_DELETE_ON_TERMINATION)
    if devices:
        call(what, ec2.modify_instance_attribute, InstanceId=instance_id, BlockDeviceMappings=[
            {"DeviceName": device, "Ebs": {"DeleteOnTermination": True}} for device in devices
        ])
    if recorded.get("shutdown") and recorded["shutdown"] != "stop":
        call(what, ec2.modify_instance_attribute, InstanceId=instance_id,
             InstanceInitiatedShutdownBehavior={"Value": recorded["shutdown"]})
    if recorded.get("termination") == "false":
        call(what, ec2.modify_instance_attribute, InstanceId=instance_id,
             DisableApiTermination={"Value": False})


def restore(
    ec2_for: Ec2For, batch: Batch, execution: str, client_for: service.Client = service.client
) -> dict[str, Any]:
    """Return every instance of the batch to the before-state ``execution`` recorded, each as
    far as it goes: a failure on one does not keep the others from being restored. Then, while
    any instance is still stopping, the call fails ``InstanceBusy`` naming them (the state
    machine's retry finishes them); else the first other failure is raised."""
    counts: Counter[str] = Counter()
    busy: list[str] = []
    failed: list[RunbookError] = []

    def one(region: str, ids: list[str]) -> None:
        ec2 = ec2_for(region)
        found = find_instances(ec2_for, {instance_id: [region] for instance_id in ids})
        ours = [i for i in found.values() if tags_of(i).get(QUARANTINED_BY) == execution]
        recorded = _recorded(
            ec2, [eni["NetworkInterfaceId"] for i in ours for eni in enis(i)], BEFORE_GROUPS
        )
        forget = _Forget()
        for instance_id in ids:
            instance = found.get(instance_id)
            if instance is None:
                counts["missing"] += 1
                continue
            try:
                result = _restore_one(ec2, instance, region, execution, recorded, client_for,
                                      forget)
            except InstanceBusy as error:
                busy.append(str(error))
                continue
            except RunbookError as error:
                failed.append(error)
                continue
            counts["restored" if result["restored"] else "untouched"] += 1
            counts["started"] += int(result.get("started", False))
            counts["returnedToService"] += int(bool(result.get("service")))
        try:
            forget.delete(ec2, region)
        except RunbookError as error:
            failed.append(error)

    _each_region(batch, one)
    if busy:
        raise InstanceBusy(
            f"{len(busy)} instance(s) not yet restored: {'; '.join(busy[:5])}"
            f"{' ...' if len(busy) > 5 else ''}"
        )
    if failed:
        raise failed[0]
    return {key: value for key, value in counts.items() if value}


def take_out_of_service(
    ec2_for: Ec2For, client_for: service.Client, batch: Batch, mode: str, execution: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Record each instance's before-state and take it out of service (see
    :func:`health_abuse.service.take_out`), region by region."""
    counts: Counter[str] = Counter()

    def one(region: str, ids: list[str]) -> None:
        found = _described(ec2_for, region, ids)
        counts.update(service.take_out(client_for, region, found, mode, execution, dry_run))

    _each_region(batch, one)
    result: dict[str, Any] = {"instances": sum(len(ids) for ids in batch.values())}
    if dry_run:
        return {"dryRun": True, **result, "checks": dict(counts)}
    return {**result, **counts}
