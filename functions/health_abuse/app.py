"""Lambda handlers of the health-abuse runbook: unpack the event, call the logic, return JSON.

One handler per state-machine task, each deployed as its own function with its own role.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from health_abuse import plan as planning
from health_abuse import quarantine
from runbook_kit import aws
from runbook_kit.accounts import home_account
from runbook_kit.errors import require
from runbook_kit.notices import notice

logger = Logger(service="opsflow-health-abuse")


def _ec2(region: str) -> Any:
    return aws.client("ec2", region)


@logger.inject_lambda_context
def parse_event(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"event": <EventBridge event>, "settings": {...}, "execution": arn}`` → first plan."""
    require(payload, "event", "settings")
    execution = payload.get("execution", "")
    result = planning.parse(
        payload["event"], payload["settings"], execution, home_account(execution, context)
    )
    logger.info(
        "parsed", extra={"reported": result["reported"], "ignored": result.get("ignoredBecause")}
    )
    return result


@logger.inject_lambda_context
def inspect_instances(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan": ...}`` → the plan with targets, skipped instances, guards and notices."""
    require(payload, "plan")
    plan = payload["plan"]
    regions = plan["settings"]["regions"]
    searched = {
        item["instanceId"]: [item["region"]] if item.get("region") else list(regions)
        for item in plan["reported"]
    }
    found = quarantine.find_instances(_ec2, searched)
    result = planning.classify(plan, found, searched)
    logger.info("classified", extra={"targets": result["targets"], "skipped": result["skipped"]})
    return result


def _item(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    require(payload, "instance", "settings")
    return payload["instance"], payload["settings"]


@logger.inject_lambda_context
def isolate_instance(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    target, config = _item(payload)
    return quarantine.isolate(
        _ec2,
        target,
        config["isolationGroupName"],
        payload.get("execution", "opsflow"),
        bool(payload.get("dryRun", True)),
    )


@logger.inject_lambda_context
def snapshot_volumes(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    target, _ = _item(payload)
    return quarantine.snapshot(
        _ec2, target, payload.get("execution", "opsflow"), bool(payload.get("dryRun", True))
    )


@logger.inject_lambda_context
def stop_instance(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    target, _ = _item(payload)
    return quarantine.stop(_ec2, target, bool(payload.get("dryRun", True)))


@logger.inject_lambda_context
def check_quarantine(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan", "attempt"}`` → whether every target is stopped and isolated, and the notice."""
    require(payload, "plan", "attempt")
    plan = payload["plan"]
    states = quarantine.inspect(_ec2, plan["targets"], plan["settings"]["isolationGroupName"])
    converged = all(item["quarantined"] for item in states)
    done = sum(1 for item in states if item["quarantined"])
    summary = f"{done} of {len(states)} instance(s) stopped and isolated"
    code = plan["event"]["typeCode"].replace("AWS_ABUSE_", "").replace("_REPORT", "")
    lines = "\n".join(f"  - {planning.state_line(item)}" for item in states)
    return {
        "attempt": int(payload["attempt"]) + 1,
        "maxPolls": plan["settings"]["maxPolls"],
        "converged": converged,
        "instances": states,
        "summary": summary,
        "notice": notice(
            f"opsflow: abuse report {code}: {done} instance(s) quarantined and verified",
            f"AWS abuse {code}: quarantine verified for {done}: "
            + ", ".join(item["instanceId"] for item in states[:3]),
            f"Quarantine verified: {summary}.\n\n{lines}\n\n"
            "Each instance's before-state is recorded in its tags "
            f"({planning.BEFORE_STATE}, {planning.BEFORE_GROUPS} on each interface). Investigate, "
            "then terminate, or restore by hand.",
        ),
    }


@logger.inject_lambda_context
def restore_instance(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    target, _ = _item(payload)
    return quarantine.restore(_ec2, target, payload.get("execution", ""))


@logger.inject_lambda_context
def summarise_rollback(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan", "error", "mode", "rollbackError"?}`` → the cause and notice, built from the
    account's final state compared with each instance's before-state (never assumed)."""
    require(payload, "plan", "mode")
    plan = payload["plan"]
    states = quarantine.inspect(_ec2, plan["targets"], plan["settings"]["isolationGroupName"])
    return planning.rollback_summary(
        plan, states, payload.get("error"), payload["mode"], payload.get("rollbackError")
    )
