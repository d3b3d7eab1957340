"""A small on-disk cache for derived data that is costly to compute and depends only on its
inputs (the translated template, slices of the IAM reference): each entry is keyed by a hash of
everything it was derived from, so a changed input or an upgraded package never reads a stale
entry. ``OPSFLOW_CACHE_DIR`` moves it; deleting the folder is always safe."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsflow.template import ROOT

DIR = Path(os.environ.get("OPSFLOW_CACHE_DIR") or ROOT / ".opsflow" / "cache")


def key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def cached_json(name: str, digest: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON value, stored as ``DIR/name-digest.json``; written atomically, so
    concurrent processes (test workers) never read a half-written entry."""
    path = DIR / f"{name}-{digest}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    value = compute()
    try:
        DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=DIR, delete=False, suffix=".tmp") as handle:
            json.dump(value, handle)
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only checkout still works, only slower
    return value


def cached_blob(name: str, digest: str, compute: Callable[[], bytes]) -> bytes:
    """``compute()``'s bytes, stored as ``DIR/name-digest.bin`` (atomically, as
    :func:`cached_json`). Entries are read only from this project's own cache folder, which
    only this code writes."""
    path = DIR / f"{name}-{digest}.bin"
    try:
        return path.read_bytes()
    except OSError:
        pass
    value = compute()
    try:
        DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=DIR, delete=False, suffix=".tmp") as handle:
            handle.write(value)
        os.replace(handle.name, path)
    except OSError:
        pass
    return value
