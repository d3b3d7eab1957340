"""Every scenario opsflow knows, with what the README and the CLI say about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows import health_abuse


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    state_machine: str
    """Logical ID of the state machine in ``template.yaml``."""
    trigger: str
    act: str
    verify: str
    rollback: str
    sample_event: str
    """The event ``opsflow run SCENARIO`` uses when none is given."""
    definition: Callable[[], dict[str, Any]]


SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in [
        Scenario(
            id=health_abuse.SCENARIO,
            title="AWS Health abuse report → quarantine",
            state_machine="HealthAbuseStateMachine",
            trigger="AWS Health abuse event (`AWS_ABUSE_DOS_REPORT` by default)",
            act="isolate every reported instance (security group), optional forensic snapshot, stop",
            verify="every instance stopped and isolated",
            rollback="restore each touched instance's recorded before-state, or hold; escalate",
            sample_event="events/health-abuse/dos-report-arn.json",
            definition=health_abuse.definition,
        ),
    ]
}
