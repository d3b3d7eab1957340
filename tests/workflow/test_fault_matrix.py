"""Every AWS operation a runbook uses × every way it can fail: the run still ends consistent.

The operations are discovered, never listed: the service integrations of the compiled
``statemachines/<scenario>.asl.json`` (``aws-sdk:*``, ``sns:publish``, ``dynamodb:putItem``, the
Lambda tasks' ``lambda:Invoke``) and every call the runbook's roles make when its main event
(the scenario's sample) is rehearsed on the emulated account (``engine.authorizer.calls``).

Each cell runs the main event on a fresh account with one fault:

* ``throttled``: the service's own throttling code, twice (``=ThrottlingException*2``);
* ``denied``: the service's own denial code, always (the code IAM enforcement answers with);
* ``hangs``: the change never completes (``=Hang``), where the engine emulates it:
  ``ec2:StopInstances``, ``route53:ChangeResourceRecordSets`` and ``elbv2:DeregisterTargets``
  (its targets never finish draining); every other cell of the column
  is reported as skipped, with that reason.

and passes when the run ended consistent, judged from the account (``execution.effects``, the
diff of the account before and after, never the runbook's claim):

* ``mitigated``, with the account as the fault-free run leaves it;
* ``Runbook.RolledBack``, with every resource the runbook acts on back in its before-state
  (instances' power state and security groups, traffic weights and dials);
* ``Runbook.Escalated``, with a cause naming every resource left changed and its exact state.

Anything else (invalid event, no action, dry run, ``States.*``, a timeout) is inconsistent for
the main event. The resources a runbook acts on are instances' state and groups, traffic
weights and dials, and quota requests; its own records (delivery, tags of the before-state,
Parameter Store state) and the evidence it keeps on purpose (isolation groups, forensic
snapshots, which the README says stay) are not.

``make test`` runs a fixed quarter of the cells (chosen by a hash of the cell's id) and both
hang cells; ``make fuzz`` runs them all (marker ``fuzz``).
"""

from __future__ import annotations

import functools
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
import pytest

from opsflow.engine.boundary import parse_fault
from opsflow.engine.iam.enforce import DENIED_CODES, Authorizer
from opsflow.engine.runner import LocalEngine
from opsflow.template import ROOT
from workflows.catalog import SCENARIOS

HANGS = ("ec2:StopInstances", "route53:ChangeResourceRecordSets", "elbv2:DeregisterTargets")
"""The operations whose ``Hang`` the engine emulates (opsflow/engine/dynamics.py)."""
KINDS = ("throttled", "denied", "hangs")
MAIN = {scenario: s.sample_event for scenario, s in SCENARIOS.items()}
"""Each runbook's main event: the sample ``opsflow run SCENARIO`` uses."""


# ----------------------------------------------------------------------------- discovery
@functools.lru_cache(maxsize=1)
def _session() -> Any:
    return botocore.session.get_session()


def _botocore_service(name: str) -> str:
    """The botocore service an ASL integration's service name means (``servicequotas`` →
    ``service-quotas``)."""
    wanted = name.replace("-", "").lower()
    for service in _session().get_available_services():
        if service.replace("-", "").lower() == wanted:
            return str(service)
    raise LookupError(f"no botocore service for the ASL integration {name!r}")


def _operation(service: str, action: str) -> str:
    names = _session().get_service_model(service).operation_names
    found = [n for n in names if n.lower() == action.lower()]
    if not found:
        raise LookupError(f"{service} has no operation {action!r}")
    return f"{service}:{found[0]}"


def _tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for state in states.values():
        if state.get("Type") == "Task":
            found.append(state)
        for branch in state.get("Branches", []):
            found += _tasks(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found += _tasks(state[key]["States"])
    return found


def asl_operations(scenario: str) -> set[str]:
    """The AWS operations the compiled state machine's tasks call themselves."""
    definition = json.loads(
        (ROOT / "statemachines" / f"{scenario}.asl.json").read_text(encoding="utf-8"))
    found = set()
    for task in _tasks(definition["States"]):
        resource = str(task["Resource"])
        integration = re.match(r"^arn:aws:states:::(?:aws-sdk:)?([a-z0-9-]+):([A-Za-z0-9]+)",
                               resource)
        if integration:
            service, action = integration.groups()
            found.add(_operation(_botocore_service(service), action))
        elif resource.startswith("${") or ":lambda:" in resource:
            found.add("lambda:Invoke")  # a Lambda task: the state machine's role invokes it
        else:
            raise LookupError(f"{scenario}: task {resource!r} is no integration this test knows")
    return found


@functools.cache
def rehearsed(scenario: str) -> tuple[frozenset[str], Any]:
    """The operations the runbook's roles call when its main event is rehearsed without a
    fault, and that run's execution (the baseline every mitigated cell is compared with)."""
    with LocalEngine(scenarios=[scenario]) as engine:
        execution = engine.run(scenario, load(MAIN[scenario]))
        operations = frozenset(call.operation for call in engine.authorizer.calls)
    assert execution.status == "SUCCEEDED" and execution.outcome == "mitigated", execution.cause
    return operations, execution


def load(path: str) -> Any:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def operations(scenario: str) -> list[str]:
    return sorted(asl_operations(scenario) | rehearsed(scenario)[0])


def throttling_code(service: str) -> str:
    """The service's own throttling error: the one its model declares (not KMS's or EC2's that
    some services pass on), else EC2's ``RequestLimitExceeded`` or the Query APIs' ``Throttling``."""
    for shape in _session().get_service_model(service).error_shapes:
        if re.search(r"Throttl|TooManyRequests", shape.name) and not re.match(
            r"(KMS|Kms|EC2)", shape.name
        ):
            return str(shape.metadata.get("error", {}).get("code", shape.name))
    return "RequestLimitExceeded" if service == "ec2" else "Throttling"


def denial_code(service: str) -> str:
    """What the service answers a call IAM refuses (the engine's own table, by IAM prefix)."""
    prefix = Authorizer.prefix(boto3.client(service, region_name="us-east-1"))
    return DENIED_CODES.get(prefix, ("AccessDeniedException", 400))[0]


def fault(operation: str, kind: str) -> str:
    service = operation.split(":")[0]
    if kind == "throttled":
        return f"{operation}={throttling_code(service)}*2"
    if kind == "denied":
        return f"{operation}={denial_code(service)}"
    return f"{operation}=Hang"


@dataclass(frozen=True)
class Cell:
    scenario: str
    operation: str
    kind: str

    @property
    def id(self) -> str:
        return f"{self.scenario}-{self.operation}-{self.kind}"

    @property
    def spec(self) -> str:
        return fault(self.operation, self.kind)

    @property
    def in_make_test(self) -> bool:
        """A fixed quarter of the cells, by a hash of the id (stable across runs and workers),
        and every hang that runs."""
        if self.kind == "hangs":
            return self.operation in HANGS
        return zlib.crc32(self.id.encode()) % 4 == 0


def cells() -> list[Any]:
    found = []
    for scenario in sorted(SCENARIOS):
        for operation in operations(scenario):
            for kind in KINDS:
                cell = Cell(scenario, operation, kind)
                marks = [] if cell.in_make_test else [pytest.mark.fuzz]
                if kind == "hangs" and operation not in HANGS:
                    marks.append(pytest.mark.skip(
                        reason="the engine emulates Hang only for " + ", ".join(HANGS)))
                found.append(pytest.param(cell, id=cell.id, marks=marks))
    return found


# ----------------------------------------------------------------------------- judging
def acted_on(scenario: str, effect: dict[str, Any]) -> bool:
    """Whether an effect is on what the runbook acts on (not its own records or evidence)."""
    resource, name = str(effect["resource"]), str(effect["field"])
    if scenario == "health-abuse":
        if resource.startswith("asg/"):
            return name == "desired"
        return resource.startswith("i-") and (
            name in SERVING_FIELDS or name.startswith(("groups:", *SERVING_PREFIXES)))
    if scenario == "region-failover":
        return name in ("weight", "traffic dial")
    return resource.startswith("quota-request/")


SERVING_FIELDS = ("state", "terminationProtection", "shutdownBehavior", "profile")
SERVING_PREFIXES = ("asg:", "target:", "elb:", "deleteOnTermination:")
"""What a quarantine changes on an instance besides its groups and power state: its service
(Auto Scaling, load balancers) and its protections (``opsflow/engine/observe.py``)."""


def launched(effects: list[dict[str, Any]]) -> set[str]:
    """Instances the run's account gained (an Auto Scaling group's replacement for a member
    taken out of service): not acted on by the runbook."""
    return {str(e["resource"]) for e in effects
            if e["field"] == "exists" and e["before"] == "absent"}


def material(scenario: str, effects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """The effects on what the runbook acts on, (resource, field) → value after, comparable
    between runs: security groups the run created are named by their GroupName, and quota
    requests by quota and region (their IDs differ from run to run)."""
    created = {e["resource"]: e["after"] for e in effects
               if e["resource"].startswith("sg-") and e["field"] == "tag:GroupName"}
    found: dict[tuple[str, str], Any] = {}
    new = launched(effects)
    for e in filter(lambda e: acted_on(scenario, e) and e["resource"] not in new, effects):
        resource, name, after = str(e["resource"]), str(e["field"]), e["after"]
        if name.startswith("groups:") and after:
            after = ",".join(sorted(created.get(g, g) for g in str(after).split(",")))
        if resource.startswith("quota-request/"):
            resource = f"quota-request/{resource.split('/')[1]}@{e['region']}"
        found[(resource, name)] = after
    return found


def named_in(scenario: str, cause: str, effect: dict[str, Any]) -> bool:
    """Whether the cause names this changed resource and its exact state after the run."""
    resource, name, after = str(effect["resource"]), str(effect["field"]), effect["after"]
    if scenario == "health-abuse":
        # "<id> (<region>): <state>, <isolation>, groups <g1>,<g2>" (one clause per instance)
        clauses = [c for c in re.split(r"[;.] ", cause) if resource in c]
        if resource.startswith("asg/"):
            return True  # a group's capacity follows from its members, each named
        if name.startswith(("asg:", "target:", "elb:")):
            kind, _, what = name.partition(":")
            key = {"asg": "asg", "target": "tg", "elb": "elb"}[kind]
            shown = [re.search(r"service (\S+)", c) for c in clauses]
            services = [m.group(1) for m in shown if m]
            if after is None:
                return any(f"{key}={what}" not in line for line in services)
            if kind == "asg":
                return any(f"asg={what}:{after}" in line for line in services)
            return any(f"{key}={what}" in line for line in services)
        if name == "terminationProtection":
            return any(f"termination={str(after).lower()}" in c for c in clauses)
        if name == "shutdownBehavior":
            return any(f"shutdown={after}" in c for c in clauses)
        if name == "profile":
            return any((f"profile={after}" in c) if after else ("profile=" not in
                       c.split(" (before:")[0]) for c in clauses)
        if name.startswith("deleteOnTermination:"):
            device = name.split(":", 1)[1]
            return any((device in c.split(" (before:")[0]) == bool(after) for c in clauses)
        if name == "state":
            return any(re.search(rf"{resource} \([a-z0-9-]+\): {after}\b", c) for c in clauses)
        return any(all(g in c for g in str(after).split(",")) for c in clauses)
    if scenario == "region-failover":
        region = resource.rsplit("[", 1)[-1].rstrip("]")
        return re.search(rf"\b{re.escape(region)} {after}\b", cause) is not None
    request = resource.split("/")[-1]  # the request ID's first characters
    shown = str(after) if name == "status" else f"{float(after):,.0f}"
    return request in cause and shown in cause


def inconsistency(scenario: str, execution: Any) -> str | None:
    """Why the run did not end consistent, or None."""
    changed = material(scenario, execution.effects)
    end = f"{execution.status} {execution.outcome or execution.error}"
    if execution.status == "SUCCEEDED" and execution.outcome == "mitigated":
        expected = material(scenario, rehearsed(scenario)[1].effects)
        if changed != expected:
            return f"{end}, but the account differs from a fault-free run's: {changed} " \
                   f"instead of {expected}"
        return None
    if execution.status == "FAILED" and execution.error == "Runbook.RolledBack":
        if changed:
            return f"{end}, but resources are not in their before-state: {changed}"
        return None
    if execution.status == "FAILED" and execution.error == "Runbook.Escalated":
        cause = execution.cause or ""
        new = launched(execution.effects)
        missing = [
            f"{e['resource']} {e['field']}={e['after']}"
            for e in execution.effects
            if acted_on(scenario, e) and e["resource"] not in new
            and not named_in(scenario, cause, e)
        ]
        if missing:
            return f"{end}, but the cause does not name what is left changed: {missing}; " \
                   f"cause: {cause[:1500]}"
        return None
    return f"{end} is no consistent end for the main event: {(execution.cause or '')[:500]}"


CELLS = cells()


@pytest.mark.parametrize("cell", CELLS)
def test_fault_cell_ends_consistent(cell: Cell) -> None:
    with LocalEngine(faults=[parse_fault(cell.spec)], scenarios=[cell.scenario]) as engine:
        execution = engine.run(cell.scenario, load(MAIN[cell.scenario]))
    problem = inconsistency(cell.scenario, execution)
    assert problem is None, f"{cell.spec}: {problem}"


def test_matrix_covers_every_operation_and_kind() -> None:
    """The discovery finds the runbooks' own calls (a sanity check against an empty matrix),
    and ``make test``'s subset reaches every runbook and every kind of fault."""
    assert {"ec2:StopInstances", "sns:Publish", "lambda:Invoke"} <= set(operations("health-abuse"))
    assert "route53:ChangeResourceRecordSets" in operations("region-failover")
    assert "service-quotas:RequestServiceQuotaIncrease" in operations("ebs-quota-forecast")
    chosen = [p.values[0] for p in CELLS if p.values[0].in_make_test]
    assert {c.scenario for c in chosen} == set(SCENARIOS)
    assert {c.kind for c in chosen} == set(KINDS)
