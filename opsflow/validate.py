"""``opsflow validate``: the compiled ASL and ``template.yaml`` checked by real validators.

* every ``statemachines/*.asl.json`` passes ``asl-validator`` (npm), ``statelint`` and moto's
  interpreter parser (the grammar the local engine runs);
* every ``${Placeholder}`` in an ASL file has a DefinitionSubstitution, and every substitution
  is used;
* ``template.yaml`` translates offline with samtranslator, and the translated CloudFormation
  passes cfn-lint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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


def translate(template_path: Path = cfn.TEMPLATE) -> dict[str, Any]:
    """SAM → CloudFormation, offline (samtranslator with a fixed region and no AWS calls)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.public.translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class _OfflinePolicies(ManagedPolicyLoader):
        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            return {}

    sam = cfn.load(template_path)
    # What `sam package` does: local code folders become S3 objects.
    function_globals = sam.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = "s3://opsflow-artifacts/functions.zip"
    for spec in cfn.resources_of_type(sam, "AWS::Serverless::Function").values():
        if "CodeUri" in spec.get("Properties", {}):
            spec["Properties"]["CodeUri"] = "s3://opsflow-artifacts/functions.zip"
    for spec in _machines(sam).values():
        props = spec["Properties"]
        props["DefinitionUri"] = f"s3://opsflow-artifacts/{Path(props['DefinitionUri']).name}"
    return transform(sam, {}, _OfflinePolicies())  # type: ignore[no-any-return]


def check_template() -> list[Check]:
    try:
        translated = translate()
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


def run_all() -> list[Check]:
    template = cfn.load()
    files = sorted((ROOT / "statemachines").glob("*.asl.json"))
    return [
        *check_substitutions(template),
        *check_moto_parser(files),
        *check_asl_validator(files),
        *check_statelint(files),
        *check_template(),
    ]
