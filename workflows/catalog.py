"""Every scenario opsflow knows, with what the README and the CLI say about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows import ebs_quota_forecast, health_abuse, region_failover


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
    settings: dict[str, str]
    """The workflow's ``SETTINGS``: each setting its detect task passes → the ``${Placeholder}``
    the template fills (``opsflow build`` derives ``functions/runbook_kit/parameters.py`` from it)."""


SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in [
        Scenario(
            id=health_abuse.SCENARIO,
            title="AWS Health abuse report → quarantine",
            state_machine="HealthAbuseStateMachine",
            trigger="AWS Health abuse event (`AWS_ABUSE_DOS_REPORT` by default)",
            act="take every reported instance out of service (Auto Scaling Standby or detach, "
            "deregistered and drained from its load balancers), protect its disks and evidence "
            "(termination protection, shutdown behaviour stop, DeleteOnTermination off, instance "
            "profile disassociated), isolate (security group), optional forensic snapshot, stop",
            verify="every instance stopped, isolated, out of service and protected",
            rollback="restore each touched instance's recorded before-state, or hold; escalate",
            sample_event="events/health-abuse/dos-report-arn.json",
            definition=health_abuse.definition,
            settings=health_abuse.SETTINGS,
        ),
        Scenario(
            id=region_failover.SCENARIO,
            title="Anomaly-detected latency → verified cross-region traffic shift",
            state_machine="RegionFailoverStateMachine",
            trigger="CloudWatch anomaly-detection alarm on the canary's `CanaryResponseTime` "
            "entering `ALARM` in the primary region, seen from the standby, where the runbook runs",
            act="shift traffic to the healthy region (ARC routing controls on the data plane; "
            "Route 53 weighted records or the Global Accelerator dial through their control "
            "planes) after a pre-flight check of the target",
            verify="change in sync and the target region's canary healthy",
            rollback="restore the recorded routing-control states, weights or dials, then escalate",
            sample_event="events/region-failover/alarm-primary.json",
            definition=region_failover.definition,
            settings=region_failover.SETTINGS,
        ),
        Scenario(
            id=ebs_quota_forecast.SCENARIO,
            title="EBS usage forecast → Service Quotas increase",
            state_machine="EbsQuotaForecastStateMachine",
            trigger="daily schedule, and the `AWS_SERVICEQUOTAS_THRESHOLD_BREACH` Health event for EBS",
            act="EBS census across regions, forecast, request a quota increase before the threshold",
            verify="request accepted (`PENDING`/`CASE_OPENED`/`APPROVED`)",
            rollback="nothing can be withdrawn: escalate with the exact requests",
            sample_event="events/ebs-quota-forecast/daily-schedule.json",
            definition=ebs_quota_forecast.definition,
            settings=ebs_quota_forecast.SETTINGS,
        ),
    ]
}
