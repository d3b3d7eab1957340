"""Settings arrive as strings (template parameters through DefinitionSubstitutions); manual
reruns may override some of them under the event's ``opsflow`` key."""

from __future__ import annotations

from typing import Any

from runbook_kit.errors import InvalidEvent


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "1", "on"}:
        return True
    if text in {"false", "no", "0", "off"}:
        return False
    raise InvalidEvent(f"setting {name!r} must be true or false, got {value!r}")


def as_int(value: Any, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidEvent(f"setting {name!r} must be a whole number, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
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
