"""The data tier: an Aurora global database's writer moves to the target region before traffic
does, and back on rollback where AWS allows it.

- **Switchover** (``SwitchoverGlobalCluster``): the planned move, no data lost. It needs every
  member cluster available, so it is the method whenever the writer's region answers: drills,
  failback, and a failover whose primary still answers its API.
- **Failover with data loss** (``FailoverGlobalCluster`` with ``AllowDataLoss``): the writer's
  region does not answer. The writes it had not yet replicated may be lost, so it happens only
  when the template says so (``AllowDataLoss=true``); otherwise pre-flight escalates and nothing
  moves.
- **Rollback**: a switchover is switched back (traffic first, then the writer, then capacity). A
  failover with data loss is not undone: the old writer must resynchronise first, and moving
  traffic back would send it to a region without a writer. The rollback leaves traffic and
  capacity where they are and escalates with the cluster's state.

Every call goes through the target region's RDS endpoint (the region the runbook moves to,
which pre-flight found healthy); whether the writer's region answers is asked of its own
endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from runbook_kit.errors import RunbookError, call, translate

ClientFor = Callable[..., Any]
SWITCHOVER, FAILOVER, NONE = "switchover", "failover", "none"


class DatabaseNotMoved(RunbookError):
    """The writer did not reach the target region in time, or the move was refused."""


def describe(client_for: ClientFor, region: str, identifier: str) -> dict[str, Any]:
    """The global database as DescribeGlobalClusters describes it, read through ``region``."""
    rds = client_for("rds", region)
    found = call("DescribeGlobalClusters", rds.describe_global_clusters,
                 GlobalClusterIdentifier=identifier)["GlobalClusters"]
    if not found:
        raise DatabaseNotMoved(f"no global database {identifier}")
    result: dict[str, Any] = found[0]
    return result


def region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def writer(described: dict[str, Any]) -> str:
    """The writer cluster's ARN (empty when none is: a failover in progress)."""
    return next((m["DBClusterArn"] for m in described.get("GlobalClusterMembers", [])
                 if m.get("IsWriter")), "")


def member(described: dict[str, Any], region: str) -> dict[str, Any] | None:
    return next((m for m in described.get("GlobalClusterMembers", [])
                 if region_of(m["DBClusterArn"]) == region), None)


def state(described: dict[str, Any]) -> str:
    """The global database in words: writer, status, each secondary's replication."""
    found = writer(described)
    parts = [f"writer {found.rsplit(':', 1)[-1]} in {region_of(found)}" if found
             else "no writer"]
    parts.append(f"status {described.get('Status', 'unknown')}")
    moving = described.get("FailoverState") or {}
    if moving.get("ToDbClusterArn"):
        parts.append(
            f"{'failover with data loss' if moving.get('IsDataLossAllowed') else 'switchover'} "
            f"to {region_of(moving['ToDbClusterArn'])} in progress")
    for m in described.get("GlobalClusterMembers", []):
        if not m.get("IsWriter"):
            parts.append(f"{region_of(m['DBClusterArn'])} "
                         f"{m.get('SynchronizationStatus', 'unknown')}")
    return f"global database {described.get('GlobalClusterIdentifier', '?')}: " + ", ".join(parts)


UNANSWERED = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
              ConnectionClosedError)
"""What a region that does not answer gives: no connection, or none in time."""


def answers(client_for: ClientFor, region: str, identifier: str) -> bool:
    """Whether ``region``'s RDS endpoint answers for the global database: False only when it
    does not answer at all (no connection, a timeout, or a server error, 5xx, after the SDK's
    retries). Any other error (access denied, throttled) says nothing about the region, and is
    raised: the move cannot be planned on it."""
    rds = client_for("rds", region)
    try:
        rds.describe_global_clusters(GlobalClusterIdentifier=identifier)
    except UNANSWERED:
        return False
    except ClientError as error:
        if int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500:
            return False
        raise translate(error, f"DescribeGlobalClusters in {region}") from error
    return True


def idle(described: dict[str, Any]) -> bool:
    """No switchover or failover is pending or under way (``Status`` available and an empty
    ``FailoverState``, which the API reference says holds any such operation)."""
    moving = described.get("FailoverState") or {}
    return described.get("Status") == "available" and not moving.get("Status")


def plan(client_for: ClientFor, identifier: str, source: str, target: str,
         allow_data_loss: bool, checks: list[str], problems: list[str]) -> dict[str, Any] | None:
    """How the writer moves from ``source`` to ``target`` (None: no global database
    configured); what stands in the way is a problem, and nothing moves."""
    if not identifier:
        return None
    try:
        described = describe(client_for, target, identifier)
    except (RunbookError, BotoCoreError) as error:
        problems.append(f"cannot read the global database {identifier} from {target} ({error})")
        return None
    current, wanted = writer(described), member(described, target)
    planned: dict[str, Any] = {"cluster": identifier, "region": target, "from": current,
                               "to": (wanted or {}).get("DBClusterArn", ""), "method": NONE}
    if wanted is None:
        problems.append(f"the global database {identifier} has no cluster in {target}")
        return planned
    if not idle(described):
        problems.append(f"{state(described)}: another switchover or failover is under way")
        return planned
    if region_of(current) == target:
        checks.append(f"database: {state(described)}; the writer is already in {target}")
        return planned
    if region_of(current) != source:
        problems.append(f"{state(described)}: the writer is in neither {source} nor {target}")
        return planned
    try:
        source_answers = answers(client_for, source, identifier)
    except RunbookError as error:
        problems.append(f"{state(described)}; cannot tell whether {source}'s RDS endpoint "
                        f"answers ({error}), so the move of the writer cannot be chosen")
        return planned
    if source_answers:
        if wanted.get("SynchronizationStatus", "connected") != "connected":
            problems.append(f"{state(described)}: {target} is not in sync, and a switchover "
                            "needs it in sync")
            return planned
        planned["method"] = SWITCHOVER
    elif allow_data_loss:
        planned["method"] = FAILOVER
    else:
        problems.append(
            f"{state(described)}; {source}'s RDS endpoint does not answer, so the writer can "
            "move only by a failover that may lose the writes not yet replicated, and "
            "AllowDataLoss is false. Set it, or move the writer by hand")
        return planned
    checks.append(f"database: {state(described)}; "
                  + ("switchover (no data loss) planned" if planned["method"] == SWITCHOVER
                     else f"{source} does not answer: failover with data loss (AllowDataLoss) "
                     "planned"))
    return planned


def start(client_for: ClientFor, planned: dict[str, Any]) -> bool:
    """Start the planned move of the writer to ``planned["to"]``, unless it is already under
    way or done (a retried task after the call was taken); whether this call started it."""
    described = describe(client_for, planned["region"], planned["cluster"])
    moving = described.get("FailoverState") or {}
    if moving.get("ToDbClusterArn") == planned["to"] or settled_at(described, planned["to"]):
        return False
    rds = client_for("rds", planned["region"])
    if planned["method"] == SWITCHOVER:
        call("SwitchoverGlobalCluster", rds.switchover_global_cluster,
             GlobalClusterIdentifier=planned["cluster"],
             TargetDbClusterIdentifier=planned["to"])
    else:
        call("FailoverGlobalCluster", rds.failover_global_cluster,
             GlobalClusterIdentifier=planned["cluster"],
             TargetDbClusterIdentifier=planned["to"], AllowDataLoss=True)
    return True


def switch_back(client_for: ClientFor, planned: dict[str, Any]) -> None:
    """Switch the writer back to the cluster it was (a rollback of a switchover)."""
    rds = client_for("rds", planned["region"])
    call("SwitchoverGlobalCluster", rds.switchover_global_cluster,
         GlobalClusterIdentifier=planned["cluster"], TargetDbClusterIdentifier=planned["from"])


def settled_at(described: dict[str, Any], cluster: str) -> bool:
    """Whether ``cluster`` is the writer and no operation is pending or under way."""
    return writer(described) == cluster and idle(described)
