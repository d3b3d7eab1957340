"""Lambda handlers of the ebs-quota-forecast runbook: unpack, call the logic, return JSON."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from runbook_kit import aws
from runbook_kit.accounts import home_account
from runbook_kit.errors import RunbookError, call, error_code, require, translate
from runbook_kit.notices import notice
from runbook_kit.telemetry import handler

from ebs_quota import quotas as q

logger = Logger(service="opsflow-ebs-quota-forecast")


class RequestRejected(RunbookError):
    """Service Quotas denied or refused an increase request; a person must follow up."""


@handler(logger)
def read_trigger(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"event", "settings", "execution"}`` → the first plan."""
    require(payload, "event", "settings")
    execution = payload.get("execution", "")
    return q.read_trigger(
        payload["event"], payload["settings"], execution, home_account(execution, context)
    )


@handler(logger)
def count_region(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"region"}`` → volumes (GiB per type) and snapshots counted in that region."""
    require(payload, "region")
    region = payload["region"]
    try:
        return q.census(aws.client("ec2", region), region)
    except ClientError as error:
        raise translate(error, f"EBS census in {region}") from error


def _history(cloudwatch: Any, code: str, as_of: date, days: int) -> list[tuple[date, float]]:
    name, dimensions = q.metric(code)
    end = datetime.combine(as_of + timedelta(days=1), time.min, UTC)
    result = call(
        "GetMetricStatistics",
        cloudwatch.get_metric_statistics,
        Namespace=q.NAMESPACE,
        MetricName=name,
        Dimensions=dimensions,
        StartTime=end - timedelta(days=days),
        EndTime=end,
        Period=86400,
        Statistics=["Maximum"],
    )
    points: dict[date, float] = {}
    for point in result.get("Datapoints", []):
        stamp = point["Timestamp"]
        day = (stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)).date()
        points[day] = max(points.get(day, 0.0), float(point["Maximum"]))
    return sorted(points.items())


def _quota(sq: Any, code: str) -> tuple[float, str, str]:
    try:
        found = sq.get_service_quota(ServiceCode=q.SERVICE_CODE, QuotaCode=code)["Quota"]
        return float(found["Value"]), "applied", found.get("QuotaName", code)
    except ClientError as error:
        if error_code(error) != "NoSuchResourceException":
            raise translate(error, f"GetServiceQuota {code}") from error
    found = call(
        f"GetAWSDefaultServiceQuota {code}",
        sq.get_aws_default_service_quota,
        ServiceCode=q.SERVICE_CODE,
        QuotaCode=code,
    )["Quota"]
    return float(found["Value"]), "AWS default", found.get("QuotaName", code)


def _open_requests(sq: Any, code: str) -> list[dict[str, Any]]:
    found = []
    for status in q.OPEN:
        result = call(
            "ListRequestedServiceQuotaChangeHistoryByQuota",
            sq.list_requested_service_quota_change_history_by_quota,
            ServiceCode=q.SERVICE_CODE,
            QuotaCode=code,
            Status=status,
        )
        for item in result.get("RequestedQuotas", []):
            found.append({"Id": item["Id"], "Status": item["Status"],
                          "DesiredValue": item["DesiredValue"]})
    return found


def _now() -> datetime:
    """The run's own time (a seam for tests)."""
    return datetime.now(UTC)


def metric_stamp(as_of: date, now: datetime) -> datetime:
    """When to stamp the usage counted for ``as_of``: 00:00 UTC of that day, or ``now`` if
    that is earlier (an ``asOf`` override in the future).

    CloudWatch refuses datapoints more than about 2 h after its own clock, so the stamp is never
    after the run's time: not on AWS, whether the schedule (06:00) or a Health event (any hour)
    started the run, nor on a local engine whose clock is hours behind the event. Every run of
    one day stamps the same instant, and the history reads the daily Maximum, so reruns add no
    points and the forecast sees one point a day.
    """
    return min(datetime.combine(as_of, time.min, UTC), now)


@handler(logger)
def forecast_region(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"census", "settings"}`` → record today's usage as metrics, read the history back,
    forecast each managed quota and compare it with the quota's current value."""
    require(payload, "census", "settings")
    counted, config = payload["census"], payload["settings"]
    region = counted["region"]
    if not counted.get("counted"):
        return {**counted, "assessments": []}
    as_of = date.fromisoformat(config["asOf"])
    cloudwatch = aws.client("cloudwatch", region)
    stamp = metric_stamp(as_of, _now())
    data: list[dict[str, Any]] = []
    for code in config["quotaCodes"]:
        name, dimensions = q.metric(code)
        data.append({"MetricName": name, "Dimensions": dimensions, "Timestamp": stamp,
                     "Value": q.usage_of(code, counted),
                     "Unit": "Count"})
    unique = {(d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])): d
              for d in data}
    call("PutMetricData", cloudwatch.put_metric_data, Namespace=q.NAMESPACE,
          MetricData=list(unique.values()))
    sq = aws.client("service-quotas", region)
    assessments = []
    for code in config["quotaCodes"]:
        history = _history(cloudwatch, code, as_of, config["historyDays"])
        if not history or all(v == 0 for _, v in history):
            assessments.append({"quotaCode": code, "quotaName": code, "decision": "unused",
                                "unit": q.QUOTAS[code]["unit"], "usage": 0.0, "quota": 0.0,
                                "quotaSource": "not read"})
            continue
        value, source, name = _quota(sq, code)
        assessments.append(
            q.assess(code, name, history, value, source, _open_requests(sq, code), config)
        )
    return {**counted, "assessments": assessments}


@handler(logger)
def decide_increases(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    require(payload, "plan", "regions")
    return q.decide(payload["plan"], payload["regions"])


@handler(logger)
def request_increase(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"target", "dryRun"}`` → the request made (or, in a dry run, the one that would be)."""
    require(payload, "target")
    target = payload["target"]
    spec = {"ServiceCode": q.SERVICE_CODE, "QuotaCode": target["quotaCode"],
            "DesiredValue": float(target["desiredValue"])}
    if payload.get("dryRun", True):
        return {"region": target["region"], "dryRun": True, "wouldRequest": spec}
    sq = aws.client("service-quotas", target["region"])
    try:
        made = sq.request_service_quota_increase(**spec)["RequestedQuota"]
    except ClientError as error:
        if error_code(error) != "ResourceAlreadyExistsException":
            raise translate(error, f"RequestServiceQuotaIncrease {target['quotaCode']}") from error
        opened = _open_requests(sq, target["quotaCode"])
        if not opened:
            raise translate(error, f"RequestServiceQuotaIncrease {target['quotaCode']}") from error
        return {"region": target["region"], "Id": opened[0]["Id"], "reused": True}
    return {"region": target["region"], "Id": made["Id"], "Status": made["Status"],
            "DesiredValue": made["DesiredValue"]}


def _describe(item: dict[str, Any], region: str) -> dict[str, Any]:
    return {"region": region, "Id": item["Id"], "QuotaCode": item["QuotaCode"],
            "DesiredValue": item["DesiredValue"], "Status": item["Status"],
            "CaseId": item.get("CaseId", "")}


def _requests(made: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in made:
        if item.get("dryRun") or not item.get("Id"):
            continue
        sq = aws.client("service-quotas", item["region"])
        request = call("GetRequestedServiceQuotaChange", sq.get_requested_service_quota_change,
                        RequestId=item["Id"])["RequestedQuota"]
        found.append(_describe(request, item["region"]))
    return found


def _requests_for(targets: list[dict[str, Any]], as_of: str) -> list[dict[str, Any]]:
    """Every request made on or after ``as_of`` for the targets' quotas, read from the account."""
    found = []
    for target in targets:
        sq = aws.client("service-quotas", target["region"])
        result = call(
            "ListRequestedServiceQuotaChangeHistoryByQuota",
            sq.list_requested_service_quota_change_history_by_quota,
            ServiceCode=q.SERVICE_CODE,
            QuotaCode=target["quotaCode"],
        )
        for item in result.get("RequestedQuotas", []):
            created = item.get("Created")
            day = created.date().isoformat() if isinstance(created, datetime) else str(created)[:10]
            if day >= as_of:
                found.append(_describe(item, target["region"]))
    return found


@handler(logger)
def check_requests(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"plan", "act", "attempt"}`` → every request's status; rejected ones raise."""
    require(payload, "act", "attempt")
    requests = _requests(payload["act"])
    accepted, lines = q.check(requests)
    rejected = [r for r in requests if r["Status"] in q.REJECTED]
    if rejected:
        raise RequestRejected("; ".join(lines))
    text = "\n".join(f"  - {line}" for line in lines)
    return {
        "attempt": int(payload["attempt"]) + 1,
        "maxPolls": q.VERIFY_MAX_POLLS,
        "converged": accepted,
        "requests": requests,
        "summary": f"{len(requests)} increase request(s) accepted",
        "notice": notice(
            f"opsflow: EBS quota forecast: {len(requests)} increase request(s) accepted",
            "EBS quota: increase requested and accepted: " + ", ".join(
                f"{r['region']} {r['QuotaCode']}" for r in requests[:2]),
            f"Increase requests accepted by Service Quotas:\n{text}\n\n"
            + payload.get("plan", {}).get("report", ""),
        ),
    }


@handler(logger)
def report_requests(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """After a failure: which requests exist and in what state (none can be withdrawn)."""
    require(payload, "plan")
    plan = payload["plan"]
    error = payload.get("error") or {}
    targets = plan.get("targets", [])
    try:
        requests = _requests_for(targets, plan["settings"]["asOf"])
        _, lines = q.check(requests)
        existing = "; ".join(lines) or "no request was made"
    except RunbookError as failure:
        # Never "no request was made" when the account could not say: name what may exist.
        requests = []
        wanted = ", ".join(f"{t['region']} {t['quotaCode']} -> {float(t['desiredValue']):,.0f}"
                           for t in targets) or "none planned"
        existing = (f"UNKNOWN, reading them failed ({failure}); look for increases of {wanted} "
                    "in the Service Quotas console")
    # A Lambda error's Cause is its JSON (message and stack trace): keep the message.
    what = q.failure({"error": error.get("Error", "unknown"), "cause": error.get("Cause", "")})
    cause = (
        f"Quota increase failed ({' '.join(what.split())[:400]}). An increase request cannot be "
        f"withdrawn; requests that exist: {existing}. Follow up in the Service Quotas console or "
        "with AWS Support."
    )
    return {
        "cause": cause,
        "requests": requests,
        "notice": notice(
            "opsflow: EBS quota forecast: ESCALATED, act by hand",
            "EBS quota increase failed; requests cannot be withdrawn. Act by hand.",
            cause.replace("; ", "\n  - "),
        ),
    }
