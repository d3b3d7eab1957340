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


def stored(path: Path, compute: Callable[[], bytes]) -> bytes:
    """The bytes at ``path``, else ``compute()``'s, stored there atomically (a temporary file
    renamed into place), so concurrent processes (test workers) never read a half-written
    entry. A read-only checkout still works, only slower. Entries are read only from this
    project's own cache folder, which only this code writes."""
    try:
        return path.read_bytes()
    except OSError:
        pass
    value = compute()
    put(path, value)
    return value


def put(path: Path, value: bytes) -> None:
    """Write ``value`` at ``path`` atomically (see :func:`stored`); a folder that cannot be
    written is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as out:
            out.write(value)
        os.replace(out.name, path)
    except OSError:
        pass


def cached_json(name: str, digest: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON value, stored as ``DIR/name-digest.json`` (see :func:`stored`)."""
    path = DIR / f"{name}-{digest}.json"
    blob = stored(path, lambda: json.dumps(compute()).encode("utf-8"))
    try:
        return json.loads(blob)
    except ValueError:  # a damaged entry: compute again, and replace it
        path.unlink(missing_ok=True)
        return json.loads(stored(path, lambda: json.dumps(compute()).encode("utf-8")))


def cached_blob(name: str, digest: str, compute: Callable[[], bytes]) -> bytes:
    """``compute()``'s bytes, stored as ``DIR/name-digest.bin`` (see :func:`stored`)."""
    return stored(DIR / f"{name}-{digest}.bin", compute)
