"""Reading and moving traffic between two regions, plus the runbook's own state (last failover,
recorded before-state) kept in Parameter Store so it survives executions.

Mechanisms: ARC routing controls (``arc``: the cluster's data plane, reached at its regional
endpoints, each tried in turn), AWS's "standby takes over primary" (``standby-takes-over``: an
object in an S3 bucket of the standby region that the primary record's Route 53 health check
reads; S3's data plane), Route 53 weighted records (``route53``: Route 53's control plane,
in us-east-1) or a Global Accelerator traffic dial (``globalaccelerator``: its control plane, in
us-west-2). ``CONTROL_PLANE`` names what each depends on during a recovery."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from runbook_kit.errors import RunbookError, call, error_code, translate

ClientFor = Callable[..., Any]
"""``client_for(service, region, endpoint_url=None)`` → a boto3 client."""
GA_REGION = "us-west-2"
"""Global Accelerator's API has one endpoint, in us-west-2."""
ARC = "route53-recovery-cluster"
ARC_TRY_NEXT = frozenset({"EndpointTemporarilyUnavailableException", "InternalServerException",
                          "ThrottlingException"})
"""Cluster errors after which the next regional endpoint is tried (the API reference: "The
cluster endpoint isn't available. Try another cluster endpoint."), as are connection errors,
timeouts and any 5xx."""
CONTROL_PLANE = {
    "route53": "Route 53's control plane (ChangeResourceRecordSets, GetChange), in us-east-1",
    "globalaccelerator": "Global Accelerator's control plane (UpdateEndpointGroup), in us-west-2",
    "arc": None,
    "standby-takes-over": None,
}
"""What each mechanism needs that AWS's resilience guidance says not to depend on during a
recovery; ``None``: data plane only."""


class TrafficNotFound(RunbookError):
    """The records or endpoint groups the runbook is configured to move do not exist."""


class ClusterUnreachable(RunbookError):
    """No regional endpoint of the ARC cluster answered."""


class ControlPlaneUnavailable(RunbookError):
    """The control plane a mechanism depends on did not answer (connection error, timeout)."""


def _control_plane(mechanism: str, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """``call`` for a control-plane API: a connection error or a timeout becomes
    ``ControlPlaneUnavailable``, saying what did not answer and what would not need it."""
    try:
        return call(what, fn, **kwargs)
    except (BotoConnectionError, ReadTimeoutError) as error:
        raise ControlPlaneUnavailable(
            f"{what}: {CONTROL_PLANE[mechanism]} did not answer ({type(error).__name__}). "
            "TrafficMechanism=arc or standby-takes-over switches on a data plane"
        ) from error


def _on_cluster(client_for: ClientFor, config: dict[str, Any], operation: str,
                **params: Any) -> Any:
    """One ARC data-plane call, at each of the cluster's regional endpoints in turn until one
    answers; an answer that is an error of the request itself (denied, not found, invalid)
    ends the tries."""
    failures = []
    for region, url in config["routingControlEndpoints"].items():
        client = client_for(ARC, region, endpoint_url=url)
        method = getattr(client, _method(operation))
        try:
            return method(**params)
        except (BotoConnectionError, ReadTimeoutError) as error:
            failures.append(f"{region}: {type(error).__name__}")
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if error_code(error) in ARC_TRY_NEXT or status >= 500:
                failures.append(f"{region}: {error_code(error)}")
                continue
            raise translate(error, operation) from error
    raise ClusterUnreachable(
        f"{operation}: no endpoint of the ARC cluster answered ("
        + ("; ".join(failures) or "no endpoints configured") + ")"
    )


SERVES = {"primary": "opsflow: primary serves", "standby": "opsflow: standby serves"}
"""The failover object's two bodies (``standby-takes-over``): the primary record's Route 53
health check (HTTPS_STR_MATCH on the primary's text) is healthy only while the object says the
primary serves; with the standby's text it fails and Route 53 answers with the secondary."""


def _failover_object(client_for: ClientFor, config: dict[str, Any]) -> str:
    """Which region the failover object says serves (``primary`` or ``standby``)."""
    s3 = client_for("s3", config["standbyRegion"])
    found = call("GetObject", s3.get_object, Bucket=config["failoverBucket"],
                 Key=config["failoverObjectKey"])
    body = found["Body"].read(4096).decode("utf-8", "replace")
    for side, text in SERVES.items():
        if text in body:
            return side
    raise TrafficNotFound(
        f"s3://{config['failoverBucket']}/{config['failoverObjectKey']} says neither "
        f"{SERVES['primary']!r} nor {SERVES['standby']!r}"
    )


def _method(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def _routing_controls(config: dict[str, Any]) -> dict[str, str]:
    controls = config["routingControls"]
    missing = [r for r in config["regions"] if r not in controls]
    if missing:
        raise TrafficNotFound(f"no routing control configured for {', '.join(missing)}")
    return controls


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _weighted_records(route53: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The weighted records of ``recordName`` that belong to the configured regions, every type
    (a dual-stack name has an A and an AAAA record per region); each region must have one."""
    name = _fqdn(config["recordName"])
    result = _control_plane(
        "route53",
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
    groups = _control_plane(
        "globalaccelerator", "ListEndpointGroups", ga.list_endpoint_groups,
        ListenerArn=config["listenerArn"],
    )["EndpointGroups"]
    by_region = {g["EndpointGroupRegion"]: g for g in groups}
    missing = [r for r in config["regions"] if r not in by_region]
    if missing:
        raise TrafficNotFound(f"no endpoint group for {', '.join(missing)} on {config['listenerArn']}")
    return by_region


def read(client_for: ClientFor, config: dict[str, Any]) -> dict[str, int]:
    """Each region's share of traffic now: 100 for a routing control On (0 Off), the Route 53
    weight or the Global Accelerator dial (0..100)."""
    if config["mechanism"] == "arc":
        controls = _routing_controls(config)
        return {
            region: 100 if _on_cluster(client_for, config, "GetRoutingControlState",
                                       RoutingControlArn=controls[region])
            ["RoutingControlState"] == "On" else 0
            for region in config["regions"]
        }
    if config["mechanism"] == "standby-takes-over":
        side = _failover_object(client_for, config)
        serving = config["primaryRegion"] if side == "primary" else config["standbyRegion"]
        return {region: 100 if region == serving else 0 for region in config["regions"]}
    if config["mechanism"] == "route53":
        records = _weighted_records(client_for("route53", "us-east-1"), config)
        weights = {r["SetIdentifier"]: int(r.get("Weight", 0)) for r in records}
        return {r: weights[r] for r in config["regions"]}
    groups = _endpoint_groups(client_for("globalaccelerator", GA_REGION), config)
    return {r: int(groups[r].get("TrafficDialPercentage", 100)) for r in config["regions"]}


def shift(client_for: ClientFor, config: dict[str, Any], wanted: dict[str, int]) -> dict[str, Any]:
    """Set each region's share. Route 53: one atomic change of every weighted record;
    Global Accelerator: the dial of each endpoint group, target first, so traffic always has a
    place to go; ARC: every routing control in one update (all or nothing, so the panel's
    safety rules see the end state, never a moment with no region On)."""
    if config["mechanism"] == "arc":
        controls = _routing_controls(config)
        entries = [
            {"RoutingControlArn": controls[region],
             "RoutingControlState": "On" if wanted[region] > 0 else "Off"}
            for region in sorted(wanted, key=lambda r: -wanted[r])
        ]
        _on_cluster(client_for, config, "UpdateRoutingControlStates",
                    UpdateRoutingControlStateEntries=entries)
        return {"mechanism": "arc", "states": {e["RoutingControlArn"]: e["RoutingControlState"]
                                               for e in entries}}
    if config["mechanism"] == "standby-takes-over":
        side = "standby" if wanted[config["standbyRegion"]] > 0 else "primary"
        s3 = client_for("s3", config["standbyRegion"])
        written = call("PutObject", s3.put_object, Bucket=config["failoverBucket"],
                       Key=config["failoverObjectKey"], Body=SERVES[side].encode(),
                       ContentType="text/plain", CacheControl="no-store")
        return {"mechanism": "standby-takes-over", "serves": side, "etag": written["ETag"]}
    if config["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        changes = [
            {"Action": "UPSERT",
             "ResourceRecordSet": {**record, "Weight": int(wanted[record["SetIdentifier"]])}}
            for record in _weighted_records(route53, config)
        ]
        info = _control_plane(
            "route53",
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
        _control_plane(
            "globalaccelerator",
            "UpdateEndpointGroup",
            ga.update_endpoint_group,
            EndpointGroupArn=groups[region]["EndpointGroupArn"],
            TrafficDialPercentage=float(wanted[region]),
        )
    return {"mechanism": "globalaccelerator", "dials": wanted}


def in_sync(client_for: ClientFor, config: dict[str, Any], shifted: dict[str, Any]) -> bool:
    """Whether the change has reached every edge: Route 53 ``INSYNC``, the accelerator
    ``DEPLOYED``; ARC: every routing control of the panel reads as set (one consistent read of
    the panel, at whichever endpoint answers)."""
    if shifted["mechanism"] == "arc":
        panels = sorted({arn.split("/routingcontrol/")[0] for arn in shifted["states"]})
        seen: dict[str, str] = {}
        for panel in panels:
            token = None
            while True:
                kwargs: dict[str, Any] = {"ControlPanelArn": panel}
                if token:
                    kwargs["NextToken"] = token
                found = _on_cluster(client_for, config, "ListRoutingControls", **kwargs)
                seen.update({c["RoutingControlArn"]: c["RoutingControlState"]
                             for c in found["RoutingControls"]})
                token = found.get("NextToken")
                if not token:
                    break
        return all(seen.get(arn) == state for arn, state in shifted["states"].items())
    if shifted["mechanism"] == "standby-takes-over":
        # The object is still the one written (S3 is strongly consistent; another writer
        # changes its ETag). Route 53's checkers see it within RequestInterval x
        # FailureThreshold, which the verify's consecutive healthy checks
        # (HealthyPollsRequired x FailoverPollSeconds) must span.
        s3 = client_for("s3", config["standbyRegion"])
        found = call("HeadObject", s3.head_object, Bucket=config["failoverBucket"],
                     Key=config["failoverObjectKey"])
        return bool(found["ETag"] == shifted["etag"])
    if shifted["mechanism"] == "route53":
        route53 = client_for("route53", "us-east-1")
        status = _control_plane("route53", "GetChange", route53.get_change,
                                Id=shifted["changeId"])["ChangeInfo"]
        return bool(status["Status"] == "INSYNC")
    ga = client_for("globalaccelerator", GA_REGION)
    accelerator = config["listenerArn"].split("/listener/")[0]
    found = _control_plane("globalaccelerator", "DescribeAccelerator", ga.describe_accelerator,
                           AcceleratorArn=accelerator)
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
