"""Deciding what to do about an abuse report: settings, guards and the notices a person reads."""

from __future__ import annotations

from typing import Any

from health_abuse import entities
from runbook_kit import settings as s
from runbook_kit.errors import InvalidEvent
from runbook_kit.notices import console_link, notice

SCENARIO = "health-abuse"
OVERRIDABLE = {
    "dryRun",
    "maxInstances",
    "forensicSnapshot",
    "rollbackMode",
    "ignoreDuplicate",
    "regions",
    "maxPolls",
}
ROLLBACK_MODES = ("restore", "hold")
QUARANTINED_BY = "opsflow:quarantined-by"
BEFORE_STATE = "opsflow:before-state"
BEFORE_GROUPS = "opsflow:before-groups"
ISOLATION_ROLE_TAG = "opsflow:role"
ISOLATION_ROLE = "isolation"


def effective_settings(raw: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Template settings, then the event's ``opsflow`` overrides, validated and typed."""
    merged = dict(raw)
    merged.update(s.overrides(event, OVERRIDABLE))
    mode = str(merged.get("rollbackMode", "restore"))
    if mode not in ROLLBACK_MODES:
        raise InvalidEvent(f"rollbackMode must be one of {', '.join(ROLLBACK_MODES)}, got {mode!r}")
    regions = s.as_list(merged.get("regions"))
    for region in regions:
        if not entities.REGION_RE.match(region):
            raise InvalidEvent(f"configured region {region!r} is not an AWS region name")
    if not regions:
        raise InvalidEvent("no regions are configured")
    return {
        "dryRun": s.as_bool(merged.get("dryRun", True), "dryRun"),
        "ignoreDuplicate": s.as_bool(merged.get("ignoreDuplicate", False), "ignoreDuplicate"),
        "abuseCodes": s.as_list(merged.get("abuseCodes")),
        "protectedTagKey": str(merged.get("protectedTagKey", "")).strip(),
        "protectedTagValue": str(merged.get("protectedTagValue", "")).strip(),
        "maxInstances": s.as_int(merged.get("maxInstances", 10), "maxInstances", 1, 1000),
        "regions": regions,
        "isolationGroupName": str(merged.get("isolationGroupName") or "opsflow-isolation"),
        "forensicSnapshot": s.as_bool(merged.get("forensicSnapshot", False), "forensicSnapshot"),
        "rollbackMode": mode,
        "pollSeconds": s.as_int(merged.get("pollSeconds", 15), "pollSeconds", 1, 3600),
        "maxPolls": s.as_int(merged.get("maxPolls", 20), "maxPolls", 1, 200),
    }


def parse(event: Any, raw_settings: dict[str, Any], execution: str) -> dict[str, Any]:
    """Event → the first plan: what was reported and with which settings. Pure."""
    report = entities.read(event)
    config = effective_settings(raw_settings, event)
    relevant = report.type_code in config["abuseCodes"] and report.status_code != "closed"
    plan: dict[str, Any] = {
        "scenario": SCENARIO,
        "execution": execution,
        "dryRun": config["dryRun"],
        "ignoreDuplicate": config["ignoreDuplicate"],
        "settings": config,
        "event": {
            "eventArn": report.event_arn,
            "typeCode": report.type_code,
            "statusCode": report.status_code,
            "account": report.account,
            "communicationId": report.communication_id,
            "page": report.page,
            "totalPages": report.total_pages,
            "region": report.region,
            "startTime": report.start_time,
            "description": report.description,
        },
        "reported": report.instances if relevant else [],
        "unparseable": report.unparseable,
        "resolved": report.resolved,
        "foreign": report.foreign,
        "dedupeKey": report.dedupe_key,
        "dedupeExpiresAt": entities.dedupe_expiry(event),
    }
    if not relevant:
        why = (
            "the event is closed"
            if report.status_code == "closed"
            else f"{report.type_code} is not one of the quarantine codes "
            f"({', '.join(config['abuseCodes']) or 'none configured'})"
        )
        plan["ignoredBecause"] = why
    return plan


def _name(instance: dict[str, Any]) -> str:
    for tag in instance.get("Tags", []) or []:
        if tag.get("Key") == "Name":
            return str(tag.get("Value"))
    return ""


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", []) or []}


def classify(
    plan: dict[str, Any], found: dict[str, dict[str, Any]], searched: dict[str, list[str]]
) -> dict[str, Any]:
    """Sort the reported instances into targets and skipped ones, apply the guards and write
    every notice. ``found`` maps instance ID → its description (with ``Region``); ``searched``
    maps instance ID → the regions looked in. Pure."""
    config = plan["settings"]
    targets: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for reported in plan["reported"]:
        instance_id = reported["instanceId"]
        instance = found.get(instance_id)
        if instance is None:
            where = ", ".join(searched.get(instance_id, [])) or "no region"
            skipped.append({"instanceId": instance_id, "reason": f"not found in {where}"})
            continue
        region = instance["Region"]
        state = instance["State"]["Name"]
        tags = tags_of(instance)
        key, value = config["protectedTagKey"], config["protectedTagValue"]
        if key and tags.get(key) == value:
            skipped.append(
                {
                    "instanceId": instance_id,
                    "region": region,
                    "reason": f"protected ({key}={value})",
                }
            )
            continue
        if state in ("terminated", "shutting-down"):
            skipped.append(
                {"instanceId": instance_id, "region": region, "reason": f"already {state}"}
            )
            continue
        targets.append(
            {
                "instanceId": instance_id,
                "region": region,
                "vpcId": instance.get("VpcId", ""),
                "state": state,
                "name": _name(instance),
            }
        )

    plan = dict(plan)
    plan["targets"] = targets
    plan["skipped"] = skipped
    plan["targetCount"] = len(targets)
    plan["actionable"] = bool(targets)
    if len(targets) > config["maxInstances"]:
        plan["escalate"] = {
            "cause": (
                f"{len(targets)} instances reported for {plan['event']['typeCode']}, above the "
                f"blast-radius cap of {config['maxInstances']}: nothing was changed. Review the "
                f"report and quarantine by hand, or rerun with a higher maxInstances."
            )
        }
    plan["summary"] = summary(plan)
    plan["notices"] = notices(plan)
    return plan


def _listing(items: list[dict[str, Any]]) -> str:
    lines = []
    for item in items:
        where = f" ({item['region']})" if item.get("region") else ""
        name = f" '{item['name']}'" if item.get("name") else ""
        extra = f": {item['reason']}" if item.get("reason") else f", {item.get('state', '')}"
        lines.append(f"  - {item['instanceId']}{name}{where}{extra}")
    return "\n".join(lines) or "  (none)"


def summary(plan: dict[str, Any]) -> str:
    ev = plan["event"]
    parts = [f"{ev['typeCode']}: {plan.get('targetCount', 0)} to quarantine"]
    if plan.get("skipped"):
        parts.append(f"{len(plan['skipped'])} skipped")
    if plan["unparseable"] or plan["foreign"]:
        parts.append(
            f"{len(plan['unparseable']) + len(plan['foreign'])} not instances of this account"
        )
    if plan["resolved"]:
        parts.append(f"{len(plan['resolved'])} resolved")
    if plan.get("ignoredBecause"):
        parts.append(f"ignored: {plan['ignoredBecause']}")
    return ", ".join(parts)


def _full(plan: dict[str, Any], headline: str, what_next: str) -> str:
    ev = plan["event"]
    config = plan["settings"]
    page = f" (page {ev['page']} of {ev['totalPages']})" if ev["totalPages"] > 1 else ""
    actions = "move to the isolating security group '" + config["isolationGroupName"] + "'"
    if config["forensicSnapshot"]:
        actions += ", snapshot every volume for forensics"
    actions += ", stop"
    other = plan["unparseable"] + plan["foreign"]
    lines = [
        headline,
        "",
        f"AWS Health reported {ev['typeCode']} for account {ev['account'] or 'unknown'}{page}.",
        f"Event: {ev['eventArn']}",
        f"Started: {ev['startTime'] or 'unknown'}",
    ]
    if ev["description"]:
        lines += ["", ev["description"].strip()]
    lines += ["", "Instances to quarantine:", _listing(plan.get("targets", []))]
    if plan.get("skipped"):
        lines += ["", "Skipped (not acted on):", _listing(plan["skipped"])]
    if other:
        lines += ["", "Reported entities that are not instances of this account (not acted on):"]
        lines += [f"  - {value}" for value in other]
    if plan["resolved"]:
        lines += ["", "Reported as resolved (not acted on): " + ", ".join(plan["resolved"])]
    lines += ["", f"Action per instance: {actions}.", "", what_next]
    link = console_link(ev.get("region") or config["regions"][0], plan.get("execution"))
    if link:
        lines += ["", f"Execution: {link}"]
    return "\n".join(lines)


def notices(plan: dict[str, Any]) -> dict[str, Any]:
    ev = plan["event"]
    count = plan.get("targetCount", 0)
    ids = ", ".join(t["instanceId"] for t in plan.get("targets", [])[:3])
    more = "..." if count > 3 else ""
    code = ev["typeCode"].replace("AWS_ABUSE_", "").replace("_REPORT", "")
    mode = "DRY RUN " if plan["dryRun"] else ""
    why_nothing = plan.get("ignoredBecause") or "no reported instance can be acted on"
    return {
        "detected": notice(
            f"opsflow: {mode}abuse report {code}: quarantining {count} instance(s)",
            f"AWS abuse {code}: {mode}quarantining {count}: {ids}{more}",
            _full(
                plan,
                f"{mode}Quarantine starting for {count} instance(s).",
                "opsflow is isolating and stopping them now and will report when verified.",
            ),
        ),
        "noAction": notice(
            f"opsflow: abuse report {code}: nothing to do",
            f"AWS abuse {code}: nothing to do ({why_nothing})",
            _full(plan, f"Nothing to do: {why_nothing}.", "Nothing was changed."),
        ),
        "escalate": notice(
            f"opsflow: abuse report {code}: ESCALATED, {count} instances over the cap",
            f"AWS abuse {code}: {count} instances > cap {plan['settings']['maxInstances']}. "
            "Nothing changed. Act by hand.",
            _full(
                plan,
                "ESCALATED: too many instances to act on automatically.",
                plan.get("escalate", {}).get("cause", ""),
            ),
        ),
        "killSwitch": notice(
            f"opsflow: abuse report {code}: kill switch on, nothing changed",
            f"AWS abuse {code}: {count} instance(s) need quarantine; kill switch ON, act by hand",
            _full(
                plan,
                "Kill switch is ON: opsflow made no change.",
                "Quarantine these instances by hand, or turn the kill switch off and rerun.",
            ),
        ),
        "dryRun": notice(
            f"opsflow: DRY RUN abuse report {code}: {count} instance(s) checked",
            f"AWS abuse {code}: dry run OK for {count}: {ids}{more}",
            _full(
                plan,
                "DRY RUN: every quarantine call was checked with EC2 DryRun; nothing was changed.",
                "Rerun with dryRun false (or deploy with DryRun=false) to act.",
            ),
        ),
    }
