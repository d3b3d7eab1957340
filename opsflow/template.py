"""Reading ``template.yaml``: CloudFormation YAML tags, parameters, and the few intrinsic
functions the local engine must evaluate (DefinitionSubstitutions and rule patterns)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (about 9x faster on the template; the
same documents: ``tests/unit/test_asl_and_template.py``), else the pure-Python one."""


class _CfnLoader(_SafeLoader):  # type: ignore[misc]
    """A safe loader that reads ``!Ref x`` as ``{"Ref": x}`` and ``!Sub``/``!GetAtt``/…
    likewise."""


def _construct(loader: Any, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506


@lru_cache(maxsize=1)
def cached() -> dict[str, Any]:
    return load()


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """Each parameter's default; CommaDelimitedList defaults become lists."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        default = spec.get("Default", "")
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = [part.strip() for part in str(default).split(",") if part.strip()]
        else:
            values[name] = str(default)
    return values


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == kind}


class Resolver:
    """Evaluates intrinsic functions with given parameter values and resource attributes.

    ``ref(logical_id)`` and ``get_att(logical_id, attribute)`` supply what resources resolve to.
    """

    def __init__(
        self,
        parameters: dict[str, Any],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
        pseudo: dict[str, str],
        conditions: dict[str, Any] | None = None,
    ) -> None:
        self.conditions = conditions or {}
        self.parameters = parameters
        self._ref = ref
        self._get_att = get_att
        self.pseudo = pseudo

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._ref(name)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(logical, attribute)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.resolve(items))
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return self.substitute(text, extra)
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(index)]
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self.truth(value)
        return {k: self.resolve(v) for k, v in value.items()}

    def condition(self, name: str) -> bool:
        """The value of a named condition of the template's Conditions section."""
        return self.truth(self.conditions[name])

    def truth(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        (key, arg), = value.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return bool(left == right)
        if key == "Fn::Not":
            return not self.truth(arg[0])
        if key == "Fn::And":
            return all(self.truth(item) for item in arg)
        if key == "Fn::Or":
            return any(self.truth(item) for item in arg)
        raise ValueError(f"not a condition: {value!r}")

    def substitute(self, text: str, extra: dict[str, Any] | None = None) -> str:
        extra = extra or {}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self._get_att(logical, attribute))
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)


def translate(template_path: Path = TEMPLATE) -> dict[str, Any]:
    """SAM → CloudFormation, offline: what CloudFormation deploys (samtranslator with a fixed
    region and no AWS calls; local code and definition paths become S3 objects, as
    ``sam package`` makes them)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.public.translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class _OfflinePolicies(ManagedPolicyLoader):
        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            return {}

    sam = load(template_path)
    function_globals = sam.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = "s3://opsflow-artifacts/functions.zip"
    for spec in resources_of_type(sam, "AWS::Serverless::Function").values():
        if "CodeUri" in spec.get("Properties", {}):
            spec["Properties"]["CodeUri"] = "s3://opsflow-artifacts/functions.zip"
    for spec in resources_of_type(sam, "AWS::Serverless::StateMachine").values():
        props = spec["Properties"]
        props["DefinitionUri"] = f"s3://{ARTIFACTS}/{props['DefinitionUri']}"
    return transform(sam, {}, _OfflinePolicies())  # type: ignore[no-any-return]


ARTIFACTS = "opsflow-artifacts"
"""The bucket ``translate`` names for packaged code; a state machine's DefinitionS3Location key is
its definition's path in this repository."""


@lru_cache(maxsize=1)
def translated() -> dict[str, Any]:
    """``translate()`` of the committed template, cached on disk by the template's text and
    samtranslator's version (translating costs about half a second)."""
    from importlib.metadata import version

    from opsflow.engine import cache

    text = TEMPLATE.read_bytes()
    digest = cache.key(text, Path(__file__).read_bytes(), version("aws-sam-translator"))
    return dict(cache.cached_json("translated", digest, translate))
