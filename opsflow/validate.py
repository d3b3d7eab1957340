"""``opsflow validate``: the compiled ASL and ``template.yaml`` checked by real validators.

* every ``statemachines/*.asl.json`` passes ``asl-validator`` (npm), ``statelint`` and moto's
  interpreter parser (the grammar the local engine runs);
* every ``${Placeholder}`` in an ASL file has a DefinitionSubstitution, and every substitution
  is used;
* ``template.yaml`` translates offline with samtranslator, and the translated CloudFormation
  passes cfn-lint;
* every state machine's worst-case waiting (verify polls, approval) fits its TimeoutSeconds for
  every parameter value the template allows, in every samconfig.toml environment.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsflow import template as cfn

ROOT = cfn.ROOT
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def _machines(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cfn.resources_of_type(template, "AWS::Serverless::StateMachine")


def check_substitutions(template: dict[str, Any]) -> list[Check]:
    checks = []
    for logical, spec in _machines(template).items():
        props = spec["Properties"]
        path = ROOT / props["DefinitionUri"]
        used = placeholders(path.read_text(encoding="utf-8"))
        given = set(props.get("DefinitionSubstitutions", {}))
        missing, unused = sorted(used - given), sorted(given - used)
        detail = "; ".join(
            part
            for part in (
                f"no substitution for {', '.join(missing)}" if missing else "",
                f"substitutions never used: {', '.join(unused)}" if unused else "",
            )
            if part
        )
        checks.append(Check(f"substitutions {logical}", not missing and not unused, detail))
    return checks


def _dummy(text: str) -> str:
    """The ASL with every placeholder filled as the template would fill it (shape only)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("FunctionArn"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:{name[:-3]}"
        if name.endswith("TopicArn"):
            return "arn:aws:sns:us-east-1:123456789012:opsflow"
        return name

    return PLACEHOLDER.sub(one, text)


def check_moto_parser(files: list[Path]) -> list[Check]:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    checks = []
    for path in files:
        try:
            AmazonStateLanguageParser.parse(_dummy(path.read_text(encoding="utf-8")))
            checks.append(Check(f"moto parser {path.name}", True))
        except Exception as error:  # the parser raises many kinds
            checks.append(Check(f"moto parser {path.name}", False, str(error)[:300]))
    return checks


def _tool(name: str) -> str | None:
    local = ROOT / "node_modules" / ".bin" / name
    if local.exists():
        return str(local)
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def check_asl_validator(files: list[Path]) -> list[Check]:
    tool = _tool("asl-validator")
    if tool is None:
        return [Check("asl-validator", False, "not installed: run `npm ci` (make does)")]
    checks = []
    for path in files:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            handle.write(_dummy(path.read_text(encoding="utf-8")))
        try:
            proc = subprocess.run(
                [tool, "--json-path", handle.name], capture_output=True, text=True, timeout=60
            )
        finally:
            os.unlink(handle.name)
        output = (proc.stdout + proc.stderr).strip()
        checks.append(Check(f"asl-validator {path.name}", proc.returncode == 0, output[-400:]))
    return checks


def check_statelint(files: list[Path]) -> list[Check]:
    tool = _tool("statelint")
    if tool is None:
        return [Check("statelint", False, "not installed (pip install statelint)")]
    checks = []
    for path in files:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            handle.write(_dummy(path.read_text(encoding="utf-8")))
        try:
            proc = subprocess.run(
                [tool, "--ignore=FLOAT", handle.name], capture_output=True, text=True, timeout=60
            )
        finally:
            os.unlink(handle.name)
        output = (proc.stdout + proc.stderr).strip()
        checks.append(Check(f"statelint {path.name}", proc.returncode == 0, output[-400:]))
    return checks


def check_template() -> list[Check]:
    try:
        translated = cfn.translate()
    except Exception as error:
        return [Check("samtranslator", False, str(error)[:600])]
    checks = [Check("samtranslator", True, f"{len(translated['Resources'])} resources")]
    tool = _tool("cfn-lint")
    if tool is None:
        return [*checks, Check("cfn-lint", False, "not installed")]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(translated, handle)
    try:
        proc = subprocess.run(
            [tool, "--format", "parseable", "--regions", "us-east-1", "--", handle.name],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        os.unlink(handle.name)
    output = (proc.stdout + proc.stderr).strip().replace(handle.name, "translated template")
    checks.append(Check("cfn-lint (translated template)", proc.returncode == 0, output[-800:]))
    return checks


# ----------------------------------------------------------------------------- time budgets
@dataclass(frozen=True)
class Wait:
    """Time a state machine spends waiting at ``state``: ``seconds`` (a template parameter's
    name, or a number) times ``times`` (likewise), counted only when parameter ``when[0]`` has
    the value ``when[1]``."""

    state: str
    seconds: str | float
    times: str | float = 1
    when: tuple[str, str] | None = None


FUNCTION_CONSTANTS = {
    ("ebs-quota-forecast", "maxPolls"): ("ebs_quota.quotas", "VERIFY_MAX_POLLS"),
}
"""Settings a scenario's functions fix themselves instead of reading them from the template."""


def _state_index(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition.get("States", {}).items():
        found[name] = state
        for nested in [state.get("ItemProcessor") or state.get("Iterator") or {},
                       *state.get("Branches", [])]:
            found.update(_state_index(nested))
    return found


def _wired(scenario: str, settings: dict[str, Any], path: str) -> str | float:
    """What a state-input path is set from. The detect and verify functions copy each setting
    into ``$.plan``/``$.verify`` under its own name, so the last key of the path names the
    setting, whose value is a template parameter (``${Name}``) or a number; a setting the
    functions fix themselves is read from them."""
    key = path.rsplit(".", 1)[-1]
    if key in settings:
        value = settings[key]
        found = PLACEHOLDER.fullmatch(str(value))
        return found.group(1) if found else float(value)
    if (scenario, key) in FUNCTION_CONSTANTS:
        functions = str(ROOT / "functions")
        if functions not in sys.path:
            sys.path.insert(0, functions)
        module, name = FUNCTION_CONSTANTS[(scenario, key)]
        return float(getattr(importlib.import_module(module), name))
    raise ValueError(f"{path}: no setting {key!r} wires it")


def waits(scenario: str, definition: dict[str, Any]) -> list[Wait]:
    """The worst case of a scenario's waiting, as its workflow module wires it (one place per
    scenario: the module's ``phases()`` and ``SETTINGS``, read through the compiled ASL): its
    verify loop waits before each check, at most ``$.verify.maxPolls`` times
    (:func:`workflows.runbook.verify_loop`); a task waiting for a token (the approval step)
    waits its TimeoutSeconds when the Choice before it takes it. Retry backoff and the tasks'
    own run time come on top."""
    from workflows.catalog import SCENARIOS

    module = importlib.import_module(SCENARIOS[scenario].definition.__module__)
    phases, settings = module.phases(), module.SETTINGS
    states = _state_index(definition)
    found: list[Wait] = []

    wait_name, loop_name = phases.verify.start.next_step.state_id, phases.verify.done.state_id
    wait = states[wait_name]
    seconds = wait["Seconds"] if "Seconds" in wait else _wired(scenario, settings, wait["SecondsPath"])
    limits = [
        rule["NumericGreaterThanEqualsPath"]
        for choice in states[loop_name]["Choices"]
        for rule in choice.get("And", [choice])
        if rule.get("Variable") == "$.verify.attempt" and "NumericGreaterThanEqualsPath" in rule
    ]
    if len(limits) != 1:
        raise ValueError(f"{loop_name}: no single attempt limit")
    found.append(Wait(wait_name, seconds, _wired(scenario, settings, limits[0])))

    for name, state in states.items():
        if not (state.get("Type") == "Task" and str(state.get("Resource", "")).endswith(
            ".waitForTaskToken"
        )):
            continue
        timeout = state.get("TimeoutSeconds")
        if timeout is None:
            timeout = _wired(scenario, settings, state["TimeoutSecondsPath"])
        gates = [
            (rule["Variable"], rule["BooleanEquals"])
            for choice in states.values()
            for rule in choice.get("Choices", [])
            if rule.get("Next") == name and "BooleanEquals" in rule
        ]
        when = None
        if len(gates) == 1:
            parameter = _wired(scenario, settings, gates[0][0])
            if isinstance(parameter, str):
                when = (parameter, str(gates[0][1]).lower())
        found.append(Wait(name, timeout, 1, when))
    return found


def _domain(spec: dict[str, Any]) -> list[Any]:
    """The extreme values CloudFormation lets a parameter take (the waits grow with each)."""
    if "AllowedValues" in spec:
        return [str(value) for value in spec["AllowedValues"]]
    if spec.get("Type") == "Number":
        return [float(spec.get("MinValue", 0)), float(spec.get("MaxValue", math.inf))]
    return [str(spec.get("Default", "")), "\0any other value"]


def environments(samconfig: Path) -> dict[str, dict[str, str]]:
    """Each samconfig.toml environment's parameter overrides."""
    config = tomllib.loads(samconfig.read_text(encoding="utf-8")) if samconfig.exists() else {}
    found: dict[str, dict[str, str]] = {}
    for name, table in config.items():
        if not isinstance(table, dict):
            continue
        overrides = table.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
        items = overrides if isinstance(overrides, list) else shlex.split(str(overrides))
        found[name] = dict(item.split("=", 1) for item in items if "=" in item)
    return found or {"default": {}}


def worst_case(
    found: list[Wait], parameters: dict[str, dict[str, Any]], overrides: dict[str, str]
) -> tuple[float, dict[str, Any]]:
    """The longest total wait over every value combination the template (or the environment's
    overrides) allows, and the combination."""
    names = sorted(
        {v for w in found for v in (w.seconds, w.times) if isinstance(v, str)}
        | {w.when[0] for w in found if w.when}
    )
    domains = []
    for name in names:
        if name in overrides:
            spec = parameters[name]
            domains.append([float(overrides[name]) if spec.get("Type") == "Number"
                            else overrides[name]])
        else:
            domains.append(_domain(parameters[name]))
    worst: tuple[float, int, dict[str, Any]] = (-1.0, 0, {})
    for combination in itertools.product(*domains):
        values = dict(zip(names, combination, strict=True))
        counted = [w for w in found if not (w.when and values[w.when[0]] != w.when[1])]
        total = 0.0
        for w in counted:
            seconds = values[w.seconds] if isinstance(w.seconds, str) else w.seconds
            times = values[w.times] if isinstance(w.times, str) else w.times
            total += float(seconds) * float(times)
        worst = max(worst, (total, len(counted), values), key=lambda item: item[:2])
    return worst[0], worst[2]


def _term(w: Wait, values: dict[str, Any]) -> str:
    def shown(v: str | float) -> str:
        return f"{v}={values[v]:g}" if isinstance(v, str) else f"{v:g}"

    text = f"{shown(w.seconds)} s" if w.times == 1 else f"{shown(w.times)} x {shown(w.seconds)} s"
    return f"{text} at {w.state!r}"


def check_budgets(template_path: Path = cfn.TEMPLATE,
                  samconfig: Path = ROOT / "samconfig.toml") -> list[Check]:
    """Every state machine's worst-case waiting fits its TimeoutSeconds, for every parameter
    value the template allows, in every samconfig.toml environment."""
    from workflows.catalog import SCENARIOS

    template = cfn.load(template_path)
    parameters = template.get("Parameters", {})
    by_machine = {s.state_machine: s.id for s in SCENARIOS.values()}
    checks = []
    for logical, spec in _machines(template).items():
        name = f"time budget {logical}"
        scenario = by_machine.get(logical)
        if scenario is None:
            continue
        definition = json.loads((ROOT / spec["Properties"]["DefinitionUri"]).read_text("utf-8"))
        timeout = definition.get("TimeoutSeconds")
        try:
            found = waits(scenario, definition)
        except (KeyError, ValueError) as error:
            checks.append(Check(name, False, f"cannot tell how long it waits: {error}"))
            continue
        if timeout is None:
            checks.append(Check(name, False, "the ASL sets no TimeoutSeconds"))
            continue
        envs = environments(samconfig)
        results = {env: worst_case(found, parameters, overrides) for env, overrides in envs.items()}
        env, (total, values) = max(results.items(), key=lambda item: item[1][0])
        if math.isinf(total):
            unbounded = sorted(
                parameter for parameter in values
                if math.inf in _domain(parameters[parameter])
                and any(parameter not in overrides for overrides in envs.values())
            )
            detail = f"no MaxValue for {', '.join(unbounded)}, so it can wait for ever"
        else:
            terms = " + ".join(
                _term(w, values) for w in found if not (w.when and values[w.when[0]] != w.when[1])
            )
            detail = (f"worst case {total:g} s of waiting [{env}] ({terms}) "
                      f"{'<=' if total <= timeout else '>'} TimeoutSeconds {timeout}")
        checks.append(Check(name, total <= timeout, detail))
    return checks


def run_all() -> list[Check]:
    template = cfn.load()
    files = sorted((ROOT / "statemachines").glob("*.asl.json"))
    return [
        *check_substitutions(template),
        *check_moto_parser(files),
        *check_asl_validator(files),
        *check_statelint(files),
        *check_template(),
        *check_budgets(),
    ]
