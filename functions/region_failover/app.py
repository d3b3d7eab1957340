"""Lambda handlers of the region-failover runbook: unpack, call the logic, return JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError
from runbook_kit import aws
from runbook_kit import settings as s
from runbook_kit.accounts import account_of, home_account, partition_of
from runbook_kit.errors import AccountUnknown, InvalidEvent, RunbookError, require
from runbook_kit.notices import notice
from runbook_kit.telemetry import handler

from region_failover import capacity, database, traffic

logger = Logger(service="opsflow-region-failover")
SCENARIO = "region-failover"
ALARM_SOURCE = "aws.cloudwatch"
ALARM_EVENT = "CloudWatch Alarm State Change"
"""The alarm event's identity, exactly as ``CanaryAlarmRule`` in template.yaml matches it (a
test checks them against the rule's pattern)."""
MANUAL_SOURCE = "opsflow.manual"
"""The source of a manual run (e.g. ``events/region-failover/failback.json``)."""
OVERRIDABLE = {"dryRun", "mode", "ignoreDuplicate", "ignoreCooldown", "requireApproval"}
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
ALARM_NAME_LIMIT = 255
"""CloudWatch: an alarm's name has at most 255 characters."""
REASON_LIMIT = 1023
"""CloudWatch: an alarm state's reason has at most 1023 characters."""
TEXT_LIMIT = 64
"""What the plan keeps of an alarm's other texts (state values, time stamps): CloudWatch's are
a few dozen characters. The plan is copied into every notice, so it holds only bounded text."""
DATAPOINT_FIELDS = ("timestamp", "sampleCount", "value", "threshold")
"""The fields of an evaluated datapoint in an alarm's reasonData (CloudWatch's own)."""


def _pairs(value: Any, name: str) -> dict[str, str]:
    result = {}
    for item in s.as_list(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise InvalidEvent(f"setting {name!r} must be key=value pairs, got {item!r}")
        result[key.strip()] = val.strip()
    return result


def _settings(raw: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The settings the state machine passed (template parameters), then the rerun's overrides,
    each typed as its parameter and an override held to its constraints
    (``runbook_kit.settings.setting``)."""
    given = s.overrides(event, OVERRIDABLE)

    def get(name: str) -> Any:
        return s.setting(raw, given, name, SCENARIO)

    primary, standby = get("primaryRegion"), get("standbyRegion")
    for region in (primary, standby):
        if not REGION.match(region):
            raise InvalidEvent(f"region {region!r} is not an AWS region name")
    if primary == standby:
        raise InvalidEvent("the primary and standby regions must differ")
    home = str(get("alarmRegion"))
    if home == primary:
        raise InvalidEvent(
            f"this runbook runs in {home}, its primary region: it would go down with the region "
            f"it must fail away from. Deploy the stack in the standby region ({standby})"
        )
    return {
        "regions": [primary, standby],
        "primaryRegion": primary,
        "standbyRegion": standby,
        "alarms": _pairs(get("alarms"), "alarms"),
        "alarmRegion": home,
        "mechanism": get("mechanism"),
        "hostedZoneId": get("hostedZoneId"),
        "recordName": get("recordName"),
        "listenerArn": get("listenerArn"),
        "routingControls": _pairs(get("routingControls"), "routingControls"),
        "routingControlEndpoints": _pairs(get("routingControlEndpoints"), "routingControlEndpoints"),
        "autoScalingGroup": str(get("autoScalingGroup")),
        "standbyCapacity": get("standbyCapacity"),
        "failoverBucket": get("failoverBucket"),
        "failoverObjectKey": get("failoverObjectKey"),
        "targetGroups": _pairs(get("targetGroups"), "targetGroups"),
        "globalCluster": str(get("globalCluster")),
        "allowDataLoss": get("allowDataLoss"),
        "minHealthyTargets": get("minHealthyTargets"),
        "cooldownMinutes": get("cooldownMinutes"),
        "healthyPolls": get("healthyPolls"),
        "pollSeconds": get("pollSeconds"),
        "maxPolls": get("maxPolls"),
        "stateParameter": str(get("stateParameter")),
        "dryRun": get("dryRun"),
        # Not a template setting: a rerun's own choice.
        "ignoreCooldown": s.as_bool(given.get("ignoreCooldown", False), "ignoreCooldown"),
        "requireApproval": get("requireApproval"),
        "approvalTimeoutSeconds": get("approvalTimeoutSeconds"),
    }


def _alarm(detail: dict[str, Any]) -> dict[str, Any]:
    name = detail.get("alarmName")
    state, previous = detail.get("state"), detail.get("previousState")
    if not isinstance(name, str) or not name:
        raise InvalidEvent("detail.alarmName is missing")
    if len(name) > ALARM_NAME_LIMIT:
        raise InvalidEvent(
            f"detail.alarmName has {len(name)} characters; a CloudWatch alarm's name has at most "
            f"{ALARM_NAME_LIMIT}"
        )
    if not isinstance(state, dict) or not isinstance(state.get("value"), str):
        raise InvalidEvent("detail.state.value is missing")
    if previous is not None and not isinstance(previous, dict):
        raise InvalidEvent("detail.previousState must be an object")
    evaluated: list[Any] = []
    raw = state.get("reasonData")
    if raw:
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise InvalidEvent("detail.state.reasonData is not valid JSON") from None
        if isinstance(data, dict) and isinstance(data.get("evaluatedDatapoints"), list):
            evaluated = [_datapoint(d) for d in data["evaluatedDatapoints"][:5]
                         if isinstance(d, dict)]
    return {
        "name": name,
        "state": _short(state["value"], TEXT_LIMIT),
        "previous": _short((previous or {}).get("value", "UNKNOWN"), TEXT_LIMIT),
        "reason": _short(state.get("reason", ""), REASON_LIMIT),
        "timestamp": _short(state.get("timestamp", ""), TEXT_LIMIT),
        "evaluatedDatapoints": evaluated,
    }


def _short(value: Any, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters (cut with `...` when longer)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _datapoint(point: dict[str, Any]) -> dict[str, Any]:
    """An evaluated datapoint's own fields (numbers as numbers, the time as bounded text)."""
    kept: dict[str, Any] = {}
    for key in DATAPOINT_FIELDS:
        value = point.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            kept[key] = value
        elif key == "timestamp" and value is not None:
            kept[key] = _short(value, TEXT_LIMIT)
    return kept


def _own(event: dict[str, Any], home: str, partition: str = "") -> None:
    """Refuse an event of another account or partition: its alarm is not one of this
    runbook's (``partition``: the runbook's, when known)."""
    account = event.get("account")
    if account not in (None, "") and account != home:
        raise InvalidEvent(
            f"the event is for account {_short(repr(account), TEXT_LIMIT)}, and this runbook "
            f"runs in {home}: "
            "it acts only on its own account's alarms"
        )
    resources = event.get("resources")
    for arn in resources if isinstance(resources, list) else []:
        owner = account_of(arn)
        if owner and owner != home:
            raise InvalidEvent(
                f"the event names {_short(arn, ALARM_NAME_LIMIT)}, of account {owner}; this "
                f"runbook runs in {home}"
            )
        elsewhere = partition_of(arn)
        if partition and elsewhere and elsewhere != partition:
            raise InvalidEvent(
                f"the event names {_short(arn, ALARM_NAME_LIMIT)}, of partition {elsewhere!r}; "
                f"this runbook runs in {partition!r}"
            )


def parse(
    event: Any, raw: dict[str, Any], execution: str, account: str | None = None
) -> dict[str, Any]:
    """Alarm event or manual run → the first plan: which region is impaired, where to go. Pure.

    ``account`` is the account the runbook runs in (else the one ``execution``'s ARN names)."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
    home = account or account_of(execution)
    if not home:
        raise AccountUnknown(f"cannot tell the runbook's account from execution {execution!r}")
    _own(event, home, partition_of(execution))
    config = _settings(raw, event)
    mode = str((event.get("opsflow") or {}).get("mode", "failover"))
    if mode not in ("failover", "failback"):
        raise InvalidEvent(f"mode must be failover or failback, got {mode!r}")
    time = event.get("time")
    if not isinstance(time, str):
        raise InvalidEvent("the event has no time")
    try:
        traffic.instant(time)
    except ValueError:
        raise InvalidEvent(f"time {time!r} is not an ISO-8601 timestamp") from None
    plan: dict[str, Any] = {
        "scenario": SCENARIO,
        "execution": execution,
        "mode": mode,
        "time": time,
        "dryRun": config["dryRun"],
        "ignoreDuplicate": s.as_bool(
            (event.get("opsflow") or {}).get("ignoreDuplicate", False), "ignoreDuplicate"
        ),
        "requireApproval": config["requireApproval"],
        "approvalTimeoutSeconds": config["approvalTimeoutSeconds"],
        "settings": config,
    }
    if event.get("source") == ALARM_SOURCE and event.get("detail-type") == ALARM_EVENT:
        if not isinstance(event.get("detail"), dict):
            raise InvalidEvent("the alarm event has no detail object")
        alarm = _alarm(event["detail"])
        plan["alarm"] = alarm
        plan["dedupeKey"] = f"{SCENARIO}#{alarm['name']}#{alarm['timestamp'] or time}"
        plan["dedupeExpiresAt"] = int(datetime.now(UTC).timestamp()) + 14 * 86400
        region = config["alarms"].get(alarm["name"])
        if region is None:
            plan["ignoredBecause"] = (
                f"alarm {alarm['name']} is not one of the configured alarms "
                f"({', '.join(config['alarms']) or 'none'})"
            )
        elif (alarm["previous"], alarm["state"]) != ("OK", "ALARM"):
            plan["ignoredBecause"] = (
                f"{alarm['name']} went {alarm['previous']} -> {alarm['state']}; only OK -> ALARM "
                "starts a failover"
            )
        elif mode == "failback":
            raise InvalidEvent(f"failback is a manual run (source {MANUAL_SOURCE}), not an alarm")
        impaired = region or config["primaryRegion"]
    elif event.get("source") == MANUAL_SOURCE:
        impaired = config["standbyRegion"] if mode == "failback" else config["primaryRegion"]
    else:
        raise InvalidEvent(
            f"not a trigger of this runbook: source {event.get('source')!r}, detail-type "
            f"{event.get('detail-type')!r} (expected source {ALARM_SOURCE!r} with detail-type "
            f"{ALARM_EVENT!r}, or source {MANUAL_SOURCE!r})"
        )
    plan["from"] = impaired
    plan["to"] = next(r for r in config["regions"] if r != impaired)
    return plan


def _notices(plan: dict[str, Any], body: str) -> dict[str, Any]:
    move = f"{plan['from']} -> {plan['to']}"
    mode = "DRY RUN " if plan["dryRun"] else ""
    verb = "failback" if plan["mode"] == "failback" else "failover"
    why = plan.get("ignoredBecause") or plan.get("reason") or ""
    return {
        "detected": notice(
            f"opsflow: {mode}region {verb} {move} starting",
            f"{mode}{verb} {move}: moving traffic now",
            f"{mode}Region {verb} {move} starting.\n\n{body}",
        ),
        "noAction": notice(
            f"opsflow: region {verb}: no action",
            f"{verb} {move}: no action ({why})"[:140],
            f"No action: {why}.\n\n{body}",
        ),
        "escalate": notice(
            f"opsflow: region {verb} {move}: ESCALATED, traffic not moved",
            f"{verb} {move} refused: {plan.get('escalate', {}).get('cause', '')}"[:140],
            f"ESCALATED, traffic was not moved: {plan.get('escalate', {}).get('cause', '')}\n\n{body}",
        ),
        "killSwitch": notice(
            f"opsflow: region {verb} {move}: kill switch on, traffic not moved",
            f"{verb} {move} needed; kill switch ON, act by hand",
            f"Kill switch is ON: traffic was not moved.\n\n{body}",
        ),
        "dryRun": notice(
            f"opsflow: DRY RUN region {verb} {move} checked",
            f"DRY RUN {verb} {move}: checks passed, nothing moved",
            f"DRY RUN: every check passed; traffic was not moved.\n\n{body}",
        ),
        "approval": notice(
            f"opsflow: APPROVE region {verb} {move}?",
            f"Approve {verb} {move}?",
            f"Approval needed for region {verb} {move}.\n\n{body}",
        ),
    }


def dependency(mechanism: str) -> str:
    """What the traffic switch depends on during a recovery, in words (pre-flight and report)."""
    needs = traffic.CONTROL_PLANE[mechanism]
    if mechanism == "arc":
        return (f"Traffic switch {mechanism}: data plane only (the ARC cluster's regional "
                "endpoints, each tried in turn).")
    if needs is None:
        return (f"Traffic switch {mechanism}: data plane only (an S3 object in the standby "
                "region, read by the primary record's Route 53 health check).")
    return (f"Traffic switch {mechanism}: depends on {needs}, which AWS's resilience guidance "
            "says not to rely on during a recovery; TrafficMechanism=arc switches on the data "
            "plane.")


def _describe(plan: dict[str, Any], before: dict[str, int] | None, checks: list[str]) -> str:
    lines = [f"Mode: {plan['mode']}, from {plan['from']} to {plan['to']}, "
             f"mechanism {plan['settings']['mechanism']}.",
             dependency(plan["settings"]["mechanism"])]
    alarm = plan.get("alarm")
    if alarm:
        lines.append(f"Alarm {alarm['name']}: {alarm['previous']} -> {alarm['state']} at "
                     f"{alarm['timestamp']}. {alarm['reason']}")
    if before:
        lines.append("Traffic now: " + ", ".join(f"{r} {w}" for r, w in before.items()))
    lines += [f"  - {c}" for c in checks]
    return "\n".join(lines)


@handler(logger)
def parse_alarm(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    require(payload, "event", "settings")
    execution = payload.get("execution", "")
    return parse(
        payload["event"], payload["settings"], execution, home_account(execution, context)
    )


@handler(logger)
def preflight(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Read the traffic, the cooldown and the target's health; decide whether to move."""
    plan = dict(payload["plan"])
    config = plan["settings"]
    if plan.get("ignoredBecause"):
        plan.update(actionable=False, summary=plan["ignoredBecause"])
        plan["notices"] = _notices(plan, _describe(plan, None, []))
        return plan
    client_for = aws.client
    before = traffic.read(client_for, config)
    plan["before"] = before
    wanted = {plan["from"]: 0, plan["to"]: 100}
    plan["wanted"] = wanted
    checks: list[str] = []
    now = traffic.instant(plan["time"])
    state = traffic.load_state(aws.client("ssm", config["alarmRegion"]), config["stateParameter"])
    since = traffic.minutes_since(state.get("lastFailover"), now)
    reason = None
    if plan["mode"] == "failover" and before.get(plan["from"], 0) == 0:
        reason = f"{plan['from']} carries no traffic"
    elif before == wanted:
        reason = f"traffic is already in {plan['to']}"
    elif (
        plan["mode"] == "failover"
        and not config["ignoreCooldown"]
        and since is not None
        and since < config["cooldownMinutes"]
    ):
        reason = (
            f"cooldown: the last failover was {since:.0f} min ago, less than "
            f"{config['cooldownMinutes']} min"
        )
    if reason:
        plan.update(actionable=False, reason=reason, summary=reason)
        plan["notices"] = _notices(plan, _describe(plan, before, checks))
        return plan
    target = plan["to"]
    problems: list[str] = []
    plan["capacity"] = _plan_capacity(plan, checks, problems)
    plan["database"] = database.plan(aws.client, config["globalCluster"], plan["from"], target,
                                     config["allowDataLoss"], checks, problems)
    group = config["targetGroups"].get(target)
    if plan["capacity"]:
        pass  # the group's own instances are checked once it is scaled (Act: Check capacity)
    elif group:
        healthy, total = traffic.healthy_targets(aws.client("elbv2", target), group)
        checks.append(f"{target}: {healthy} of {total} targets healthy "
                      f"(at least {config['minHealthyTargets']} needed)")
        if healthy < config["minHealthyTargets"]:
            problems.append(f"{target} has {healthy} healthy targets, fewer than "
                            f"{config['minHealthyTargets']}")
    else:
        problems.append(f"no target group configured for {target}")
    alarm_name = next((n for n, r in config["alarms"].items() if r == target), None)
    if alarm_name:
        alarm = traffic.alarm_state(aws.client("cloudwatch", config["alarmRegion"]), alarm_name)
        checks.append(f"{target}: canary alarm {alarm_name} is {alarm}")
        if alarm != "OK":
            problems.append(f"{target}'s canary alarm {alarm_name} is {alarm}")
    plan["checks"] = checks
    plan["actionable"] = True
    if problems:
        plan["escalate"] = {"cause": "Pre-flight failed: " + "; ".join(problems)
                            + ". Traffic was not moved into a region that may be worse."}
    plan["summary"] = f"{plan['mode']} {plan['from']} -> {plan['to']}"
    plan["notices"] = _notices(plan, _describe(plan, before, checks))
    return plan


def _plan_capacity(plan: dict[str, Any], checks: list[str],
                   problems: list[str]) -> dict[str, Any] | None:
    """How far the target's Auto Scaling group must scale before traffic moves (None: no
    group configured); a group that cannot reach it is a problem, and nothing moves."""
    config = plan["settings"]
    name, target = config["autoScalingGroup"], plan["to"]
    if not name:
        return None
    try:
        found = capacity.group(aws.client, target, name)
    except (RunbookError, BotoCoreError) as error:
        problems.append(f"cannot read the Auto Scaling group {name} in {target} ({error})")
        return None
    if found is None:
        problems.append(f"no Auto Scaling group {name} in {target}")
        return None
    now = capacity.size(found)
    needed = int(config["standbyCapacity"])
    if not needed:
        try:
            source = capacity.group(aws.client, plan["from"], name)
        except (RunbookError, BotoCoreError) as error:
            problems.append(
                f"cannot read the desired capacity of {name} in {plan['from']} ({error}); set "
                "StandbyCapacity so a failover does not depend on the region it leaves"
            )
            return None
        needed = capacity.size(source)["desired"] if source else 0
    needed = max(needed, int(config["minHealthyTargets"]))
    checks.append(f"{target}: {name} min {now['min']}, desired {now['desired']}, max "
                  f"{now['max']}; {needed} healthy instances needed before traffic moves")
    if needed > now["max"]:
        problems.append(f"{target}'s group {name} cannot scale to {needed} instances: its "
                        f"MaxSize is {now['max']}")
    return {"region": target, "group": name, "needed": needed, "before": now}


@handler(logger)
def scale_capacity(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Scale the target's group to the planned size; with ``"check": true``, count its
    instances healthy in the target group (``CapacityNotReady`` once the checks run out)."""
    require(payload, "plan")
    plan = payload["plan"]
    config, planned = plan["settings"], plan.get("capacity")
    if not planned:
        return {"ready": True, "summary": "no Auto Scaling group configured"}
    region, name, needed = planned["region"], planned["group"], planned["needed"]
    if plan["dryRun"]:
        return {"ready": True, "dryRun": True,
                "summary": f"would scale {name} in {region} to {needed}"}
    if not payload.get("check"):
        before = planned["before"]
        capacity.resize(aws.client, region, name, max(before["min"], needed),
                        max(before["desired"], needed))
        return {"ready": False, "attempt": 0,
                "summary": f"{name} in {region} scaling to {needed}"}
    attempt = int(payload["capacity"].get("attempt", 0)) + 1
    group = config["targetGroups"].get(region, "")
    healthy, members = capacity.healthy_members(aws.client, region, name, group)
    summary = (f"{name} in {region}: {healthy} of {members} instances healthy, {needed} needed "
               f"(check {attempt} of {config['maxPolls']})")
    if healthy < needed and attempt >= int(config["maxPolls"]):
        raise capacity.CapacityNotReady(f"{summary}; traffic was not moved")
    return {"ready": healthy >= needed, "attempt": attempt, "healthy": healthy,
            "summary": summary}


@handler(logger)
def move_database(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start the planned move of the global database's writer into the target region; with
    ``"check": true``, read whether it is there (``DatabaseNotMoved`` once the checks run out,
    with the cluster's state)."""
    require(payload, "plan")
    plan = payload["plan"]
    config, planned = plan["settings"], plan.get("database")
    if not planned or planned["method"] == database.NONE:
        return {"ready": True, "summary": "no global database configured" if not planned
                else f"the writer of {planned['cluster']} is already in {plan['to']}"}
    verb = ("switch over" if planned["method"] == database.SWITCHOVER
            else "fail over (data loss allowed)")
    if plan["dryRun"]:
        return {"ready": True, "dryRun": True,
                "summary": f"would {verb} {planned['cluster']} to {plan['to']}"}
    if not payload.get("check"):
        started = database.start(aws.client, planned)
        return {"ready": False, "attempt": 0,
                "summary": f"{planned['cluster']}: {verb} to {plan['to']} "
                + ("started" if started else "already under way")}
    attempt = int(payload["database"].get("attempt", 0)) + 1
    described = database.describe(aws.client, planned["region"], planned["cluster"])
    ready = database.settled_at(described, planned["to"])
    summary = f"{database.state(described)} (check {attempt} of {config['maxPolls']})"
    if not ready and attempt >= int(config["maxPolls"]):
        raise database.DatabaseNotMoved(f"{summary}; the writer did not reach {plan['to']} in "
                                        "time, and traffic was not moved")
    return {"ready": ready, "attempt": attempt, "summary": summary}


@handler(logger)
def shift_traffic(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Record the before-state in Parameter Store, then move the traffic.

    With ``"record": "verified"`` (after Verify converged): record that the move stayed in
    place; for a failover that starts the cooldown. This function keeps the runbook's state, so
    it is the one that writes it."""
    require(payload, "plan")
    if payload.get("record") == "verified":
        return _record_verified(payload["plan"])
    plan = payload["plan"]
    config = plan["settings"]
    if plan["dryRun"]:
        current = traffic.read(aws.client, config)
        return {"dryRun": True, "wouldSet": plan["wanted"], "current": current}
    # The runbook's state lives in the stack's region, not in the region being failed away from.
    ssm = aws.client("ssm", config["alarmRegion"])
    state = traffic.load_state(ssm, config["stateParameter"])
    state.update(before=plan["before"], execution=plan["execution"], mode=plan["mode"],
                 at=plan["time"])
    traffic.save_state(ssm, config["stateParameter"], state)
    # The cooldown starts only once the failover is verified (see _record_verified): one that
    # is rolled back must not hold off the next.
    return traffic.shift(aws.client, config, plan["wanted"])


def _record_verified(plan: dict[str, Any]) -> dict[str, Any]:
    """Record the verified move. A verified failover also records the size the standby's group
    had before it was scaled for the traffic; a verified failback puts that size back (the
    traffic has left the standby), then forgets it."""
    config = plan["settings"]
    ssm = aws.client("ssm", config["alarmRegion"])
    state = traffic.load_state(ssm, config["stateParameter"])
    state["verified"] = {"execution": plan["execution"], "mode": plan["mode"], "at": plan["time"]}
    result: dict[str, Any] = {"recorded": plan["mode"]}
    scaled = plan.get("capacity")
    if plan["mode"] == "failover":
        state["lastFailover"] = plan["time"]
        if scaled and not plan["dryRun"]:
            state["scaledForFailover"] = {k: scaled[k] for k in ("region", "group", "before")}
    else:
        recorded = state.get("scaledForFailover")
        if recorded and recorded["region"] == plan["from"] and not plan["dryRun"]:
            before = recorded["before"]
            where = f"{recorded['group']} in {recorded['region']}"
            try:
                capacity.resize(aws.client, recorded["region"], recorded["group"],
                                before["min"], before["desired"])
                found = capacity.group(aws.client, recorded["region"], recorded["group"])
            except (RunbookError, BotoCoreError) as error:
                # Kept in the state: the next failback tries again.
                result["summary"] = (f"{where} could NOT be put back to min {before['min']}, "
                                     f"desired {before['desired']} ({error}): scale it by hand")
            else:
                result["capacity"] = capacity.size(found) if found else None
                result["summary"] = (f"{where} put back to min {before['min']}, desired "
                                     f"{before['desired']}, as before the failover")
                del state["scaledForFailover"]
    traffic.save_state(ssm, config["stateParameter"], state)
    result["lastFailover"] = state.get("lastFailover")
    return result


@handler(logger)
def check_failover(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Change in sync, and the target's canary healthy for enough consecutive checks."""
    plan, shifted, verify = payload["plan"], payload["act"], payload["verify"]
    config = plan["settings"]
    synced = traffic.in_sync(aws.client, config, shifted)
    target = plan["to"]
    planned = plan.get("database")
    data = ""
    if planned and planned.get("to") and not plan["dryRun"]:
        described = database.describe(aws.client, planned["region"], planned["cluster"])
        synced = synced and database.settled_at(described, planned["to"])
        data = f"; {database.state(described)}"
    alarm_name = next((n for n, r in config["alarms"].items() if r == target), None)
    alarm = (
        traffic.alarm_state(aws.client("cloudwatch", config["alarmRegion"]), alarm_name)
        if alarm_name
        else "OK"
    )
    streak = int(verify.get("streak", 0)) + 1 if synced and alarm == "OK" else 0
    converged = streak >= config["healthyPolls"]
    now = traffic.read(aws.client, config)
    summary = (f"traffic {', '.join(f'{r} {w}' for r, w in now.items())}; change "
               f"{'in sync' if synced else 'propagating'}; {target} canary {alarm} "
               f"({streak}/{config['healthyPolls']} healthy checks){data}")
    verb = "failback" if plan["mode"] == "failback" else "failover"
    return {
        "attempt": int(verify["attempt"]) + 1,
        "streak": streak,
        "maxPolls": config["maxPolls"],
        "converged": converged,
        "traffic": now,
        "summary": summary,
        "notice": notice(
            f"opsflow: region {verb} {plan['from']} -> {plan['to']} verified",
            f"{verb} to {plan['to']} verified: {summary}"[:140],
            f"Region {verb} verified: {summary}.\n\nBefore: "
            + ", ".join(f"{r} {w}" for r, w in plan["before"].items())
            + "\nAfter: " + ", ".join(f"{r} {w}" for r, w in now.items())
            + "\n" + dependency(config["mechanism"])
            + ("\n\nFail back when the primary is healthy again: rerun with "
               '{"opsflow": {"mode": "failback"}}.' if verb == "failover" else ""),
        ),
    }


def _split(weights: dict[str, int]) -> str:
    return ", ".join(f"{r} {w}" for r, w in weights.items())


@handler(logger)
def restore_traffic(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Put the recorded traffic back, then the database writer, then the capacity, and report
    each as it now is, read from the account; ``complete`` is whether all are back.

    A switched-over writer is switched back once traffic is back: ``waiting`` says the switch
    is under way, and a call with ``"check": true`` (and the last result as ``rollback``) reads
    it again, restoring the capacity once the writer is back. A writer moved by a failover with
    data loss is not moved back, and then traffic and capacity stay as they are. With
    ``"report": true`` (the restore itself failed, ``rollbackError`` says how): move nothing,
    only report."""
    require(payload, "plan")
    plan = payload["plan"]
    config = plan["settings"]
    error = payload.get("error") or {}
    before = plan.get("before")
    reporting, checking = bool(payload.get("report")), bool(payload.get("check"))
    last = payload.get("rollback") or {}
    acting = not reporting and not plan["dryRun"]
    planned = plan.get("database")
    if planned and planned["method"] == database.NONE:
        planned = None
    described, unreadable = _read_database(planned)
    # A failover with data loss that started cannot be undone here: leave traffic with it. One
    # whose state cannot be read is treated so too (the writer may have moved).
    lost = bool(planned and planned["method"] == database.FAILOVER and (
        unreadable or (described and not database.settled_at(described, planned["from"]))))
    restored = bool(last.get("trafficRestored"))
    if acting and not checking and before and not lost:
        if traffic.read(aws.client, config) != before:
            traffic.shift(aws.client, config, before)
            restored = True
    now = traffic.read(aws.client, config)
    traffic_back = not before or now == before
    attempt = int(last.get("attempt", 0)) + 1 if checking else 0
    switching_back = bool(last.get("switchingBack"))
    waiting, data_back, data_note = False, True, ""
    if planned and (described is None or unreadable):
        data_back = False
        data_note = (f" The global database {planned['cluster']} could not be read ({unreadable});"
                     " where its writer is, is not known: check it before moving anything.")
    elif planned and described:
        data_back = database.settled_at(described, planned["from"])
        if lost:
            data_note = (
                f" The writer moved by a failover with data loss and cannot be moved back "
                f"until {plan['from']} resynchronises ({database.state(described)}): traffic "
                "was left where it is, as moving it back would send it to a region without "
                "the writer, and capacity as it is. Switch the writer back by hand "
                f"(SwitchoverGlobalCluster) once {plan['from']} is in sync, then fail back.")
        elif not data_back and acting and traffic_back:
            if database.idle(described) and not switching_back:
                try:
                    database.switch_back(aws.client, planned)
                    switching_back = True
                    attempt = 0  # the wait for the switch back starts now
                except (RunbookError, BotoCoreError) as refused:
                    data_note = f" Switching the writer back was refused ({refused})."
                if switching_back:
                    described = _read_database(planned)[0] or described
            # Wait while a switch (this one back, or the act's own, still under way) runs.
            waiting = (not data_note and attempt < int(config["maxPolls"])
                       and (switching_back or not database.idle(described)))
        if not data_back and not lost:
            data_note = data_note or (
                f" The writer is NOT back ({database.state(described)})"
                + ("; switching back." if waiting else
                   "; the switch back this rollback started is still under way: check that it "
                   "ends." if switching_back else
                   f"; switch it back by hand (SwitchoverGlobalCluster) to {planned['from']}."))
        elif data_back:
            data_note = f" Database: {database.state(described)}."
    sized, held = ((None, False) if waiting else
                   _restore_capacity(plan, traffic_back and data_back and not reporting))
    failure = _failure(error)
    move = f"Region {plan['mode']} {plan['from']} -> {plan['to']}"
    if reporting:
        cause = (
            f"Rollback failed ({_failure(payload.get('rollbackError') or {})}) after the {move} "
            f"failed ({failure}). Traffic now: {_split(now)}"
            + (f"; recorded before: {_split(before)}. " if before else ". ")
            + ("It is back to the recorded split." if traffic_back and before else
               "Set the split by hand." if before else "No split was recorded.")
        )
        headline = "ROLLBACK FAILED, act now"
    elif traffic_back and data_back:
        cause = (
            f"{move} failed ({failure}). "
            + ("The recorded traffic split was restored. " if restored else "Traffic was not moved. ")
            + f"Traffic now: {_split(now)}"
        )
        headline = "FAILED, rolled back"
    elif traffic_back:
        cause = (f"{move} failed ({failure}). "
                 + ("The recorded traffic split was restored. " if restored else
                    "Traffic was not moved. ") + f"Traffic now: {_split(now)}.")
        headline = "ROLLBACK INCOMPLETE, act now"
    else:
        cause = (
            f"{move} failed ({failure}). The traffic is NOT back to the recorded split: now "
            f"{_split(now)}, recorded before {_split(before)}."
            + ("" if lost else " Set the split by hand.")
        )
        headline = "ROLLBACK INCOMPLETE, act now"
    cause += data_note
    if not waiting:
        cause += capacity.describe(plan.get("capacity"), sized)
        if held:
            cause += (" It was left scaled, as traffic is not back." if not traffic_back or lost
                      else " It was left scaled, as the writer is not back.")
    return {
        "cause": cause,
        "complete": traffic_back and data_back and not reporting and not held,
        "waiting": waiting,
        "attempt": attempt,
        "trafficRestored": restored,
        "switchingBack": switching_back,
        "traffic": now,
        "capacity": sized,
        "database": database.state(described) if described else unreadable or None,
        "notice": notice(
            f"opsflow: region {plan['mode']} {headline}",
            f"{plan['mode']} {plan['from']}->{plan['to']} failed; traffic now: {_split(now)}",
            cause,
        ),
    }


def _read_database(planned: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The global database as it is (None when none is planned, or it cannot be read), and
    why it could not be read ("" when it could)."""
    if not planned:
        return None, ""
    try:
        return database.describe(aws.client, planned["region"], planned["cluster"]), ""
    except (RunbookError, BotoCoreError) as error:
        return None, str(error)


def _restore_capacity(plan: dict[str, Any], traffic_back: bool) -> tuple[dict[str, int] | None, bool]:
    """Put the target's group back to its recorded size, only once traffic is back (a region
    still serving is never scaled down); returns the size read back and whether it was held."""
    planned = plan.get("capacity")
    if not planned:
        return None, False
    region, name, before = planned["region"], planned["group"], planned["before"]
    found = capacity.group(aws.client, region, name)
    now = capacity.size(found) if found else None
    if now is None or (now["min"], now["desired"]) == (before["min"], before["desired"]):
        return now, False
    if not traffic_back or plan["dryRun"]:
        return now, True
    capacity.resize(aws.client, region, name, before["min"], before["desired"])
    found = capacity.group(aws.client, region, name)
    return (capacity.size(found) if found else None), False


def _failure(error: dict[str, Any]) -> str:
    """An error the state machine caught, in words: a Lambda error's cause is its message."""
    cause: Any = error.get("Cause", "")
    try:
        cause = json.loads(cause).get("errorMessage", cause)
    except (TypeError, ValueError, AttributeError):
        pass
    return f"{error.get('Error', 'unknown')}: {' '.join(str(cause).split())[:300]}"
