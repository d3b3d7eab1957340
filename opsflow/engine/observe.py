"""Looking at the emulated account: the resource listing of ``opsflow world`` and the
before/after diff that becomes a report's ``effects`` (never the runbook's own claim)."""

from __future__ import annotations

from typing import Any

from runbook_kit.aws import client as _client

Key = tuple[str, str, str]  # (resource id, region, field)


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def resources(regions: list[str], account: str | None = None) -> list[dict[str, Any]]:
    """Every EC2 instance, security group, volume and snapshot in ``regions``: read from moto's
    backends when ``account`` is given (what the diff uses: no API call, no serialisation),
    else through the EC2 API (what ``opsflow world`` prints)."""
    if account is not None:
        return _from_backends(regions, account)
    found: list[dict[str, Any]] = []
    for region in regions:
        ec2 = _client("ec2", region)
        for reservation in ec2.describe_instances()["Reservations"]:
            for i in reservation["Instances"]:
                groups = sorted(
                    {g["GroupId"] for eni in i.get("NetworkInterfaces", []) for g in eni["Groups"]}
                )
                found.append(
                    {
                        "type": "ec2:instance",
                        "id": i["InstanceId"],
                        "region": region,
                        "state": i["State"]["Name"],
                        "tags": _tags(i.get("Tags")),
                        "groups": groups,
                        "interfaces": {
                            eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni["Groups"])
                            for eni in i.get("NetworkInterfaces", [])
                        },
                    }
                )
        for g in ec2.describe_security_groups()["SecurityGroups"]:
            if g["GroupName"] == "default":
                continue
            found.append(
                {
                    "type": "ec2:security-group",
                    "id": g["GroupId"],
                    "region": region,
                    "state": f"{len(g.get('IpPermissions', []))} in / "
                    f"{len(g.get('IpPermissionsEgress', []))} out rules",
                    "tags": {"GroupName": g["GroupName"], **_tags(g.get("Tags"))},
                }
            )
        for v in ec2.describe_volumes()["Volumes"]:
            found.append(
                {
                    "type": "ec2:volume",
                    "id": v["VolumeId"],
                    "region": region,
                    "state": v["State"],
                    "tags": _tags(v.get("Tags")),
                }
            )
        for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
            found.append(
                {
                    "type": "ec2:snapshot",
                    "id": s["SnapshotId"],
                    "region": region,
                    "state": s["State"],
                    "tags": _tags(s.get("Tags")),
                }
            )
    return found


def _from_backends(regions: list[str], account: str) -> list[dict[str, Any]]:
    """The same listing as the EC2 API gives, read from moto's EC2 backends. The tests check
    both readings agree (``tests/unit/test_observe.py``)."""
    from moto.ec2.models import ec2_backends

    found: list[dict[str, Any]] = []
    for region in regions:
        backend = ec2_backends[account][region]
        tags = backend.tags
        for reservation in list(backend.reservations.values()):
            for i in list(reservation.instances):
                interfaces = {
                    eni.id: sorted(g.id for g in eni._group_set)
                    for eni in sorted(i.nics.values(), key=lambda e: e.device_index or 0)
                }
                found.append({
                    "type": "ec2:instance", "id": i.id, "region": region,
                    "state": i._state.name, "tags": dict(tags.get(i.id, {})),
                    "groups": sorted({g for groups in interfaces.values() for g in groups}),
                    "interfaces": interfaces,
                })
        for groups in list(backend.groups.values()):
            for g in list(groups.values()):
                if g.name == "default":
                    continue
                found.append({
                    "type": "ec2:security-group", "id": g.id, "region": region,
                    "state": f"{len(g.ingress_rules)} in / {len(g.egress_rules)} out rules",
                    "tags": {"GroupName": g.name, **tags.get(g.id, {})},
                })
        for v in list(backend.volumes.values()):
            found.append({"type": "ec2:volume", "id": v.id, "region": region,
                          "state": v.status, "tags": dict(tags.get(v.id, {}))})
        for snap in list(backend.snapshots.values()):
            if snap.owner_id != account:
                continue
            found.append({"type": "ec2:snapshot", "id": snap.id, "region": region,
                          "state": snap.status, "tags": dict(tags.get(snap.id, {}))})
    return found


def snapshot(
    regions: list[str], tables: list[str], parameters: list[str], account: str | None = None
) -> dict[Key, Any]:
    """A flat view of everything a runbook might change."""
    view: dict[Key, Any] = {}
    for r in resources(regions, account):
        rid, region = r["id"], r["region"]
        view[(rid, region, "exists")] = True
        view[(rid, region, "state")] = r["state"]
        for key, value in r["tags"].items():
            view[(rid, region, f"tag:{key}")] = value
        for eni, groups in r.get("interfaces", {}).items():
            view[(rid, region, f"groups:{eni}")] = ",".join(groups)
    if account is not None:
        view.update(serving(regions, account))
        view.update(objects(regions, account))
        view.update(stack_state(account, tables, parameters))
        return view
    ddb = _client("dynamodb", STACK_REGION)
    for table in tables:
        for item in ddb.scan(TableName=table).get("Items", []):
            view[(f"{table}/{item['pk']['S']}", STACK_REGION, "item")] = "present"
    ssm = _client("ssm", STACK_REGION)
    for name in parameters:
        try:
            value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            value = None
        view[(name, STACK_REGION, "value")] = value
    return view


STACK_REGION = "us-east-1"
"""Where the local stack's tables, parameters and alarms live (the engine's region)."""


def stack_state(account: str, tables: list[str], parameters: list[str]) -> dict[Key, Any]:
    """The stack's DynamoDB items (by key) and SSM parameter values, from moto's backends."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.ssm.models import ssm_backends

    view: dict[Key, Any] = {}
    backend = dynamodb_backends[account][STACK_REGION]
    for name in tables:
        table = backend.tables.get(name)
        for item in table.all_items() if table is not None else []:
            view[(f"{name}/{item.hash_key.value}", STACK_REGION, "item")] = "present"
    ssm = ssm_backends[account][STACK_REGION]
    for name in parameters:
        found = ssm.get_parameter(name)
        view[(name, STACK_REGION, "value")] = found.value if found is not None else None
    return view


def traffic_and_alarms(account: str, alarms: list[str]) -> dict[Key, Any]:
    """Route 53's weighted records (by name and set identifier) and the stack's alarm states,
    from moto's backends, keyed as the APIs name them."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.route53.models import route53_backends

    view: dict[Key, Any] = {}
    for zone in list(route53_backends[account]["global"].zones.values()):
        for record in list(zone.rrsets):
            if record.weight is not None:
                name = record.name if record.name.endswith(".") else f"{record.name}."
                view[(f"{name} [{record.set_identifier}]", "global", "weight")] = int(record.weight)
    found = cloudwatch_backends[account][STACK_REGION].alarms
    for name in alarms:
        alarm = found.get(name)
        view[(name, STACK_REGION, "state")] = alarm.state_value if alarm is not None else None
    return view


def serving(regions: list[str], account: str) -> dict[Key, Any]:
    """What keeps an instance in service and its disks and credentials alive, from moto's
    backends: Auto Scaling groups (desired capacity, each member's lifecycle state),
    target groups and classic load balancers (registered instances, draining ones as the
    engine reports them), and each instance's termination protection, shutdown behaviour,
    volumes deleted on termination and instance profile."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends
    from moto.elb.models import elb_backends
    from moto.elbv2.models import elbv2_backends

    view: dict[Key, Any] = {}
    for region in regions:
        for group in list(autoscaling_backends[account][region].autoscaling_groups.values()):
            view[(f"asg/{group.name}", region, "desired")] = group.desired_capacity
            for member in list(group.instance_states):
                view[(member.instance.id, region, f"asg:{group.name}")] = member.lifecycle_state
        for target_group in list(elbv2_backends[account][region].target_groups.values()):
            for target in list(target_group.targets.values()):
                view[(target["Id"], region, f"target:{target_group.name}")] = "registered"
        for balancer in list(elb_backends[account][region].load_balancers.values()):
            for instance_id in list(balancer.instance_ids):
                view[(instance_id, region, f"elb:{balancer.name}")] = "registered"
        backend = ec2_backends[account][region]
        profiles = {
            association.instance.id: association.iam_instance_profile.arn
            for association in list(backend.iam_instance_profile_associations.values())
        }
        for reservation in list(backend.reservations.values()):
            for i in list(reservation.instances):
                view[(i.id, region, "terminationProtection")] = bool(i.disable_api_termination)
                view[(i.id, region, "shutdownBehavior")] = i.instance_initiated_shutdown_behavior
                view[(i.id, region, "profile")] = profiles.get(i.id)
                for device, mapping in list(i.block_device_mapping.items()):
                    view[(i.id, region, f"deleteOnTermination:{device}")] = bool(
                        mapping.delete_on_termination)
    return view


BODY_SHOWN = 200
"""An object's body up to this many bytes of text is part of the view (a failover object's
``opsflow: standby serves``); a larger or binary one is seen by its ETag only."""


def objects(regions: list[str], account: str) -> dict[Key, Any]:
    """Every S3 object of the buckets in ``regions``, from moto's backend: its ETag, and its
    text when short (what the standby-takes-over switch writes)."""
    from moto.s3.models import s3_backends

    view: dict[Key, Any] = {}
    for bucket in list(s3_backends[account]["global"].buckets.values()):
        if bucket.region_name not in regions:
            continue
        for key in list(bucket.keys.values()):
            where = (f"s3://{bucket.name}/{key.name}", bucket.region_name)
            view[(*where, "etag")] = key.etag
            if key.size <= BODY_SHOWN:
                try:
                    view[(*where, "body")] = key.value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
    return view


def diff(before: dict[Key, Any], after: dict[Key, Any]) -> list[dict[str, Any]]:
    """Every field whose value differs, in key order. Only the changed keys are sorted: an
    account of 10,000 volumes has 100,000 fields, of which a run changes a handful."""
    changed = [key for key, old in before.items() if after.get(key) != old]
    changed += [key for key, new in after.items() if key not in before and new is not None]
    effects = []
    for key in sorted(changed):
        old, new = before.get(key), after.get(key)
        rid, region, fld = key
        if fld == "exists":
            old = "absent" if old is None else "present"
            new = "absent" if new is None else "present"
        effects.append({"resource": rid, "region": region, "field": fld, "before": old, "after": new})
    return effects
