"""Deterministic emulated accounts, one per scenario: the same IDs on every run, so sample
events can name real resources.

Each builder takes the engine (for its clock and fakes) and returns what the world is made of.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsflow.engine.worlds import ebs_quota_forecast, health_abuse, region_failover

BUILDERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "health-abuse": health_abuse.build,
    "ebs-quota-forecast": ebs_quota_forecast.build,
    "region-failover": region_failover.build,
}
REGIONS: dict[str, list[str]] = {
    "health-abuse": health_abuse.REGIONS,
    "ebs-quota-forecast": ebs_quota_forecast.REGIONS,
    "region-failover": region_failover.REGIONS,
}
