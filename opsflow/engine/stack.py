"""The stack as CloudFormation deploys it: ``template.yaml`` translated by samtranslator, its
intrinsic functions resolved with the deploy's parameters, and every resource the local engine
needs created in the emulated account or registered with the engine.

Nothing here reads ``template.yaml`` itself: roles, their inline and managed policies (SAM
policy templates already expanded), functions, state machines with their
DefinitionSubstitutions, and EventBridge rules with their targets all come from the translated
template, so the rehearsal runs exactly what ``sam deploy`` would create.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsflow import template as cfn

Policy = tuple[str, dict[str, Any]]


@dataclass
class Principal:
    """An IAM role of the stack and the policies CloudFormation attaches to it."""

    logical: str
    arn: str
    policies: list[Policy]
    boundary: list[Policy] | None = None
    used_by: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


@dataclass
class Function:
    logical: str
    name: str
    arn: str
    handler: str
    role: str
    timeout: int
    environment: dict[str, str]


@dataclass
class StateMachine:
    logical: str
    name: str
    arn: str
    role: str
    definition_path: str
    substitutions: dict[str, Any]


@dataclass
class Rule:
    logical: str
    name: str
    pattern: dict[str, Any] | None
    schedule: str | None
    targets: list[dict[str, Any]]
    """Each ``{"arn", "role", "transformer", "dead_letter", "retry"}``: what the rule starts,
    the role EventBridge uses for it, its input transformer, the ARN of its dead-letter queue
    and its RetryPolicy (``None`` when it has none)."""
    arn: str = ""


@functools.lru_cache(maxsize=1)
def _aws_managed() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return dict(json.loads(aws_managed_policies_data))


@functools.lru_cache(maxsize=64)
def aws_managed_policy(arn: str) -> dict[str, Any]:
    """The document of an AWS managed policy, from moto's copy of AWS's managed policies."""
    name = arn.rsplit("/", 1)[-1]
    data = _aws_managed()
    if name not in data:
        raise KeyError(f"unknown AWS managed policy {arn}")
    return dict(data[name]["Document"])


def _document(value: Any) -> dict[str, Any]:
    """A policy document, which CloudFormation accepts as an object or as JSON text."""
    return dict(json.loads(value) if isinstance(value, str) else value)


class Stack:
    """The translated template resolved for one deploy."""

    def __init__(
        self,
        parameters: dict[str, Any],
        account: str,
        region: str,
        stack_name: str = "opsflow",
        template: dict[str, Any] | None = None,
    ) -> None:
        self.template = template if template is not None else cfn.translated()
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.account, self.region, self.stack_name = account, region, stack_name
        self.created: dict[str, dict[str, Any]] = {}
        """Attributes only known once a resource exists (a KMS key's ID): logical ID →
        ``{"Ref": ..., "Arn": ...}``, set by whoever creates it, read before anything else."""
        self.resolver = cfn.Resolver(
            parameters,
            ref=self.ref,
            get_att=self.get_att,
            pseudo={
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::NoValue": None,  # type: ignore[dict-item]
            },
            conditions=self.template.get("Conditions", {}),
        )

    # ------------------------------------------------------------------ names
    def physical_name(self, logical: str) -> str:
        return f"{self.stack_name}-{logical}"

    def _arn(self, service: str, rest: str, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:aws:{service}:{where}:{self.account}:{rest}"

    def props(self, logical: str) -> dict[str, Any]:
        return dict(self.resources[logical].get("Properties", {}))

    def ref(self, logical: str) -> Any:
        if "Ref" in self.created.get(logical, {}):
            return self.created[logical]["Ref"]
        kind = self.resources[logical]["Type"]
        name = self.physical_name(logical)
        props = self.resources[logical].get("Properties", {})
        refs: dict[str, Callable[[], Any]] = {
            "AWS::IAM::Role": lambda: name,
            "AWS::IAM::ManagedPolicy": lambda: f"arn:aws:iam::{self.account}:policy/{name}",
            "AWS::Lambda::Function": lambda: name,
            "AWS::StepFunctions::StateMachine": lambda: self._arn("states", f"stateMachine:{name}"),
            "AWS::SNS::Topic": lambda: self._arn("sns", name),
            "AWS::DynamoDB::Table": lambda: name,
            "AWS::SSM::Parameter": lambda: self.resolver.resolve(props.get("Name", name)),
            "AWS::SSM::Document": lambda: name,
            "AWS::CloudWatch::Alarm": lambda: self.resolver.resolve(props.get("AlarmName", name)),
            "AWS::Events::Rule": lambda: name,
            "AWS::SQS::Queue": lambda: f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}",
            "AWS::Logs::LogGroup": lambda: self.resolver.resolve(props.get("LogGroupName", name)),
            "AWS::SecretsManager::Secret": lambda: self._arn(
                "secretsmanager", f"secret:{self.resolver.resolve(props.get('Name', name))}-opsflw"
            ),
        }
        if kind not in refs:
            return name
        return refs[kind]()

    def get_att(self, logical: str, attribute: str) -> Any:
        if attribute in self.created.get(logical, {}):
            return self.created[logical][attribute]
        kind = self.resources[logical]["Type"]
        name = self.physical_name(logical)
        if attribute == "Arn":
            arns: dict[str, Callable[[], str]] = {
                "AWS::IAM::Role": lambda: f"arn:aws:iam::{self.account}:role/{name}",
                "AWS::Lambda::Function": lambda: self._arn("lambda", f"function:{name}"),
                "AWS::DynamoDB::Table": lambda: self._arn("dynamodb", f"table/{name}"),
                "AWS::Events::Rule": lambda: self._arn("events", f"rule/{name}"),
                "AWS::CloudWatch::Alarm": lambda: self._arn("cloudwatch", f"alarm:{self.ref(logical)}"),
                "AWS::SQS::Queue": lambda: self._arn("sqs", name),
                "AWS::Logs::LogGroup": lambda: self._arn("logs", f"log-group:{self.ref(logical)}:*"),
            }
            if kind in arns:
                return arns[kind]()
        if attribute in ("TopicName", "QueueName"):
            return name
        if attribute == "Name":
            return name
        if attribute == "FunctionUrl":
            return f"https://{logical.lower()}.lambda-url.{self.region}.on.aws/"
        raise KeyError(f"{logical}.{attribute} is not modelled by the local stack")

    def included(self, logical: str) -> bool:
        condition = self.resources[logical].get("Condition")
        return condition is None or self.resolver.condition(condition)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical: spec
            for logical, spec in self.resources.items()
            if spec["Type"] == kind and self.included(logical)
        }

    # ------------------------------------------------------------------ views
    def principals(self) -> dict[str, Principal]:
        """Every role of the stack by ARN, with its resolved policies."""
        managed = {
            self.ref(logical): _document(self.resolver.resolve(spec["Properties"]["PolicyDocument"]))
            for logical, spec in self.of_type("AWS::IAM::ManagedPolicy").items()
        }
        found: dict[str, Principal] = {}
        for logical, spec in self.of_type("AWS::IAM::Role").items():
            props = self.resolver.resolve(spec.get("Properties", {}))
            policies: list[Policy] = [
                (p["PolicyName"], _document(p["PolicyDocument"])) for p in props.get("Policies", [])
            ]
            for arn in props.get("ManagedPolicyArns", []):
                document = managed.get(arn)
                if document is None:
                    document = aws_managed_policy(arn)
                policies.append((arn.rsplit("/", 1)[-1], document))
            boundary = None
            if props.get("PermissionsBoundary"):
                arn = props["PermissionsBoundary"]
                boundary = [(arn.rsplit("/", 1)[-1], managed.get(arn) or aws_managed_policy(arn))]
            arn = self.get_att(logical, "Arn")
            found[arn] = Principal(logical, arn, policies, boundary)
        for function in self.functions().values():
            found[function.role].used_by.append(function.logical)
        for machine in self.state_machines().values():
            found[machine.role].used_by.append(machine.logical)
        for rule in self.rules().values():
            for target in rule.targets:
                if target.get("role"):
                    found[target["role"]].used_by.append(rule.logical)
        return found

    def functions(self) -> dict[str, Function]:
        result = {}
        for logical, spec in self.of_type("AWS::Lambda::Function").items():
            props = self.resolver.resolve(spec["Properties"])
            result[logical] = Function(
                logical=logical,
                name=self.ref(logical),
                arn=self.get_att(logical, "Arn"),
                handler=props["Handler"],
                role=props["Role"],
                timeout=int(props.get("Timeout", 3)),
                environment={
                    k: str(v)
                    for k, v in props.get("Environment", {}).get("Variables", {}).items()
                },
            )
        return result

    def state_machines(self) -> dict[str, StateMachine]:
        result = {}
        for logical, spec in self.of_type("AWS::StepFunctions::StateMachine").items():
            props = spec["Properties"]
            location = props["DefinitionS3Location"]
            result[logical] = StateMachine(
                logical=logical,
                name=self.physical_name(logical),
                arn=self.ref(logical),
                role=self.resolver.resolve(props["RoleArn"]),
                definition_path=location["Key"],
                substitutions={
                    key: self.resolver.resolve(value)
                    for key, value in props.get("DefinitionSubstitutions", {}).items()
                },
            )
        return result

    def definition(self, machine: StateMachine) -> str:
        """The definition as CloudFormation hands it to Step Functions: placeholders filled."""
        text = (cfn.ROOT / machine.definition_path).read_text(encoding="utf-8")
        for key, value in machine.substitutions.items():
            text = text.replace("${" + key + "}", str(value))
        return text

    def rules(self) -> dict[str, Rule]:
        result = {}
        for logical, spec in self.of_type("AWS::Events::Rule").items():
            props = self.resolver.resolve(spec["Properties"])
            result[logical] = Rule(
                logical=logical,
                name=self.ref(logical),
                pattern=props.get("EventPattern"),
                schedule=props.get("ScheduleExpression"),
                targets=[
                    {"arn": t["Arn"], "role": t.get("RoleArn"),
                     "transformer": t.get("InputTransformer"),
                     "dead_letter": t.get("DeadLetterConfig", {}).get("Arn"),
                     "retry": t.get("RetryPolicy")}
                    for t in props.get("Targets", [])
                ],
                arn=self.get_att(logical, "Arn"),
            )
        return result

    def topic_policies(self) -> dict[str, list[dict[str, Any]]]:
        """Topic ARN → the documents of the ``AWS::SNS::TopicPolicy`` resources naming it."""
        found: dict[str, list[dict[str, Any]]] = {}
        for spec in self.of_type("AWS::SNS::TopicPolicy").values():
            props = self.resolver.resolve(spec["Properties"])
            for topic in props["Topics"]:
                found.setdefault(topic, []).append(_document(props["PolicyDocument"]))
        return found

    def _function_arn(self, name: str) -> str:
        """A function named by ARN or by name (as ``FunctionName`` may be) → its ARN."""
        return name if name.startswith("arn:") else self._arn("lambda", f"function:{name}")

    def function_policies(self) -> dict[str, list[dict[str, Any]]]:
        """Function ARN → its resource policy, one statement per ``AWS::Lambda::Permission``
        naming it (as Lambda's ``AddPermission`` writes them)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for spec in self.of_type("AWS::Lambda::Permission").values():
            props = self.resolver.resolve(spec["Properties"])
            arn = self._function_arn(str(props["FunctionName"]))
            condition: dict[str, Any] = {}
            if "SourceArn" in props:
                condition["ArnLike"] = {"aws:SourceArn": props["SourceArn"]}
            if "SourceAccount" in props:
                condition["StringEquals"] = {"aws:SourceAccount": props["SourceAccount"]}
            statement = {"Effect": "Allow", "Principal": {"Service": props["Principal"]},
                         "Action": props["Action"], "Resource": arn}
            if condition:
                statement["Condition"] = condition
            found.setdefault(arn, []).append({"Version": "2012-10-17", "Statement": [statement]})
        return found

    def invoke_configs(self) -> dict[str, dict[str, Any]]:
        """Function ARN → how Lambda handles its failed asynchronous invocations
        (``AWS::Lambda::EventInvokeConfig``): ``retries`` and the ``on_failure`` destination."""
        found: dict[str, dict[str, Any]] = {}
        for spec in self.of_type("AWS::Lambda::EventInvokeConfig").values():
            props = self.resolver.resolve(spec["Properties"])
            arn = self._function_arn(str(props["FunctionName"]))
            failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
            found[arn] = {"retries": int(props.get("MaximumRetryAttempts", 2)),
                          "on_failure": failure.get("Destination")}
        return found

    def queue_policies(self) -> dict[str, list[dict[str, Any]]]:
        """Queue ARN → the documents of the ``AWS::SQS::QueuePolicy`` resources naming it."""
        found: dict[str, list[dict[str, Any]]] = {}
        for spec in self.of_type("AWS::SQS::QueuePolicy").values():
            props = self.resolver.resolve(spec["Properties"])
            for url in props["Queues"]:
                queue = url.rsplit("/", 1)[-1]
                found.setdefault(self._arn("sqs", queue), []).append(_document(props["PolicyDocument"]))
        return found
