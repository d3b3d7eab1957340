"""Speed, not a defect: botocore reads its service models (JSON, some gzipped, parsed into
OrderedDicts) afresh in every process, about a second of a local run for EC2, Step Functions
and the rest. The parsed form of each large model file is kept on disk, keyed by the file's path,
size and modification time and by botocore's version, so a changed or upgraded model file is
always read again. Deleting the cache is always safe."""

from __future__ import annotations

import gc
import marshal
import os
import tempfile
import threading
from typing import Any

import botocore
import botocore.loaders

from opsflow.engine import cache

MIN_BYTES = 64 * 1024
"""Files smaller than this parse faster than a cache entry is found."""
_installed = False
_lock = threading.Lock()


def _entry(full_path: str, stat: os.stat_result) -> str:
    digest = cache.key(full_path, str(stat.st_size), str(stat.st_mtime_ns), botocore.__version__)
    return str(cache.DIR / "botocore" / f"{digest}.marshal")


def _plain(value: Any) -> Any:
    """botocore parses models into OrderedDicts; plain dicts keep the same order (Python 3.7+)
    and marshal several times faster than either JSON or pickled OrderedDicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def install() -> None:
    """Route botocore's model loading through the cache (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        original = botocore.loaders.JSONFileLoader._load_file  # type: ignore[attr-defined]

        def _load_file(self: Any, full_path: str, open_method: Any) -> Any:
            try:
                stat = os.stat(full_path)
            except OSError:
                return None
            if stat.st_size < MIN_BYTES:
                return original(self, full_path, open_method)
            entry = _entry(full_path, stat)
            try:
                with open(entry, "rb") as handle:
                    blob = handle.read()
                # Building a large model allocates millions of objects: the cyclic collector
                # would walk the heap again and again meanwhile, for nothing to collect.
                paused = gc.isenabled()
                gc.disable()
                try:
                    return marshal.loads(blob)
                finally:
                    if paused:
                        gc.enable()
            except (OSError, EOFError, ValueError, TypeError):
                pass
            data = _plain(original(self, full_path, open_method))
            try:
                os.makedirs(os.path.dirname(entry), exist_ok=True)
                with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(entry), delete=False) as out:
                    marshal.dump(data, out)
                os.replace(out.name, entry)
            except OSError:
                pass  # a read-only checkout still works, only slower
            return data

        botocore.loaders.JSONFileLoader._load_file = _load_file  # type: ignore[attr-defined]
        _installed = True
