"""Speed, not a defect: botocore reads its service models (JSON, some gzipped, parsed into
OrderedDicts) afresh in every process, about a second of a local run for EC2, Step Functions
and the rest. The parsed form of each large model file is kept on disk, keyed by the file's path,
size and modification time and by botocore's version, so a changed or upgraded model file is
always read again. moto's data files (instance types and their offerings in every region, read
when moto's EC2 is imported) are kept the same way, keyed by moto's version. Deleting the cache
is always safe."""

from __future__ import annotations

import functools
import gc
import marshal
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore
import botocore.loaders
import botocore.session

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
            return _cached(
                _entry(full_path, stat), lambda: _plain(original(self, full_path, open_method))
            )

        botocore.loaders.JSONFileLoader._load_file = _load_file  # type: ignore[attr-defined]
        _cache_moto_resources()
        _share_moto_loader()
        _installed = True


def _cached(entry: str, compute: Callable[[], Any]) -> Any:
    """The marshalled value at ``entry``, else ``compute()``'s, stored there
    (:func:`opsflow.engine.cache.stored`)."""
    path = Path(entry)
    blob = cache.stored(path, lambda: marshal.dumps(compute()))
    # Building a large value allocates millions of objects: the cyclic collector would walk the
    # heap again and again meanwhile, for nothing to collect.
    paused = gc.isenabled()
    gc.disable()
    try:
        return marshal.loads(blob)
    except (EOFError, ValueError, TypeError):  # a damaged entry: compute again, and replace it
        path.unlink(missing_ok=True)
        return marshal.loads(cache.stored(path, lambda: marshal.dumps(compute())))
    finally:
        if paused:
            gc.enable()


def _cache_moto_resources() -> None:
    """moto's JSON data files through the cache (they are part of moto's release, so moto's
    version and the file's name identify them). Installed before moto's EC2 is imported, which
    binds ``load_resource`` by name."""
    import moto
    from moto.utilities import utils

    original = utils.load_resource

    def load_resource(resource: str) -> Any:
        digest = cache.key("moto-resource", moto.__version__, resource)
        return _cached(str(cache.DIR / "moto" / f"{digest}.marshal"),
                       lambda: _plain(original(resource)))

    load_resource.original = original  # type: ignore[attr-defined]
    utils.load_resource = load_resource


def _share_moto_loader() -> None:
    """moto makes a new botocore loader for each service model it reads
    (``moto.core.utils._load_service_model``), and each new loader lists every service botocore
    and moto have, one directory stat at a time, before it finds the model: about 50 ms per
    service a process uses (10 ms with one loader). One loader serves them all; a loader keeps
    what it found (``instance_cache``), and moto keeps each model it reads itself
    (``get_service_model``, ``get_pagination_model``)."""
    from moto.core import loaders, utils

    utils.create_loader = functools.cache(loaders.create_loader)  # type: ignore[assignment]


@functools.cache
def session() -> botocore.session.Session:
    """One botocore session for the engine's own reading of service models (the fakes' shapes,
    fault specifications, Lambda's modelled errors): each new session lists every service again
    and reads its models afresh."""
    return botocore.session.get_session()
