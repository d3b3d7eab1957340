"""The rehearsals that prove the stack's IAM: every sample event of every runbook, and the paths
that sample events do not reach (a first-deploy dry run, a rollback, an approval), each on a
fresh emulated account with IAM enforced.

``opsflow iam`` runs them and reports, per principal, the calls made, any denied, and the
grants no call needed; the tests fail on any denied call and prove that every grant a rehearsal
uses is needed (removing it makes that rehearsal fail, naming the principal, action, resource).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from opsflow.template import ROOT
from workflows.catalog import SCENARIOS


@dataclass(frozen=True)
class Rehearsal:
    scenario: str
    event: str
    """Path of the event under ``events/``."""
    faults: tuple[str, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    approval: str | None = None
    why: str = "sample event"
    stop_at: str = ""
    """A state at whose entry an operator stops the run (StopExecution): the run dies outside
    its runbook, and the runbook-died alert tells a person."""
    prior: str = ""
    """An event (path under ``events/``) run first in the same account, e.g. the failover a
    failback follows; its calls count as the rehearsal's."""
    without: tuple[str, str] | tuple[()] = ()
    """(function logical ID, statement Sid): a grant taken from the function's role before the
    run, for a path only its refusal reaches (the alert that cannot publish goes to Lambda's
    OnFailure destination). The calls it refuses are the rehearsal's expected denials."""

    @property
    def name(self) -> str:
        extra = [*self.faults, *(f"{k}={v}" for k, v in self.parameters)]
        if self.approval:
            extra.append(self.approval)
        if self.stop_at:
            extra.append(f"stopped at {self.stop_at}")
        if self.prior:
            extra.append(f"after {self.prior}")
        if self.without:
            extra.append(f"without {self.without[0]}/{self.without[1]}")
        return f"{self.event}" + (f" [{', '.join(extra)}]" if extra else "")

    def load(self) -> Any:
        return json.loads((ROOT / "events" / self.event).read_text(encoding="utf-8"))


EXTRA: dict[str, list[Rehearsal]] = {
    "health-abuse": [
        Rehearsal("health-abuse", "health-abuse/dos-report-arn.json",
                  parameters=(("DryRun", "true"),), why="first-deploy dry run"),
        Rehearsal("health-abuse", "health-abuse/dos-report-arn.json",
                  faults=("ec2:StopInstances=Hang",), why="verify times out: rollback restores"),
        Rehearsal("health-abuse", "health-abuse/dos-report-arn.json",
                  parameters=(("VerifyPollSeconds", "5"), ("VerifyMaxPolls", "1")),
                  why="verify gives up before the instances stop: rollback starts them again"),
        Rehearsal("health-abuse", "health-abuse/dos-report-arn.json",
                  parameters=(("AutoScalingMode", "detach"),),
                  faults=("ec2:StopInstances=UnauthorizedOperation",),
                  why="an Auto Scaling member detached, then attached again by the rollback"),
        Rehearsal("health-abuse", "health-abuse/dos-report-arn.json",
                  stop_at="Verify: Start checks",
                  why="stopped by hand mid-run: the runbook-died alert is published"),
        Rehearsal("health-abuse", "health-abuse/dos-report-arn.json",
                  stop_at="Verify: Start checks",
                  without=("RunbookDiedFunction", "PublishTheAlert"),
                  why="an alert that cannot publish: Lambda's retries, then its OnFailure "
                  "destination queue"),
    ],
    "region-failover": [
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("DryRun", "true"),), why="first-deploy dry run"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("route53:ChangeResourceRecordSets=Hang",),
                  why="verify times out: rollback restores the weights"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("TrafficMechanism", "globalaccelerator"), ("RequireApproval", "true")),
                  approval="approve", why="Global Accelerator, approved by a person"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("globalaccelerator:DescribeAccelerator=AccessDeniedException",),
                  parameters=(("TrafficMechanism", "globalaccelerator"),),
                  why="Global Accelerator verify fails: rollback restores the dials"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("TrafficMechanism", "arc"),),
                  why="ARC routing controls: the switch on the data plane"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("TrafficMechanism", "arc"), ("DryRun", "true")),
                  why="ARC dry run: the routing controls read, nothing set"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
                  parameters=(("TrafficMechanism", "arc"),),
                  why="routing-control verify fails: rollback restores the states"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("TrafficMechanism", "standby-takes-over"),),
                  why="standby takes over: the failover object written on S3's data plane"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("TrafficMechanism", "standby-takes-over"), ("DryRun", "true")),
                  why="standby-takes-over dry run: the failover object read, nothing written"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("s3:HeadObject=AccessDenied",),
                  parameters=(("TrafficMechanism", "standby-takes-over"),),
                  why="standby-takes-over verify fails: rollback puts the object back"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("AutoScalingGroupName", "web"), ("TrafficMechanism", "arc")),
                  why="capacity before traffic: the standby's group scaled, then the switch"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
                  parameters=(("AutoScalingGroupName", "web"), ("TrafficMechanism", "arc")),
                  why="verify fails: traffic, then capacity, put back"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  parameters=(("GlobalClusterIdentifier", "shop"), ("TrafficMechanism", "arc")),
                  why="the data tier: the database writer switched over before traffic"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
                  parameters=(("GlobalClusterIdentifier", "shop"), ("TrafficMechanism", "arc")),
                  why="verify fails: traffic, then the writer, switched back"),
        Rehearsal("region-failover", "region-failover/alarm-primary.json",
                  faults=("rds@us-east-2:DescribeGlobalClusters=ServiceUnavailable",),
                  parameters=(("GlobalClusterIdentifier", "shop"), ("TrafficMechanism", "arc"),
                              ("AllowDataLoss", "true")),
                  why="the writer's region does not answer: failover with data loss"),
        Rehearsal("region-failover", "region-failover/failback.json",
                  prior="region-failover/alarm-primary.json",
                  parameters=(("AutoScalingGroupName", "web"), ("TrafficMechanism", "arc"),
                              ("GlobalClusterIdentifier", "shop")),
                  why="failback after a failover: writer switched back, the standby scaled back"),
    ],
    "ebs-quota-forecast": [
        Rehearsal("ebs-quota-forecast", "ebs-quota-forecast/daily-schedule.json",
                  parameters=(("DryRun", "true"),), why="first-deploy dry run"),
        Rehearsal("ebs-quota-forecast", "ebs-quota-forecast/daily-schedule.json",
                  faults=("service-quotas:GetRequestedServiceQuotaChange=ServiceException*1",),
                  why="verify fails: escalate with the exact requests"),
    ],
}


NOT_REHEARSED = {
    "AWSLambdaBasicExecutionRole": "the Lambda runtime writes each function's logs with it; "
    "the rehearsal runs handlers in-process and emulates no CloudWatch Logs",
    "AWSXrayWriteOnlyAccess": "SAM attaches it to every function (Tracing: Active) and state "
    "machine (Tracing: Enabled) for X-Ray; the Lambda runtime and Step Functions send the "
    "traces, the rehearsal emulates no X-Ray and runs the Tracer disabled",
    "DeliverExecutionLogs": "Step Functions sets up and writes a state machine's execution "
    "logs (Logging) itself, as its role, when the stack is deployed and as executions run; "
    "moto's Step Functions has no log delivery and the rehearsal emulates no CloudWatch Logs",
}
"""Grants the rehearsal cannot exercise, and why (left out of the unused-grant report): each
key is a policy's name or a statement's ``Sid``."""


def not_rehearsed(policy: str, sid: str) -> bool:
    """Whether the grant (``policy``/``sid``) is one the rehearsal cannot exercise."""
    return policy in NOT_REHEARSED or sid in NOT_REHEARSED


def rehearsals(scenario: str | None = None) -> list[Rehearsal]:
    chosen = [scenario] if scenario else list(SCENARIOS)
    found = []
    for name in chosen:
        for path in sorted((ROOT / "events" / name).glob("*.json")):
            found.append(Rehearsal(name, f"{name}/{path.name}"))
        found.extend(EXTRA.get(name, []))
    return found


@dataclass
class Result:
    rehearsal: Rehearsal
    status: str
    outcome: str | None
    error: str | None
    calls: list[Any] = field(default_factory=list)
    unused: dict[str, list[tuple[str, str, list[str]]]] = field(default_factory=dict)
    principals: dict[str, Any] = field(default_factory=dict)
    scope: set[str] = field(default_factory=set)
    """The roles of the rehearsed runbook: its state machine's, its rules', its functions'."""
    expected: set[tuple[str, str]] = field(default_factory=set)
    """(principal, action) the rehearsal refuses on purpose (``Rehearsal.without``)."""

    def unexpected(self, calls: list[Any] | None = None) -> list[Any]:
        """The denied calls (of ``calls``, else the rehearsal's) it did not cause on purpose."""
        return [c for c in (self.calls if calls is None else calls)
                if not c.allowed and (c.principal, c.action) not in self.expected]


def scope(engine: Any, scenario: str) -> set[str]:
    """The roles a runbook runs as: its state machine's, the rules' that start it, and those of
    the functions its definition names."""
    logical = SCENARIOS[scenario].state_machine
    machine = engine.machines[logical]
    roles = {machine.role}
    roles |= {r.role for r in engine.rules if r.scenario == scenario and r.role}
    arns = {str(v) for v in machine.substitutions.values()}
    roles |= {f.role for f in engine.functions.values() if f.arn in arns}
    # The alert functions on the runbook's end, when the run invoked them (a run that died).
    alerting = {str(target["arn"]) for _, target in engine.alert_rules}
    called = {c.principal for c in engine.authorizer.calls}
    roles |= {f.role for f in engine.functions.values() if f.arn in alerting and f.role in called}
    return roles


def _actions_of(document: dict[str, Any], sid: str) -> list[str]:
    statements = document.get("Statement", [])
    found: list[str] = []
    for statement in [statements] if isinstance(statements, dict) else statements:
        if statement.get("Sid") == sid:
            actions = statement.get("Action", [])
            found += [actions] if isinstance(actions, str) else list(actions)
    return found


def _without_sid(document: dict[str, Any], sid: str) -> dict[str, Any]:
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    return {**document, "Statement": [s for s in statements if s.get("Sid") != sid]}


def stop_running(engine: Any, scenario: str, cause: str) -> None:
    """Stop the scenario's running executions, as an operator would (``Operator.Stop``)."""
    sfn = engine.client("stepfunctions")
    running = sfn.list_executions(stateMachineArn=engine.state_machines[scenario],
                                  statusFilter="RUNNING")["executions"]
    for execution in running:
        sfn.stop_execution(executionArn=execution["executionArn"], error="Operator.Stop",
                           cause=cause)


def stopper(engine: Any, scenario: str, state: str) -> Any:
    """A history listener that stops the run (as an operator would) when it enters ``state``."""
    stopped = threading.Event()

    def listen(item: dict[str, Any]) -> None:
        entered = (item.get("stateEnteredEventDetails") or {}).get("name", "")
        if entered == state and not stopped.is_set():
            stopped.set()
            stop_running(engine, scenario, f"stopped by hand at {state}")

    return listen


class FirstDenial:
    """An ``on_denied`` for the authorizer: at the first call refused that the rehearsal did not
    refuse on purpose, an operator stops the running execution, so a run that has only to show
    its first denial does not go on to its rollback. The stop is made from a thread of its own
    (the refused call may be the interpreter's), which :meth:`join` awaits before the engine
    goes (a late stop must never reach the next engine's run)."""

    def __init__(self, engine: Any, scenario: str, expected: set[tuple[str, str]]) -> None:
        self.engine, self.scenario, self.expected = engine, scenario, expected
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def _stop(self) -> None:
        stop_running(self.engine, self.scenario, "stopped at the first denied call")

    def __call__(self, call: Any) -> None:
        if (call.principal, call.action) in self.expected:
            return
        with self.lock:
            if self.thread is not None:
                return
            self.thread = threading.Thread(target=self._stop, name="rehearsal-stop", daemon=True)
        self.thread.start()

    def join(self) -> None:
        with self.lock:
            thread = self.thread
        if thread is not None:
            thread.join()


def rehearse(case: Rehearsal, adjust: Any = None, first_denial: bool = False) -> Result:
    """Run one rehearsal on a fresh account; ``adjust(engine)`` may change the deployed stack
    (e.g. take a grant away) before the run. ``first_denial``: the run is stopped at its first
    unexpected denied call (what a grant taken away must cause), its calls recorded to there."""
    from opsflow.engine.boundary import parse_fault
    from opsflow.engine.runner import LocalEngine, NotDelivered

    engine = LocalEngine(
        faults=[parse_fault(f) for f in case.faults],
        parameters=dict(case.parameters),
        scenarios=[case.scenario],
        approval=case.approval,
    )
    with engine:
        expected: set[tuple[str, str]] = set()
        if case.without:
            logical, sid = case.without
            role = engine.functions[logical].role
            found = engine.principals[role]
            expected = {(role, action) for _, doc in found.policies
                        for action in _actions_of(doc, sid)}
            found.policies = [(name, _without_sid(doc, sid)) for name, doc in found.policies]
        if adjust is not None:
            adjust(engine)
        if first_denial:
            engine.authorizer.on_denied = FirstDenial(engine, case.scenario, expected)
        if case.prior:
            first = json.loads((ROOT / "events" / case.prior).read_text(encoding="utf-8"))
            engine.run(case.scenario, first, watch=False)
        event = case.load()
        rules = [r for r in engine.match(event) if r.scenario == case.scenario]
        try:
            execution = engine.run(
                case.scenario, event, rule=rules[0] if rules else None, watch=False,
                on_event=stopper(engine, case.scenario, case.stop_at) if case.stop_at else None,
            )
        except NotDelivered as error:
            return Result(
                rehearsal=case, status="NOT_DELIVERED", outcome=None, error=str(error),
                calls=list(engine.authorizer.calls), unused=engine.authorizer.unused_grants(),
                principals=engine.principals, scope=scope(engine, case.scenario),
                expected=expected,
            )
        finally:
            if first_denial:
                engine.authorizer.on_denied.join()
        return Result(
            rehearsal=case,
            status=execution.status,
            outcome=execution.outcome,
            error=execution.error,
            calls=list(engine.authorizer.calls),
            unused=engine.authorizer.unused_grants(),
            principals=engine.principals,
            scope=scope(engine, case.scenario),
            expected=expected,
        )
