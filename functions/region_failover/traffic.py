"""Reading and moving traffic between two regions: Route 53 weighted records or a Global
Accelerator traffic dial, plus the runbook's own state (last failover, recorded before-state)
kept in Parameter Store so it survives executions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from runbook_kit.errors import RunbookError, error_code, translate

ClientFor = Callable[[str, str], Any]
GA_REGION = "us-west-2"
"""Global Accelerator's API has one endpoint, in us-west-2."""


class TrafficNotFound(RunbookError):
    """The records or endpoint groups the runbook is configured to move do not exist."""


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except ClientError as error:
        raise translate(error, what) from error


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def read(client_for: ClientFor, config: dict[str, Any]) -> dict[str, int]:
    """Each region's share of traffic now: Route 53 weight or Global Accelerator dial (0..100)."""
    regions = config["regions"]
    if config["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        name = _fqdn(config["recordName"])
        result = _call(
            "ListResourceRecordSets",
            route53.list_resource_record_sets,
            HostedZoneId=config["hostedZoneId"],
            StartRecordName=name,
        )
        weights = {}
        for record in result.get("ResourceRecordSets", []):
            if _fqdn(record["Name"]) == name and record.get("SetIdentifier") in regions:
                weights[record["SetIdentifier"]] = int(record.get("Weight", 0))
        missing = [r for r in regions if r not in weights]
        if missing:
            raise TrafficNotFound(
                f"no weighted record {name} with SetIdentifier {', '.join(missing)} in zone "
                f"{config['hostedZoneId']}"
            )
        return weights
    ga = client_for("globalaccelerator", GA_REGION)
    groups = _call(
        "ListEndpointGroups", ga.list_endpoint_groups, ListenerArn=config["listenerArn"]
    )["EndpointGroups"]
    dials = {g["EndpointGroupRegion"]: int(g.get("TrafficDialPercentage", 100)) for g in groups}
    missing = [r for r in regions if r not in dials]
    if missing:
        raise TrafficNotFound(f"no endpoint group for {', '.join(missing)} on {config['listenerArn']}")
    return {r: dials[r] for r in regions}


def shift(client_for: ClientFor, config: dict[str, Any], wanted: dict[str, int]) -> dict[str, Any]:
    """Set each region's share. Route 53: one atomic change of every weighted record;
    Global Accelerator: the dial of each endpoint group, target first, so traffic always has a
    place to go."""
    if config["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        name = _fqdn(config["recordName"])
        result = _call(
            "ListResourceRecordSets",
            route53.list_resource_record_sets,
            HostedZoneId=config["hostedZoneId"],
            StartRecordName=name,
        )
        changes = []
        for record in result.get("ResourceRecordSets", []):
            region = record.get("SetIdentifier")
            if _fqdn(record["Name"]) == name and region in wanted:
                updated = {**record, "Weight": int(wanted[region])}
                changes.append({"Action": "UPSERT", "ResourceRecordSet": updated})
        covered = {c["ResourceRecordSet"]["SetIdentifier"] for c in changes}
        if covered != set(wanted):
            raise TrafficNotFound(f"weighted records of {name} not found for every region")
        info = _call(
            "ChangeResourceRecordSets",
            route53.change_resource_record_sets,
            HostedZoneId=config["hostedZoneId"],
            ChangeBatch={"Comment": "opsflow region-failover", "Changes": changes},
        )["ChangeInfo"]
        return {"mechanism": "route53", "changeId": info["Id"].split("/")[-1],
                "status": info["Status"], "weights": wanted}
    ga = client_for("globalaccelerator", GA_REGION)
    groups = _call(
        "ListEndpointGroups", ga.list_endpoint_groups, ListenerArn=config["listenerArn"]
    )["EndpointGroups"]
    by_region = {g["EndpointGroupRegion"]: g["EndpointGroupArn"] for g in groups}
    for region in sorted(wanted, key=lambda r: -wanted[r]):
        _call(
            "UpdateEndpointGroup",
            ga.update_endpoint_group,
            EndpointGroupArn=by_region[region],
            TrafficDialPercentage=float(wanted[region]),
        )
    return {"mechanism": "globalaccelerator", "dials": wanted}


def in_sync(client_for: ClientFor, config: dict[str, Any], shifted: dict[str, Any]) -> bool:
    """Whether the change has reached every edge: Route 53 ``INSYNC``, the accelerator
    ``DEPLOYED``."""
    if shifted["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        status = _call("GetChange", route53.get_change, Id=shifted["changeId"])["ChangeInfo"]
        return bool(status["Status"] == "INSYNC")
    ga = client_for("globalaccelerator", GA_REGION)
    accelerator = config["listenerArn"].split("/listener/")[0]
    found = _call("DescribeAccelerator", ga.describe_accelerator, AcceleratorArn=accelerator)
    return bool(found["Accelerator"]["Status"] == "DEPLOYED")


def healthy_targets(elbv2: Any, target_group_arn: str) -> tuple[int, int]:
    """(healthy, total) targets of a target group."""
    found = _call(
        "DescribeTargetHealth", elbv2.describe_target_health, TargetGroupArn=target_group_arn
    )["TargetHealthDescriptions"]
    healthy = sum(1 for t in found if t["TargetHealth"]["State"] == "healthy")
    return healthy, len(found)


def alarm_state(cloudwatch: Any, alarm_name: str) -> str:
    found = _call("DescribeAlarms", cloudwatch.describe_alarms, AlarmNames=[alarm_name])
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
    _call(
        "PutParameter",
        ssm.put_parameter,
        Name=name,
        Value=json.dumps(state, sort_keys=True),
        Type="String",
        Overwrite=True,
    )


def minutes_since(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - then).total_seconds() / 60
