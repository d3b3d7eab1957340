"""Reading AWS Health abuse events: every shape AWS has sent, and nothing taken on trust.

Shapes handled (see ``events/health-abuse/``):

* entities as instance ARNs in any region (``arn:aws:ec2:eu-west-1:123456789012:instance/i-…``),
  or bare instance IDs whose region comes from ``detail.eventRegion``, else the event's
  ``region``; ``global`` (or no region) means "look in every configured region";
* entity values that are neither (e.g. ``arn:ec2-1-101002929`` or an IP address): reported, never
  acted on; ARNs of another account: reported, never acted on;
* entity ``status``: only an entity AWS reports as affected (``IMPAIRED``, or no status at all,
  as most abuse events send) is acted on; ``RESOLVED`` ones are reported as resolved, and every
  other status (``UNIMPAIRED``, ``UNKNOWN``, ``PENDING``, or one AWS may add) is reported with its
  status and not acted on;
* the account: the runbook acts only in the account it runs in. An event for another account is
  rejected; entity ARNs of another account are reported, never acted on, whether or not the
  event names its account;
* paged events (``page``/``totalPages`` as strings or numbers): each page is its own delivery;
* old events without ``eventScopeCode``, ``statusCode`` or ``communicationId``;
* events without ``affectedEntities``: the top-level ``resources`` list is used instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from runbook_kit.errors import InvalidEvent

SOURCE = "aws.health"
DETAIL_TYPE = "AWS Health Abuse Event"
SERVICE = "ABUSE"
"""The event's identity, exactly as ``HealthAbuseRule`` in template.yaml matches it (a test
checks them against the rule's pattern)."""
AFFECTED = frozenset({"IMPAIRED"})
RESOLVED = "RESOLVED"
ENTITY_STATUSES = ("IMPAIRED", "UNIMPAIRED", "UNKNOWN", "PENDING", "RESOLVED")
"""AWS Health's ``EntityStatusCode`` values (API reference, ``AffectedEntity.statusCode``)."""
EVENT_ARN_LIMIT = 1600
EVENT_TYPE_CODE_LIMIT = 100
"""AWS Health's bounds on an event's ARN and type code (its API model; a test checks them)."""
DEDUPE_DAYS = 14
DEDUPE_THREAD_LIMIT = 1024
"""Bytes of a thread ID kept as is in a delivery record's key (DynamoDB keys: 2,048 bytes)."""

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
    unaffected: list[dict[str, str]] = field(default_factory=list)
    """Entities with a status other than affected or resolved: ``{"entity", "status"}``."""
    foreign: list[str] = field(default_factory=list)

    @property
    def dedupe_key(self) -> str:
        """The delivery record's key. A thread ID long enough to pass DynamoDB's 2,048-byte key
        is replaced by its SHA-256, which identifies it as well."""
        thread = self.communication_id or self.event_arn
        if len(thread.encode("utf-8")) > DEDUPE_THREAD_LIMIT:
            thread = "sha256:" + hashlib.sha256(thread.encode("utf-8")).hexdigest()
        return f"health-abuse#{self.account}#{thread}#page-{self.page}"


def _text(
    value: Any, name: str, required: bool = True, strip: bool = True, limit: int | None = None
) -> str:
    if value is None or value == "":
        if required:
            raise InvalidEvent(f"the event has no {name}")
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string, got {type(value).__name__}")
    if limit is not None and len(value) > limit:
        raise InvalidEvent(
            f"{name} is {len(value):,} characters long; AWS Health's are at most {limit:,}"
        )
    return value.strip() if strip else value


def _identity(value: Any, name: str, expected: str) -> str:
    """An identity field, compared exactly as EventBridge's rule does (no trimming, no case)."""
    _text(value, name)
    if value != expected:
        raise InvalidEvent(f"{name} is {value!r}, expected {expected!r}")
    return expected


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


def read(
    event: Any, home_account: str | None = None, home_partition: str | None = None
) -> Report:
    """Validate an EventBridge AWS Health abuse event and extract what it reports.

    ``home_account`` is the account the runbook runs in (the handler always passes it): an event
    for another account is rejected, and entity ARNs are compared with it; an account ID is
    unique only within its partition, so an ARN of another partition than ``home_partition``
    (the handler passes the execution's) is foreign too. Without it (pure
    use), they are compared with the account the event names; with neither, every ARN that
    names an account is foreign (nothing is acted on by guess).

    Raises :class:`InvalidEvent` with a readable reason when the event is not one.
    """
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
    _identity(event.get("source"), "source", SOURCE)
    _identity(event.get("detail-type"), "detail-type", DETAIL_TYPE)
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidEvent("the event has no detail object")
    _identity(detail.get("service"), "detail.service", SERVICE)
    # Matched against the quarantine codes exactly, as the rule matches it.
    type_code = _text(
        detail.get("eventTypeCode"), "detail.eventTypeCode", strip=False,
        limit=EVENT_TYPE_CODE_LIMIT,
    )
    event_arn = _text(detail.get("eventArn"), "detail.eventArn", limit=EVENT_ARN_LIMIT)
    account = _text(event.get("account"), "account", required=False) or _text(
        detail.get("affectedAccount"), "detail.affectedAccount", required=False
    )
    if account and not re.fullmatch(r"\d{12}", account):
        raise InvalidEvent(f"account {account!r} is not a 12-digit AWS account ID")
    if home_account and account and account != home_account:
        raise InvalidEvent(
            f"the event is for account {account}, and this runbook runs in {home_account}: "
            "it acts only on its own account's instances"
        )
    own = home_account or account
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
        account=account or own or "",
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
            if (home_partition and value.split(":", 2)[1] != home_partition) or (
                arn.group("account") and arn.group("account") != own
            ):
                report.foreign.append(value)
                continue
        elif INSTANCE_ID_RE.match(value):
            instance_id, instance_region = value, region
        else:
            report.unparseable.append(value)
            continue
        if status == RESOLVED:
            report.resolved.append(instance_id)
            continue
        if status is not None and (not isinstance(status, str) or status not in AFFECTED):
            report.unaffected.append({"entity": instance_id, "status": str(status)})
            continue
        if instance_id in seen:
            continue
        seen.add(instance_id)
        report.instances.append({"instanceId": instance_id, "region": instance_region})
    report.unparseable = list(dict.fromkeys(report.unparseable))
    report.resolved = list(dict.fromkeys(report.resolved))
    report.foreign = list(dict.fromkeys(report.foreign))
    acted = {item["instanceId"] for item in report.instances}
    unaffected: dict[str, dict[str, str]] = {}
    for item in report.unaffected:
        if item["entity"] not in acted:
            unaffected.setdefault(item["entity"], item)
    report.unaffected = list(unaffected.values())
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
