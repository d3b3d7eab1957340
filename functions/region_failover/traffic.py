"""Reading and moving traffic between two regions: Route 53 weighted records or a Global
Accelerator traffic dial, plus the runbook's own state (last failover, recorded before-state)
kept in Parameter Store so it survives executions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from runbook_kit.errors import RunbookError, call, error_code, translate

ClientFor = Callable[[str, str], Any]
GA_REGION = "us-west-2"
"""Global Accelerator's API has one endpoint, in us-west-2."""


class TrafficNotFound(RunbookError):
    """The records or endpoint groups the runbook is configured to move do not exist."""


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _weighted_records(route53: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The weighted records of ``recordName`` that belong to the configured regions, every type
    (a dual-stack name has an A and an AAAA record per region); each region must have one."""
    name = _fqdn(config["recordName"])
    result = call(
        "ListResourceRecordSets",
        route53.list_resource_record_sets,
        HostedZoneId=config["hostedZoneId"],
        StartRecordName=name,
    )
    records = [
        record
        for record in result.get("ResourceRecordSets", [])
        if _fqdn(record["Name"]) == name and record.get("SetIdentifier") in config["regions"]
    ]
    missing = sorted(set(config["regions"]) - {r["SetIdentifier"] for r in records})
    if missing:
        raise TrafficNotFound(
            f"no weighted record {name} with SetIdentifier {', '.join(missing)} in zone "
            f"{config['hostedZoneId']}"
        )
    return records


def _endpoint_groups(ga: Any, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The listener's endpoint group of each configured region; each region must have one."""
    groups = call(
        "ListEndpointGroups", ga.list_endpoint_groups, ListenerArn=config["listenerArn"]
    )["EndpointGroups"]
    by_region = {g["EndpointGroupRegion"]: g for g in groups}
    missing = [r for r in config["regions"] if r not in by_region]
    if missing:
        raise TrafficNotFound(f"no endpoint group for {', '.join(missing)} on {config['listenerArn']}")
    return by_region


def read(client_for: ClientFor, config: dict[str, Any]) -> dict[str, int]:
    """Each region's share of traffic now: Route 53 weight or Global Accelerator dial (0..100)."""
    if config["mechanism"] == "route53":
        records = _weighted_records(client_for("route53", "us-east-1"), config)
        weights = {r["SetIdentifier"]: int(r.get("Weight", 0)) for r in records}
        return {r: weights[r] for r in config["regions"]}
    groups = _endpoint_groups(client_for("globalaccelerator", GA_REGION), config)
    return {r: int(groups[r].get("TrafficDialPercentage", 100)) for r in config["regions"]}


def shift(client_for: ClientFor, config: dict[str, Any], wanted: dict[str, int]) -> dict[str, Any]:
    """Set each region's share. Route 53: one atomic change of every weighted record;
    Global Accelerator: the dial of each endpoint group, target first, so traffic always has a
    place to go."""
    if config["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        changes = [
            {"Action": "UPSERT",
             "ResourceRecordSet": {**record, "Weight": int(wanted[record["SetIdentifier"]])}}
            for record in _weighted_records(route53, config)
        ]
        info = call(
            "ChangeResourceRecordSets",
            route53.change_resource_record_sets,
            HostedZoneId=config["hostedZoneId"],
            ChangeBatch={"Comment": "opsflow region-failover", "Changes": changes},
        )["ChangeInfo"]
        return {"mechanism": "route53", "changeId": info["Id"].split("/")[-1],
                "status": info["Status"], "weights": wanted}
    ga = client_for("globalaccelerator", GA_REGION)
    groups = _endpoint_groups(ga, config)
    for region in sorted(wanted, key=lambda r: -wanted[r]):
        call(
            "UpdateEndpointGroup",
            ga.update_endpoint_group,
            EndpointGroupArn=groups[region]["EndpointGroupArn"],
            TrafficDialPercentage=float(wanted[region]),
        )
    return {"mechanism": "globalaccelerator", "dials": wanted}


def in_sync(client_for: ClientFor, config: dict[str, Any], shifted: dict[str, Any]) -> bool:
    """Whether the change has reached every edge: Route 53 ``INSYNC``, the accelerator
    ``DEPLOYED``."""
    if shifted["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        status = call("GetChange", route53.get_change, Id=shifted["changeId"])["ChangeInfo"]
        return bool(status["Status"] == "INSYNC")
    ga = client_for("globalaccelerator", GA_REGION)
    accelerator = config["listenerArn"].split("/listener/")[0]
    found = call("DescribeAccelerator", ga.describe_accelerator, AcceleratorArn=accelerator)
    return bool(found["Accelerator"]["Status"] == "DEPLOYED")


def healthy_targets(elbv2: Any, target_group_arn: str) -> tuple[int, int]:
    """(healthy, total) targets of a target group."""
    found = call(
        "DescribeTargetHealth", elbv2.describe_target_health, TargetGroupArn=target_group_arn
    )["TargetHealthDescriptions"]
    healthy = sum(1 for t in found if t["TargetHealth"]["State"] == "healthy")
    return healthy, len(found)


def alarm_state(cloudwatch: Any, alarm_name: str) -> str:
    found = call("DescribeAlarms", cloudwatch.describe_alarms, AlarmNames=[alarm_name])
    alarms = found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])
    return str(alarms[0]["StateValue"]) if alarms else "MISSING"


def load_state(ssm: Any, name: str) -> dict[str, Any]:
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as error:
        if error_code(error) == "ParameterNotFound":
            return {}
        raise translate(error, f"GetParameter {name}") from error
    try:
        state = json.loads(value)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def save_state(ssm: Any, name: str, state: dict[str, Any]) -> None:
    call(
        "PutParameter",
        ssm.put_parameter,
        Name=name,
        Value=json.dumps(state, sort_keys=True),
        Type="String",
        Overwrite=True,
    )


def instant(stamp: str) -> datetime:
    """An ISO-8601 timestamp as an aware datetime (one without an offset is UTC, as every AWS
    event time is). Raises ``ValueError`` for anything else."""
    if not isinstance(stamp, str):
        raise ValueError(f"not a timestamp: {stamp!r}")
    then = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    return then if then.tzinfo is not None else then.replace(tzinfo=UTC)


def minutes_since(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        then = instant(stamp)
    except ValueError:
        return None
    return (now - then).total_seconds() / 60
