"""Where a local execution's time goes: a sampling profiler over every thread.

moto's interpreter runs an execution in threads of its own (one per execution, one per Map
iteration), which a tracing profiler of the calling thread cannot see; this samples the stack of
every thread every millisecond. Each busy sample is charged twice: to the **code** running (the
innermost frame of a known component; a stdlib frame goes to its caller's), and to **on whose
behalf** it runs (the innermost of: a Lambda handler, opsflow's engine, moto's interpreter). A
thread waiting (an Event, a lock, a queue) is idle and not counted.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from types import FrameType

CODE = [
    ("moto/stepfunctions/parser", "moto's ASL interpreter"),
    ("antlr4", "moto's ASL interpreter"),
    ("jsonpath", "moto's ASL interpreter"),
    ("moto/core", "moto's dispatch and response serialisation"),
    ("jinja2", "moto's dispatch and response serialisation"),
    ("xmltodict", "moto's dispatch and response serialisation"),
    ("moto/", "moto's service models"),
    ("botocore/", "botocore (clients, request serialising, response parsing, retries)"),
    ("boto3/", "botocore (clients, request serialising, response parsing, retries)"),
    ("aws_lambda_powertools/", "Powertools (Logger, Tracer)"),
    ("opsflow/engine/iam/", "opsflow: IAM evaluation"),
    ("opsflow/", "opsflow: engine (boundary, cures, observe, limits)"),
    ("functions/", "the runbook's Lambda handlers"),
]
BEHALF = [
    ("functions/", "a Lambda handler (its own code and its AWS calls)"),
    ("opsflow/engine/observe", "opsflow: the before/after diff"),
    ("opsflow/engine/runner", "opsflow: the engine's own calls (start, history, describe)"),
    ("moto/stepfunctions/parser", "moto's interpreter (states, service integrations)"),
]
IDLE = {"wait", "_wait_for_tstate_lock", "acquire", "select", "get", "sleep"}
INTERVAL = 0.001


def _path(frame: FrameType) -> str:
    return frame.f_code.co_filename.replace("\\", "/")


def _charge(frame: FrameType | None) -> tuple[str, str] | None:
    """(code, on whose behalf) for a thread's stack; None when it waits."""
    if frame is None:
        return None
    name, path = frame.f_code.co_name, _path(frame)
    if name in IDLE and ("threading" in path or "queue" in path or "selectors" in path):
        return None
    code = behalf = None
    while frame is not None:
        path = _path(frame)
        if code is None:
            code = next((label for marker, label in CODE if marker in path), None)
        if behalf is None:
            behalf = next((label for marker, label in BEHALF if marker in path), None)
        if code and behalf:
            break
        frame = frame.f_back
    return code or "other (interpreter, stdlib)", behalf or "other (bench, threads starting)"


class Sampler:
    def __init__(self) -> None:
        self.code: Counter[str] = Counter()
        self.behalf: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._interval = sys.getswitchinterval()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                charged = _charge(frame)
                if charged is not None:
                    self.code[charged[0]] += 1
                    self.behalf[charged[1]] += 1
            time.sleep(INTERVAL)

    def __enter__(self) -> Sampler:
        sys.setswitchinterval(INTERVAL / 2)  # let the sampler in every millisecond
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._interval)


def print_profile(title: str, sampler: Sampler) -> None:
    total = sum(sampler.code.values()) or 1
    print(f"\n{title} ({total} busy samples, 1 ms apart, every thread)")
    for heading, counts in (("code running", sampler.code), ("on whose behalf", sampler.behalf)):
        print(f"  {heading}:")
        for name, count in counts.most_common():
            print(f"    {count / total:6.1%}  {name}")
