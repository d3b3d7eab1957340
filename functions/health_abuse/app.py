"""Lambda handlers of the health-abuse runbook: unpack the event, call the logic, return JSON.

One handler per state-machine task, each deployed as its own function with its own role.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from health_abuse import plan as planning
from health_abuse import quarantine, service
from runbook_kit import aws
from runbook_kit.accounts import home_account
from runbook_kit.errors import require
from runbook_kit.telemetry import handler

logger = Logger(service="opsflow-health-abuse")


def _ec2(region: str) -> Any:
    return aws.client("ec2", region)


@handler(logger)
def parse_event(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"event": <EventBridge event>, "settings": {...}, "execution": arn}`` → first plan."""
    require(payload, "event", "settings")
    execution = payload.get("execution", "")
    result = planning.parse(
        payload["event"], payload["settings"], execution, home_account(execution, context)
    )
    logger.info(
        "parsed",
        extra={"reported": result["counts"]["reported"], "ignored": result.get("ignoredBecause")},
    )
    return result


@handler(logger)
def inspect_instances(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan": ...}`` → the plan with its batches of targets, skipped instances, guards and
    notices."""
    require(payload, "plan")
    plan = payload["plan"]
    searched = planning.searched_regions(plan)
    found = quarantine.find_instances(_ec2, searched)
    key, value = plan["settings"]["protectedTagKey"], plan["settings"]["protectedTagValue"]
    candidates = {
        instance_id: instance for instance_id, instance in found.items()
        if instance["State"]["Name"] not in ("terminated", "shutting-down")
        and not (key and planning.tags_of(instance).get(key) == value)
    }
    serving = quarantine.before_service(_ec2, candidates) if candidates else {}
    result = planning.classify(plan, found, searched, serving)
    logger.info(
        "classified",
        extra={"targets": result["targetCount"], "skipped": result["counts"]["skipped"],
               "escalate": "escalate" in result},
    )
    return result


def _item(payload: dict[str, Any]) -> tuple[quarantine.Batch, dict[str, Any]]:
    """A Map iteration's ``batch`` (or one ``instance``, invoked by hand) and its settings."""
    require(payload, "settings")
    if "instance" not in payload:
        require(payload, "batch")
    return quarantine.batch_of(payload), payload["settings"]


@handler(logger)
def take_out_of_service(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"batch", "settings", "dryRun", "execution"}`` → each instance recorded, out of its
    Auto Scaling group and every load balancer (or, for a dry run, what would be done),
    counted; fails ``TargetsDraining`` while a deregistered target still drains."""
    batch, config = _item(payload)
    return quarantine.take_out_of_service(
        _ec2, service.client, batch, config["autoScalingMode"],
        payload.get("execution", "opsflow"), bool(payload.get("dryRun", True)),
    )


@handler(logger)
def isolate_instance(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"batch": {region: [instance IDs]}, "settings", "dryRun", "execution"}`` → what was
    recorded and moved (or checked), counted."""
    batch, config = _item(payload)
    return quarantine.isolate(
        _ec2,
        batch,
        config["isolationGroupName"],
        payload.get("execution", "opsflow"),
        bool(payload.get("dryRun", True)),
        str(payload.get("event") or ""),
    )


@handler(logger)
def snapshot_volumes(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    batch, _ = _item(payload)
    return quarantine.snapshot(
        _ec2, batch, payload.get("execution", "opsflow"), bool(payload.get("dryRun", True)),
        str(payload.get("event") or ""),
    )


@handler(logger)
def stop_instance(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    batch, _ = _item(payload)
    return quarantine.stop(_ec2, batch, bool(payload.get("dryRun", True)))


@handler(logger)
def check_quarantine(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan", "attempt"}`` → whether every target is stopped, isolated, out of service and
    protected, and the notice."""
    require(payload, "plan", "attempt")
    plan = payload["plan"]
    states = quarantine.inspect(
        _ec2, planning.targets_of(plan), plan["settings"]["isolationGroupName"], every=False
    )
    return planning.verified(plan, states, int(payload["attempt"]))


@handler(logger)
def restore_instance(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    batch, _ = _item(payload)
    return quarantine.restore(_ec2, batch, payload.get("execution", ""))


@handler(logger)
def summarise_rollback(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan", "error", "mode", "rollbackError"?}`` → the cause and notice, built from the
    account's final state compared with each instance's before-state (never assumed)."""
    require(payload, "plan", "mode")
    plan = payload["plan"]
    states = quarantine.inspect(
        _ec2, planning.targets_of(plan), plan["settings"]["isolationGroupName"]
    )
    return planning.rollback_summary(
        plan, states, payload.get("error"), payload["mode"], payload.get("rollbackError")
    )
