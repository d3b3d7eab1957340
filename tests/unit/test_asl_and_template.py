"""The ASL serialiser, the SDK extensions, template.yaml reading and the intrinsic resolver."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from opsflow import template as cfn
from opsflow import validate
from opsflow.template import Resolver
from workflows import asl, sdk
from workflows.catalog import SCENARIOS


# ------------------------------------------------------------------------- asl.dumps
def walk_states(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every state of a definition, nested Map processors and Parallel branches included."""
    found = []
    for name, state in definition["States"].items():
        found.append((name, state))
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                found.extend(walk_states(state[key]))
        for branch in state.get("Branches", []):
            found.extend(walk_states(branch))
    return found


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dumps_is_deterministic(scenario: str) -> None:
    first = asl.dumps(SCENARIOS[scenario].definition())
    second = asl.dumps(SCENARIOS[scenario].definition())
    assert first.encode("utf-8") == second.encode("utf-8")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dumps_ends_with_one_newline(scenario: str) -> None:
    text = asl.dumps(SCENARIOS[scenario].definition())
    assert text.endswith("}\n")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dumps_puts_type_first_in_every_state(scenario: str) -> None:
    definition = json.loads(asl.dumps(SCENARIOS[scenario].definition()))
    states = walk_states(definition)
    assert states
    for name, state in states:
        assert next(iter(state)) == "Type", name


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dumps_keeps_the_definition(scenario: str) -> None:
    definition = SCENARIOS[scenario].definition()
    assert json.loads(asl.dumps(definition)) == json.loads(json.dumps(definition))


def test_dumps_orders_top_level_and_state_fields() -> None:
    definition = {
        "States": {
            "B": {"End": True, "Zeta": 1, "Retry": [], "Resource": "arn:x", "Type": "Task"},
            "A": {"Next": "B", "Comment": "first", "Type": "Pass"},
        },
        "StartAt": "A",
        "Comment": "c",
    }
    parsed = json.loads(asl.dumps(definition))
    assert list(parsed) == ["Comment", "StartAt", "States"]
    assert list(parsed["States"]) == ["B", "A"]
    assert list(parsed["States"]["B"]) == ["Type", "Resource", "Retry", "End", "Zeta"]
    assert list(parsed["States"]["A"]) == ["Type", "Comment", "Next"]


# ------------------------------------------------------------------------- workflows.sdk
def test_map_writes_item_processor_and_item_selector() -> None:
    selector = {"value.$": "$$.Map.Item.Value"}
    step = sdk.Map("Each", items_path="$.items", item_selector=selector, max_concurrency=2)
    step.attach_iterator(sdk.Pass("Inner"))
    state = step.to_dict()
    assert "Iterator" not in state
    assert "Parameters" not in state
    assert state["ItemSelector"] == selector
    assert state["ItemProcessor"] == {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "Inner",
        "States": {"Inner": {"Type": "Pass", "End": True}},
    }


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_scenario_uses_the_deprecated_map_fields(scenario: str) -> None:
    for name, state in walk_states(SCENARIOS[scenario].definition()):
        assert "Iterator" not in state, name
        if state["Type"] == "Map":
            assert "Parameters" not in state, name


def test_fail_accepts_cause_path() -> None:
    state = sdk.Fail("Stop", error="Runbook.Escalated", cause_path="$.escalation.cause").to_dict()
    assert state == {
        "Type": "Fail",
        "Error": "Runbook.Escalated",
        "CausePath": "$.escalation.cause",
    }


def test_fail_accepts_error_path() -> None:
    state = sdk.Fail("Stop", error_path="$.error.Error", cause_path="$.error.Cause").to_dict()
    assert state == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def test_retry_accepts_max_delay_and_jitter() -> None:
    retry = sdk.Retry(
        error_equals=["States.ALL"],
        interval_seconds=2,
        max_attempts=3,
        backoff_rate=2,
        max_delay_seconds=30,
        jitter_strategy="FULL",
    ).to_dict()
    assert retry["MaxDelaySeconds"] == 30
    assert retry["JitterStrategy"] == "FULL"


def test_task_accepts_result_selector() -> None:
    state = sdk.Task(
        "T",
        resource="arn:aws:states:::aws-sdk:ec2:describeInstances",
        result_selector={"ids.$": "$..InstanceId"},
    ).to_dict()
    assert state["ResultSelector"] == {"ids.$": "$..InstanceId"}


# ------------------------------------------------------------------------- template.load
TAGGED = """\
Resources:
  Thing:
    Properties:
      Ref: !Ref Env
      Att: !GetAtt Function.Arn
      AttList: !GetAtt [Function, Arn]
      Sub: !Sub arn:${AWS::Partition}:s3:::${Bucket}
      SubWithValues: !Sub
        - ${Name}-${AWS::Region}
        - Name: !Ref Env
      Join: !Join [",", [a, !Ref Env]]
      Split: !Split [",", "a,b"]
      Select: !Select [1, !Split [",", "a,b"]]
      Nested: !Not [!Equals [!Ref Env, ""]]
"""


def test_load_reads_cloudformation_tags(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TAGGED, encoding="utf-8")
    props = cfn.load(path)["Resources"]["Thing"]["Properties"]
    assert props["Ref"] == {"Ref": "Env"}
    assert props["Att"] == {"Fn::GetAtt": ["Function", "Arn"]}
    assert props["AttList"] == {"Fn::GetAtt": ["Function", "Arn"]}
    assert props["Sub"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}"}
    assert props["SubWithValues"] == {
        "Fn::Sub": ["${Name}-${AWS::Region}", {"Name": {"Ref": "Env"}}]
    }
    assert props["Join"] == {"Fn::Join": [",", ["a", {"Ref": "Env"}]]}
    assert props["Split"] == {"Fn::Split": [",", "a,b"]}
    assert props["Select"] == {"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}
    assert props["Nested"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "Env"}, ""]}]}


def test_load_reads_condition_tag(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Conditions:\n  A: !Equals [x, x]\n  B: !And [!Condition A, !Equals [y, y]]\n",
        encoding="utf-8",
    )
    conditions = cfn.load(path)["Conditions"]
    assert conditions["B"] == {"Fn::And": [{"Condition": "A"}, {"Fn::Equals": ["y", "y"]}]}


def test_load_reads_the_project_template() -> None:
    template = cfn.load()
    machine = template["Resources"]["HealthAbuseStateMachine"]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert substitutions["ParseHealthEventFunctionArn"] == {
        "Fn::GetAtt": ["ParseHealthEventFunction", "Arn"]
    }
    assert substitutions["DryRun"] == {"Ref": "DryRun"}
    assert substitutions["AbuseEventCodes"] == {"Fn::Join": [",", {"Ref": "AbuseEventCodes"}]}


def test_parameter_defaults_split_comma_delimited_lists() -> None:
    template = {
        "Parameters": {
            "Codes": {"Type": "CommaDelimitedList", "Default": "A, B,,C"},
            "Count": {"Type": "Number", "Default": 10},
            "Empty": {"Type": "String"},
        }
    }
    assert cfn.parameter_defaults(template) == {
        "Codes": ["A", "B", "C"],
        "Count": "10",
        "Empty": "",
    }


# ------------------------------------------------------------------------- Resolver
PSEUDO = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(
        parameters={"Env": "prod", "Regions": ["us-east-1", "eu-west-1"]},
        ref=lambda name: f"physical-{name}",
        get_att=lambda logical, attribute: f"{logical}/{attribute}",
        pseudo=PSEUDO,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Env"}, "prod"),
        ({"Ref": "Regions"}, ["us-east-1", "eu-west-1"]),
        ({"Ref": "AWS::Region"}, "eu-west-1"),
        ({"Ref": "AWS::AccountId"}, "123456789012"),
        ({"Ref": "Topic"}, "physical-Topic"),
        ({"Fn::GetAtt": ["Function", "Arn"]}, "Function/Arn"),
        ({"Fn::GetAtt": "Function.Arn"}, "Function/Arn"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Env"}, 3]]}, "a-prod-3"),
        ({"Fn::Join": [",", {"Ref": "Regions"}]}, "us-east-1,eu-west-1"),
        ({"Fn::Split": [",", "a,b,c"]}, ["a", "b", "c"]),
        ({"Fn::Split": [",", {"Fn::Join": [",", {"Ref": "Regions"}]}]}, ["us-east-1", "eu-west-1"]),
        ({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "b"),
        ({"Fn::Select": ["0", {"Ref": "Regions"}]}, "us-east-1"),
        (
            {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:t"},
            "arn:aws:sns:eu-west-1:123456789012:t",
        ),
        ({"Fn::Sub": "${Env}/${Topic}/${Function.Arn}"}, "prod/physical-Topic/Function/Arn"),
        ({"Fn::Sub": "${Regions}"}, "us-east-1,eu-west-1"),
        ({"Fn::Sub": "${!Literal} ${Env}"}, "${Literal} prod"),
        ({"Fn::Sub": ["${Name}-${Env}", {"Name": {"Ref": "AWS::Region"}}]}, "eu-west-1-prod"),
        (
            {"Key": {"Ref": "Env"}, "List": [{"Ref": "AWS::Partition"}, "x"]},
            {"Key": "prod", "List": ["aws", "x"]},
        ),
        ("plain", "plain"),
        (7, 7),
    ],
)
def test_resolve(resolver: Resolver, value: Any, expected: Any) -> None:
    assert resolver.resolve(value) == expected


def test_pseudo_parameters_win_over_parameters_and_resources() -> None:
    resolver = Resolver(
        parameters={"AWS::Region": "shadow"},
        ref=lambda name: "resource",
        get_att=lambda logical, attribute: "",
        pseudo=PSEUDO,
    )
    assert resolver.resolve({"Ref": "AWS::Region"}) == "eu-west-1"


def test_resolve_substitutions_of_the_project_template(resolver: Resolver) -> None:
    machine = cfn.load()["Resources"]["HealthAbuseStateMachine"]["Properties"]
    resolved = resolver.resolve(machine["DefinitionSubstitutions"])
    assert resolved["ParseHealthEventFunctionArn"] == "ParseHealthEventFunction/Arn"
    assert all(isinstance(value, str) for value in resolved.values())


# ------------------------------------------------------------------------- substitutions
def _machine_substitutions(template: dict[str, Any]) -> dict[str, Any]:
    machines = cfn.resources_of_type(template, "AWS::Serverless::StateMachine")
    assert machines
    return {
        logical: spec["Properties"]["DefinitionSubstitutions"] for logical, spec in machines.items()
    }


def test_project_substitutions_are_complete_and_all_used() -> None:
    checks = validate.check_substitutions(cfn.load())
    assert checks
    assert [(c.name, c.ok, c.detail) for c in checks if not c.ok] == []


def test_unused_substitution_is_reported() -> None:
    template = copy.deepcopy(cfn.load())
    for substitutions in _machine_substitutions(template).values():
        substitutions["NeverUsedAnywhere"] = "x"
    checks = validate.check_substitutions(template)
    assert checks and all(not c.ok for c in checks)
    for check in checks:
        assert "substitutions never used: NeverUsedAnywhere" in check.detail


def test_missing_substitution_is_reported() -> None:
    template = copy.deepcopy(cfn.load())
    for substitutions in _machine_substitutions(template).values():
        del substitutions["DryRun"]
    checks = validate.check_substitutions(template)
    assert checks and all(not c.ok for c in checks)
    for check in checks:
        assert "no substitution for DryRun" in check.detail


def test_the_template_reads_the_same_with_libyaml_as_in_pure_python() -> None:
    """The engine reads template.yaml with libyaml's loader where PyYAML has it (a tenth of the
    time in every new process); the document must be the one the pure-Python loader reads."""
    import yaml

    class Pure(yaml.SafeLoader):
        pass

    Pure.add_multi_constructor("!", cfn._construct)

    assert yaml.__with_libyaml__, "PyYAML without libyaml: the engine would read slowly"
    assert cfn._CfnLoader.__mro__[1] is yaml.CSafeLoader
    assert cfn.load() == yaml.load(cfn.TEMPLATE.read_text(encoding="utf-8"), Loader=Pure)  # noqa: S506
