"""What a person reads: a live, phase-grouped trace, the notifications, the effects, a verdict.
And what a script reads: the JSON report (DESIGN.md's contract)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

from opsflow.engine.runner import Execution

PHASES = ("Detect", "Notify", "Act", "Verify", "Rollback")
_COLOURS = {
    "Detect": "36",
    "Notify": "35",
    "Act": "33",
    "Verify": "34",
    "Rollback": "31",
    "End": "1",
}


def phase_of(state: str) -> str:
    head = state.split(":", 1)[0]
    return head if head in PHASES else "End"


class Trace:
    """Prints states as the interpreter enters them, grouped by phase, with virtual time."""

    def __init__(self, out: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self.start: datetime | None = None
        self.phase: str | None = None
        self.depth = 0

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def __call__(self, event: dict[str, Any]) -> None:
        stamp = event["timestamp"]
        if isinstance(stamp, str):
            stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if self.start is None:
            self.start = stamp
        elapsed = (stamp - self.start).total_seconds()
        kind = event["type"]
        kind = getattr(kind, "value", kind)
        if kind in ("TaskFailed", "LambdaFunctionFailed"):
            details = event.get("taskFailedEventDetails") or event.get(
                "lambdaFunctionFailedEventDetails", {}
            )
            line = f"{'':11}{'':8}  {'  ' * self.depth}! {details.get('error', '')}"
            self.out.write(self.paint(line, "31") + "\n")
            return
        if kind == "MapIterationStarted":
            self.depth = 1
        if kind in ("MapStateExited", "MapStateSucceeded"):
            self.depth = 0
        details = event.get("stateEnteredEventDetails")
        if not details:
            return
        name = details["name"]
        phase = phase_of(name)
        label = name.split(": ", 1)[1] if phase != "End" else name
        if phase != self.phase and self.depth == 0:
            if self.phase is not None:
                self.out.write(self.paint(f"  {'':10}{'·' * 40}", "2") + "\n")
            self.phase = phase
        shown = self.paint(f"{phase:<8}", _COLOURS[phase])
        self.out.write(f"  +{elapsed:7.1f}s  {shown}  {'  ' * self.depth}{label}\n")
        self.out.flush()


def verdict(execution: Execution) -> str:
    minutes = execution.virtual_seconds / 60
    timing = f"{execution.transitions} transitions, {execution.virtual_seconds:.0f} s virtual"
    if minutes >= 2:
        timing += f" ({minutes:.1f} min)"
    if execution.status == "SUCCEEDED":
        return f"{execution.outcome.upper() if execution.outcome else 'SUCCEEDED'}: " + (
            f"{(execution.output or {}).get('summary', '')} [{timing}]"
        )
    return f"{execution.status} {execution.error}: {execution.cause} [{timing}]"


def print_summary(execution: Execution, out: TextIO = sys.stdout, colour: bool = False) -> None:
    if execution.notifications:
        first = execution.notifications[0]
        out.write("\n  First notification, in full\n")
        for line in first["message"].splitlines():
            out.write(f"    | {line}\n")
        out.write("\n  Notifications\n")
        for n in execution.notifications:
            out.write(f"    → {n['subject']}\n")
            out.write(f"      sms: {n['sms']}\n")
    if execution.effects:
        out.write("\n  Effects (diff of the emulated account)\n")
        for e in execution.effects:
            out.write(
                f"    {e['resource']:<44} {e['region']:<10} {e['field']:<34} "
                f"{_short(e['before'])} → {_short(e['after'])}\n"
            )
    else:
        out.write("\n  Effects: none, the account is unchanged\n")
    line = verdict(execution)
    ok = execution.status == "SUCCEEDED"
    if colour:
        line = f"\033[{'32' if ok else '31'};1m{line}\033[0m"
    out.write(f"\n  {line}\n")


def _short(value: Any) -> str:
    text = "—" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def json_report(executions: list[Execution], matched: list[dict[str, str]] | None) -> dict[str, Any]:
    report: dict[str, Any] = {}
    if matched is not None:
        report["matched"] = matched
    report["executions"] = [e.to_report() for e in executions]
    return report
