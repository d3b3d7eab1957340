"""Deciding what to do about an abuse report: settings, guards and the notices a person reads.

Everything here is carried between the runbook's states, and Step Functions holds a state's data
to 256 KiB: the plan carries only what later states need, in a compact shape, and its size is
measured where it is made. The instances to act on travel as batches (one Map iteration each);
every list a person reads names its first :data:`LISTED` items and counts the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from health_abuse import entities
from runbook_kit import settings as s
from runbook_kit.accounts import account_of, partition_of
from runbook_kit.errors import AccountUnknown, InvalidEvent
from runbook_kit.notices import console_link, notice

SCENARIO = "health-abuse"
MAX_REGIONS = 40
"""More than every commercial AWS region there is (about 35): a longer list is a mistake."""
OVERRIDABLE = {
    "dryRun",
    "maxInstances",
    "forensicSnapshot",
    "rollbackMode",
    "ignoreDuplicate",
    "regions",
    "maxPolls",
}
HOLD = "hold"
"""The rollback mode that leaves instances isolated for a person (the state machine's Choice
reads it); the modes allowed are the template's ``RollbackMode`` AllowedValues."""
QUARANTINED_BY = "opsflow:quarantined-by"
BEFORE_STATE = "opsflow:before-state"
BEFORE_GROUPS = "opsflow:before-groups"
ISOLATION_ROLE_TAG = "opsflow:role"
ISOLATION_ROLE = "isolation"

STATE_DATA_LIMIT = 262_144
"""Step Functions: a state's input and output, and a task's input and result, hold at most
256 KiB (262,144 bytes of UTF-8 JSON); more fails the execution with
``States.DataLimitExceeded``, which no Catch can catch."""
PLAN_LIMIT = 176 * 1024
"""Of that, what the plan may take. The rest is for what the states keep beside it: each Map's
per-batch results and failures (at most ``ceil(MaxInstances / BATCH_SIZE)`` of each), the
verify result, the rollback report, its cause and the errors that led to it."""
BATCH_SIZE = 50
"""Instances per iteration of the act and restore Maps. Each function call handles one batch,
with EC2's multi-resource calls where it has them (DescribeInstances, CreateTags,
StopInstances), so 1,000 instances are 20 iterations: a small history and Map result, and
calls well within each function's timeout."""
LISTED = 20
"""How many items each list in a notice, a cause or the plan names; the rest are counted."""
DESCRIPTION_LIMIT = 4000
"""Characters of the event's description kept (it is repeated in every notice)."""
VALUE_LIMIT = 200
"""Characters kept of an entity value that is not an instance (an event may carry any text)."""
ANY_REGION = "*"
"""The region of a reported instance the event gives no region for: searched in each
configured region."""


def payload_size(value: Any) -> int:
    """Bytes of ``value`` as Step Functions counts them: its JSON as UTF-8."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def _first(items: list[Any]) -> list[Any]:
    return items[:LISTED]


def more(shown: int, total: int) -> str:
    """`` and N more`` when a list shows ``shown`` of ``total`` items, else nothing."""
    return f" and {total - shown:,} more" if total > shown else ""


def effective_settings(raw: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The settings the state machine passed (template parameters), then the event's
    ``opsflow`` overrides, each typed as its parameter and an override held to its
    constraints (``runbook_kit.settings.setting``)."""
    given = s.overrides(event, OVERRIDABLE)

    def get(name: str) -> Any:
        return s.setting(raw, given, name, SCENARIO)

    regions = list(dict.fromkeys(get("regions")))
    for region in regions:
        if not entities.REGION_RE.match(region):
            raise InvalidEvent(f"configured region {region!r} is not an AWS region name")
    if not regions:
        raise InvalidEvent("no regions are configured")
    if len(regions) > MAX_REGIONS:
        raise InvalidEvent(
            f"{len(regions)} regions configured; at most {MAX_REGIONS} can be searched"
        )
    return {
        "dryRun": get("dryRun"),
        # Not a template setting: a rerun's own choice.
        "ignoreDuplicate": s.as_bool(given.get("ignoreDuplicate", False), "ignoreDuplicate"),
        "abuseCodes": get("abuseCodes"),
        "protectedTagKey": get("protectedTagKey"),
        "protectedTagValue": get("protectedTagValue"),
        "maxInstances": get("maxInstances"),
        "regions": regions,
        "isolationGroupName": get("isolationGroupName"),
        "forensicSnapshot": get("forensicSnapshot"),
        "autoScalingMode": get("autoScalingMode"),
        "rollbackMode": get("rollbackMode"),
        "pollSeconds": get("pollSeconds"),
        "maxPolls": get("maxPolls"),
    }


def by_region(instances: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """``[{"instanceId", "region"}]`` → region (or :data:`ANY_REGION`) → instance IDs."""
    grouped: dict[str, list[str]] = {}
    for item in instances:
        grouped.setdefault(item.get("region") or ANY_REGION, []).append(item["instanceId"])
    return grouped


def reported_of(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The reported instances of a parsed plan: (instance ID, region or None)."""
    return [
        (instance_id, None if region == ANY_REGION else region)
        for region, ids in plan.get("reported", {}).items()
        for instance_id in ids
    ]


def searched_regions(plan: dict[str, Any]) -> dict[str, list[str]]:
    """Instance ID → the regions to look for it in: its own, else every configured one."""
    regions = plan["settings"]["regions"]
    return {
        instance_id: [region] if region else list(regions)
        for instance_id, region in reported_of(plan)
    }


def _too_large(plan: dict[str, Any], what: str) -> str | None:
    size = payload_size(plan)
    if size <= PLAN_LIMIT:
        return None
    return (
        f"{what}: the plan the runbook would carry between its states is {size:,} bytes, more "
        f"than the {PLAN_LIMIT:,} it may take of Step Functions' 256 KiB "
        f"({STATE_DATA_LIMIT:,}-byte) limit on a state's data"
    )


def parse(
    event: Any, raw_settings: dict[str, Any], execution: str, account: str | None = None
) -> dict[str, Any]:
    """Event → the first plan: what was reported and with which settings. Pure.

    ``account`` is the account the runbook runs in (else the one ``execution``'s ARN names):
    only its instances are acted on. An event whose plan cannot fit in a state's data is an
    :class:`InvalidEvent` naming the limit (the plan is measured, not estimated)."""
    home = account or account_of(execution)
    if not home:
        raise AccountUnknown(f"cannot tell the runbook's account from execution {execution!r}")
    report = entities.read(event, home, partition_of(execution) or "aws")
    config = effective_settings(raw_settings, event)
    relevant = report.type_code in config["abuseCodes"] and report.status_code != "closed"
    reported = report.instances if relevant else []
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
            "description": _cut(report.description, DESCRIPTION_LIMIT),
        },
        "reported": by_region(reported),
        # Counted in full; listed (here and in every notice) up to LISTED each.
        "counts": {
            "reported": len(reported),
            "unparseable": len(report.unparseable),
            "foreign": len(report.foreign),
            "resolved": len(report.resolved),
            "unaffected": len(report.unaffected),
        },
        "unparseable": [_cut(value, VALUE_LIMIT) for value in _first(report.unparseable)],
        "resolved": _first(report.resolved),
        "unaffected": _first(report.unaffected),
        "foreign": [_cut(value, VALUE_LIMIT) for value in _first(report.foreign)],
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
    problem = _too_large(plan, f"the event reports {len(reported):,} instance(s)")
    if problem:
        raise InvalidEvent(
            f"{problem}. Nothing was changed: quarantine the reported instances by hand, or "
            "rerun with the report split into smaller events."
        )
    return plan


def _name(instance: dict[str, Any]) -> str:
    for tag in instance.get("Tags", []) or []:
        if tag.get("Key") == "Name":
            return str(tag.get("Value"))
    return ""


def groups_by_interface(instance: dict[str, Any]) -> list[str]:
    """The security groups of each network interface (sorted IDs joined by commas, as the
    ``opsflow:before-groups`` tag records them), in device-index order: what an instance's
    isolation changes, in a compact form (the plan holds it for up to 1,000 instances)."""
    interfaces = sorted(
        instance.get("NetworkInterfaces", []) or [],
        key=lambda eni: (eni.get("Attachment") or {}).get("DeviceIndex", 0),
    )
    return [",".join(sorted(g["GroupId"] for g in eni.get("Groups", []))) for eni in interfaces]


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", []) or []}


def batches_of(targets: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    """The targets in batches of at most :data:`BATCH_SIZE`, each region → instance IDs."""
    return [
        by_region(targets[start : start + BATCH_SIZE])
        for start in range(0, len(targets), BATCH_SIZE)
    ]


def before_of(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Instance ID → its before-state (``state``, ``interfaces``, ``service``, ``protection``)
    as the plan records it."""
    return {
        instance_id: {key: item[key] for key in ("state", "interfaces", "service", "protection")
                      if key in item}
        for item in plan.get("before") or []
        for instance_id in item["instances"]
    }


def targets_of(plan: dict[str, Any]) -> list[dict[str, str]]:
    """Every target of the plan (from its batches): ``{"instanceId", "region"}``."""
    return [
        {"instanceId": instance_id, "region": region}
        for batch in plan.get("batches", [])
        for region, ids in batch.items()
        for instance_id in ids
    ]


def classify(
    plan: dict[str, Any], found: dict[str, dict[str, Any]], searched: dict[str, list[str]],
    serving: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Sort the reported instances into targets and skipped ones, apply the guards and write
    every notice. ``found`` maps instance ID → its description (with ``Region``); ``searched``
    maps instance ID → the regions looked in; ``serving`` maps instance ID → its service and
    protection lines (``quarantine.before_service``). Pure.

    The plan keeps the targets as ``batches`` and their before-states (``before``: each
    distinct one once, with the instances that had it: a fleet of alike instances costs little
    more than their IDs), and lists the first :data:`LISTED` skipped instances (``counts`` has
    them all). When the targets
    exceed the blast-radius cap, or the plan would not fit in a state's data, it escalates and
    carries no batches."""
    config = plan["settings"]
    targets: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    before: dict[tuple[str, tuple[str, ...], str | None, str | None], list[str]] = {}
    serving = serving or {}
    for instance_id, _ in reported_of(plan):
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
            {"instanceId": instance_id, "region": region, "state": state, "name": _name(instance)}
        )
        # The before-state a rollback is judged against: power state, the security groups of
        # each network interface, its service and protections, as detected.
        service, protection = serving.get(instance_id, (None, None))
        before.setdefault(
            (state, tuple(groups_by_interface(instance)), service, protection), []
        ).append(instance_id)

    plan = {key: value for key, value in plan.items() if key != "reported"}
    plan["counts"] = {**plan["counts"], "skipped": len(skipped)}
    plan["skipped"] = _first(skipped)
    plan["targetCount"] = len(targets)
    plan["actionable"] = bool(targets)
    if len(targets) > config["maxInstances"]:
        plan["escalate"] = {
            "cause": (
                f"{len(targets):,} instances reported for {plan['event']['typeCode']}, above the "
                f"blast-radius cap of {config['maxInstances']}: nothing was changed. Review the "
                f"report and quarantine by hand, or rerun with a higher maxInstances."
            )
        }
        plan["batches"], plan["before"] = [], []
    else:
        plan["batches"] = batches_of(targets)
        plan["before"] = [
            {"state": state, "interfaces": list(interfaces),
             **({"service": service, "protection": protection} if service is not None else {}),
             "instances": ids}
            for (state, interfaces, service, protection), ids in before.items()
        ]
    plan["summary"] = summary(plan)
    plan["notices"] = notices(plan, targets, skipped)
    problem = _too_large(plan, f"{len(targets):,} instance(s) to quarantine")
    if problem:
        # The event fitted, the instances found do not (many network interfaces each): act on
        # none of them, and say why.
        plan["escalate"] = {
            "cause": f"{problem}. Nothing was changed: quarantine them by hand, or rerun with "
            "the report split into smaller events."
        }
        plan["batches"], plan["before"] = [], []
        plan["notices"] = notices(plan, targets, skipped)
    return plan


def _listing(items: list[dict[str, Any]], total: int | None = None) -> str:
    lines = []
    for item in items[:LISTED]:
        where = f" ({item['region']})" if item.get("region") else ""
        name = f" '{_cut(item['name'], VALUE_LIMIT)}'" if item.get("name") else ""
        extra = f": {item['reason']}" if item.get("reason") else f", {item.get('state', '')}"
        lines.append(f"  - {item['instanceId']}{name}{where}{extra}")
    total = len(items) if total is None else total
    if total > len(lines):
        lines.append(f"  ... and {total - len(lines):,} more")
    return "\n".join(lines) or "  (none)"


def _counted(lines: list[str], total: int) -> list[str]:
    return [*lines, f"  ... and {total - len(lines):,} more"] if total > len(lines) else lines


def summary(plan: dict[str, Any]) -> str:
    ev = plan["event"]
    counts = plan.get("counts", {})
    parts = [f"{ev['typeCode']}: {plan.get('targetCount', 0):,} to quarantine"]
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']:,} skipped")
    others = counts.get("unparseable", 0) + counts.get("foreign", 0)
    if others:
        parts.append(f"{others:,} not instances of this account")
    if counts.get("resolved"):
        parts.append(f"{counts['resolved']:,} resolved")
    if counts.get("unaffected"):
        parts.append(f"{counts['unaffected']:,} not reported as affected")
    if plan.get("ignoredBecause"):
        parts.append(f"ignored: {plan['ignoredBecause']}")
    return ", ".join(parts)


def _full(
    plan: dict[str, Any],
    headline: str,
    what_next: str,
    targets: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
) -> str:
    ev = plan["event"]
    config = plan["settings"]
    counts = plan.get("counts", {})
    page = f" (page {ev['page']} of {ev['totalPages']})" if ev["totalPages"] > 1 else ""
    leave = "enter Standby in" if config.get("autoScalingMode", "standby") == "standby" else (
        "detach from")
    actions = (
        f"{leave} its Auto Scaling group (the group keeps its desired capacity), deregister "
        "from every target group and classic load balancer and wait for draining, turn "
        "termination protection on, shutdown behaviour to stop and DeleteOnTermination off, "
        "disassociate its instance profile, tag its volumes, move to the isolating security "
        "group '" + config["isolationGroupName"] + "'"
    )
    if config["forensicSnapshot"]:
        actions += ", snapshot every volume for forensics"
    actions += ", stop"
    other = plan["unparseable"] + plan["foreign"]
    other_total = counts.get("unparseable", 0) + counts.get("foreign", 0)
    lines = [
        headline,
        "",
        f"AWS Health reported {ev['typeCode']} for account {ev['account'] or 'unknown'}{page}.",
        f"Event: {ev['eventArn']}",
        f"Started: {ev['startTime'] or 'unknown'}",
    ]
    if ev["description"]:
        lines += ["", ev["description"].strip()]
    lines += ["", "Instances to quarantine:", _listing(targets)]
    if skipped:
        lines += ["", "Skipped (not acted on):", _listing(skipped)]
    if other:
        lines += ["", "Reported entities that are not instances of this account (not acted on):"]
        lines += _counted([f"  - {value}" for value in other[:LISTED]], other_total)
    if plan["resolved"]:
        resolved = ", ".join(plan["resolved"]) + more(
            len(plan["resolved"]), counts.get("resolved", 0)
        )
        lines += ["", "Reported as resolved (not acted on): " + resolved]
    if plan.get("unaffected"):
        lines += ["", "Not reported as affected (not acted on):"]
        lines += _counted(
            [f"  - {item['entity']}: status {item['status']}" for item in plan["unaffected"]],
            counts.get("unaffected", 0),
        )
    lines += ["", f"Action per instance: {actions}.", "", what_next]
    link = console_link(ev.get("region") or config["regions"][0], plan.get("execution"))
    if link:
        lines += ["", f"Execution: {link}"]
    return "\n".join(lines)


def notices(
    plan: dict[str, Any], targets: list[dict[str, Any]], skipped: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every notice the skeleton may send, from the full lists of ``targets`` and ``skipped``
    (each names its first :data:`LISTED`)."""
    ev = plan["event"]
    count = plan.get("targetCount", 0)
    ids = ", ".join(t["instanceId"] for t in targets[:3])
    more_ids = "..." if count > 3 else ""
    code = ev["typeCode"].replace("AWS_ABUSE_", "").replace("_REPORT", "")
    mode = "DRY RUN " if plan["dryRun"] else ""
    why_nothing = plan.get("ignoredBecause") or "no reported instance can be acted on"
    cap = plan["settings"]["maxInstances"]
    escalate = plan.get("escalate", {}).get("cause", "")
    over_cap = count > cap

    def full(headline: str, what_next: str) -> str:
        return _full(plan, headline, what_next, targets, skipped)

    return {
        "detected": notice(
            f"opsflow: {mode}abuse report {code}: quarantining {count} instance(s)",
            f"AWS abuse {code}: {mode}quarantining {count}: {ids}{more_ids}",
            full(
                f"{mode}Quarantine starting for {count} instance(s).",
                "opsflow is isolating and stopping them now and will report when verified.",
            ),
        ),
        "noAction": notice(
            f"opsflow: abuse report {code}: nothing to do",
            f"AWS abuse {code}: nothing to do ({why_nothing})",
            full(f"Nothing to do: {why_nothing}.", "Nothing was changed."),
        ),
        "escalate": notice(
            f"opsflow: abuse report {code}: ESCALATED, {count} instances "
            + ("over the cap" if over_cap else "too many to carry"),
            (
                f"AWS abuse {code}: {count} instances > cap {cap}. "
                if over_cap
                else f"AWS abuse {code}: {count} instances, too many to carry. "
            )
            + "Nothing changed. Act by hand.",
            full("ESCALATED: too many instances to act on automatically.", escalate),
        ),
        "killSwitch": notice(
            f"opsflow: abuse report {code}: kill switch on, nothing changed",
            f"AWS abuse {code}: {count} instance(s) need quarantine; kill switch ON, act by hand",
            full(
                "Kill switch is ON: opsflow made no change.",
                "Quarantine these instances by hand, or turn the kill switch off and rerun.",
            ),
        ),
        "dryRun": notice(
            f"opsflow: DRY RUN abuse report {code}: {count} instance(s) checked",
            f"AWS abuse {code}: dry run OK for {count}: {ids}{more_ids}",
            full(
                "DRY RUN: every quarantine call was checked with EC2 DryRun; nothing was changed.",
                "Rerun with dryRun false (or deploy with DryRun=false) to act.",
            ),
        ),
    }


def verified(plan: dict[str, Any], states: list[dict[str, Any]], attempt: int) -> dict[str, Any]:
    """One verify check from the account's ``states`` of every target (see
    ``quarantine.inspect``): converged when each is stopped, isolated, out of service (in no
    group in service, registered with no load balancer) and protected (termination protection
    on, shutdown behaviour stop, no volume deleted on termination, no instance profile), with
    the notice."""
    done = [item for item in states if item["quarantined"]]
    waiting = [item for item in states if not item["quarantined"]]
    summary_text = (
        f"{len(done):,} of {len(states):,} instance(s) stopped, isolated, out of service and "
        "protected"
    )
    code = plan["event"]["typeCode"].replace("AWS_ABUSE_", "").replace("_REPORT", "")
    lines = "\n".join(
        _counted([f"  - {state_line(item)}" for item in states[:LISTED]], len(states))
    )
    return {
        "attempt": attempt + 1,
        "maxPolls": plan["settings"]["maxPolls"],
        "converged": not waiting,
        "summary": summary_text
        + (
            f"; waiting for {', '.join(item['instanceId'] for item in waiting[:3])}"
            f"{more(min(3, len(waiting)), len(waiting))}"
            if waiting
            else ""
        ),
        "notice": notice(
            f"opsflow: abuse report {code}: {len(done)} instance(s) quarantined and verified",
            f"AWS abuse {code}: quarantine verified for {len(done)}: "
            + ", ".join(item["instanceId"] for item in states[:3]),
            f"Quarantine verified: {summary_text}.\n\n{lines}\n\n"
            "Each instance's before-state is recorded in its tags "
            f"({BEFORE_STATE}, opsflow:before-asg, -targets, -elbs, -protection, -profile; "
            f"{BEFORE_GROUPS} on each interface); its volumes and snapshots are tagged with "
            "the event, the instance and the execution. Investigate, "
            "then terminate, or restore by hand.",
        ),
    }


# ------------------------------------------------------------------------------ rollback report
SETTLED = {"pending": "running", "stopping": "stopped"}
"""A before-state caught mid-transition is judged by the state it was going to."""
CAUSE_LIMIT = 30000
"""Step Functions keeps at most 32,768 characters of an execution's cause."""


def failure_text(error: dict[str, Any] | None) -> str:
    """An error the state machine caught (``Error``, ``Cause``, and for one item of a Map the
    instance it was about, ``instanceId``/``region``), in words: a Lambda error's cause is its
    message (which, for a batch, names the instance and region)."""
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
    if item.get("isolated") is None and "isolated" in item:
        return f"{item['instanceId']} ({item['region']}): {item['state']}, isolation not read"
    flag = (
        "quarantined"
        if item.get("quarantined")
        else ("isolated" if item.get("isolated") else "not isolated")
    )
    line = f"{item['instanceId']} ({item['region']}): {item['state']}, {flag}, groups {groups}"
    if "service" in item:
        line += f", service {item['service'] or 'none'}, {item.get('protection') or 'unprotected'}"
    return line


def _before_line(before: dict[str, Any]) -> str:
    state = SETTLED.get(before.get("state", ""), before.get("state", "unknown"))
    groups = sorted(
        {g for joined in before.get("interfaces") or [] for g in joined.split(",") if g}
    )
    line = f"{state}, groups {','.join(groups) or 'none'}"
    if "service" in before:
        line += f", service {before['service'] or 'none'}, {before.get('protection') or ''}"
    return line


def _parts(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split(";") if "=" in part)


def returned(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether an instance is as it was detected (``before``: its ``state`` and the groups of
    each of its ``interfaces``, see :func:`groups_by_interface`): the same power state (a
    state caught mid-transition counts as the one it was going to) and the same groups on each
    interface."""
    before_state = SETTLED.get(before.get("state", ""), before.get("state"))
    if now["state"] != before_state:
        return False
    if "interfaces" not in before:  # no record of the interfaces
        return not now.get("isolated")
    if "service" in before and "service" in now and now["service"] != before["service"]:
        return False
    if "protection" in before and "protection" in now:
        was, now_parts = _parts(before["protection"]), _parts(now["protection"])
        if any(now_parts.get(key) != value for key, value in was.items()):
            return False
        for key in ("deleteOnTermination", "profile"):
            if key not in was and key in now_parts:
                return False
    return bool(now.get("interfaces", []) == before["interfaces"])


def _joined(texts: list[str], total: int, sep: str = "; ") -> str:
    return sep.join(texts[:LISTED]) + more(min(LISTED, len(texts)), total)


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
    only when every instance is back to its before-state. The cause and the notice name the
    first :data:`LISTED` instances of each list and count the rest."""
    by_id = before_of(plan)
    back = [item for item in states if returned(by_id.get(item["instanceId"], {}), item)]
    back_ids = {item["instanceId"] for item in back}
    left = [item for item in states if item["instanceId"] not in back_ids]
    failure = failure_text(error)
    finals = _joined([state_line(item) for item in states[:LISTED]], len(states)) or (
        "no instance was targeted"
    )
    left_lines = [
        f"{state_line(item)} (before: {_before_line(by_id.get(item['instanceId'], {}))})"
        for item in left[:LISTED]
    ]
    left_text = _joined(left_lines, len(left))
    back_text = _joined([item["instanceId"] for item in back[:LISTED]], len(back), ", ") or "none"
    code = plan["event"]["typeCode"].replace("AWS_ABUSE_", "").replace("_REPORT", "")
    if plan.get("dryRun"):
        what = (
            "Nothing was changed."
            if not left
            else f"Yet {len(left)} instance(s) differ from their detected state: {left_text}."
        )
        cause = f"Dry run failed ({failure}). {what} Final state: {finals}"
        headline = "DRY RUN FAILED"
    elif mode == HOLD:
        cause = (
            f"Quarantine failed ({failure}). Rollback mode is 'hold': instances were left as "
            f"they are (out of service, protected, isolated as far as the quarantine got) for "
            f"a person to finish; each instance's before-state is in its opsflow:before-* tags. "
            f"Changed from before: {left_text or 'none'}. "
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
        cause = cause[: CAUSE_LIMIT - 40] + " ... (cut)"
    full = "\n".join(
        [
            f"{headline}: abuse report {plan['event']['typeCode']}.",
            "",
            f"What failed: {failure}",
            *([f"Rollback failure: {failure_text(rollback_error)}"] if mode == "failed" else []),
            "",
            "Left changed (compared with the state detected before acting):",
            *(_counted([f"  - {line}" for line in left_lines], len(left)) or ["  (none)"]),
            "",
            "As before:",
            *(
                _counted([f"  - {state_line(item)}" for item in back[:LISTED]], len(back))
                or ["  (none)"]
            ),
        ]
    )
    return {
        "cause": cause,
        "complete": not left,
        "leftChanged": [item["instanceId"] for item in left[:LISTED]],
        "leftChangedCount": len(left),
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
