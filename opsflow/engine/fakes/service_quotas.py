"""Service Quotas (botocore ``service-quotas``) for the EBS quotas a runbook manages.

moto's Service Quotas knows only VPC default values: no applied values, no increase requests.
This fake keeps, per region, the applied value of each EBS quota and the increase requests.
A request's status moves on the virtual clock: ``PENDING`` when made, ``CASE_OPENED`` after a
minute, ``APPROVED`` six hours later (see :class:`Progression` and
:meth:`ServiceQuotasFake.set_outcome`); once approved, its ``DesiredValue`` is the applied value.
Statuses are computed from the clock at every call, so the same inputs give the same run.

Request and response shapes are botocore's (``service-quotas`` service model): parameters are
validated against the input shape, timestamps are ``datetime`` objects as botocore parses them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from opsflow.engine import models
from opsflow.engine.clock import VirtualClock
from opsflow.engine.errors import AwsError
from opsflow.engine.fakes import page

SERVICE_NAME = "service-quotas"
"""The botocore service name this fake answers for (the key in ``Boundary.fakes``)."""

EBS_SERVICE_CODE = "ebs"
EBS_SERVICE_NAME = "Amazon Elastic Block Store (Amazon EBS)"


def _storage(volume_type: str, kind: str, default: float) -> dict[str, Any]:
    return {
        "name": f"Storage for {kind} ({volume_type}) volumes, in TiB",
        "volumeType": volume_type,
        "unit": "None",
        "adjustable": True,
        "default": default,
    }


EBS_QUOTAS: dict[str, dict[str, Any]] = {
    "L-D18FCD1D": _storage("gp2", "General Purpose SSD", 50.0),
    "L-7A658B76": _storage("gp3", "General Purpose SSD", 50.0),
    "L-FD252861": _storage("io1", "Provisioned IOPS SSD", 50.0),
    "L-09BD8365": _storage("io2", "Provisioned IOPS SSD", 20.0),
    "L-82ACEF56": _storage("st1", "Throughput Optimized HDD", 50.0),
    "L-17AF77E8": _storage("sc1", "Cold HDD", 50.0),
    "L-9CF3C2EB": _storage("standard", "Magnetic", 50.0),
    "L-309BACF6": {
        "name": "Snapshots per Region",
        "volumeType": None,
        "unit": "None",
        "adjustable": True,
        "default": 100000.0,
    },
}
"""Quota code → ``name`` (as Service Quotas shows it), ``volumeType`` (the EBS volume type whose
storage the quota limits, or ``None``), ``unit`` (Service Quotas' ``Unit``), ``adjustable`` and
``default`` (the AWS default value)."""

OPEN_STATUSES = ("PENDING", "CASE_OPENED")
FINAL_STATUSES = ("APPROVED", "DENIED", "NOT_APPROVED", "CASE_CLOSED", "INVALID_REQUEST")
REQUEST_STATUSES = OPEN_STATUSES + FINAL_STATUSES

DEFAULT_PAGE_SIZE = 100
MAX_VALUE = 10_000_000_000.0
_ALPHANUMERIC = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@functools.cache
def service_model() -> ServiceModel:
    return models.session().get_service_model(SERVICE_NAME)


@dataclass(frozen=True)
class Progression:
    """How a new increase request's status moves on the virtual clock.

    ``PENDING`` at creation; ``CASE_OPENED`` (a support case, with a ``CaseId``) after
    ``case_opened_after`` seconds, unless that is ``None`` or not before ``final_after``;
    ``final_status`` after ``final_after`` seconds.
    """

    final_status: str = "APPROVED"
    final_after: float = 6 * 3600.0
    case_opened_after: float | None = 60.0

    def __post_init__(self) -> None:
        if self.final_status not in FINAL_STATUSES:
            raise ValueError(
                f"final status {self.final_status!r} is not one of {', '.join(FINAL_STATUSES)}"
            )
        if self.final_after < 0 or (self.case_opened_after or 0) < 0:
            raise ValueError("a progression's delays cannot be negative")

    def steps(self, support_case_allowed: bool) -> tuple[tuple[timedelta, str], ...]:
        """``(delay after creation, status)`` pairs, in order.

        Without ``SupportCaseAllowed``, a request that needs a case is ``NOT_APPROVED`` when the
        case would have been opened, as the real API documents.
        """
        pending = (timedelta(0), "PENDING")
        final = (timedelta(seconds=self.final_after), self.final_status)
        case = self.case_opened_after
        if case is None or case >= self.final_after:
            return (pending, final)
        if not support_case_allowed:
            return (pending, (timedelta(seconds=case), "NOT_APPROVED"))
        return (pending, (timedelta(seconds=case), "CASE_OPENED"), final)


@dataclass
class _Request:
    id: str
    case_id: str
    region: str
    quota_code: str
    desired: float
    created: datetime
    steps: tuple[tuple[timedelta, str], ...]
    seq: int
    applied: bool = False

    def reached(self, now: datetime) -> list[tuple[timedelta, str]]:
        elapsed = now - self.created
        return [step for step in self.steps if step[0] <= elapsed]

    def status(self, now: datetime) -> tuple[str, datetime]:
        delay, status = self.reached(now)[-1]
        return status, self.created + delay

    def approved_at(self) -> datetime | None:
        for delay, status in self.steps:
            if status == "APPROVED":
                return self.created + delay
        return None


def _error(code: str, message: str) -> AwsError:
    return AwsError(code, message, 400)


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def _quota_arn(region: str, account: str, quota_code: str) -> str:
    return f"arn:aws:servicequotas:{region}:{account}:{EBS_SERVICE_CODE}/{quota_code}"


class ServiceQuotasFake:
    """Service Quotas for the EBS quotas of :data:`EBS_QUOTAS`, per region, on a virtual clock.

    Plug in with ``Boundary(fakes={"service-quotas": fake})``; thread-safe (Step Functions Map
    iterations call it concurrently).
    """

    def __init__(
        self,
        clock: VirtualClock,
        account: str = "123456789012",
        progression: Progression | None = None,
    ) -> None:
        self.clock = clock
        self.account = account
        self.progression = progression or Progression()
        self._lock = threading.RLock()
        self._applied: dict[tuple[str, str], float] = {}
        self._requests: list[_Request] = []
        self._outcomes: dict[tuple[str | None, str | None], Progression] = {}
        self._operations: dict[str, Callable[[dict[str, Any], str, datetime], dict[str, Any]]] = {
            "GetServiceQuota": self._get_service_quota,
            "GetAWSDefaultServiceQuota": self._get_default_service_quota,
            "ListServiceQuotas": self._list_service_quotas,
            "RequestServiceQuotaIncrease": self._request_increase,
            "GetRequestedServiceQuotaChange": self._get_requested_change,
            "ListRequestedServiceQuotaChangeHistoryByQuota": self._list_history_by_quota,
            "ListRequestedServiceQuotaChangeHistory": self._list_history,
        }

    # ------------------------------------------------------------------ set-up and inspection
    def set_applied(self, region: str, quota_code: str, value: float) -> None:
        """Seed the applied value of a quota in a region (as if raised earlier)."""
        self._known_quota(quota_code)
        if not 0 <= value <= MAX_VALUE:
            raise ValueError(f"quota value {value} is out of range")
        with self._lock:
            self._applied[(region, quota_code)] = float(value)

    def set_outcome(
        self,
        region: str | None,
        quota_code: str | None,
        final_status: str,
        after_seconds: float,
    ) -> None:
        """How requests made from now on end, for a quota in a region; ``None`` for either means
        any. The most specific setting wins: region and quota, then quota, then region, then
        neither."""
        if quota_code is not None:
            self._known_quota(quota_code)
        progression = Progression(
            final_status=final_status,
            final_after=float(after_seconds),
            case_opened_after=self.progression.case_opened_after,
        )
        with self._lock:
            self._outcomes[(region, quota_code)] = progression

    def applied_value(self, region: str, quota_code: str) -> float | None:
        """The applied value now, or ``None`` while the quota has its AWS default."""
        with self._lock:
            self._settle(self.clock.now())
            return self._applied.get((region, quota_code))

    def requests(self) -> list[dict[str, Any]]:
        """Every increase request, in every region, as the API describes it plus ``Region``."""
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            return [
                {**self._describe_request(request, now), "Region": request.region}
                for request in self._requests
            ]

    # ------------------------------------------------------------------ the API
    def handle(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        handler = self._operations.get(operation)
        if handler is None:
            raise AwsError(
                "NotImplemented",
                f"the local Service Quotas fake does not implement {operation} "
                f"(it implements {', '.join(sorted(self._operations))})",
                501,
            )
        self._validate(operation, params)
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            response = handler(params, region, now)
        response["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "opsflow-local"}
        return response

    def _get_service_quota(
        self, params: dict[str, Any], region: str, now: datetime
    ) -> dict[str, Any]:
        code = self._quota_code(params)
        value = self._applied.get((region, code))
        if value is None:
            raise _error(
                "NoSuchResourceException",
                f"The quota {code} has no applied value in {region}: it has its AWS default "
                "value (GetAWSDefaultServiceQuota).",
            )
        return {"Quota": self._describe_quota(region, code, value)}

    def _get_default_service_quota(
        self, params: dict[str, Any], region: str, now: datetime
    ) -> dict[str, Any]:
        code = self._quota_code(params)
        return {"Quota": self._describe_quota(region, code, EBS_QUOTAS[code]["default"])}

    def _list_service_quotas(
        self, params: dict[str, Any], region: str, now: datetime
    ) -> dict[str, Any]:
        self._service_code(params["ServiceCode"])
        wanted = params.get("QuotaCode")
        quotas: list[dict[str, Any]] = []
        if params.get("QuotaAppliedAtLevel", "ACCOUNT") in ("ACCOUNT", "ALL"):
            quotas = [
                self._describe_quota(region, code, self._applied[(region, code)])
                for code in EBS_QUOTAS
                if (region, code) in self._applied and wanted in (None, code)
            ]
        return self._page("Quotas", quotas, params)

    def _request_increase(
        self, params: dict[str, Any], region: str, now: datetime
    ) -> dict[str, Any]:
        code = self._quota_code(params)
        desired = float(params["DesiredValue"])
        if not EBS_QUOTAS[code]["adjustable"]:
            raise _error("IllegalArgumentException", f"The quota {code} is not adjustable.")
        if desired > MAX_VALUE:
            raise _error(
                "IllegalArgumentException",
                f"DesiredValue {desired:g} is above the maximum {MAX_VALUE:g}.",
            )
        current = self._applied.get((region, code), EBS_QUOTAS[code]["default"])
        if desired <= current:
            raise _error(
                "IllegalArgumentException",
                f"DesiredValue {desired:g} must be greater than the current value {current:g} "
                f"of quota {code}.",
            )
        previous = [r for r in self._requests if r.region == region and r.quota_code == code]
        for request in previous:
            status, _ = request.status(now)
            if status in OPEN_STATUSES:
                raise _error(
                    "ResourceAlreadyExistsException",
                    f"A request for quota {code} is already open ({request.id}, {status}).",
                )
        seed = f"{self.account}/{region}/{code}/{len(previous)}"
        digest = _digest(seed)
        request = _Request(
            id=digest.hex()[:32] + "".join(_ALPHANUMERIC[b % 62] for b in digest[16:24]),
            case_id=str(1_000_000_000 + int.from_bytes(digest[24:32], "big") % 9_000_000_000),
            region=region,
            quota_code=code,
            desired=desired,
            created=now,
            steps=self._progression_for(region, code).steps(
                bool(params.get("SupportCaseAllowed", True))
            ),
            seq=len(self._requests),
        )
        self._requests.append(request)
        self._settle(now)
        return {"RequestedQuota": self._describe_request(request, now)}

    def _get_requested_change(
        self, params: dict[str, Any], region: str, now: datetime
    ) -> dict[str, Any]:
        request_id = params["RequestId"]
        for request in self._requests:
            if request.id == request_id and request.region == region:
                return {"RequestedQuota": self._describe_request(request, now)}
        raise _error(
            "NoSuchResourceException",
            f"The quota increase request {request_id} does not exist in {region}.",
        )

    def _list_history_by_quota(
        self, params: dict[str, Any], region: str, now: datetime
    ) -> dict[str, Any]:
        code = self._quota_code(params)
        return self._history(params, region, now, lambda r: r.quota_code == code)

    def _list_history(self, params: dict[str, Any], region: str, now: datetime) -> dict[str, Any]:
        if "ServiceCode" in params:
            self._service_code(params["ServiceCode"])
        return self._history(params, region, now, lambda r: True)

    # ------------------------------------------------------------------ helpers
    def _history(
        self,
        params: dict[str, Any],
        region: str,
        now: datetime,
        keep: Callable[[_Request], bool],
    ) -> dict[str, Any]:
        wanted = params.get("Status")
        if wanted is not None and wanted not in REQUEST_STATUSES:
            raise _error(
                "IllegalArgumentException",
                f"Status {wanted!r} is not one of {', '.join(REQUEST_STATUSES)}.",
            )
        level = params.get("QuotaRequestedAtLevel", "ACCOUNT")
        described = [
            self._describe_request(request, now)
            for request in self._requests
            if request.region == region and keep(request) and level in ("ACCOUNT", "ALL")
        ]
        if wanted is not None:
            described = [item for item in described if item["Status"] == wanted]
        return self._page("RequestedQuotas", described, params)

    def _page(
        self, key: str, items: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        size = params.get("MaxResults", DEFAULT_PAGE_SIZE)
        if not 1 <= size <= 100:
            raise _error("IllegalArgumentException", f"MaxResults {size} is not in 1..100.")
        return page(
            key, items, params, DEFAULT_PAGE_SIZE,
            _error("InvalidPaginationTokenException", "Invalid pagination token."),
        )

    def _describe_quota(self, region: str, code: str, value: float) -> dict[str, Any]:
        quota = EBS_QUOTAS[code]
        return {
            "ServiceCode": EBS_SERVICE_CODE,
            "ServiceName": EBS_SERVICE_NAME,
            "QuotaArn": _quota_arn(region, self.account, code),
            "QuotaCode": code,
            "QuotaName": quota["name"],
            "Value": float(value),
            "Unit": quota["unit"],
            "Adjustable": quota["adjustable"],
            "GlobalQuota": False,
            "QuotaAppliedAtLevel": "ACCOUNT",
        }

    def _describe_request(self, request: _Request, now: datetime) -> dict[str, Any]:
        quota = EBS_QUOTAS[request.quota_code]
        status, last_updated = request.status(now)
        described: dict[str, Any] = {"Id": request.id}
        if any(name == "CASE_OPENED" for _, name in request.reached(now)):
            described["CaseId"] = request.case_id
        described.update(
            {
                "ServiceCode": EBS_SERVICE_CODE,
                "ServiceName": EBS_SERVICE_NAME,
                "QuotaCode": request.quota_code,
                "QuotaName": quota["name"],
                "DesiredValue": request.desired,
                "Status": status,
                "Created": request.created,
                "LastUpdated": last_updated,
                "Requester": json.dumps(
                    {"accountId": self.account, "callerArn": f"arn:aws:iam::{self.account}:root"},
                    separators=(",", ":"),
                ),
                "QuotaArn": _quota_arn(request.region, self.account, request.quota_code),
                "GlobalQuota": False,
                "Unit": quota["unit"],
                "QuotaRequestedAtLevel": "ACCOUNT",
            }
        )
        return described

    def _settle(self, now: datetime) -> None:
        """Apply, in the order they were approved, the approvals the clock has reached."""
        due = [
            (approved, request.seq, request)
            for request in self._requests
            if not request.applied
            and (approved := request.approved_at()) is not None
            and approved <= now
        ]
        for _, _, request in sorted(due, key=lambda item: (item[0], item[1])):
            self._applied[(request.region, request.quota_code)] = request.desired
            request.applied = True

    def _progression_for(self, region: str, code: str) -> Progression:
        for key in ((region, code), (None, code), (region, None), (None, None)):
            if key in self._outcomes:
                return self._outcomes[key]
        return self.progression

    def _validate(self, operation: str, params: dict[str, Any]) -> None:
        shape = service_model().operation_model(operation).input_shape
        if shape is None:
            return
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise _error(
                "IllegalArgumentException", "; ".join(report.generate_report().splitlines())
            )

    @staticmethod
    def _service_code(code: str) -> None:
        if code != EBS_SERVICE_CODE:
            raise _error(
                "NoSuchResourceException",
                f"The request failed because the specified service does not exist: {code!r} "
                f"(the local Service Quotas fake knows {EBS_SERVICE_CODE!r}).",
            )

    def _quota_code(self, params: dict[str, Any]) -> str:
        self._service_code(params["ServiceCode"])
        code = str(params["QuotaCode"])
        if code not in EBS_QUOTAS:
            raise _error(
                "NoSuchResourceException",
                f"The request failed because the specified quota does not exist: {code!r}.",
            )
        return code

    @staticmethod
    def _known_quota(code: str) -> None:
        if code not in EBS_QUOTAS:
            raise ValueError(f"unknown EBS quota code {code!r} (known: {', '.join(EBS_QUOTAS)})")
