"""The local engine: the emulated account, the deployed template, and runs of the compiled ASL.

``LocalEngine`` is a context manager. On entry it starts moto, applies the interpreter cures
and virtual time, builds each scenario's deterministic world, and "deploys" ``template.yaml``:
the SNS topic, DynamoDB table and SSM parameter it declares, every function (resolved to its
handler, run in-process), every state machine (the committed ``statemachines/*.asl.json`` with
its DefinitionSubstitutions) and every EventBridge rule pattern. The first engine of a process
for a given build builds it; the later ones restore a snapshot of it
(:mod:`opsflow.engine.snapshot`).
"""

from __future__ import annotations

import base64
import html
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
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from opsflow import template as cfn
from opsflow.engine import boundary as api
from opsflow.engine import cures, delivery, dynamics, limits, observe, snapshot, stack, worlds
from opsflow.engine.calls import CallLog
from opsflow.engine.clock import DEFAULT_START
from opsflow.engine.fakes.global_accelerator import GlobalAcceleratorFake
from opsflow.engine.fakes.rds_global_clusters import GlobalClusterFake
from opsflow.engine.fakes.route53_recovery_cluster import RoutingControlFake
from opsflow.engine.fakes.service_quotas import ServiceQuotasFake
from opsflow.engine.iam import policy
from workflows.catalog import SCENARIOS

ROOT = cfn.ROOT
ACCOUNT = "123456789012"
REGION = "us-east-1"
SEED = 20191202
ALERT_ATTEMPTS = 3
"""Lambda runs an asynchronous invocation (an EventBridge target's) and retries a failed one
twice, unless the function's ``EventInvokeConfig`` says otherwise (``MaximumRetryAttempts``)."""
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
MOCK_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


class EngineError(RuntimeError):
    """The local engine could not do what it was asked (a bug or a broken template)."""


class NotDelivered(EngineError):
    """EventBridge could not start the rule's target: the rule's role may not. No execution
    exists; the event went to the target's dead-letter queue if it could
    (:mod:`opsflow.engine.delivery`)."""


@dataclass
class Rule:
    name: str
    scenario: str
    pattern: dict[str, Any]
    state_machine_arn: str
    role: str | None = None
    """The role EventBridge starts the execution as."""
    arn: str = ""
    """The rule's ARN."""
    target: dict[str, Any] = field(default_factory=dict)
    """The rule's target as the stack declares it (:class:`opsflow.engine.stack.Rule`)."""


def _transform(transformer: dict[str, Any] | None, event: dict[str, Any]) -> str:
    """An EventBridge input transformer applied to ``event``: each ``<name>`` of the template
    replaced by the value at its path (inside a quoted template, as a JSON string's content)."""
    if not transformer:
        return json.dumps(event)
    values = {}
    for name, path in transformer.get("InputPathsMap", {}).items():
        value: Any = event
        for part in str(path).removeprefix("$.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[name] = "null" if value is None else str(value)
    text = str(transformer.get("InputTemplate", ""))
    quoted = text.strip().startswith('"')
    for name, value in values.items():
        text = text.replace(f"<{name}>", json.dumps(value)[1:-1] if quoted else value)
    return json.loads(text) if quoted else text


def _event_name(logical: str, scenario: str) -> str:
    """The SAM event's own name (``HealthAbuseRule``) from the rule's logical ID, which SAM builds
    as the state machine's logical ID followed by the event's name."""
    from workflows.catalog import SCENARIOS as known

    return logical.removeprefix(known[scenario].state_machine)


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
    definition: str = ""
    """The state machine's definition as deployed (DescribeStateMachine's ``definition``)."""
    call_log: CallLog | None = None
    undelivered: list[str] = field(default_factory=list)
    """Alerts on the run's end (the runbook-died rule) that did not reach their target, and
    why."""

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every AWS call the run made, with the state that made it (:mod:`opsflow.engine.calls`)."""
        return self.call_log.records if self.call_log is not None else []

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
            "undelivered": self.undelivered,
        }


@dataclass
class WebPage:
    """A Function URL's answer, as a browser sees it."""

    status: int
    headers: dict[str, str]
    body: str

    @property
    def title(self) -> str:
        found = re.search(r"<title>(.*?)</title>", self.body, re.S)
        return html.unescape(found.group(1)) if found else ""

    def form(self) -> tuple[str, dict[str, str]] | None:
        """The page's first form: its action and the fields a browser would submit."""
        reader = _FormReader()
        reader.feed(self.body)
        return None if reader.action is None else (reader.action, reader.fields)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action") or ""
        elif tag in ("input", "textarea") and self.action is not None and not self._done:
            if attributes.get("name"):
                self.fields[str(attributes["name"])] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._done = True


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


class _Recorded(dict):  # type: ignore[type-arg]
    """The parameters, noting each one read (what a world's build depends on)."""

    def __init__(self, values: dict[str, Any], reads: set[str]) -> None:
        super().__init__(values)
        self._reads = reads

    def __getitem__(self, key: str) -> Any:
        self._reads.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._reads.add(key)
        return super().get(key, default)

    def __iter__(self) -> Any:
        self._reads.update(self.keys())
        return super().__iter__()

    def items(self) -> Any:
        self._reads.update(self.keys())
        return super().items()

    def values(self) -> Any:
        self._reads.update(self.keys())
        return super().values()


_WORLD_READS: dict[tuple[str, ...], frozenset[str]] = {}
"""Scenarios (in build order) → the parameters their worlds' builders read at the last build."""


class LocalEngine:
    def __init__(
        self,
        faults: list[api.Fault] | None = None,
        parameters: dict[str, str] | None = None,
        scenarios: list[str] | None = None,
        stop_seconds: float = 40.0,
        approval: str | None = None,
        enforce_iam: bool = True,
    ) -> None:
        if approval not in (None, "approve", "reject"):
            raise EngineError(f"approval must be approve, reject or None, got {approval!r}")
        self.approval = approval
        self.enforce_iam = enforce_iam
        """Refuse calls the caller's role does not allow, as AWS does (always on for runs; off
        only to measure what enforcement costs)."""
        """How a local run answers a human-approval step: approve, reject, or (None) never,
        which times the step out on the virtual clock."""
        self.faults = list(faults or [])
        self.parameter_overrides = dict(parameters or {})
        self.scenarios = scenarios or list(worlds.BUILDERS)
        self.stop_seconds = stop_seconds
        self.template = cfn.cached()
        self.rules: list[Rule] = []
        self.state_machines: dict[str, str] = {}
        self.definitions: dict[str, str] = {}
        """State machine ARN → its definition as deployed."""
        self.world: dict[str, Any] = {}
        self._mock: Any = None
        self._env: dict[str, str | None] = {}
        self.approver = {"name": "local operator", "reason": "rejected with opsflow --reject"}
        """What the local approver types into the approval page's form."""
        self.clicks: list[dict[str, Any]] = []
        """Every request made to a Function URL of the stack (method, url, status, title)."""
        self.function_urls: dict[str, str] = {}
        self.undelivered: list[str] = []
        """Every alert of the engine's runs that did not reach its target (see
        :meth:`_deliver_alert`)."""
        self.restored = False
        """Whether :meth:`__enter__` restored a snapshot of an earlier build instead of building
        (:mod:`opsflow.engine.snapshot`)."""
        self.restored_from_disk = False
        """Whether that snapshot was one an earlier process left on disk."""

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalEngine:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)  # leave no mock or boundary behind
            raise
        return self

    def _start(self) -> None:
        from moto import mock_aws

        self.clock = cures.install()
        self.clock.reset(DEFAULT_START)  # whatever an earlier user of the process's clock set
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
        self.boundary = api.Boundary(faults=self.faults)
        limits.register(self.boundary, self.clock)
        self.dynamics = dynamics.Ec2Dynamics(self.clock, self.boundary, self.stop_seconds)
        route53 = dynamics.Route53Dynamics(self.clock, self.boundary)
        route53.activate()
        draining = dynamics.TargetDraining(self.clock, self.boundary)
        draining.activate()
        api.activate(self.boundary)
        dynamics.activate(self.dynamics)
        # The first engine of the process for a build key builds its worlds and deploys the
        # stack; every later one restores what that build made (:mod:`opsflow.engine.snapshot`).
        build = snapshot.key(self.scenarios, self.parameter_overrides, self.template)
        alone = snapshot.outermost()
        if alone:
            snapshot.clear_leftovers()  # what other users of moto in the process left
        saved = snapshot.saved(build) if alone else None
        if saved is not None:
            vars(self).update(snapshot.restore(saved, self.clock))
        elif alone:
            saved = self._restore_stored(build)
        if saved is not None:
            self.restored = True
        else:
            before = dict(vars(self))
            with api.bypass():
                self._build(alone)
            if alone:
                taken = snapshot.take(
                    self.clock,
                    {k: v for k, v in vars(self).items() if k not in before or before[k] is not v},
                    refused={id(self): "the engine", id(self.boundary): "the boundary"},
                    busy=[self.dynamics.pending(), route53.pending(), draining.pending()],
                )
                snapshot.keep(build, taken)
                snapshot.store(build, taken, self.clock)
        self._register()

    def _restore_stored(self, build: tuple[Any, ...]) -> snapshot.Snapshot | None:
        """Restore the snapshot an earlier process of the same code left on disk for
        ``build``, if any, and keep it for this process's later engines. One that cannot be
        restored is deleted, and the engine builds (a restore reads the whole snapshot before
        it changes anything)."""
        stored = snapshot.stored(build, self.clock)
        if stored is None:
            return None
        try:
            vars(self).update(snapshot.restore(stored, self.clock))
        except Exception as exc:  # noqa: BLE001  # any damage: build instead
            snapshot.discard(build, f"not restored ({type(exc).__name__}: {exc})")
            return None
        snapshot.keep(build, stored)
        self.restored_from_disk = True
        return stored

    def _build(self, alone: bool = False) -> None:
        """Build each scenario's world and deploy the stack into the emulated account: what a
        snapshot keeps. Every engine attribute this sets is assigned here (never mutated in
        place), so the snapshot finds them all by comparing attributes before and after.

        The worlds alone are kept too (``alone``: this engine's mock is the only one), keyed by
        the parameter overrides the builders read (a world reads few: region-failover's its
        ``PrimaryRegion``): an engine whose other parameters differ restores the worlds and
        deploys its own stack on them."""
        reads = _WORLD_READS.get(tuple(self.scenarios))
        world_key = None
        if alone and reads is not None:
            world_key = self._world_key(reads)
            saved = snapshot.saved(world_key)
            if saved is not None:
                vars(self).update(snapshot.restore(saved, self.clock))
                self.boundary.fakes = self.fakes
                self._deploy()
                return
        before = dict(vars(self))
        reads = self._build_worlds()
        _WORLD_READS[tuple(self.scenarios)] = reads
        if alone:
            snapshot.keep(self._world_key(reads), snapshot.take(
                self.clock,
                {k: v for k, v in vars(self).items() if k not in before or before[k] is not v},
                refused={id(self): "the engine", id(self.boundary): "the boundary"},
                busy=[self.dynamics.pending()],
            ))
        self._deploy()

    def _world_key(self, reads: frozenset[str]) -> tuple[Any, ...]:
        read = {k: v for k, v in self.parameter_overrides.items() if k in reads}
        return ("worlds", reads, *snapshot.key(self.scenarios, read, self.template))

    def _build_worlds(self) -> frozenset[str]:
        """Build each scenario's world; returns the parameters the builders read."""
        from moto.moto_api._internal import mock_random

        reads: set[str] = set()
        deployed = LocalEngine.parameters

        def recording() -> dict[str, Any]:
            return _Recorded(deployed(self), reads)

        self.parameters = recording  # type: ignore[method-assign]
        try:
            self._make_worlds(mock_random)
        finally:
            del self.parameters
        return frozenset(reads)

    def _make_worlds(self, mock_random: Any) -> None:
        mock_random.seed(SEED)
        self.fakes: dict[str, Any] = {
            "service-quotas": ServiceQuotasFake(self.clock, account=ACCOUNT),
            "globalaccelerator": GlobalAcceleratorFake(self.clock, account=ACCOUNT),
            "route53-recovery-cluster": RoutingControlFake(account=ACCOUNT),
            "rds": GlobalClusterFake(self.clock.now, account=ACCOUNT),
        }
        self.boundary.fakes = self.fakes
        # moto creates each region's default VPC on first use, drawing random IDs: do it for
        # every region any world uses, so a world's IDs do not depend on which others exist.
        for region in sorted({r for regions in worlds.REGIONS.values() for r in regions}):
            self.client("ec2", region).describe_vpcs()
        self.world = {}
        for scenario in self.scenarios:
            # Each world has its own seed: its IDs do not depend on which others are built.
            mock_random.seed(SEED + sum(map(ord, scenario)))
            self.world[scenario] = worlds.BUILDERS[scenario](self)

    def __exit__(self, *exc: Any) -> None:
        try:
            self._drain()
        finally:
            dynamics.deactivate()
            api.deactivate()
            if self._mock is not None:
                alone = snapshot.outermost()
                self._mock.stop()
                if alone:
                    snapshot.clear_leftovers()  # what moto's reset made again
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
        # boto3 clients hold no account state, so the Lambda code's cached clients serve every
        # engine of the process (each costs ~25 ms to create).
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
        for key, value in values.items():  # CloudFormation refuses a value outside the bounds
            problem = limits.parameter_error(key, self.template["Parameters"][key], value)
            if problem is not None:
                raise EngineError(problem)
        return values

    def _deploy(self) -> None:
        """Create the translated stack in the emulated account (see :mod:`opsflow.engine.stack`)
        and resolve what the engine runs itself: functions, state machines with their roles,
        rules with their targets, and the roles' policies (:meth:`_register` wires them)."""
        self.stack = stack.Stack(self.parameters(), ACCOUNT, REGION)
        resolve = self.stack.resolver.resolve
        kms = self.client("kms")
        for logical, spec in self.stack.of_type("AWS::KMS::Key").items():
            props = resolve(spec.get("Properties", {}))
            key = kms.create_key(
                Description=props.get("Description", ""), Policy=json.dumps(props["KeyPolicy"])
            )["KeyMetadata"]
            self.stack.created[logical] = {"Ref": key["KeyId"], "Arn": key["Arn"]}
        self.principals = self.stack.principals()
        sns = self.client("sns")
        self.tables: list[str] = []
        self.ssm_parameters: list[str] = []
        self.alarm_names: list[str] = []
        for logical, spec in self.stack.of_type("AWS::SNS::Topic").items():
            props = resolve(spec.get("Properties", {}))
            attributes = {"KmsMasterKeyId": props["KmsMasterKeyId"]} if "KmsMasterKeyId" in props else {}
            sns.create_topic(Name=self.stack.physical_name(logical), Attributes=attributes)
        for logical, spec in self.stack.of_type("AWS::DynamoDB::Table").items():
            props = spec["Properties"]
            name = self.stack.ref(logical)
            self.client("dynamodb").create_table(
                TableName=name,
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
            )
            self.tables.append(name)
        for spec in self.stack.of_type("AWS::SSM::Parameter").values():
            props = resolve(spec["Properties"])
            self.client("ssm").put_parameter(Name=props["Name"], Value=props["Value"], Type="String")
            self.ssm_parameters.append(props["Name"])
        for spec in self.stack.of_type("AWS::CloudWatch::Alarm").values():
            self._put_alarm(resolve(spec["Properties"]))
        for spec in self.stack.of_type("AWS::SNS::Subscription").values():
            props = resolve(spec["Properties"])
            sns.subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])
        for logical, spec in self.stack.of_type("AWS::SecretsManager::Secret").items():
            self._create_secret(logical, resolve(spec.get("Properties", {})))
        for logical in self.stack.of_type("AWS::SQS::Queue"):
            self.client("sqs").create_queue(QueueName=self.stack.physical_name(logical))
        self.functions = self.stack.functions()
        self.function_urls = {
            self.stack.get_att(logical, "FunctionUrl"): str(
                resolve(spec["Properties"]["TargetFunctionArn"])
            ).split(":function:")[-1]
            for logical, spec in self.stack.of_type("AWS::Lambda::Url").items()
        }
        """Function URL → the function it invokes (``AWS::Lambda::Url`` of the stack)."""
        sfn = self.client("stepfunctions")
        by_machine = {s.state_machine: s.id for s in SCENARIOS.values()}
        self.machines = self.stack.state_machines()
        self.state_machines = {}
        self.definitions = {}
        for logical, machine in self.machines.items():
            scenario = by_machine.get(logical)
            if scenario is None or scenario not in self.scenarios:
                continue
            definition = self.stack.definition(machine)
            arn = sfn.create_state_machine(
                name=machine.name,
                definition=definition,
                roleArn=machine.role,
                type="STANDARD",
            )["stateMachineArn"]
            self.state_machines[scenario] = arn
            self.definitions[arn] = definition
        by_arn = {arn: scenario for scenario, arn in self.state_machines.items()}
        self.alert_rules: list[tuple[stack.Rule, dict[str, Any]]] = []
        """Rules on Step Functions' status-change events and their topic or function targets
        (the runbook-died alert), run by :meth:`_announce_end`."""
        function_arns = {f.arn for f in self.functions.values()}
        self.function_policies = self.stack.function_policies()
        self.invoke_configs = self.stack.invoke_configs()
        self.rules = []
        for logical, rule in self.stack.rules().items():
            for target in rule.targets:
                alert = str(target["arn"]).startswith("arn:aws:sns:") or target["arn"] in function_arns
                if alert and rule.pattern is not None:
                    self.alert_rules.append((rule, target))
                    continue
                scenario = by_arn.get(target["arn"])
                if scenario is None:
                    continue
                if rule.pattern is not None:
                    pattern = rule.pattern
                else:
                    # A scheduled rule fires a "Scheduled Event" naming the rule.
                    pattern = {
                        "source": ["aws.events"],
                        "detail-type": ["Scheduled Event"],
                        "resources": [self.stack.get_att(logical, "Arn")],
                    }
                self.rules.append(Rule(_event_name(logical, scenario), scenario, pattern,
                                       target["arn"], target["role"], rule.arn, target))

    def _register(self) -> None:
        """What each engine wires for itself around the deployed stack, built or restored:
        IAM for every call (with its own record of calls), dead-lettering of undelivered
        events, every function in-process as its role, and the functions' environment."""
        from opsflow.engine.iam.enforce import Authorizer

        self.boundary.fakes = self.fakes
        self.fakes["rds"].unreachable = self.boundary.unreachable  # the regions down, this engine's
        self.authorizer = Authorizer(self.principals, ACCOUNT, self.clock)
        self.boundary.authorizer = self.authorizer if self.enforce_iam else None
        self.dead_letters = delivery.DeadLetters(self.stack, self.client, self.clock.now)
        for function in self.functions.values():
            # Imported at its first invocation, as Lambda initialises a function: a run imports
            # only the code of the functions it calls.
            def invoke(payload: Any, handler: str = function.handler, name: str = function.name) -> Any:
                return _import_handler(handler)(payload, _LambdaContext(name))

            self.boundary.lambdas[function.name] = invoke
            self.boundary.roles[function.name] = function.role
        self._export_environment()

    def import_handlers(self) -> None:
        """Import every function's code now rather than at its first invocation (a warm worker
        does, for its forks)."""
        for function in self.functions.values():
            _import_handler(function.handler)

    def _create_secret(self, logical: str, props: dict[str, Any]) -> None:
        """A template secret in Secrets Manager at the ARN the stack gives it; a
        ``GenerateSecretString`` value is drawn as ``GetRandomPassword`` draws it."""
        from moto.secretsmanager.utils import SecretsManagerSecretIdentifier
        from moto.utilities.id_generator import moto_id_manager

        arn = self.stack.ref(logical)
        name, _, suffix = arn.split(":secret:", 1)[1].rpartition("-")
        secrets = self.client("secretsmanager")
        value = props.get("SecretString")
        if value is None:
            generate = dict(props.get("GenerateSecretString") or {})
            options = {
                key: generate[key]
                for key in ("ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation",
                            "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace",
                            "RequireEachIncludedType")
                if key in generate
            }
            options["PasswordLength"] = int(generate.get("PasswordLength", 32))
            value = secrets.get_random_password(**options)["RandomPassword"]
            if "SecretStringTemplate" in generate:
                document = json.loads(generate["SecretStringTemplate"])
                document[generate["GenerateStringKey"]] = value
                value = json.dumps(document)
        identifier = SecretsManagerSecretIdentifier(ACCOUNT, REGION, name)
        moto_id_manager.set_custom_id(identifier, suffix)
        try:
            created = secrets.create_secret(Name=name, SecretString=value)["ARN"]
        finally:
            moto_id_manager.unset_custom_id(identifier)
        if created != arn:
            raise EngineError(f"secret {logical} was created as {created}, not {arn}")

    def _export_environment(self) -> None:
        """Each function's environment variables, set for the process (in-process handlers
        share one environment): the engine's own settings (quiet Powertools logs) win, and two
        functions may not give one variable different values."""
        owners: dict[str, tuple[str, str]] = {}
        for function in self.functions.values():
            for key, value in function.environment.items():
                if key in self._env:
                    continue
                logical, seen = owners.setdefault(key, (function.logical, value))
                if seen != value:
                    raise EngineError(
                        f"functions {logical} and {function.logical} set {key} differently; "
                        "in-process handlers share one environment"
                    )
        for key, (_, value) in owners.items():
            self._env[key] = os.environ.get(key)
            os.environ[key] = value

    def _put_alarm(self, props: dict[str, Any]) -> None:
        """A template alarm in moto (stored, never evaluated: see :mod:`opsflow.engine.alarms`),
        starting OK as a healthy service's alarm is."""
        cloudwatch = self.client("cloudwatch")
        spec: dict[str, Any] = {
            key: props[key]
            for key in ("AlarmName", "AlarmDescription", "ComparisonOperator",
                        "ThresholdMetricId", "TreatMissingData", "Metrics", "Namespace",
                        "MetricName", "Dimensions", "Statistic", "AlarmActions")
            if key in props
        }
        for key in ("EvaluationPeriods", "DatapointsToAlarm", "Period"):
            if key in props:
                spec[key] = int(props[key])
        if "Threshold" in props:
            spec["Threshold"] = float(props["Threshold"])
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
        view = observe.snapshot(regions, self.tables, self.ssm_parameters, ACCOUNT)
        view.update(observe.traffic_and_alarms(ACCOUNT, self.alarm_names))
        for group in self.fakes["globalaccelerator"].endpoint_groups():
            key = f"endpoint-group [{group['EndpointGroupRegion']}]"
            view[(key, "global", "traffic dial")] = group["TrafficDialPercentage"]
        for fake in self.fakes.values():
            view.update(getattr(fake, "observe", dict)())
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
            if EventPattern.load(json.dumps(rule.pattern)).matches_event(cast(Any, event))
        ]

    def run(
        self,
        scenario: str,
        event: dict[str, Any],
        on_event: Callable[[dict[str, Any]], None] | None = None,
        name: str | None = None,
        rule: Rule | None = None,
        watch: bool = True,
    ) -> Execution:
        """Start the scenario's state machine with ``event`` and wait for its end; ``rule``: the
        EventBridge rule that delivers it, which starts the execution as its own role;
        ``watch``: diff the account before and after (the report's effects)."""
        if scenario not in self.state_machines:
            raise EngineError(f"scenario {scenario!r} is not deployed")
        if rule is not None and rule.role:
            self._start_as(rule, event)
        sfn = self.client("stepfunctions")
        before = self.observe() if watch else {}
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

        log = CallLog(self.clock)
        cures.HISTORY_LISTENERS.append(log.on_history)
        self.boundary.on_call.append(log.on_call)
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
            cures.HISTORY_LISTENERS.remove(log.on_history)
            self.boundary.on_call.remove(log.on_call)
        description = sfn.describe_execution(executionArn=arn)
        deadline = time.monotonic() + 5
        while description["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.002)
            description = sfn.describe_execution(executionArn=arn)
        history = self._history(arn, 0)
        first_undelivered = len(self.undelivered)
        self._announce_end(scenario, description, history)
        if self.boundary.engine_errors:
            problems, self.boundary.engine_errors[:] = list(self.boundary.engine_errors), []
            raise EngineError(f"{name}: {problems[0]}")
        after = self.observe() if watch else {}
        definition = self.definitions[description["stateMachineArn"]]
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
            definition=definition,
            call_log=log,
            undelivered=self.undelivered[first_undelivered:],
        )

    def invoke(self, function: str, payload: Any) -> tuple[bool, Any]:
        """Invoke one function (template logical ID) as Lambda would: in-process, as its own
        role. Returns (succeeded, result) where a failure's result is Lambda's error object."""
        client = self.client("lambda")
        answer = client.invoke(FunctionName=function_name(function), Payload=json.dumps(payload))
        body = json.loads(answer["Payload"].read() or b"null")
        return "FunctionError" not in answer, body

    def _announce_end(
        self, scenario: str, description: dict[str, Any], history: list[dict[str, Any]]
    ) -> None:
        """Step Functions sends every execution's status change to EventBridge: route it through
        the stack's rules with SNS targets (the runbook-died alert) as EventBridge would."""
        if description["status"] == "RUNNING" or not self.alert_rules:
            return
        stamp = (history[-1]["timestamp"] if history else self.clock.now()).isoformat()
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": ACCOUNT,
            "time": stamp.replace("+00:00", "Z"),
            "region": REGION,
            "resources": [description["executionArn"]],
            "detail": {
                "executionArn": description["executionArn"],
                "stateMachineArn": description["stateMachineArn"],
                "name": description["name"],
                "status": description["status"],
                "input": description.get("input"),
                "output": description.get("output"),
                "error": description.get("error"),
                "cause": description.get("cause"),
            },
        }
        from moto.events.models import EventPattern

        for rule, target in self.alert_rules:
            if EventPattern.load(json.dumps(rule.pattern)).matches_event(cast(Any, event)):
                self._deliver_alert(rule, target, event)

    def _deliver_alert(self, rule: stack.Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
        """EventBridge delivers ``event`` to an SNS or Lambda target as
        ``events.amazonaws.com``: a function's resource policy must let it invoke for this rule
        (else the event is dead-lettered, not retried); Lambda runs an asynchronous invocation
        as the function's role and retries a failed one twice (``ALERT_ATTEMPTS``)."""
        arn = str(target["arn"])
        text = _transform(target.get("transformer"), event)
        if arn.startswith("arn:aws:sns:"):
            self.client("sns").publish(TopicArn=arn, Message=text)
            return
        request = policy.Request(
            "lambda:InvokeFunction", arn, {"aws:SourceArn": rule.arn, "aws:SourceAccount": ACCOUNT}
        )
        verdict = delivery.service_allows(self.function_policies.get(arn, []), delivery.EVENTS, request)
        if not verdict.allowed:
            where = self.dead_letters.send(
                rule.arn, target, event, delivery.NO_PERMISSIONS,
                f"EventBridge may not invoke {arn} for {rule.arn}",
            )
            self.undelivered.append(f"rule {rule.name} cannot invoke {arn}; {where.describe()}")
            return
        function = arn.split(":function:")[-1]
        handling = self.invoke_configs.get(arn, {})
        attempts = 1 + int(handling.get("retries", ALERT_ATTEMPTS - 1))
        lambda_client = self.client("lambda")
        for _ in range(attempts):
            answer = lambda_client.invoke(FunctionName=function, Payload=text)
            result = json.loads(answer["Payload"].read() or b"null")
            if "FunctionError" not in answer:
                return
        why = (f"{function} failed {attempts} times on the event of rule {rule.name}: "
               f"{result.get('errorType')}: {result.get('errorMessage')}")
        queue = handling.get("on_failure")
        if not queue:
            self.undelivered.append(f"{why}; the event is lost: the function has no OnFailure "
                                    "destination")
            return
        # Lambda's record of an asynchronous invocation that failed every attempt.
        record = {
            "version": "1.0",
            "timestamp": self.clock.now().isoformat().replace("+00:00", "Z"),
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{arn}:$LATEST",
                               "condition": "RetriesExhausted",
                               "approximateInvokeCount": attempts},
            "requestPayload": json.loads(text),
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": "Unhandled"},
            "responsePayload": result,
        }
        role = next(f.role for f in self.functions.values() if f.arn == arn)
        where = self.dead_letters.destination(queue, role, record)
        self.undelivered.append(f"{why}; {where.describe().replace('the event is', 'its record is')}")

    def _start_as(self, rule: Rule, event: dict[str, Any]) -> None:
        """EventBridge starts the target as the rule's role: a role that may not do so means
        the event is never delivered; it goes to the target's dead-letter queue, not retried."""
        sfn = self.client("stepfunctions")
        if rule.role is None:
            raise NotDelivered(f"rule {rule.name} has no role to start its target")
        denial = self.authorizer.authorize(
            rule.role, sfn, "StartExecution", {"stateMachineArn": rule.state_machine_arn}, REGION
        )
        if denial is not None:
            where = self.dead_letters.send(
                rule.arn, rule.target, event, delivery.NO_PERMISSIONS, denial.message
            )
            raise NotDelivered(
                f"rule {rule.name} cannot start its target: {denial.message}; {where.describe()}"
            )

    def chaos_latency(
        self, region: str, delay_ms: int, minutes: int, jitter_ms: int = 20
    ) -> Chaos:
        """Play the tc netem latency document on the virtual clock (region-failover's world:
        :func:`opsflow.engine.worlds.region_failover.chaos_latency`)."""
        from opsflow.engine.worlds import region_failover as world

        return world.chaos_latency(self, region, delay_ms, minutes, jitter_ms)

    def chaos_region_outage(
        self, region: str, minutes: int = 15, route53_down: bool = False,
        server_error: int | None = None,
    ) -> Chaos:
        """Take a whole Region down (region-failover's world:
        :func:`opsflow.engine.worlds.region_failover.region_outage`)."""
        from opsflow.engine.worlds import region_failover as world

        return world.region_outage(self, region, minutes, route53_down, server_error)

    def _answer_approval(self) -> None:
        """Answer the approval request just published as its approver would: open the approve
        or reject link of the notice (GET), then submit the page's form (POST). Without an
        answer, or when the answer is not taken, the wait times out on the virtual clock."""
        taken = False
        if self.approval is not None:
            link = self.approval_links().get(self.approval)
            if link is not None:
                page = self.click(link)
                form = page.form() if page.status == 200 else None
                if form is not None:
                    action, fields = form
                    for name in ("name", "reason"):
                        if name in fields and name in self.approver:
                            fields[name] = self.approver[name]
                    taken = self.click(urljoin(link, action), "POST", fields).status == 200
        if not taken:
            # Nobody answers: the task's TimeoutSeconds elapses on the virtual clock.
            deadline = time.monotonic() + 5
            while not cures.expire_task_timeouts() and time.monotonic() < deadline:
                time.sleep(0.01)

    def approval_links(self) -> dict[str, str]:
        """The approve/reject links of the latest notice that has any (links to a Function URL
        of the stack, by their ``action``)."""
        for note in reversed(self.boundary.notifications):
            found = {}
            for link in re.findall(r"https://\S+", note.message):
                parts = urlsplit(link)
                if f"{parts.scheme}://{parts.netloc}/" in self.function_urls:
                    action = parse_qs(parts.query).get("action", [""])[0]
                    found[action] = link
            if found:
                return found
        return {}

    def click(self, url: str, method: str = "GET", form: dict[str, str] | None = None) -> WebPage:
        """What a browser gets from ``url``, a Function URL of the stack: Lambda invokes the
        function with a payload format 2.0 event (a form as a base64 urlencoded body), as the
        function's role; clicks are kept in ``self.clicks``."""
        parts = urlsplit(url)
        host = parts.netloc
        name = self.function_urls.get(f"{parts.scheme}://{host}/")
        if name is None:
            raise EngineError(f"{url} is not a Function URL of the stack")
        agent, source = "opsflow-local-browser", "127.0.0.1"
        # Lambda code and moto's $$.State.EnteredTime (which the links' expiry is counted from)
        # read the real clock, not the virtual one: so does the request's time.
        now = time.time()
        headers = {"host": host, "user-agent": agent, "accept": "text/html",
                   "x-forwarded-for": source, "x-forwarded-proto": "https"}
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": parts.path or "/",
            "rawQueryString": parts.query,
            "headers": headers,
            "requestContext": {
                "accountId": "anonymous",
                "apiId": host.split(".")[0],
                "domainName": host,
                "domainPrefix": host.split(".")[0],
                "http": {"method": method, "path": parts.path or "/", "protocol": "HTTP/1.1",
                         "sourceIp": source, "userAgent": agent},
                "requestId": str(uuid.uuid4()),
                "routeKey": "$default",
                "stage": "$default",
                "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }
        query = parse_qs(parts.query, keep_blank_values=True)
        if query:
            event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
        if form is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
            event["body"] = base64.b64encode(urlencode(form).encode()).decode()
            event["isBase64Encoded"] = True
        answer = self.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
        result = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            page = WebPage(502, {}, "Internal Server Error")
        elif isinstance(result, dict) and "statusCode" in result:
            body = result.get("body") or ""
            if result.get("isBase64Encoded"):
                body = base64.b64decode(body).decode()
            page = WebPage(int(result["statusCode"]), dict(result.get("headers") or {}), body)
        else:  # Lambda answers anything else as a 200 JSON body
            page = WebPage(200, {"content-type": "application/json"}, json.dumps(result))
        self.clicks.append({"method": method, "url": f"{parts.scheme}://{host}{parts.path}",
                            "action": query.get("action", [(form or {}).get("action", "")])[0],
                            "status": page.status, "title": page.title})
        return page

    def _history(self, arn: str, skip: int) -> list[dict[str, Any]]:
        """The execution's history as GetExecutionHistory returns it. Read from the interpreter's
        own event list once the execution has ended (the API copies and serialises every event:
        over a second at 200 instances); through the API while it runs."""
        recorded = self._recorded_history(arn)
        if recorded is not None:
            return recorded[skip:]
        return self._history_by_api(arn, skip)

    def _recorded_history(self, arn: str) -> list[dict[str, Any]] | None:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        try:
            execution = stepfunctions_parser_backends[ACCOUNT][REGION].describe_execution(
                execution_arn=arn
            )
            env = execution.exec_worker.env  # type: ignore[attr-defined]
        except Exception:  # not the interpreter's execution: ask the API
            return None
        if env is None or str(execution.status) == "RUNNING":
            return None
        events = []
        for raw in list(env.event_manager._history_event_list):
            event = dict(raw)
            event["type"] = str(getattr(event["type"], "value", event["type"]))
            stamp = event["timestamp"]
            if isinstance(stamp, str):
                event["timestamp"] = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            events.append(event)
        return events

    def _history_by_api(self, arn: str, skip: int) -> list[dict[str, Any]]:
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
