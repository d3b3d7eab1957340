"""Canary Lambda: time a full GET of each region's endpoint, publish ``CanaryResponseTime``.

Every run measures all regions at once (one thread each) and publishes one datapoint per region
in milliseconds, namespace ``opsflow/Canary``, dimension ``Region``. Each region's
anomaly-detection alarm watches its own series.

A probe that fails (connection refused, DNS, TLS, an HTTP status of 400 or more) or takes longer
than the timeout is published as the timeout itself (``TIMEOUT_SECONDS`` × 1000 ms). A region that
cannot be reached is the worst kind of slow: recording nothing would leave the alarm with missing
data (``INSUFFICIENT_DATA``, or the last state kept), while the timeout value puts the datapoint
far above the band so the alarm sees it. ``handler`` returns ``None`` for those regions so the
caller can still tell a failure from a slow answer.

Configuration (environment): ``ENDPOINTS``, a JSON object of region → http(s) URL, and
``TIMEOUT_SECONDS`` (default 5). Standard library, boto3 and the Powertools layer (structured
logs with the schedule event's ID as correlation ID, X-Ray).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import boto3
from aws_lambda_powertools import Logger
from runbook_kit import telemetry

NAMESPACE = "opsflow/Canary"
METRIC_NAME = "CanaryResponseTime"
DIMENSION = "Region"
UNIT = "Milliseconds"
DEFAULT_TIMEOUT = 5.0
MAX_METRICS_PER_CALL = 1000
USER_AGENT = "opsflow-canary/1.0"

Fetch = Callable[[str, float], float]
"""``fetch(url, timeout_seconds)`` → milliseconds to the full response; raises on failure."""

logger = Logger(service="opsflow-canary")


def fetch_url(url: str, timeout: float) -> float:
    """GET ``url`` and read the whole body: milliseconds from the request to the last byte.

    urllib's timeout bounds each socket operation, not the whole request, so a slow trickle is
    caught afterwards: longer than ``timeout`` in total raises ``TimeoutError``.
    """
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Cache-Control": "no-cache"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while response.read(65536):
            pass
    elapsed = time.perf_counter() - started
    if elapsed > timeout:
        raise TimeoutError(f"{url} took {elapsed:.3f} s, more than the {timeout} s timeout")
    return elapsed * 1000.0


def measure(
    endpoints: Mapping[str, str], fetch: Fetch | None = None, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, float | None]:
    """Response time in ms of each region's endpoint; ``None`` for a failure or a timeout."""
    _check_endpoints(endpoints)
    _check_timeout(timeout)
    probe = fetch or fetch_url

    def one(region: str) -> float | None:
        url = endpoints[region]
        try:
            ms = float(probe(url, timeout))
        except Exception as error:  # any failure of the probe is a failed measurement
            logger.warning("canary %s %s failed: %s: %s", region, url, type(error).__name__, error)
            return None
        if not math.isfinite(ms) or ms < 0 or ms > timeout * 1000.0:
            logger.warning("canary %s %s: %s ms is over the %s s timeout", region, url, ms, timeout)
            return None
        return round(ms, 3)

    regions = list(endpoints)
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        return dict(zip(regions, pool.map(one, regions), strict=True))


def metric_data(
    measurements: Mapping[str, float | None],
    timestamp: datetime,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[dict[str, Any]]:
    """PutMetricData ``MetricData`` entries, one per region; a failed probe counts as the timeout."""
    _check_timeout(timeout)
    return [
        {
            "MetricName": METRIC_NAME,
            "Dimensions": [{"Name": DIMENSION, "Value": region}],
            "Timestamp": timestamp,
            "Value": float(ms) if ms is not None else timeout * 1000.0,
            "Unit": UNIT,
        }
        for region, ms in measurements.items()
    ]


def publish(cloudwatch: Any, data: Sequence[Mapping[str, Any]]) -> int:
    """Put ``data`` in the canary namespace, at most 1000 entries a call; returns the count."""
    for first in range(0, len(data), MAX_METRICS_PER_CALL):
        cloudwatch.put_metric_data(
            Namespace=NAMESPACE, MetricData=list(data[first : first + MAX_METRICS_PER_CALL])
        )
    return len(data)


@telemetry.handler(logger, telemetry.SCHEDULE)
def handler(event: Any, context: Any) -> dict[str, float | None]:
    """Scheduled entry point: measure every region, publish, return region → ms (or ``None``)."""
    endpoints = _endpoints_from_env(os.environ.get("ENDPOINTS"))
    timeout = _timeout_from_env(os.environ.get("TIMEOUT_SECONDS"))
    measurements = measure(endpoints, timeout=timeout)
    publish(boto3.client("cloudwatch"), metric_data(measurements, datetime.now(UTC), timeout))
    logger.info("canary %s", json.dumps(measurements, sort_keys=True))
    return measurements


def _endpoints_from_env(raw: str | None) -> dict[str, str]:
    if not raw or not raw.strip():
        raise ValueError(
            "ENDPOINTS is not set: a JSON object of region -> URL, e.g. "
            '{"us-east-1": "https://use1.example.com/health"}'
        )
    try:
        endpoints = json.loads(raw)
    except ValueError:
        raise ValueError(f"ENDPOINTS is not valid JSON: {raw!r}") from None
    _check_endpoints(endpoints)
    return dict(endpoints)


def _timeout_from_env(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        timeout = float(raw)
    except ValueError:
        raise ValueError(f"TIMEOUT_SECONDS must be a number of seconds, got {raw!r}") from None
    _check_timeout(timeout)
    return timeout


def _check_endpoints(endpoints: Any) -> None:
    if not isinstance(endpoints, Mapping) or not endpoints:
        raise ValueError(
            f"endpoints must be a non-empty object of region -> URL, got {endpoints!r}"
        )
    for region, url in endpoints.items():
        if not isinstance(region, str) or not region.strip():
            raise ValueError(f"endpoint region must be a non-empty string, got {region!r}")
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"endpoint of {region} must be an http(s) URL, got {url!r}")


def _check_timeout(timeout: Any) -> None:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"the timeout must be a positive number of seconds, got {timeout!r}")
