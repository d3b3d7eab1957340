"""Deciding what to do about an abuse report: settings, guards and the notices a person reads."""

from __future__ import annotations

import json
from typing import Any

from health_abuse import entities
from runbook_kit import settings as s
from runbook_kit.accounts import account_of
from runbook_kit.errors import AccountUnknown, InvalidEvent
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


def parse(
    event: Any, raw_settings: dict[str, Any], execution: str, account: str | None = None
) -> dict[str, Any]:
    """Event → the first plan: what was reported and with which settings. Pure.

    ``account`` is the account the runbook runs in (else the one ``execution``'s ARN names):
    only its instances are acted on."""
    home = account or account_of(execution)
    if not home:
        raise AccountUnknown(f"cannot tell the runbook's account from execution {execution!r}")
    report = entities.read(event, home)
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
        "unaffected": report.unaffected,
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


def interfaces_of(instance: dict[str, Any]) -> dict[str, list[str]]:
    """Each network interface's security groups (sorted IDs), by interface ID."""
    return {
        eni["NetworkInterfaceId"]: sorted(g["GroupId"] for g in eni.get("Groups", []))
        for eni in instance.get("NetworkInterfaces", []) or []
    }


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
    before: dict[str, dict[str, Any]] = {}
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
        # The before-state a rollback is judged against: power state and the security groups
        # of each network interface, as detected.
        before[instance_id] = {"state": state, "interfaces": interfaces_of(instance)}

    plan = dict(plan)
    plan["targets"] = targets
    plan["before"] = before
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
    if plan.get("unaffected"):
        parts.append(f"{len(plan['unaffected'])} not reported as affected")
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
    if plan.get("unaffected"):
        lines += ["", "Not reported as affected (not acted on):"]
        lines += [f"  - {item['entity']}: status {item['status']}" for item in plan["unaffected"]]
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


# ------------------------------------------------------------------------------ rollback report
SETTLED = {"pending": "running", "stopping": "stopped"}
"""A before-state caught mid-transition is judged by the state it was going to."""
CAUSE_LIMIT = 30000
"""Step Functions keeps at most 32,768 characters of an execution's cause."""


def failure_text(error: dict[str, Any] | None) -> str:
    """An error the state machine caught (``Error``, ``Cause``, and for one item of a Map its
    ``instanceId``/``region``), in words: a Lambda error's cause is its message."""
    error = error or {}
    cause: Any = error.get("Cause", "")
    try:
        cause = json.loads(cause).get("errorMessage", cause)
    except (TypeError, ValueError, AttributeError):
        pass
    where = f" on {error['instanceId']} ({error.get('region')})" if error.get("instanceId") else ""
    text = f"{error.get('Error', 'unknown error')}{where}"
    cause = " ".join(str(cause).split())
    return (f"{text}: {cause}" if cause else text)[:400]


def state_line(item: dict[str, Any]) -> str:
    """One instance as the account has it: power state, isolation, security groups."""
    groups = ",".join(item.get("groups", [])) or "none"
    flag = (
        "quarantined"
        if item.get("quarantined")
        else ("isolated" if item.get("isolated") else "not isolated")
    )
    return f"{item['instanceId']} ({item['region']}): {item['state']}, {flag}, groups {groups}"


def _before_line(before: dict[str, Any]) -> str:
    state = SETTLED.get(before.get("state", ""), before.get("state", "unknown"))
    groups = sorted({g for gs in (before.get("interfaces") or {}).values() for g in gs})
    return f"{state}, groups {','.join(groups) or 'none'}"


def returned(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether an instance is as it was detected (``before``: its ``state`` and the groups of
    each of its ``interfaces``): the same power state (a state caught mid-transition counts as
    the one it was going to) and the same groups on each interface."""
    before_state = SETTLED.get(before.get("state", ""), before.get("state"))
    if now["state"] != before_state:
        return False
    if "interfaces" not in before:  # a plan from before interfaces were recorded
        return not now.get("isolated")
    return bool(now.get("interfaces", {}) == before["interfaces"])


def rollback_summary(
    plan: dict[str, Any],
    states: list[dict[str, Any]],
    error: dict[str, Any] | None,
    mode: str,
    rollback_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cause and notice after a failure, built from the account's final ``states`` (see
    ``quarantine.inspect``) compared with each target's before-state in the plan
    (``plan["before"]``, recorded when the instances were inspected). Pure.

    ``mode``: ``restore`` (the rollback ran), ``hold`` (instances left as they are on purpose),
    ``failed`` (the rollback itself failed: ``rollback_error`` says how). ``complete`` is true
    only when every instance is back to its before-state."""
    by_id: dict[str, dict[str, Any]] = {
        t["instanceId"]: {"state": t.get("state")} for t in plan.get("targets", [])
    }
    by_id.update(plan.get("before") or {})
    back = [item for item in states if returned(by_id.get(item["instanceId"], {}), item)]
    left = [item for item in states if item not in back]
    failure = failure_text(error)
    finals = "; ".join(state_line(item) for item in states) or "no instance was targeted"
    left_text = "; ".join(
        f"{state_line(item)} (before: {_before_line(by_id.get(item['instanceId'], {}))})"
        for item in left
    )
    back_text = ", ".join(item["instanceId"] for item in back) or "none"
    code = plan["event"]["typeCode"].replace("AWS_ABUSE_", "").replace("_REPORT", "")
    if plan.get("dryRun"):
        what = (
            "Nothing was changed."
            if not left
            else f"Yet {len(left)} instance(s) differ from their detected state: {left_text}."
        )
        cause = f"Dry run failed ({failure}). {what} Final state: {finals}"
        headline = "DRY RUN FAILED"
    elif mode == "hold":
        cause = (
            f"Quarantine failed ({failure}). Rollback mode is 'hold': instances were left as "
            f"they are for a person to finish. Changed from before: {left_text or 'none'}. "
            f"Final state: {finals}"
        )
        headline = "FAILED, instances held"
    elif mode == "failed":
        cause = (
            f"Rollback failed ({failure_text(rollback_error)}) after the quarantine failed "
            f"({failure}). Left changed, act on each by hand: {left_text or 'none'}. "
            f"Returned to before-state: {back_text}. Final state: {finals}"
        )
        headline = "ROLLBACK FAILED, act now"
    elif left:
        cause = (
            f"Quarantine failed ({failure}). Rollback incomplete: {len(left)} instance(s) left "
            f"changed, act on each by hand: {left_text}. Returned to before-state: "
            f"{back_text}. Final state: {finals}"
        )
        headline = "ROLLBACK INCOMPLETE, act now"
    else:
        cause = (
            f"Quarantine failed ({failure}). Every touched instance was returned to its "
            f"recorded before-state. Final state: {finals}"
        )
        headline = "FAILED, rolled back"
    if len(cause) > CAUSE_LIMIT:
        cause = cause[: CAUSE_LIMIT - 40] + " ... (cut; the notice has it all)"
    full = "\n".join(
        [
            f"{headline}: abuse report {plan['event']['typeCode']}.",
            "",
            f"What failed: {failure}",
            *([f"Rollback failure: {failure_text(rollback_error)}"] if mode == "failed" else []),
            "",
            "Left changed (compared with the state detected before acting):",
            *(
                [
                    f"  - {state_line(item)} (before: "
                    f"{_before_line(by_id.get(item['instanceId'], {}))})"
                    for item in left
                ]
                or ["  (none)"]
            ),
            "",
            "As before:",
            *([f"  - {state_line(item)}" for item in back] or ["  (none)"]),
        ]
    )
    return {
        "cause": cause,
        "complete": not left,
        "instances": states,
        "leftChanged": [item["instanceId"] for item in left],
        "notice": notice(
            f"opsflow: abuse report {code}: {headline}",
            f"AWS abuse {code}: {headline}. "
            + (
                "Left changed: " + ", ".join(item["instanceId"] for item in left[:3])
                if left
                else "Check: " + ", ".join(item["instanceId"] for item in states[:3])
            ),
            full,
        ),
    }
