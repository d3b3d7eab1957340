"""Reading AWS Health abuse events: every shape AWS has sent, and nothing taken on trust.

Shapes handled (see ``events/health-abuse/``):

* entities as instance ARNs in any region (``arn:aws:ec2:eu-west-1:123456789012:instance/i-…``),
  or bare instance IDs whose region comes from ``detail.eventRegion``, else the event's
  ``region``; ``global`` (or no region) means "look in every configured region";
* entity values that are neither (e.g. ``arn:ec2-1-101002929`` or an IP address): reported, never
  acted on; ARNs of another account: reported, never acted on;
* entities whose ``status`` is ``RESOLVED``: reported as resolved, not acted on;
* paged events (``page``/``totalPages`` as strings or numbers): each page is its own delivery;
* old events without ``eventScopeCode``, ``statusCode`` or ``communicationId``;
* events without ``affectedEntities``: the top-level ``resources`` list is used instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from runbook_kit.errors import InvalidEvent

SOURCE = "aws.health"
DETAIL_TYPE = "AWS Health Abuse Event"
SERVICE = "ABUSE"
DEDUPE_DAYS = 14

_INSTANCE_ID = r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})"
INSTANCE_ID_RE = re.compile(rf"^{_INSTANCE_ID}$")
INSTANCE_ARN_RE = re.compile(
    rf"^arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:ec2:(?P<region>[a-z]{{2}}(?:-[a-z]+)+-\d):"
    rf"(?P<account>\d{{12}})?:instance/(?P<id>{_INSTANCE_ID})$"
)
REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")


@dataclass
class Report:
    """What one delivered page of an abuse event says."""

    event_arn: str
    type_code: str
    account: str
    status_code: str
    communication_id: str
    page: int
    total_pages: int
    region: str | None
    start_time: str
    description: str
    instances: list[dict[str, Any]] = field(default_factory=list)
    unparseable: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    @property
    def dedupe_key(self) -> str:
        thread = self.communication_id or self.event_arn
        return f"health-abuse#{self.account}#{thread}#page-{self.page}"


def _text(value: Any, name: str, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise InvalidEvent(f"the event has no {name}")
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string, got {type(value).__name__}")
    return value.strip()


def _page(value: Any, name: str, default: int = 1) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidEvent(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise InvalidEvent(f"{name} must be at least 1, got {number}")
    return number


def _region(value: Any) -> str | None:
    if not isinstance(value, str) or not value or value == "global":
        return None
    if not REGION_RE.match(value):
        raise InvalidEvent(f"region {value!r} is not an AWS region name")
    return value


def read(event: Any) -> Report:
    """Validate an EventBridge AWS Health abuse event and extract what it reports.

    Raises :class:`InvalidEvent` with a readable reason when the event is not one.
    """
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
    source = _text(event.get("source"), "source")
    if source != SOURCE:
        raise InvalidEvent(f"source is {source!r}, expected {SOURCE!r}")
    detail_type = _text(event.get("detail-type"), "detail-type")
    if detail_type != DETAIL_TYPE:
        raise InvalidEvent(f"detail-type is {detail_type!r}, expected {DETAIL_TYPE!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidEvent("the event has no detail object")
    service = _text(detail.get("service"), "detail.service")
    if service != SERVICE:
        raise InvalidEvent(f"detail.service is {service!r}, expected {SERVICE!r}")
    type_code = _text(detail.get("eventTypeCode"), "detail.eventTypeCode")
    event_arn = _text(detail.get("eventArn"), "detail.eventArn")
    account = _text(event.get("account"), "account", required=False) or _text(
        detail.get("affectedAccount"), "detail.affectedAccount", required=False
    )
    if account and not re.fullmatch(r"\d{12}", account):
        raise InvalidEvent(f"account {account!r} is not a 12-digit AWS account ID")
    page = _page(detail.get("page"), "detail.page")
    total_pages = _page(detail.get("totalPages"), "detail.totalPages", default=page)
    if page > total_pages:
        raise InvalidEvent(f"detail.page {page} is beyond detail.totalPages {total_pages}")
    # eventRegion "global" means "any region"; the event's own region is only where it was
    # delivered, so it is a fallback for events that carry no eventRegion at all.
    raw_region = detail.get("eventRegion")
    region = _region(raw_region) if raw_region not in (None, "") else _region(event.get("region"))
    descriptions = detail.get("eventDescription") or []
    description = ""
    if isinstance(descriptions, list):
        for item in descriptions:
            if isinstance(item, dict) and isinstance(item.get("latestDescription"), str):
                description = item["latestDescription"]
                if item.get("language", "en_US") == "en_US":
                    break

    report = Report(
        event_arn=event_arn,
        type_code=type_code,
        account=account,
        status_code=_text(detail.get("statusCode"), "detail.statusCode", required=False) or "open",
        communication_id=_text(
            detail.get("communicationId"), "detail.communicationId", required=False
        ),
        page=page,
        total_pages=total_pages,
        region=region,
        start_time=_text(detail.get("startTime"), "detail.startTime", required=False),
        description=description,
    )

    entities = detail.get("affectedEntities")
    if entities is None:
        resources = event.get("resources") or []
        if not isinstance(resources, list):
            raise InvalidEvent("resources must be a list")
        entities = [{"entityValue": value} for value in resources]
    if not isinstance(entities, list):
        raise InvalidEvent("detail.affectedEntities must be a list")

    seen: set[str] = set()
    for entity in entities:
        value = entity.get("entityValue") if isinstance(entity, dict) else entity
        if not isinstance(value, str) or not value.strip():
            report.unparseable.append(repr(value))
            continue
        value = value.strip()
        status = entity.get("status") if isinstance(entity, dict) else None
        arn = INSTANCE_ARN_RE.match(value)
        if arn:
            instance_id, instance_region = arn.group("id"), arn.group("region")
            if account and arn.group("account") and arn.group("account") != account:
                report.foreign.append(value)
                continue
        elif INSTANCE_ID_RE.match(value):
            instance_id, instance_region = value, region
        else:
            report.unparseable.append(value)
            continue
        if status == "RESOLVED":
            report.resolved.append(instance_id)
            continue
        if instance_id in seen:
            continue
        seen.add(instance_id)
        report.instances.append({"instanceId": instance_id, "region": instance_region})
    report.unparseable = list(dict.fromkeys(report.unparseable))
    report.resolved = list(dict.fromkeys(report.resolved))
    report.foreign = list(dict.fromkeys(report.foreign))
    return report


def event_time(event: dict[str, Any]) -> datetime:
    """When the event happened (``time``, else ``detail.startTime``), else now."""
    value = event.get("time")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    start = (
        event.get("detail", {}).get("startTime") if isinstance(event.get("detail"), dict) else None
    )
    if isinstance(start, str):
        try:
            return parsedate_to_datetime(start)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def dedupe_expiry(event: dict[str, Any]) -> int:
    """Epoch seconds after which the delivery record may expire (DynamoDB TTL)."""
    return int((event_time(event) + timedelta(days=DEDUPE_DAYS)).timestamp())
