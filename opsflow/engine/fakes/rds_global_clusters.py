"""Aurora Global Database's switchover and failover (Amazon RDS ``DescribeGlobalClusters``,
``SwitchoverGlobalCluster``, ``FailoverGlobalCluster``) for a region-failover runbook.

moto keeps a global cluster in the one Region's backend that created it and has neither
``SwitchoverGlobalCluster`` nor ``FailoverGlobalCluster``. This fake answers those three
operations of the RDS API (every other RDS operation is moto's) with the state a global
database has in every Region: its member clusters, one per Region, which one is the writer,
each secondary's replication state (``SynchronizationStatus``), and an operation in progress
(``Status`` and ``FailoverState``).

How it behaves (from the RDS API reference and the Aurora user guide's "Using switchover or
failover in an Amazon Aurora global database"):

- A **switchover** (``SwitchoverGlobalCluster``, or ``FailoverGlobalCluster`` without
  ``AllowDataLoss``) is the planned move: it needs every member available and the target in
  sync, loses no data, and takes ``SWITCHOVER_SECONDS`` on the virtual clock (``Status``
  ``switching-over``); then the target writes and the old writer is a secondary in sync.
- A **failover** (``FailoverGlobalCluster`` with ``AllowDataLoss=true``) is the unplanned one,
  for when the writer's Region is down: it needs only the target, takes ``FAILOVER_SECONDS``
  (``failing-over``), and may lose the writes not yet replicated. The old writer stays a member,
  ``pending-resync`` while its Region is unreachable and for ``RESYNC_SECONDS`` after it answers
  again, while Aurora rebuilds it as a secondary; then in sync.
- One operation at a time: a second one while ``Status`` is not ``available`` fails with
  ``InvalidGlobalClusterStateFault``; so does a switchover while a member's Region is
  unreachable or the target is not in sync. An unknown global cluster is
  ``GlobalClusterNotFoundFault``, a target that is not a member ``DBClusterNotFoundFault``,
  the writer as target ``InvalidDBClusterStateFault``, ``AllowDataLoss`` with ``Switchover``
  ``InvalidParameterCombination``.

A Region is unreachable when it is in ``unreachable`` (the boundary's set of Regions down: a
request to the RDS endpoint of such a Region never gets here, it fails with a connection error).
The control plane that creates the global database is not emulated: a world calls
:meth:`add_global_cluster`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsflow.engine.errors import AwsError

SERVICE_NAME = "rds"
OPERATIONS = ("DescribeGlobalClusters", "SwitchoverGlobalCluster", "FailoverGlobalCluster")
"""The RDS operations this fake answers; moto answers every other."""
SWITCHOVER_SECONDS = 120
"""A switchover's duration (the user guide: typically a few minutes; RPO zero)."""
FAILOVER_SECONDS = 60
"""An unplanned failover's duration (the user guide: an RTO of about a minute)."""
RESYNC_SECONDS = 600
"""How long the old writer of a failover with data loss takes, once its region answers again,
to be rebuilt as a secondary in sync (Aurora rebuilds it from the new writer: minutes to
hours with the data; the fake's bound)."""
CONNECTED, PENDING = "connected", "pending-resync"


@dataclass
class _Member:
    arn: str
    region: str
    writer: bool
    sync: str = CONNECTED
    answering_since: datetime | None = None
    """When a ``pending-resync`` member's region was first seen answering again."""


@dataclass
class _Operation:
    kind: str
    """``switchover`` or ``failover``."""
    source: str
    target: str
    data_loss: bool
    done_at: datetime


@dataclass
class _Global:
    identifier: str
    resource_id: str
    engine: str
    engine_version: str
    members: list[_Member] = field(default_factory=list)
    operation: _Operation | None = None


def _fault(code: str, message: str, status: int = 400) -> AwsError:
    return AwsError(code, message, status)


def region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


class GlobalClusterFake:
    """Aurora global databases, their writer and their switchovers; thread-safe."""

    operations = OPERATIONS

    def __init__(self, now: Callable[[], datetime], account: str = "123456789012",
                 unreachable: set[str] | None = None) -> None:
        self.now, self.account = now, account
        self.unreachable: set[str] = unreachable if unreachable is not None else set()
        self._lock = threading.RLock()
        self._globals: dict[str, _Global] = {}
        self._arns: dict[str, str] = {}
        self.calls: list[dict[str, Any]] = []
        """Every accepted switchover or failover, in order."""

    # ------------------------------------------------------------------ set-up (control plane)
    def add_global_cluster(self, identifier: str, members: dict[str, str], writer: str,
                           engine: str = "aurora-postgresql",
                           engine_version: str = "16.4") -> str:
        """A global database of one member cluster per Region (``members``: Region → cluster
        identifier), ``writer`` the Region of its primary. Returns its ARN."""
        with self._lock:
            digest = hashlib.sha256(identifier.encode()).hexdigest()[:20]
            found = _Global(identifier, f"cluster-{digest}", engine, engine_version)
            for region, cluster in members.items():
                found.members.append(_Member(
                    f"arn:aws:rds:{region}:{self.account}:cluster:{cluster}", region,
                    region == writer))
            self._globals[identifier] = found
            self._arns[identifier] = f"arn:aws:rds::{self.account}:global-cluster:{identifier}"
            return self._arns[identifier]

    def set_synchronization(self, identifier: str, region: str, status: str) -> None:
        """A secondary's replication state, as a world or a test sets it up (one fallen
        behind: ``pending-resync``)."""
        if status not in (CONNECTED, PENDING):
            raise ValueError(f"status {status!r} is not {CONNECTED} or {PENDING}")
        with self._lock:
            member = next(m for m in self._settled(identifier).members if m.region == region)
            member.sync = status

    def writer(self, identifier: str) -> str:
        """The Region of the global database's writer now."""
        with self._lock:
            found = self._settled(identifier)
            return next(m.region for m in found.members if m.writer)

    def observe(self) -> dict[tuple[str, str, str], Any]:
        """What the engine's before/after diff shows: each global database's writer and
        status, and each secondary's replication state."""
        view: dict[tuple[str, str, str], Any] = {}
        with self._lock:
            for identifier in self._globals:
                found = self._settled(identifier)
                key = f"global-cluster/{identifier}"
                view[(key, "global", "writer")] = next(
                    m.region for m in found.members if m.writer)
                view[(key, "global", "status")] = self._status(found)
                for member in found.members:
                    view[(key, member.region, "replication")] = (
                        "writer" if member.writer else member.sync)
        return view

    # ------------------------------------------------------------------ the API
    def handle(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self._lock:
            if operation == "DescribeGlobalClusters":
                return self._describe(params)
            identifier = str(params.get("GlobalClusterIdentifier", ""))
            found = self._settled(identifier)
            target = self._member(found, str(params.get("TargetDbClusterIdentifier", "")))
            if operation == "SwitchoverGlobalCluster":
                data_loss = False
            elif params.get("AllowDataLoss") and params.get("Switchover"):
                raise _fault("InvalidParameterCombination",
                             "AllowDataLoss and Switchover cannot be specified together")
            else:
                data_loss = bool(params.get("AllowDataLoss"))
            self._start(found, target, data_loss)
            return {"GlobalCluster": self._shape(found)}

    def _describe(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("GlobalClusterIdentifier")
        if wanted is not None and str(wanted).lower() not in {k.lower() for k in self._globals}:
            raise _fault("GlobalClusterNotFoundFault",
                         f"The global cluster {wanted} doesn't exist.", 404)
        chosen = [i for i in self._globals if wanted is None or i.lower() == str(wanted).lower()]
        return {"GlobalClusters": [self._shape(self._settled(i)) for i in chosen]}

    def _settled(self, identifier: str) -> _Global:
        """The global database as it is now: an operation whose time is up has completed,
        and a secondary whose Region answers again is back in sync."""
        found = next((g for i, g in self._globals.items() if i.lower() == identifier.lower()),
                     None)
        if found is None:
            raise _fault("GlobalClusterNotFoundFault",
                         f"The global cluster {identifier} doesn't exist.", 404)
        operation = found.operation
        if operation is not None and self.now() >= operation.done_at:
            for member in found.members:
                member.writer = member.arn == operation.target
                if member.arn == operation.source:
                    member.sync = PENDING if operation.data_loss else CONNECTED
            found.operation = None
        now = self.now()
        for member in found.members:
            if member.writer or member.sync != PENDING:
                continue
            if member.region in self.unreachable:
                member.answering_since = None
            elif member.answering_since is None:
                member.answering_since = now
            elif now - member.answering_since >= timedelta(seconds=RESYNC_SECONDS):
                member.sync, member.answering_since = CONNECTED, None
        return found

    def _member(self, found: _Global, wanted: str) -> _Member:
        for member in found.members:
            if wanted in (member.arn, member.arn.rsplit(":", 1)[-1]):
                return member
        raise _fault("DBClusterNotFoundFault",
                     f"DBCluster {wanted} is not a member of global cluster {found.identifier}.",
                     404)

    def _start(self, found: _Global, target: _Member, data_loss: bool) -> None:
        if found.operation is not None:
            raise _fault("InvalidGlobalClusterStateFault",
                         f"Global cluster {found.identifier} is {self._status(found)}: one "
                         "switchover or failover at a time.")
        if target.writer:
            raise _fault("InvalidDBClusterStateFault",
                         f"DBCluster {target.arn} is already the writer of global cluster "
                         f"{found.identifier}.")
        if target.region in self.unreachable:
            raise _fault("InvalidDBClusterStateFault",
                         f"DBCluster {target.arn} is not available.")
        source = next(m for m in found.members if m.writer)
        if not data_loss:
            down = [m for m in found.members if m.region in self.unreachable]
            if down:
                raise _fault("InvalidGlobalClusterStateFault",
                             f"A switchover of global cluster {found.identifier} needs every "
                             f"member available; {down[0].arn} is not. Fail over with "
                             "AllowDataLoss to move the writer without it.")
            if target.sync != CONNECTED:
                raise _fault("InvalidGlobalClusterStateFault",
                             f"DBCluster {target.arn} is {target.sync}, not in sync with the "
                             "writer: a switchover needs it in sync.")
        seconds = FAILOVER_SECONDS if data_loss else SWITCHOVER_SECONDS
        found.operation = _Operation("failover" if data_loss else "switchover", source.arn,
                                     target.arn, data_loss, self.now() + timedelta(seconds=seconds))
        self.calls.append({"globalCluster": found.identifier, "kind": found.operation.kind,
                           "from": source.arn, "to": target.arn})

    def _status(self, found: _Global) -> str:
        if found.operation is None:
            return "available"
        return "failing-over" if found.operation.data_loss else "switching-over"

    def _shape(self, found: _Global) -> dict[str, Any]:
        """DescribeGlobalClusters' shape of one global database."""
        shaped: dict[str, Any] = {
            "GlobalClusterIdentifier": found.identifier,
            "GlobalClusterResourceId": found.resource_id,
            "GlobalClusterArn": self._arns[found.identifier],
            "Status": self._status(found),
            "Engine": found.engine,
            "EngineVersion": found.engine_version,
            "StorageEncrypted": True,
            "DeletionProtection": True,
            "GlobalClusterMembers": [
                {"DBClusterArn": m.arn, "IsWriter": m.writer,
                 "Readers": [r.arn for r in found.members if not r.writer] if m.writer else [],
                 **({} if m.writer else {"GlobalWriteForwardingStatus": "disabled",
                                         "SynchronizationStatus": m.sync})}
                for m in found.members
            ],
        }
        if found.operation is not None:
            # The API reference's values: failing-over for a failover, switching-over for a
            # switchover (botocore's enumeration lists only pending, failing-over, cancelling).
            shaped["FailoverState"] = {
                "Status": "failing-over" if found.operation.data_loss else "switching-over",
                "FromDbClusterArn": found.operation.source,
                "ToDbClusterArn": found.operation.target,
                "IsDataLossAllowed": found.operation.data_loss,
            }
        return shaped
