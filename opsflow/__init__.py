"""opsflow: cloud-operations runbooks as code, rehearsed on an embedded AWS emulation."""

import gc

GC_THRESHOLD = (100_000, 50, 100)
"""Generation thresholds for processes that rehearse: moto and botocore allocate millions of
short-lived containers, and Python's default (700 allocations per young collection) spends a
fifth of a local run's CPU in the cycle collector. Memory stays bounded (a young collection
still runs every 100,000 allocations)."""


def tune_gc() -> None:
    """Collect cycles less often in this process (see :data:`GC_THRESHOLD`)."""
    gc.set_threshold(*GC_THRESHOLD)
