"""Checking fakes' responses against botocore's service models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.model import Shape

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "double": (float,),
    "float": (float,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "timestamp": (datetime,),
}


NOT_IN_BOTOCORE = {"FailoverState.Status": ("switching-over",)}
"""Values the service's API reference documents that botocore's enumeration lacks (RDS: a
switchover's ``FailoverState.Status`` is ``switching-over``)."""


def assert_matches_shape(value: Any, shape: Shape, path: str) -> None:
    """Every member a response holds is one the model names, with the model's type."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), f"{path}: {value!r} is not a structure"
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{path}: members {sorted(unknown)} not in {shape.name}"
        for name, member in value.items():
            assert_matches_shape(member, shape.members[name], f"{path}.{name}")
    elif kind == "list":
        assert isinstance(value, list), f"{path}: {value!r} is not a list"
        for index, item in enumerate(value):
            assert_matches_shape(item, shape.member, f"{path}[{index}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{path}: {value!r} is not a map"
        for key, item in value.items():
            assert_matches_shape(key, shape.key, f"{path} key")
            assert_matches_shape(item, shape.value, f"{path}[{key}]")
    else:
        expected = _PYTHON_TYPES[kind]
        assert isinstance(value, expected), f"{path}: {value!r} is not a {kind}"
        assert not (kind in ("integer", "long") and isinstance(value, bool)), path
        if isinstance(value, datetime):
            assert value.tzinfo is not None, f"{path}: naive datetime"
        enum = getattr(shape, "enum", None)
        if enum:
            allowed = [*enum, *NOT_IN_BOTOCORE.get(".".join(path.split(".")[-2:]), ())]
            assert value in allowed, f"{path}: {value!r} not in {enum}"
