"""AWS IAM identity-policy evaluation, without AWS: does a principal's set of identity policies
(and its permissions boundary, if it has one) allow one request?

How AWS decides, as the IAM User Guide documents it (the pages cited are on
https://docs.aws.amazon.com/IAM/latest/UserGuide/):

* Policy evaluation logic (``reference_policies_evaluation-logic.html``,
  ``reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html``): a request is
  denied by default. An applicable ``Deny`` statement in any policy (identity or boundary)
  denies it explicitly, whatever allows it elsewhere. Otherwise an identity policy must hold an
  applicable ``Allow``, and when the principal has a permissions boundary
  (``access_policies_boundaries.html``) the boundary must allow it too; a missing allow is an
  implicit deny.
* A statement applies when its ``Action`` (or ``NotAction``), its ``Resource`` (or
  ``NotResource``) and every condition in its ``Condition`` block match the request.
  ``NotAction``/``NotResource`` match everything except what they list
  (``reference_policies_elements_notaction.html``, ``..._notresource.html``).
* Action names are case-insensitive and may hold ``*`` and ``?``
  (``reference_policies_elements_action.html``). Resource ARNs are case-sensitive; ``*`` and
  ``?`` match within a colon-separated segment, a ``*`` that ends a segment "can expand to match
  beyond the colon boundaries", and in the resource part (after the fifth colon) a wildcard
  matches any character (``reference_policies_elements_resource.html``).
* Conditions (``reference_policies_condition-logic-multiple-context-keys-or-values.html``):
  operators in one block are ANDed, keys under one operator are ANDed, several values of one key
  are ORed, and for a negated operator (``StringNotEquals``, ``ArnNotLike``...) they are NORed:
  true only if the request value matches none of them.
* A key missing from the request context makes a condition false, except that a negated
  operator is then true, ``...IfExists`` is then true and ``Null`` tests exactly that
  (``reference_policies_elements_condition_operators.html``).
* ``ForAllValues:`` is true when every request value matches (and when there are none);
  ``ForAnyValue:`` when at least one does (false when there are none)
  (``reference_policies_condition-single-vs-multi-valued-context-keys.html``). Each request
  value is tested with the operator as above, so ``ForAllValues:StringNotLike`` with two
  patterns means "no request value is like either" (``..._examples-multi-valued-context-keys``).
* "Multivalued context keys require a condition set operator" (same page). Without one, an
  operator does not match a request value that holds several values, negated or not (as
  cloud-copilot's iam-simulate, confirmed with AWS, and as ``aws:CalledVia`` behaves in
  practice). A one-value list is the single value it holds; an empty list is a missing key.
* Condition key names are case-insensitive, tag-key part included ("The condition tag key
  ``Owner`` matches both ``Owner`` and ``owner`` because condition key names are not
  case-sensitive"). A key spelled in exactly the policy's case wins; otherwise the first
  context key equal to it ignoring case.
* Policy variables (``reference_policies_variables.html``): with ``"Version": "2012-10-17"``,
  ``${key}`` in a ``Resource``/``NotResource`` or in the value of a string, ARN or ``Bool``
  condition takes the request's value of that single-valued key; ``${key, 'default'}`` falls
  back on the default; ``${*}``, ``${?}`` and ``${$}`` are a literal ``*``, ``?`` and ``$``. A
  variable without a value makes that resource match nothing and that condition value match
  nothing (so a negated operator holds). Without that ``Version`` the text is literal.

A document AWS would refuse (an unknown ``Effect`` or condition operator, a statement without
``Action``/``NotAction`` or ``Resource``/``NotResource``, an unparsable number, date or address)
raises :class:`PolicyError`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "Decision",
    "Policy",
    "PolicyError",
    "Request",
    "evaluate",
    "evaluate_all",
]

ALLOWED = "allowed"
EXPLICIT_DENY = "explicit-deny"
IMPLICIT_DENY = "implicit-deny"

VARIABLES_VERSION = "2012-10-17"
"""The policy language version that has policy variables; ``2008-10-17`` treats them as text."""


class PolicyError(ValueError):
    """A malformed policy document: AWS would refuse to store it."""


@dataclass(frozen=True)
class Request:
    """One authorization request: an action on one resource, with its request context."""

    action: str
    """``service:Action``, e.g. ``ec2:StopInstances``; matched case-insensitively."""
    resource: str
    """One ARN, or ``*`` for an action that has no resource types."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """Condition keys (case-insensitive) to a str, bool, int, float, datetime, or a list of those
    for a multivalued key. ``None`` and an empty list mean the key is absent."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    """``allowed``, ``explicit-deny`` or ``implicit-deny``."""
    policy: str | None
    """The policy holding the deciding statement; ``None`` for an implicit deny."""
    statement: str | None
    """That statement's ``Sid``, or ``#<index>`` (0-based) when it has none."""


Policy = tuple[str, dict[str, Any]]
"""A policy's name and its document."""


# ----------------------------------------------------------------------------- request context
class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _multi(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


class _Context:
    """The request context, looked up the way AWS looks up condition keys: case-insensitively."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self._exact = dict(context)
        self._folded: dict[str, Any] = {}
        for key, value in self._exact.items():
            self._folded.setdefault(str(key).lower(), value)

    def get(self, key: str) -> Any:
        """The key's value, or ``_MISSING`` when it is absent, ``None`` or an empty list."""
        value = self._exact[key] if key in self._exact else self._folded.get(key.lower(), _MISSING)
        if value is None or (_multi(value) and not value):
            return _MISSING
        return value

    def variable(self, key: str) -> str | None:
        """A policy variable's text; ``None`` for no value (multivalued keys are no variables)."""
        value = self.get(key)
        if _multi(value):
            if len(value) != 1:
                return None
            (value,) = value
        if value is _MISSING:
            return None
        return _text(value)


# ---------------------------------------------------------------------------------- templates
# A string from a policy, with its policy variables still to fill in: text runs, escaped
# characters (``${*}``), and variables. Rendered, it becomes a tuple of (character, is_wildcard).
# A part is ("text", text, None), ("char", c, None) or ("var", key, default or None).
_Part = tuple[str, str, str | None]
_Template = tuple[_Part, ...]
_Token = tuple[str, bool]

_ESCAPES = {"*": "*", "?": "?", "$": "$"}
_VARIABLE = re.compile(r"\s*([^\s,'{}$]+)\s*(?:,\s*'([^']*)'\s*)?")


def _template(text: str, variables: bool, where: str) -> _Template:
    """Split a policy string into its parts (all text when the version has no variables)."""
    if not variables or "${" not in text:
        return (("text", text, None),)
    parts: list[_Part] = []
    i = 0
    while i < len(text):
        start = text.find("${", i)
        if start < 0:
            parts.append(("text", text[i:], None))
            break
        if start > i:
            parts.append(("text", text[i:start], None))
        end, quoted = start + 2, False
        while end < len(text) and (quoted or text[end] != "}"):
            quoted ^= text[end] == "'"
            end += 1
        if end >= len(text):
            raise PolicyError(f"{where}: policy variable in {text!r} has no closing brace")
        body = text[start + 2 : end]
        if body in _ESCAPES:
            parts.append(("char", _ESCAPES[body], None))
        else:
            match = _VARIABLE.fullmatch(body)
            if match is None:
                raise PolicyError(
                    f"{where}: malformed policy variable ${{{body}}} in {text!r} (expected "
                    "${key} or ${key, 'default'})"
                )
            parts.append(("var", match.group(1), match.group(2)))
        i = end + 1
    return tuple(parts)


def _has_variables(template: _Template) -> bool:
    return any(kind == "var" for kind, _, _ in template)


def _render(template: _Template, context: _Context) -> tuple[_Token, ...] | None:
    """The template with its variables filled in; ``None`` if a variable has no value."""
    tokens: list[_Token] = []
    for kind, text, default in template:
        if kind == "text":
            tokens.extend((ch, ch in "*?") for ch in text)
        elif kind == "char":
            tokens.append((text, False))
        else:
            value = context.variable(text)
            if value is None:
                if default is None:
                    return None
                value = default
            tokens.extend((ch, False) for ch in value)
    return tuple(tokens)


def _literal(tokens: Iterable[_Token]) -> str:
    return "".join(ch for ch, _ in tokens)


# ------------------------------------------------------------------------------ glob matching
# A compiled pattern is a tuple of (kind, char, crosses_colon): kind "c" a literal character,
# "?" any one character, "*" any run; a wildcard that does not cross colons stops at ":".
_Glob = tuple[tuple[str, str, bool], ...]


def _glob(tokens: Iterable[_Token], *, fold: bool = False) -> _Glob:
    """A plain glob: ``*`` and ``?`` match any character."""
    out = []
    for ch, wild in tokens:
        if wild:
            out.append((ch, "", True))
        else:
            out.append(("c", ch.lower() if fold else ch, True))
    return tuple(out)


def _resource_glob(tokens: Sequence[_Token]) -> _Glob:
    """A ``Resource`` pattern: wildcards stay inside their segment of the first five, except a
    ``*`` that ends a segment (or the pattern); in the resource part they match anything."""
    out = []
    colons = 0
    for i, (ch, wild) in enumerate(tokens):
        if not wild:
            out.append(("c", ch, True))
            colons += ch == ":"
        elif colons >= 5:
            out.append((ch, "", True))
        elif ch == "?":
            out.append(("?", "", False))
        else:
            last = i + 1 == len(tokens) or tokens[i + 1] == (":", False)
            out.append(("*", "", last))
    return tuple(out)


def _matches(pattern: _Glob, text: str) -> bool:
    """Whether the pattern matches the whole text."""
    return _compiled(pattern).fullmatch(text) is not None


@functools.lru_cache(maxsize=8192)
def _compiled(pattern: _Glob) -> re.Pattern[str]:
    """The glob as a regular expression, built once per pattern: a literal character is itself,
    ``?`` one character and ``*`` any run, either of them stopping at ``:`` unless it may cross
    ARN segments. Python's backtracking is bounded here: a ``*`` run never nests."""
    parts = []
    for kind, literal, crosses in pattern:
        if kind == "c":
            parts.append(re.escape(literal))
        elif kind == "?":
            parts.append("." if crosses else "[^:]")
        else:
            parts.append(".*?" if crosses else "[^:]*?")
    return re.compile("".join(parts), re.DOTALL)


def _walk(pattern: _Glob, text: str) -> bool:
    """The same match as a linear-time set-of-states walk (the reference the tests compare the
    compiled form with)."""
    n = len(pattern)

    def closure(states: list[bool]) -> list[bool]:
        for j in range(n):
            if states[j] and pattern[j][0] == "*":
                states[j + 1] = True
        return states

    states = closure([True] + [False] * n)
    for ch in text:
        following = [False] * (n + 1)
        for j in range(n):
            if not states[j]:
                continue
            kind, literal, crosses = pattern[j]
            if kind == "c":
                if literal == ch:
                    following[j + 1] = True
            elif crosses or ch != ":":
                following[j + (kind == "?")] = True
        states = closure(following)
        if not any(states):
            return False
    return states[n]


def _arn_like(tokens: tuple[_Token, ...], value: str) -> bool:
    """ARN condition matching: each of the six colon-separated parts checked on its own."""
    if tokens == (("*", True),):
        return True
    segments: list[list[_Token]] = [[]]
    for token in tokens:
        if token == (":", False) and len(segments) < 6:
            segments.append([])
        else:
            segments[-1].append(token)
    parts = value.split(":", 5)
    if len(segments) != 6 or len(parts) != 6:
        return False
    return all(_matches(_glob(seg), part) for seg, part in zip(segments, parts, strict=True))


# ---------------------------------------------------------------------------- value coercions
def _text(value: Any) -> str | None:
    """A context value as the string AWS compares (JSON-style booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


_EPOCH = re.compile(r"-?\d+(\.\d+)?")


def _from_epoch(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _date(value: Any) -> datetime | None:
    """A date from a datetime, epoch seconds (a number, or a string of digits: so ``"2020"`` is
    a second of 1970, not a year), or a W3C ISO-8601 string; a date without a zone is UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float | Decimal):
        return _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip()
        if _EPOCH.fullmatch(text):
            return _from_epoch(float(text))
        if re.fullmatch(r"\d{4}-\d{2}", text):  # W3C "YYYY-MM"
            text += "-01"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: Any) -> _Network | None:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def _binary(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value.encode()
    return None


# ---------------------------------------------------------------------------- condition model
@dataclass(frozen=True)
class _Operator:
    name: str
    """As written in the policy."""
    kind: str
    """string, numeric, date, bool, binary, ip, arn or null."""
    test: Callable[[Any, Any], bool]
    """The positive comparison of one request value with one policy value."""
    negated: bool
    if_exists: bool
    qualifier: str | None
    """``ForAllValues``, ``ForAnyValue`` or ``None``."""


def _string_test(compare: Callable[[str, tuple[_Token, ...]], bool]) -> Callable[[Any, Any], bool]:
    def test(request_value: Any, policy_value: tuple[_Token, ...]) -> bool:
        text = _text(request_value)
        return text is not None and compare(text, policy_value)

    return test


def _ordered(coerce: Callable[[Any], Any], compare: Callable[[Any, Any], bool]):
    def test(request_value: Any, policy_value: Any) -> bool:
        value = coerce(request_value)
        return value is not None and compare(value, policy_value)

    return test


def _ip_test(request_value: Any, policy_value: _Network) -> bool:
    network = _network(request_value)
    return (
        network is not None
        and network.version == policy_value.version
        and network.subnet_of(policy_value)  # type: ignore[arg-type]
    )


def _bool_test(request_value: Any, policy_value: tuple[_Token, ...]) -> bool:
    text = _text(request_value)
    return text is not None and text.lower() == _literal(policy_value).lower()


def _arn_test(request_value: Any, policy_value: tuple[_Token, ...]) -> bool:
    return isinstance(request_value, str) and _arn_like(policy_value, request_value)


_string_equals = _string_test(lambda text, tokens: text == _literal(tokens))
_string_equals_ic = _string_test(lambda text, tokens: text.lower() == _literal(tokens).lower())
_string_like = _string_test(lambda text, tokens: _matches(_glob(tokens), text))

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}

# operator name -> (kind, positive test, negated)
_OPERATORS: dict[str, tuple[str, Callable[[Any, Any], bool], bool]] = {
    "StringEquals": ("string", _string_equals, False),
    "StringNotEquals": ("string", _string_equals, True),
    "StringEqualsIgnoreCase": ("string", _string_equals_ic, False),
    "StringNotEqualsIgnoreCase": ("string", _string_equals_ic, True),
    "StringLike": ("string", _string_like, False),
    "StringNotLike": ("string", _string_like, True),
    "NumericNotEquals": ("numeric", _ordered(_number, operator.eq), True),
    "DateNotEquals": ("date", _ordered(_date, operator.eq), True),
    "Bool": ("bool", _bool_test, False),
    "BinaryEquals": ("binary", _ordered(_binary, operator.eq), False),
    "IpAddress": ("ip", _ip_test, False),
    "NotIpAddress": ("ip", _ip_test, True),
    "ArnEquals": ("arn", _arn_test, False),
    "ArnLike": ("arn", _arn_test, False),
    "ArnNotEquals": ("arn", _arn_test, True),
    "ArnNotLike": ("arn", _arn_test, True),
    "Null": ("null", operator.eq, False),
}
for _suffix, _compare in _COMPARISONS.items():
    _OPERATORS["Numeric" + _suffix] = ("numeric", _ordered(_number, _compare), False)
    _OPERATORS["Date" + _suffix] = ("date", _ordered(_date, _compare), False)
_BY_FOLDED_NAME = {name.lower(): name for name in _OPERATORS}
_QUALIFIERS = {"forallvalues": "ForAllValues", "foranyvalue": "ForAnyValue"}


def _operator(name: Any, where: str) -> _Operator:
    if not isinstance(name, str):
        raise PolicyError(f"{where}: condition operator {name!r} is not a string")
    qualifier = None
    base = name
    if ":" in name:
        prefix, base = name.split(":", 1)
        qualifier = _QUALIFIERS.get(prefix.lower())
        if qualifier is None:
            raise PolicyError(
                f"{where}: unknown condition set operator {prefix!r} in {name!r} "
                "(ForAllValues or ForAnyValue)"
            )
    folded = base.lower()
    if_exists = folded not in _BY_FOLDED_NAME and folded.endswith("ifexists")
    if if_exists:
        folded = folded[: -len("ifexists")]
    canonical = _BY_FOLDED_NAME.get(folded)
    if canonical is None:
        raise PolicyError(f"{where}: unknown condition operator {name!r}")
    kind, test, negated = _OPERATORS[canonical]
    if kind == "null" and (if_exists or qualifier):
        raise PolicyError(f"{where}: the Null operator takes no IfExists or set operator: {name!r}")
    return _Operator(name, kind, test, negated, if_exists, qualifier)


@dataclass(frozen=True)
class _Condition:
    operator: _Operator
    key: str
    values: tuple[Any, ...]
    """Policy values, ready for the operator's test (templates for string, ARN and Bool)."""


def _condition_values(op: _Operator, key: str, raw: Any, variables: bool, where: str):
    where = f"{where}, {op.name} {key!r}"
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise PolicyError(f"{where}: no condition values")
    parsed: list[Any] = []
    for value in values:
        if value is None or not isinstance(value, str | bool | int | float):
            raise PolicyError(f"{where}: condition value {value!r} is not a string, number or bool")
        text = "true" if value is True else "false" if value is False else str(value)
        if op.kind in ("string", "arn", "bool"):
            template = _template(text, variables, where)
            if (
                op.kind == "bool"
                and not _has_variables(template)
                and text.lower() not in ("true", "false")
            ):
                raise PolicyError(f"{where}: Bool takes true or false, not {value!r}")
            parsed.append(template)
        elif op.kind == "null":
            if text.lower() not in ("true", "false"):
                raise PolicyError(f"{where}: Null takes true or false, not {value!r}")
            parsed.append(text.lower() == "true")
        else:
            coerce = {"numeric": _number, "date": _date, "ip": _network, "binary": _policy_binary}
            converted = None if isinstance(value, bool) else coerce[op.kind](value)
            if converted is None:
                raise PolicyError(f"{where}: {value!r} is not a valid {op.kind} value")
            parsed.append(converted)
    return tuple(parsed)


def _policy_binary(value: Any) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def _conditions(raw: Any, variables: bool, where: str) -> tuple[_Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: Condition must be an object of operators")
    conditions = []
    for name, block in raw.items():
        op = _operator(name, where)
        if not isinstance(block, dict) or not block:
            raise PolicyError(f"{where}: {name} must map condition keys to values")
        for key, values in block.items():
            if not isinstance(key, str) or not key:
                raise PolicyError(f"{where}: {name} has a condition key {key!r}")
            conditions.append(
                _Condition(op, key, _condition_values(op, key, values, variables, where))
            )
    return tuple(conditions)


def _holds(condition: _Condition, context: _Context) -> bool:
    """Whether one (operator, key, values) condition holds for the request context."""
    op = condition.operator
    value = context.get(condition.key)
    if op.kind == "null":
        return any(wants_null == (value is _MISSING) for wants_null in condition.values)
    if op.qualifier is not None:
        items = (
            [] if value is _MISSING or value == "" else list(value) if _multi(value) else [value]
        )
        if not items and op.if_exists:
            return True
        results = (_one(condition, item, context) for item in items)
        return all(results) if op.qualifier == "ForAllValues" else any(results)
    if value is _MISSING:
        return op.if_exists or op.negated
    if _multi(value):
        if len(value) != 1:
            return False
        (value,) = value
    return _one(condition, value, context)


def _one(condition: _Condition, value: Any, context: _Context) -> bool:
    """One request value against the policy values: ORed, or NORed for a negated operator."""
    op = condition.operator
    matched = False
    for policy_value in condition.values:
        if op.kind in ("string", "arn", "bool"):
            policy_value = _render(policy_value, context)
            if policy_value is None:
                continue
        if op.test(value, policy_value):
            matched = True
            break
    return matched is not op.negated


# ---------------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class _Statement:
    label: str
    effect: str
    actions: tuple[_Glob, ...]
    not_action: bool
    resources: tuple[_Template, ...]
    not_resource: bool
    conditions: tuple[_Condition, ...]

    def applies(self, request: Request, context: _Context) -> bool:
        action = request.action.lower()
        if any(_matches(p, action) for p in self.actions) is self.not_action:
            return False
        if self._resource_listed(request.resource, context) is self.not_resource:
            return False
        return all(_holds(condition, context) for condition in self.conditions)

    def _resource_listed(self, resource: str, context: _Context) -> bool:
        for template in self.resources:
            tokens = _render(template, context)
            if tokens is None:  # a variable without a value matches no resource
                continue
            if tokens == (("*", True),) or _matches(_resource_glob(tokens), resource):
                return True
        return False


_STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
_POLICY_KEYS = {"Version", "Id", "Statement"}


def _strings(raw: Any, element: str, where: str) -> tuple[str, ...]:
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError(f"{where}: {element} must be a non-empty string or list of strings")
    return tuple(values)


def _pair(raw: dict[str, Any], element: str, where: str) -> tuple[Any, bool]:
    """The element or its Not form (exactly one of them)."""
    has, has_not = element in raw, f"Not{element}" in raw
    if has == has_not:
        raise PolicyError(f"{where}: a statement needs exactly one of {element} and Not{element}")
    return (raw[f"Not{element}"], True) if has_not else (raw[element], False)


def _action_glob(action: str, where: str) -> _Glob:
    if action != "*" and not re.fullmatch(r"[^:\s]+:[^:\s]+", action):
        raise PolicyError(f"{where}: action {action!r} is not 'service:action' or '*'")
    return _glob(((ch, ch in "*?") for ch in action), fold=True)


def _statement(raw: Any, index: int, variables: bool, policy: str) -> _Statement:
    label = f"#{index}"
    if isinstance(raw, dict) and isinstance(raw.get("Sid"), str) and raw["Sid"]:
        label = raw["Sid"]
    where = f"policy {policy!r}, statement {label}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a statement must be an object")
    if "Principal" in raw or "NotPrincipal" in raw:
        raise PolicyError(f"{where}: an identity policy names no Principal or NotPrincipal")
    unknown = sorted(set(raw) - _STATEMENT_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown statement element(s) {', '.join(unknown)}")
    if "Sid" in raw and not isinstance(raw["Sid"], str):
        raise PolicyError(f"{where}: Sid must be a string")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect must be 'Allow' or 'Deny', not {effect!r}")
    actions, not_action = _pair(raw, "Action", where)
    resources, not_resource = _pair(raw, "Resource", where)
    resource_strings = _strings(resources, "NotResource" if not_resource else "Resource", where)
    for resource in resource_strings:
        if resource != "*" and not resource.startswith("arn:"):
            raise PolicyError(f"{where}: resource {resource!r} is not an ARN or '*'")
    return _Statement(
        label=label,
        effect=effect,
        actions=tuple(
            _action_glob(a, where)
            for a in _strings(actions, "NotAction" if not_action else "Action", where)
        ),
        not_action=not_action,
        resources=tuple(_template(r, variables, where) for r in resource_strings),
        not_resource=not_resource,
        conditions=_conditions(raw.get("Condition"), variables, where),
    )


def _parse(policy: Any) -> tuple[str, tuple[_Statement, ...]]:
    if not isinstance(policy, tuple | list) or len(policy) != 2:
        raise PolicyError(f"a policy is a (name, document) pair, not {policy!r}")
    name, document = policy
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise PolicyError(f"policy {name!r} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"policy {name!r}: a policy document must be an object")
    unknown = sorted(set(document) - _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"policy {name!r}: unknown policy element(s) {', '.join(unknown)}")
    version = document.get("Version")
    if version is not None and version not in (VARIABLES_VERSION, "2008-10-17"):
        raise PolicyError(f"policy {name!r}: Version must be '2012-10-17', not {version!r}")
    statements = document.get("Statement")
    if statements is None:
        raise PolicyError(f"policy {name!r} has no Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise PolicyError(f"policy {name!r}: Statement must be an object or a list of them")
    variables = version == VARIABLES_VERSION
    return str(name), tuple(
        _statement(raw, i, variables, str(name)) for i, raw in enumerate(statements)
    )


# ---------------------------------------------------------------------------------- evaluation
_Parsed = Sequence[tuple[str, tuple[_Statement, ...]]]


def _decide(identity: _Parsed, boundary: _Parsed | None, request: Request) -> Decision:
    context = _Context(request.context)
    for name, statements in [*identity, *(boundary or ())]:
        for statement in statements:
            if statement.effect == "Deny" and statement.applies(request, context):
                return Decision(False, EXPLICIT_DENY, name, statement.label)

    def first_allow(policies: _Parsed) -> tuple[str, str] | None:
        for name, statements in policies:
            for statement in statements:
                if statement.effect == "Allow" and statement.applies(request, context):
                    return name, statement.label
        return None

    allow = first_allow(identity)
    if allow is None or (boundary is not None and first_allow(boundary) is None):
        return Decision(False, IMPLICIT_DENY, None, None)
    return Decision(True, ALLOWED, *allow)


@functools.lru_cache(maxsize=2048)
def _parse_text(name: str, text: str) -> tuple[str, tuple[_Statement, ...]]:
    return _parse((name, text))


def _parse_one(policy: Any) -> tuple[str, tuple[_Statement, ...]]:
    """A parsed policy, cached by its text: the same role's policies are evaluated for every call
    it makes (parsing is read-only work on an unchanged document)."""
    if isinstance(policy, tuple | list) and len(policy) == 2 and isinstance(policy[1], dict):
        try:
            text = json.dumps(policy[1], sort_keys=True)
        except (TypeError, ValueError):
            return _parse(policy)
        return _parse_text(str(policy[0]), text)
    return _parse(policy)


def _parse_all(
    policies: Sequence[Policy], boundary: Sequence[Policy] | None
) -> tuple[_Parsed, _Parsed | None]:
    identity = [_parse_one(p) for p in policies]
    return identity, None if boundary is None else [_parse_one(p) for p in boundary]


def evaluate(
    policies: Sequence[Policy], request: Request, boundary: Sequence[Policy] | None = None
) -> Decision:
    """Whether the identity policies (within the permissions boundary, if one is given) allow the
    request. An empty boundary is a boundary that allows nothing; ``None`` is no boundary.

    Every policy is checked for well-formedness first, so a malformed one raises
    :class:`PolicyError` whatever the request.
    """
    return parsed(policies, boundary).evaluate(request)


@dataclass(frozen=True)
class Parsed:
    """Policies (and a permissions boundary) parsed once, to evaluate many requests with
    (:func:`parsed`): what :func:`evaluate` does for each call, without reading the documents
    again."""

    identity: _Parsed
    boundary: _Parsed | None

    def evaluate(self, request: Request) -> Decision:
        """:func:`evaluate` of these policies."""
        return _decide(self.identity, self.boundary, request)


def parsed(policies: Sequence[Policy], boundary: Sequence[Policy] | None = None) -> Parsed:
    """The policies parsed (a malformed one raises :class:`PolicyError`), see :class:`Parsed`."""
    return Parsed(*_parse_all(policies, boundary))


def evaluate_all(
    policies: Sequence[Policy],
    requests: Sequence[Request],
    boundary: Sequence[Policy] | None = None,
) -> tuple[Decision, Request | None]:
    """One API call that touches several resources: AWS authorizes it only if every resource is
    allowed, and any explicit deny decides it.

    Returns the combined decision with the first request that was not allowed (the first
    explicitly denied one if any is), or the first request's ``allowed`` decision and ``None``.
    Raises ``ValueError`` for no requests: there is nothing to authorize.
    """
    if not requests:
        raise ValueError("evaluate_all needs at least one request")
    identity, bounds = _parse_all(policies, boundary)
    decisions = [(_decide(identity, bounds, r), r) for r in requests]
    for reason in (EXPLICIT_DENY, IMPLICIT_DENY):
        for decision, request in decisions:
            if decision.reason == reason:
                return decision, request
    return decisions[0][0], None
