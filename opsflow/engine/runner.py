"""The local engine: the emulated account, the deployed template, and runs of the compiled ASL.

``LocalEngine`` is a context manager. On entry it starts moto, applies the interpreter cures
and virtual time, builds each scenario's deterministic world, and "deploys" ``template.yaml``:
the SNS topic, DynamoDB table and SSM parameter it declares, every function (resolved to its
handler, run in-process), every state machine (the committed ``statemachines/*.asl.json`` with
its DefinitionSubstitutions) and every EventBridge rule pattern.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsflow import template as cfn
from opsflow.engine import boundary as api
from opsflow.engine import cures, dynamics, observe, worlds
from opsflow.engine.fakes.global_accelerator import GlobalAcceleratorFake
from opsflow.engine.fakes.service_quotas import ServiceQuotasFake
from workflows.catalog import SCENARIOS

ROOT = cfn.ROOT
ACCOUNT = "123456789012"
REGION = "us-east-1"
SEED = 20191202
LOCAL_PARAMETERS = {
    "DryRun": "false",
    "AlertEmail": "oncall@example.com",
    "AlertPhoneNumber": "+15555550100",
    "InstanceRegions": "us-east-1,eu-west-1",
    "QuotaRegions": "us-east-1,eu-west-1,ap-southeast-2",
}
"""Local runs act for real on the disposable emulated account (``--dry-run`` turns it back on),
and subscribe both notification channels so every notice shows."""

REAL_SECONDS_LIMIT = 120.0
MOCK_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


class EngineError(RuntimeError):
    """The local engine could not do what it was asked (a bug or a broken template)."""


@dataclass
class Rule:
    name: str
    scenario: str
    pattern: dict[str, Any]
    state_machine_arn: str


@dataclass
class Execution:
    scenario: str
    execution_arn: str
    name: str
    input: dict[str, Any]
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]
    notifications: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    started: str
    virtual_seconds: float
    faults: list[str] = field(default_factory=list)

    @property
    def states(self) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]

    @property
    def transitions(self) -> int:
        """State transitions, the Standard-workflow cost driver (one per state entered)."""
        return len(self.states)

    @property
    def outcome(self) -> str | None:
        if self.status == "SUCCEEDED" and isinstance(self.output, dict):
            return self.output.get("outcome")
        return None

    def to_report(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "execution_arn": self.execution_arn,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "cause": self.cause,
            "output": self.output,
            "states": self.states,
            "transitions": self.transitions,
            "virtual_seconds": self.virtual_seconds,
            "notifications": self.notifications,
            "effects": self.effects,
        }


@dataclass
class Chaos:
    log: list[str]
    event: dict[str, Any] | None
    evaluation: Any


class _LambdaContext:
    memory_limit_in_mb = 256

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def function_name(logical_id: str) -> str:
    return f"opsflow-{logical_id}"


def _import_handler(handler: str) -> Callable[[dict[str, Any], Any], Any]:
    module_name, _, attribute = handler.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


class LocalEngine:
    def __init__(
        self,
        faults: list[api.Fault] | None = None,
        parameters: dict[str, str] | None = None,
        scenarios: list[str] | None = None,
        stop_seconds: float = 40.0,
        approval: str | None = None,
    ) -> None:
        if approval not in (None, "approve", "reject"):
            raise EngineError(f"approval must be approve, reject or None, got {approval!r}")
        self.approval = approval
        """How a local run answers a human-approval step: approve, reject, or (None) never,
        which times the step out on the virtual clock."""
        self.faults = list(faults or [])
        self.parameter_overrides = dict(parameters or {})
        self.scenarios = scenarios or list(worlds.BUILDERS)
        self.stop_seconds = stop_seconds
        self.template = cfn.cached()
        self.rules: list[Rule] = []
        self.state_machines: dict[str, str] = {}
        self.world: dict[str, Any] = {}
        self._mock: Any = None
        self._env: dict[str, str | None] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalEngine:
        from moto import mock_aws
        from moto.moto_api._internal import mock_random

        self.clock = cures.install()
        self.clock.reset()
        for key, value in {
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_SERVICE_NAME": "opsflow",
            "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
        }.items():
            self._env[key] = os.environ.get(key)
            os.environ[key] = value
        functions = str(ROOT / "functions")
        if functions not in sys.path:
            sys.path.insert(0, functions)
        self._mock = mock_aws(config=MOCK_CONFIG)
        self._mock.start()
        mock_random.seed(SEED)
        from runbook_kit import aws as lambda_aws

        lambda_aws.reset_clients()
        self.fakes = {
            "service-quotas": ServiceQuotasFake(self.clock, account=ACCOUNT),
            "globalaccelerator": GlobalAcceleratorFake(self.clock, account=ACCOUNT),
        }
        self.boundary = api.Boundary(faults=self.faults, fakes=self.fakes)
        self.dynamics = dynamics.Ec2Dynamics(self.clock, self.boundary, self.stop_seconds)
        dynamics.Route53Dynamics(self.clock, self.boundary).activate()
        api.activate(self.boundary)
        dynamics.activate(self.dynamics)
        with api.bypass():
            # moto creates each region's default VPC on first use, drawing random IDs: do it for
            # every region any world uses, so a world's IDs do not depend on which others exist.
            for region in sorted({r for regions in worlds.REGIONS.values() for r in regions}):
                self.client("ec2", region).describe_vpcs()
            for scenario in self.scenarios:
                # Each world has its own seed: its IDs do not depend on which others are built.
                mock_random.seed(SEED + sum(map(ord, scenario)))
                self.world[scenario] = worlds.BUILDERS[scenario](self)
            self._deploy()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._drain()
        finally:
            dynamics.deactivate()
            api.deactivate()
            if self._mock is not None:
                self._mock.stop()
            for key, value in self._env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _drain(self) -> None:
        """Stop executions still running, so none outlives the mock."""
        sfn = self.client("stepfunctions")
        for arn in self.state_machines.values():
            for item in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
                sfn.stop_execution(executionArn=item["executionArn"], error="opsflow.Shutdown")

    def client(self, service: str, region: str = REGION) -> Any:
        from runbook_kit import aws as lambda_aws

        return lambda_aws.client(service, region)

    # ------------------------------------------------------------------ deploy
    def parameters(self) -> dict[str, Any]:
        values = cfn.parameter_defaults(self.template)
        from_world = {
            key: value
            for world in self.world.values()
            for key, value in world.get("parameters", {}).items()
        }
        for key, value in {**LOCAL_PARAMETERS, **from_world, **self.parameter_overrides}.items():
            if key not in values:
                raise EngineError(f"template.yaml has no parameter {key!r}")
            spec = self.template["Parameters"][key]
            values[key] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        return values

    def _deploy(self) -> None:
        resources = self.template["Resources"]
        refs: dict[str, Any] = {}
        atts: dict[tuple[str, str], Any] = {}
        params = self.parameters()
        resolver = cfn.Resolver(
            params,
            ref=lambda name: refs[name],
            get_att=lambda logical, att: atts[(logical, att)],
            pseudo={
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": "aws",
                "AWS::StackName": "opsflow",
            },
            conditions=self.template.get("Conditions", {}),
        )
        sns = self.client("sns")
        self.tables: list[str] = []
        self.ssm_parameters: list[str] = []
        self.alarm_names: list[str] = []
        for logical, spec in resources.items():
            kind, props = spec["Type"], spec.get("Properties", {})
            if kind == "AWS::SNS::Topic":
                arn = sns.create_topic(Name=f"opsflow-{logical}")["TopicArn"]
                refs[logical] = arn
                atts[(logical, "TopicName")] = f"opsflow-{logical}"
            elif kind == "AWS::DynamoDB::Table":
                name = f"opsflow-{logical}"
                self.client("dynamodb").create_table(
                    TableName=name,
                    KeySchema=props["KeySchema"],
                    AttributeDefinitions=props["AttributeDefinitions"],
                    BillingMode="PAY_PER_REQUEST",
                )
                refs[logical] = name
                atts[(logical, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
                self.tables.append(name)
            elif kind == "AWS::SSM::Parameter":
                name = resolver.resolve(props["Name"])
                self.client("ssm").put_parameter(Name=name, Value=props["Value"], Type="String")
                refs[logical] = name
                self.ssm_parameters.append(name)
            elif kind == "AWS::CloudWatch::Alarm":
                resolved = resolver.resolve(props)
                refs[logical] = resolved["AlarmName"]
                self._put_alarm(resolved)
            elif kind == "AWS::Serverless::Function":
                name = function_name(logical)
                handler = _import_handler(props["Handler"])

                def invoke(payload: Any, handler: Any = handler, name: str = name) -> Any:
                    return handler(payload, _LambdaContext(name))

                self.boundary.lambdas[name] = invoke
                refs[logical] = name
                atts[(logical, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        for spec in resources.values():
            props = spec.get("Properties", {})
            if spec["Type"] == "AWS::SNS::Subscription":
                condition = spec.get("Condition")
                if condition and not resolver.condition(condition):
                    continue
                sns.subscribe(
                    TopicArn=resolver.resolve(props["TopicArn"]),
                    Protocol=props["Protocol"],
                    Endpoint=resolver.resolve(props["Endpoint"]),
                )
        sfn = self.client("stepfunctions")
        by_machine = {s.state_machine: s.id for s in SCENARIOS.values()}
        for logical, spec in resources.items():
            if spec["Type"] != "AWS::Serverless::StateMachine":
                continue
            props = spec["Properties"]
            scenario = by_machine.get(logical)
            if scenario is None or scenario not in self.scenarios:
                continue
            text = (ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
            substitutions = {
                key: resolver.resolve(value)
                for key, value in props.get("DefinitionSubstitutions", {}).items()
            }
            for key, value in substitutions.items():
                text = text.replace("${" + key + "}", str(value))
            arn = sfn.create_state_machine(
                name=f"opsflow-{scenario}",
                definition=text,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/opsflow-{logical}",
                type=props.get("Type", "STANDARD"),
            )["stateMachineArn"]
            self.state_machines[scenario] = arn
            for rule_name, event in props.get("Events", {}).items():
                if event["Type"] == "EventBridgeRule":
                    pattern = resolver.resolve(event["Properties"]["Pattern"])
                    self.rules.append(Rule(rule_name, scenario, pattern, arn))
                elif event["Type"] in ("Schedule", "ScheduleV2"):
                    # A scheduled rule fires a "Scheduled Event" naming the rule.
                    rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/opsflow-{rule_name}"
                    pattern = {
                        "source": ["aws.events"],
                        "detail-type": ["Scheduled Event"],
                        "resources": [rule_arn],
                    }
                    self.rules.append(Rule(rule_name, scenario, pattern, arn))

    def _put_alarm(self, props: dict[str, Any]) -> None:
        """A template alarm in moto (stored, never evaluated: see :mod:`opsflow.engine.alarms`),
        starting OK as a healthy service's alarm is."""
        cloudwatch = self.client("cloudwatch")
        spec = {
            key: props[key]
            for key in ("AlarmName", "AlarmDescription", "ComparisonOperator",
                        "ThresholdMetricId", "TreatMissingData", "Metrics")
            if key in props
        }
        for key in ("EvaluationPeriods", "DatapointsToAlarm"):
            if key in props:
                spec[key] = int(props[key])
        for metric in spec.get("Metrics", []):
            stat = metric.get("MetricStat")
            if stat:
                stat["Period"] = int(stat["Period"])
        cloudwatch.put_metric_alarm(**spec)
        cloudwatch.set_alarm_state(
            AlarmName=spec["AlarmName"], StateValue="OK", StateReason="Deployed healthy"
        )
        self.alarm_names.append(spec["AlarmName"])

    # ------------------------------------------------------------------ runs
    def regions(self, scenario: str) -> list[str]:
        return worlds.REGIONS[scenario]

    def observe(self) -> dict[observe.Key, Any]:
        regions = sorted({r for s in self.scenarios for r in self.regions(s)})
        with api.bypass():
            view = observe.snapshot(regions, self.tables, self.ssm_parameters)
        with api.bypass():
            route53 = self.client("route53")
            for zone in route53.list_hosted_zones()["HostedZones"]:
                records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])
                for record in records["ResourceRecordSets"]:
                    if "Weight" in record:
                        key = f"{record['Name']} [{record['SetIdentifier']}]"
                        view[(key, "global", "weight")] = record["Weight"]
            cloudwatch = self.client("cloudwatch")
            for name in self.alarm_names:
                found = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
                view[(name, REGION, "state")] = found[0]["StateValue"] if found else None
        for group in self.fakes["globalaccelerator"].endpoint_groups():
            key = f"endpoint-group [{group['EndpointGroupRegion']}]"
            view[(key, "global", "traffic dial")] = group["TrafficDialPercentage"]
        for request in self.fakes["service-quotas"].requests():
            key = f"quota-request/{request['QuotaCode']}/{request['Id'][:8]}"
            view[(key, request["Region"], "status")] = request["Status"]
            view[(key, request["Region"], "desired")] = request["DesiredValue"]
        return view

    def match(self, event: dict[str, Any]) -> list[Rule]:
        from moto.events.models import EventPattern

        return [
            rule
            for rule in self.rules
            if EventPattern.load(json.dumps(rule.pattern)).matches_event(event)
        ]

    def run(
        self,
        scenario: str,
        event: dict[str, Any],
        on_event: Callable[[dict[str, Any]], None] | None = None,
        name: str | None = None,
    ) -> Execution:
        """Start the scenario's state machine with ``event`` and wait for its end."""
        if scenario not in self.state_machines:
            raise EngineError(f"scenario {scenario!r} is not deployed")
        sfn = self.client("stepfunctions")
        before = self.observe()
        first_notification = len(self.boundary.notifications)
        name = name or f"{scenario}-{uuid.uuid4().hex[:12]}"
        finished = threading.Event()
        terminal = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}

        def listen(item: dict[str, Any]) -> None:
            if on_event is not None:
                on_event(item)
            if item["type"] in terminal:
                finished.set()
            details = item.get("taskSubmittedEventDetails") or {}
            if item["type"] == "TaskSubmitted" and str(details.get("resource", "")).endswith(
                "waitForTaskToken"
            ):
                threading.Thread(target=self._answer_approval, daemon=True).start()

        cures.HISTORY_LISTENERS.append(listen)
        try:
            arn = sfn.start_execution(
                stateMachineArn=self.state_machines[scenario], name=name, input=json.dumps(event)
            )["executionArn"]
            if not finished.wait(REAL_SECONDS_LIMIT):
                sfn.stop_execution(executionArn=arn, error="opsflow.LocalTimeout")
                raise EngineError(
                    f"{name} still running after {REAL_SECONDS_LIMIT:.0f} s of real time"
                )
        finally:
            cures.HISTORY_LISTENERS.remove(listen)
        description = sfn.describe_execution(executionArn=arn)
        deadline = time.monotonic() + 5
        while description["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.002)
            description = sfn.describe_execution(executionArn=arn)
        history = self._history(arn, 0)
        after = self.observe()
        output = json.loads(description["output"]) if description.get("output") else None
        times = [item["timestamp"] for item in history]
        notifications = [
            {"target": n.target, "subject": n.subject, "message": n.message, "sms": n.sms}
            for n in self.boundary.notifications[first_notification:]
        ]
        return Execution(
            scenario=scenario,
            execution_arn=arn,
            name=name,
            input=event,
            status=description["status"],
            output=output,
            error=description.get("error"),
            cause=description.get("cause"),
            history=history,
            notifications=notifications,
            effects=observe.diff(before, after),
            started=times[0].isoformat() if times else "",
            virtual_seconds=round((times[-1] - times[0]).total_seconds(), 3) if times else 0.0,
            faults=[f.spec for f in self.faults],
        )

    def chaos_latency(
        self, region: str, delay_ms: int, minutes: int, jitter_ms: int = 20
    ) -> Chaos:
        """Play the tc netem latency document on the virtual clock: the canary in ``region``
        reports ``delay_ms`` more for ``minutes``; the anomaly alarm is evaluated every period;
        when it enters ALARM, its state changes in the account and its event is returned."""
        from opsflow.engine import alarms
        from opsflow.engine.worlds import region_failover as world

        cloudwatch = self.client("cloudwatch")
        name = next(n for n in self.alarm_names if n.endswith(region))
        described = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        spec = alarms.AlarmSpec.from_describe_alarms(described)
        state, reason = described["StateValue"], described.get("StateReason", "")
        start = self.clock.now()
        end = start + timedelta(minutes=minutes)
        fresh = alarms.synthetic_history(region, start, end + timedelta(minutes=1),
                                         world.BASE_MS[region], world.NOISE_MS[region], seed=start.isoformat())
        degraded = alarms.with_latency(fresh, start, end, delay_ms, jitter_ms, seed=region)
        log = [f"chaos: +{delay_ms} ms ±{jitter_ms} ms on {region} for {minutes} min "
               f"(tc netem, as documents/tc-latency.sh adds it), alarm {name} is {state}"]
        history = self._canary_history(cloudwatch, spec, start)
        for at, value in degraded:
            self.clock.advance(60)
            cloudwatch.put_metric_data(
                Namespace=spec.namespace,
                MetricData=[{"MetricName": spec.metric_name, "Timestamp": at, "Value": value,
                             "Unit": "Milliseconds",
                             "Dimensions": [{"Name": k, "Value": v}
                                            for k, v in spec.dimensions.items()]}],
            )
            history.append((at, value))
            now = self.clock.now()
            evaluation = alarms.evaluate(spec, history, now, state)
            minute = (now - start).total_seconds() / 60
            band = f"band up to {evaluation.upper:.0f} ms" if evaluation.upper else "no band"
            log.append(f"  +{minute:4.0f} min  canary {value:7.1f} ms  {band}  -> {evaluation.state}")
            if evaluation.changed and evaluation.state == "ALARM":
                event = alarms.state_change_event(spec, evaluation, state, reason, now)
                cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM",
                                           StateReason=evaluation.reason,
                                           StateReasonData=evaluation.reason_data_json)
                log.append(f"alarm {name}: {state} -> ALARM after {minute:.0f} min; "
                           "its event goes to EventBridge")
                return Chaos(log=log, event=event, evaluation=evaluation)
            if evaluation.changed:
                state = evaluation.state
            if at >= end:
                break
        return Chaos(log=log, event=None, evaluation=None)

    def _canary_history(
        self, cloudwatch: Any, spec: Any, now: datetime
    ) -> list[tuple[datetime, float]]:
        found = cloudwatch.get_metric_statistics(
            Namespace=spec.namespace,
            MetricName=spec.metric_name,
            Dimensions=[{"Name": k, "Value": v} for k, v in spec.dimensions.items()],
            StartTime=now - timedelta(hours=4),
            EndTime=now,
            Period=spec.period,
            Statistics=["Average"],
        )["Datapoints"]
        return sorted((p["Timestamp"], float(p["Average"])) for p in found)

    def _answer_approval(self) -> None:
        """Answer the approval request just published (its task token is in the message)."""
        token = None
        for note in reversed(self.boundary.notifications):
            found = re.search(r"Task token: (\S+)", note.message)
            if found:
                token = found.group(1)
                break
        if token is None:
            return
        sfn = self.client("stepfunctions")
        if self.approval == "approve":
            sfn.send_task_success(taskToken=token, output=json.dumps({"approvedBy": "local"}))
        elif self.approval == "reject":
            sfn.send_task_failure(
                taskToken=token, error="Runbook.Rejected", cause="Rejected by the local operator"
            )
        else:
            # Nobody answers: the task's TimeoutSeconds elapses on the virtual clock.
            deadline = time.monotonic() + 5
            while not cures.expire_task_timeouts() and time.monotonic() < deadline:
                time.sleep(0.01)

    def _history(self, arn: str, skip: int) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        events: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        return events[skip:]

    def set_kill_switch(self, value: str) -> None:
        name = self.parameters()["KillSwitchParameterName"]
        self.client("ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
