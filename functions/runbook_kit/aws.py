"""AWS clients for Lambda code: one place that creates them, so tests and the local engine can
inject their own and every client gets the same retry settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

ClientFactory = Callable[[str, str], Any]
"""``factory(service, region) -> boto3 client``."""

# Step Functions retries throttling with backoff at the state level, so the SDK retries little.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=20
)
_lock = threading.Lock()
_cache: dict[tuple[str, ...], Any] = {}


_session: boto3.session.Session | None = None


def client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client for ``service`` in ``region`` (thread-safe); ``endpoint_url`` for
    APIs reached at endpoints of their own (an ARC cluster's regional endpoints).

    One session for the process, so service models are loaded once; clients are created under
    a lock because a session is not thread-safe, and used freely after (clients are).
    """
    global _session
    key = (service, region) if endpoint_url is None else (service, region, endpoint_url)
    with _lock:
        if key not in _cache:
            if _session is None:
                _session = boto3.session.Session()
            # boto3-stubs overloads client() on literal service names only; ours is chosen at run time.
            _cache[key] = _session.client(  # type: ignore[call-overload]
                service, region_name=region, config=_CONFIG, endpoint_url=endpoint_url
            )
        return _cache[key]


def reset_clients() -> None:
    """Forget cached clients (the local engine calls this when it builds a new world)."""
    with _lock:
        _cache.clear()
