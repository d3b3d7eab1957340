"""Deterministic emulated accounts, one per scenario: the same IDs on every run, so sample
events can name real resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsflow.engine.worlds import health_abuse

BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {"health-abuse": health_abuse.build}
REGIONS: dict[str, list[str]] = {"health-abuse": health_abuse.REGIONS}
