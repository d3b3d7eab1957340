"""What the ebs-quota-forecast runbook reads and decides: triggers, census, forecasts, requests.

EBS quotas are per region: storage per volume type in TiB, and snapshots per region. There is no
volume-count quota. The catalogue below maps each managed quota to what is counted for it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from runbook_kit import settings as s
from runbook_kit.accounts import account_of, partition_of
from runbook_kit.errors import InvalidEvent
from runbook_kit.notices import notice

from ebs_quota import forecast as fc

SCENARIO = "ebs-quota-forecast"
SERVICE_CODE = "ebs"
NAMESPACE = "opsflow/EBS"
SNAPSHOTS = "L-309BACF6"
QUOTAS: dict[str, dict[str, Any]] = {
    "L-D18FCD1D": {"volumeType": "gp2", "unit": "TiB"},
    "L-7A658B76": {"volumeType": "gp3", "unit": "TiB"},
    "L-FD252861": {"volumeType": "io1", "unit": "TiB"},
    "L-09BD8365": {"volumeType": "io2", "unit": "TiB"},
    "L-82ACEF56": {"volumeType": "st1", "unit": "TiB"},
    "L-17AF77E8": {"volumeType": "sc1", "unit": "TiB"},
    "L-9CF3C2EB": {"volumeType": "standard", "unit": "TiB"},
    SNAPSHOTS: {"volumeType": None, "unit": "snapshots"},
}
ACCEPTED = ("PENDING", "CASE_OPENED", "APPROVED")
REJECTED = ("DENIED", "NOT_APPROVED", "INVALID_REQUEST")
OPEN = ("PENDING", "CASE_OPENED")
VERIFY_MAX_POLLS = 5
"""Checks of a request's status (a minute apart) before the runbook escalates; Service Quotas
answers PENDING at once, so the first check normally settles it."""
OVERRIDABLE = {"dryRun", "regions", "horizonDays", "thresholdPercent", "headroomPercent",
               "ignoreDuplicate", "asOf"}
HEALTH_CODE = "AWS_SERVICEQUOTAS_THRESHOLD_BREACH"
SCHEDULE_SOURCE, SCHEDULE_EVENT = "aws.events", "Scheduled Event"
"""What EventBridge sends for the template's ``DailyForecast`` schedule."""
HEALTH_SOURCE, HEALTH_EVENT, HEALTH_SERVICE = "aws.health", "AWS Health Event", "SERVICEQUOTAS"
"""The breach event's identity, exactly as ``QuotaBreachRule`` in template.yaml matches it (a
test checks them against the rule's pattern)."""
MANUAL_SOURCE = "opsflow.manual"
"""The source of a manual run (``events/ebs-quota-forecast/manual-rerun.json``)."""
_ENTITY = re.compile(r"Service:\s*(?P<service>[^|]+?)\s*\|\s*Quota Name:\s*(?P<name>[^|]+?)\s*"
                     r"\|\s*Utilization:\s*(?P<pct>[0-9.]+)%")


# ------------------------------------------------------------------------------ trigger
def _as_of(event: dict[str, Any], override: Any) -> date:
    value = override if override is not None else event.get("time")
    if not isinstance(value, str):
        raise InvalidEvent("the event has no time (and no opsflow.asOf override)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        raise InvalidEvent(f"time {value!r} is not an ISO-8601 timestamp") from None


def _thread(event: dict[str, Any]) -> str:
    """A Health event's own identity (a later breach the same day is a new delivery)."""
    detail = event.get("detail")
    if event.get("source") == HEALTH_SOURCE and isinstance(detail, dict):
        return str(detail.get("communicationId") or detail.get("eventArn") or "")
    return ""


MAX_REGIONS = 64
"""More regions than any partition has: a list longer than this is no list of regions (each
region is one iteration of the census Map, and one entry of the plan)."""
NAME_LIMIT = 256
"""What the plan keeps of a quota name a breach event reports (Service Quotas' are shorter)."""
THREAD_LIMIT = 256
"""The longest Health event identity kept as is in the delivery record's key; a longer one is
kept as its SHA-256 (DynamoDB refuses a partition key over 2,048 bytes)."""


def _shown(value: Any, limit: int = 80) -> str:
    """``value`` as a refusal quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _own(event: dict[str, Any], home: str, partition: str) -> None:
    """Refuse an event of another account or partition: its usage and quotas are not this
    account's (the account the runbook runs in: ``home``, its partition: ``partition``)."""
    raw = event.get("detail")
    detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for name, account in (("account", event.get("account")),
                          ("detail.affectedAccount", detail.get("affectedAccount"))):
        if account not in (None, "") and account != home:
            raise InvalidEvent(
                f"the event's {name} is {_shown(account)}, and this runbook runs in {home}: it "
                "forecasts only its own account's quotas"
            )
    resources = event.get("resources")
    for arn in resources if isinstance(resources, list) else []:
        owner, elsewhere = account_of(arn), partition_of(arn)
        if (owner and owner != home) or (partition and elsewhere and elsewhere != partition):
            raise InvalidEvent(
                f"the event names {_shown(arn, 200)}, of account {owner or 'none'} in partition "
                f"{elsewhere!r}; this runbook runs in {home} ({partition or 'partition unknown'})"
            )


def _thread_key(thread: str) -> str:
    if len(thread.encode("utf-8")) <= THREAD_LIMIT:
        return thread
    return "sha256:" + hashlib.sha256(thread.encode("utf-8")).hexdigest()


def read_trigger(
    event: Any, raw: dict[str, Any], execution: str, account: str | None = None
) -> dict[str, Any]:
    """Schedule, Health threshold breach or manual run → the plan's first half. Pure.

    ``account`` is the account the runbook runs in (the handler passes it, from the execution's
    and the function's ARNs): an event of another account, or naming a resource of another
    account or partition, is refused. Without it, no event is refused for its account."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
    if account:
        _own(event, account, partition_of(execution))
    source, kind = event.get("source"), event.get("detail-type")
    reported: list[dict[str, Any]] = []
    if source == SCHEDULE_SOURCE and kind == SCHEDULE_EVENT:
        trigger = "schedule"
    elif source == HEALTH_SOURCE and kind == HEALTH_EVENT:
        detail = event.get("detail")
        if not isinstance(detail, dict):
            raise InvalidEvent("the Health event has no detail object")
        if detail.get("service") != HEALTH_SERVICE:
            raise InvalidEvent(
                f"detail.service is {_shown(detail.get('service'))}, expected {HEALTH_SERVICE!r}"
            )
        if detail.get("eventTypeCode") != HEALTH_CODE:
            raise InvalidEvent(
                f"detail.eventTypeCode is {_shown(detail.get('eventTypeCode'))}, expected "
                f"{HEALTH_CODE}"
            )
        entities = detail.get("affectedEntities")
        if not isinstance(entities, list):
            raise InvalidEvent("detail.affectedEntities must be a list")
        for entity in entities:
            value = entity.get("entityValue") if isinstance(entity, dict) else None
            match = _ENTITY.match(value) if isinstance(value, str) else None
            if match and match.group("service").lower() == SERVICE_CODE:
                name = match.group("name")
                item = {"quotaName": name if len(name) <= NAME_LIMIT else name[:NAME_LIMIT - 3]
                        + "...", "utilization": float(match.group("pct"))}
                if item not in reported:  # an entity named twice is one report
                    reported.append(item)
        if not reported:
            raise InvalidEvent("the threshold-breach event names no EBS quota")
        trigger = "health"
    elif source == MANUAL_SOURCE:
        trigger = "manual"
    else:
        raise InvalidEvent(
            f"not a trigger of this runbook: source {_shown(source)}, detail-type {_shown(kind)} "
            "(expected "
            f"{SCHEDULE_SOURCE!r} {SCHEDULE_EVENT!r}, {HEALTH_SOURCE!r} {HEALTH_EVENT!r} "
            f"({HEALTH_CODE}), or source {MANUAL_SOURCE!r})"
        )
    given = s.overrides(event, OVERRIDABLE)

    def get(name: str) -> Any:
        return s.setting(raw, given, name, SCENARIO)

    regions = list(dict.fromkeys(get("regions")))  # a region named twice is counted once
    if not regions:
        raise InvalidEvent("no regions are configured")
    for region in regions:
        if not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-\d", region):
            raise InvalidEvent(f"region {_shown(region)} is not an AWS region name")
    if len(regions) > MAX_REGIONS:
        raise InvalidEvent(
            f"{len(regions)} regions to count; a partition has fewer than {MAX_REGIONS}"
        )
    managed = get("quotaCodes")
    if not managed:
        raise InvalidEvent("no EBS quota codes are configured")
    unknown = [code for code in managed if code not in QUOTAS]
    if unknown:
        raise InvalidEvent(f"unknown EBS quota code(s): {', '.join(unknown)}")
    # Not template settings: a rerun's own choices.
    as_of = _as_of(event, given.get("asOf"))
    ignore_duplicate = s.as_bool(given.get("ignoreDuplicate", False), "ignoreDuplicate")
    settings = {
        "regions": regions,
        "quotaCodes": managed,
        "horizonDays": get("horizonDays"),
        "thresholdPercent": get("thresholdPercent"),
        "headroomPercent": get("headroomPercent"),
        "historyDays": get("historyDays"),
        "dryRun": get("dryRun"),
        "asOf": as_of.isoformat(),
    }
    account = str(event.get("account") or "")  # this account's, or none (see _own)
    return {
        "scenario": SCENARIO,
        "execution": execution,
        "trigger": trigger,
        "reported": reported,
        "dryRun": settings["dryRun"],
        "ignoreDuplicate": ignore_duplicate,
        "settings": settings,
        "dedupeKey": f"{SCENARIO}#{account}#{trigger}#{as_of.isoformat()}"
        + (f"#{_thread_key(thread)}" if (thread := _thread(event)) else ""),
        "dedupeExpiresAt": int(
            datetime.combine(as_of + timedelta(days=14), datetime.min.time(), UTC).timestamp()
        ),
    }


# ------------------------------------------------------------------------------ census
def census(ec2: Any, region: str) -> dict[str, Any]:
    """Every volume (GiB per type) and snapshot (count) of the account in one region."""
    gib: dict[str, int] = {}
    volumes = 0
    for page in ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 500}):
        for volume in page.get("Volumes", []):
            gib[volume["VolumeType"]] = gib.get(volume["VolumeType"], 0) + int(volume["Size"])
            volumes += 1
    snapshots = 0
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], PaginationConfig={"PageSize": 1000}
    ):
        snapshots += len(page.get("Snapshots", []))
    return {"region": region, "counted": True, "volumes": volumes, "gib": gib,
            "snapshots": snapshots}


def usage_of(code: str, counted: dict[str, Any]) -> float:
    """Usage in the quota's unit: TiB for storage quotas, a count for snapshots."""
    if code == SNAPSHOTS:
        return float(counted["snapshots"])
    return round(counted["gib"].get(QUOTAS[code]["volumeType"], 0) / 1024, 4)


def metric(code: str) -> tuple[str, list[dict[str, str]]]:
    if code == SNAPSHOTS:
        return "SnapshotCount", []
    return "StorageTiB", [{"Name": "VolumeType", "Value": QUOTAS[code]["volumeType"]}]


def desired_value(upper_at_horizon: float, current_quota: float, code: str, headroom: int) -> float:
    """The value to ask for: the cautious (upper) forecast at the horizon plus ``headroom`` %,
    rounded up to a whole TiB (1,000 snapshots), and always above the current quota."""
    step = 1000.0 if code == SNAPSHOTS else 1.0
    wanted = math.ceil(round(upper_at_horizon * (100 + headroom) / 100 / step, 9)) * step
    return max(wanted, math.floor(current_quota / step) * step + step)


def assess(
    code: str,
    name: str,
    history: list[tuple[date, float]],
    quota: float,
    quota_source: str,
    open_requests: list[dict[str, Any]],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Forecast one quota's usage and decide: request, already requested, fine, or unused."""
    horizon = config["horizonDays"]
    threshold = quota * config["thresholdPercent"] / 100
    result: dict[str, Any] = {
        "quotaCode": code,
        "quotaName": name,
        "unit": QUOTAS[code]["unit"],
        "quota": quota,
        "quotaSource": quota_source,
        "threshold": round(threshold, 4),
        "usage": history[-1][1] if history else 0.0,
    }
    if not history or all(value == 0 for _, value in history):
        return {**result, "decision": "unused"}
    f = fc.forecast(history, horizon, threshold=threshold, confidence=0.9)
    result["forecast"] = {
        "method": f.method,
        "horizonDate": f.horizon_date.isoformat(),
        "projected": round(f.projected, 3),
        "lower": round(f.lower, 3),
        "upper": round(f.upper, 3),
        "crossingDate": f.crossing_date.isoformat() if f.crossing_date else None,
        "crossingDateUpper": f.crossing_date_upper.isoformat() if f.crossing_date_upper else None,
    }
    result["chart"] = fc.ascii_chart(history[-60:], f, width=56, height=8, threshold=threshold)
    crosses = f.crossing_date_upper is not None or result["usage"] >= threshold
    if not crosses:
        return {**result, "decision": "ok"}
    if open_requests:
        return {**result, "decision": "already-requested", "openRequest": open_requests[0]}
    desired = desired_value(f.upper, quota, code, config["headroomPercent"])
    return {**result, "decision": "request", "desiredValue": desired}


# ------------------------------------------------------------------------------ decision
def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit == "snapshots" else f"{value:,.2f} TiB"


def failure(region: dict[str, Any]) -> str:
    """A region's counting failure in words: the error and, for Lambda errors, its message."""
    error, cause = region.get("error", "unknown error"), region.get("cause", "")
    try:
        cause = json.loads(cause).get("errorMessage", cause)
    except (TypeError, ValueError, AttributeError):
        pass
    return f"{error}: {cause}" if cause else str(error)


def census_table(regions: list[dict[str, Any]]) -> str:
    types = sorted({t for r in regions if r.get("counted") for t in r["gib"]})
    lines = ["region          " + "".join(f"{t:>10}" for t in types) + "   volumes snapshots"]
    for r in regions:
        if not r.get("counted"):
            lines.append(f"{r['region']:<16}NOT COUNTED: {failure(r)}")
            continue
        cells = "".join(f"{r['gib'].get(t, 0) / 1024:>9.2f}T" for t in types)
        lines.append(f"{r['region']:<16}{cells}   {r['volumes']:>7} {r['snapshots']:>9}")
    return "\n".join(lines)


def decide(plan: dict[str, Any], regions: list[dict[str, Any]]) -> dict[str, Any]:
    """Gather every region's assessment into the plan: targets to request, notices. Pure."""
    config = plan["settings"]
    targets, waiting, lines = [], [], []
    for r in regions:
        for a in r.get("assessments", []):
            where = f"{r['region']} {a['quotaName']}"
            if a["decision"] == "request":
                targets.append({"region": r["region"], "quotaCode": a["quotaCode"],
                                "quotaName": a["quotaName"], "current": a["quota"],
                                "desiredValue": a["desiredValue"], "usage": a["usage"],
                                "forecast": a["forecast"]})
            elif a["decision"] == "already-requested":
                waiting.append(f"{where}: request {a['openRequest']['Id']} already "
                               f"{a['openRequest']['Status']} for {a['openRequest']['DesiredValue']}")
            if a["decision"] != "unused":
                fcast = a.get("forecast", {})
                lines.append(
                    f"  {r['region']:<15}{a['quotaCode']:<12}{_fmt(a['usage'], a['unit']):>14} of "
                    f"{_fmt(a['quota'], a['unit'])} ({a['quotaSource']}), in "
                    f"{config['horizonDays']} d {_fmt(fcast.get('projected', a['usage']), a['unit'])}"
                    f" (90% up to {_fmt(fcast.get('upper', a['usage']), a['unit'])}): {a['decision']}"
                )
    uncounted = [r for r in regions if not r.get("counted")]
    plan = dict(plan)
    plan["regions"] = [{k: v for k, v in r.items() if k != "assessments"} for r in regions]
    plan["targets"] = targets
    plan["targetCount"] = len(targets)
    plan["alreadyRequested"] = waiting
    plan["actionable"] = bool(targets)
    if uncounted and len(uncounted) == len(regions):
        # Nothing counted is nothing known, not nothing to do: a person must fix access.
        plan["actionable"] = True
        plan["escalate"] = {
            "cause": (
                "No region could be counted, so no EBS quota could be judged and nothing was "
                "requested: "
                + "; ".join(f"{r['region']}: {failure(r)}" for r in uncounted)
                + ". Fix what each region's failure names (counting a region reads its EBS "
                "volumes and snapshots, records and reads CloudWatch metrics and reads its "
                "Service Quotas) and rerun."
            )
        }
    plan["summary"] = (
        f"{len(targets)} increase(s) to request, {len(waiting)} already requested"
        + (f", {len(uncounted)} region(s) not counted" if uncounted else "")
    )
    table = census_table(regions)
    charts = [
        f"{r['region']} {a['quotaName']}:\n{a['chart']}"
        for r in regions for a in r.get("assessments", [])
        if a["decision"] in ("request", "already-requested") and a.get("chart")
    ]
    requests = "\n".join(
        f"  - {t['region']} {t['quotaName']} ({t['quotaCode']}): {_fmt(t['current'], 'TiB' if t['quotaCode'] != SNAPSHOTS else 'snapshots')}"
        f" -> {t['desiredValue']:,.0f}" for t in targets
    ) or "  (none)"
    body = "\n".join(
        [
            f"EBS usage as of {config['asOf']} ({plan['trigger']} run), horizon "
            f"{config['horizonDays']} days, threshold {config['thresholdPercent']}% of the quota.",
            "",
            "Census (TiB per volume type):",
            table,
            "",
            "Forecasts:",
            *lines,
            "",
            "Increase requests:",
            requests,
            *(["", "Already requested:", *[f"  - {w}" for w in waiting]] if waiting else []),
            *(["", "Regions NOT counted (fix access and rerun):",
               *[f"  - {r['region']}: {failure(r)}" for r in uncounted]] if uncounted else []),
            *(["", *charts] if charts else []),
        ]
    )
    mode = "DRY RUN " if plan["dryRun"] else ""
    plan["report"] = body
    plan["notices"] = {
        "detected": notice(
            f"opsflow: {mode}EBS quota forecast: requesting {len(targets)} increase(s)",
            f"EBS quota: {mode}requesting {len(targets)} increase(s): " + ", ".join(
                f"{t['region']} {t['quotaCode']}" for t in targets[:2]),
            f"{mode}Requesting Service Quotas increases.\n\n{body}",
        ),
        "noAction": notice(
            "opsflow: EBS quota forecast: no increase needed",
            "EBS quota forecast: no increase needed" + (
                f"; {len(uncounted)} region(s) NOT counted" if uncounted else ""),
            f"No increase needed.\n\n{body}",
        ),
        "killSwitch": notice(
            "opsflow: EBS quota forecast: kill switch on, no request made",
            f"EBS quota: {len(targets)} increase(s) needed; kill switch ON, request by hand",
            f"Kill switch is ON: no request was made. Request these by hand:\n\n{body}",
        ),
        "dryRun": notice(
            f"opsflow: DRY RUN EBS quota forecast: {len(targets)} request(s) would be made",
            f"EBS quota dry run: would request {len(targets)} increase(s)",
            f"DRY RUN: these requests would be made; none was.\n\n{body}",
        ),
        "escalate": notice(
            "opsflow: EBS quota forecast: ESCALATED, no region counted",
            f"EBS quota forecast: no region of {len(regions)} could be counted; nothing "
            "requested. Act by hand.",
            f"ESCALATED: {plan.get('escalate', {}).get('cause', '')}\n\n{body}",
        ),
    }
    return plan


def check(requests: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Whether every request is accepted; the lines describing each."""
    lines = [
        f"{r['region']} {r['QuotaCode']} -> {r['DesiredValue']:,.0f}: {r['Status']} (request "
        f"{r['Id']}{', case ' + r['CaseId'] if r.get('CaseId') else ''})"
        for r in requests
    ]
    return all(r["Status"] in ACCEPTED for r in requests), lines
