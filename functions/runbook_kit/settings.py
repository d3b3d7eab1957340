"""Settings arrive as strings (template parameters through DefinitionSubstitutions); manual
reruns may override some of them under the event's ``opsflow`` key.

The template is the one statement of every setting's default and bounds: ``opsflow build``
copies them into :mod:`runbook_kit.parameters`, and :func:`setting` holds a rerun's override to
the same constraints CloudFormation holds the template's value to (each value is checked once,
where it enters: the template's by CloudFormation at deploy time, an override here). No setting
has a default here: the state machine passes every one.
"""

from __future__ import annotations

import re
from typing import Any

from runbook_kit.errors import InvalidEvent
from runbook_kit.parameters import PARAMETERS, SETTINGS

BOOLEAN = frozenset({"true", "false"})
"""A ``String`` parameter whose AllowedValues are exactly these is a boolean setting."""


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "1", "on"}:
        return True
    if text in {"false", "no", "0", "off"}:
        return False
    raise InvalidEvent(f"setting {name!r} must be true or false, got {value!r}")


def as_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise InvalidEvent(f"setting {name!r} must be a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidEvent(f"setting {name!r} must be a whole number, got {value!r}") from None
    low = minimum is not None and number < minimum
    high = maximum is not None and number > maximum
    if low or high:
        if minimum is not None and maximum is not None:
            bound = f"between {minimum} and {maximum}"
        elif minimum is not None:
            bound = f"at least {minimum}"
        else:
            bound = f"at most {maximum}"
        raise InvalidEvent(f"setting {name!r} must be {bound}, got {number}")
    return number


def as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def overrides(event: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """The event's ``opsflow`` overrides, refusing keys the runbook does not know."""
    raw = event.get("opsflow")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidEvent("the 'opsflow' overrides must be an object")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidEvent(
            f"unknown override(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return dict(raw)


def _bound(number: Any) -> int | None:
    return None if number is None else int(number)


def _allowed(value: str, name: str, spec: dict[str, Any]) -> str:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in allowed:
        raise InvalidEvent(f"setting {name!r} must be one of {', '.join(allowed)}, got {value!r}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise InvalidEvent(f"setting {name!r} must match {pattern}, got {value!r}")
    return value


def typed(value: Any, name: str, spec: dict[str, Any] | None, checked: bool = True) -> Any:
    """``value`` as its template parameter's type, and (``checked``) held to its constraints:
    a ``Number`` is a whole number within MinValue/MaxValue; a ``String`` allowed only
    ``true``/``false`` is a boolean; a ``CommaDelimitedList`` is a list whose items are each
    checked; any other value must be one of AllowedValues and match AllowedPattern, exactly (as
    IAM policies built from the same parameter compare it). Without a parameter (the template
    computes the value), the value is returned as given."""
    if spec is None:
        return value
    rules = spec if checked else {"Type": spec.get("Type")}
    kind = spec.get("Type")
    if kind == "Number":
        return as_int(value, name, _bound(rules.get("MinValue")), _bound(rules.get("MaxValue")))
    if kind == "CommaDelimitedList":
        return [_allowed(item, name, rules) for item in as_list(value)]
    if set(spec.get("AllowedValues") or ()) == BOOLEAN:
        return as_bool(value, name)
    if not isinstance(value, str):
        raise InvalidEvent(f"setting {name!r} must be a string, got {value!r}")
    return _allowed(value, name, rules)


def setting(raw: dict[str, Any], given: dict[str, Any], name: str, scenario: str) -> Any:
    """One setting of ``scenario``, typed as the template parameter it comes from: the rerun's
    override in ``given`` (see :func:`overrides`), held to that parameter's constraints, else
    the value the state machine passed in ``raw`` (the template's, which CloudFormation has
    held to them). A setting the state machine did not pass is an :class:`InvalidEvent` (the
    workflow's SETTINGS pass every one)."""
    sources = SETTINGS.get(scenario)
    if sources is None or name not in sources:
        raise KeyError(
            f"{scenario} has no setting {name!r} in its workflow's SETTINGS "
            "(run opsflow build after adding one)"
        )
    parameter = sources[name]
    spec = PARAMETERS[parameter] if parameter else None
    if name in given:
        return typed(given[name], name, spec)
    if name not in raw:
        source = f"template parameter {parameter}" if parameter else "the template"
        raise InvalidEvent(
            f"setting {name!r} is missing: the state machine passes it from {source}"
        )
    return typed(raw[name], name, spec, checked=False)
