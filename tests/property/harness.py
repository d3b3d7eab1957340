"""What every run of a runbook must be, whatever it was given; and the tally of what was seen.

:func:`problems` judges one execution: it ended in a state the runbook chose, no Lambda task
crashed (every Lambda error is one of the typed errors the functions raise on purpose), a
rejected event changed nothing in the account but the delivery record, a run that acted or
escalated told a person, and no instance was touched that the event names only by an ARN of
another account or partition.

:data:`KNOWN` holds the defects found in code this suite may not change; each has a strict
``xfail`` test that reproduces it (in ``test_findings.py``). A run whose only problem is
a known defect's is tallied under that defect instead of failing the property; when the defect
is fixed its xfail test passes, fails as strict, and the entry goes.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.property.strategies import HOME

ROOT = Path(__file__).resolve().parents[2]
STATS_DIR = Path(os.environ.get("OPSFLOW_FUZZ_STATS") or ROOT / ".opsflow" / "fuzz")
"""Where each test process leaves its tally (``make fuzz`` and ``make test`` print the sum)."""

SUCCEEDED_OUTCOMES = {"mitigated", "no-action", "dry-run"}
FAILED_ERRORS = {"Runbook.InvalidEvent", "Runbook.Escalated", "Runbook.RolledBack"}
FUNCTION_MODULES = (
    "runbook_kit.errors", "health_abuse.quarantine", "health_abuse.plan", "region_failover.app",
    "region_failover.traffic", "ebs_quota.app", "ebs_quota.quotas", "approval.app",
)


def typed_errors() -> set[str]:
    """The class names of every error the functions raise on purpose (``RunbookError`` and its
    subclasses): the only Lambda errors a run may show. Anything else is a crash."""
    for module in FUNCTION_MODULES:
        importlib.import_module(module)
    from runbook_kit.errors import RunbookError

    found, pending = set(), [RunbookError]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending += cls.__subclasses__()
    return found


def lambda_failures(execution: Any) -> list[tuple[str, str]]:
    """(error, message) of every failed Lambda invocation in the run's history."""
    found = []
    for event in execution.history:
        details = event.get("lambdaFunctionFailedEventDetails")
        if details:
            cause = details.get("cause") or ""
            try:
                cause = json.loads(cause).get("errorMessage", cause)
            except (ValueError, AttributeError):
                pass
            found.append((str(details.get("error")), str(cause)[:300]))
    return found


def delivery_record(effect: dict[str, Any]) -> bool:
    """The skeleton's record of a delivery (``Detect: Record delivery``), the one write a run
    that does nothing else legitimately makes."""
    return "DedupeTable/" in str(effect["resource"]) and effect["field"] == "item"


_OWN_ID = re.compile(r"^\s*(i-(?:[0-9a-f]{8}|[0-9a-f]{17}))\s*$")
_OWN_ARN = re.compile(
    rf"^\s*arn:aws:ec2:[a-z]{{2}}(?:-[a-z]+)+-\d:(?:{HOME})?:instance/(i-(?:[0-9a-f]{{8}}|[0-9a-f]{{17}}))\s*$"
)
_ANY_ARN = re.compile(r"^\s*arn:([^:]*):ec2:[^:]*:([^:]*):instance/(i-[0-9a-f]+)\s*$")


def strings_in(value: Any) -> list[str]:
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
    return found


def own_names(event: Any) -> set[str]:
    """Instance IDs the event names as this account's: bare IDs, or ARNs of partition ``aws``
    with this account (or none)."""
    names = set()
    for text in strings_in(event):
        match = _OWN_ID.match(text) or _OWN_ARN.match(text)
        if match:
            names.add(match.group(1))
    return names


def foreign_names(event: Any) -> dict[str, str]:
    """Instance IDs the event names by an ARN of another account or partition: id → why."""
    found = {}
    for text in strings_in(event):
        match = _ANY_ARN.match(text)
        if match and not _OWN_ARN.match(text):
            partition, account, instance = match.groups()
            why = f"partition {partition}" if partition != "aws" else f"account {account}"
            found.setdefault(instance, why)
    return found


def touched_instances(effects: list[dict[str, Any]]) -> set[str]:
    """Instances that existed before the run and whose power state or groups it changed (an
    instance launched during the run, such as an Auto Scaling group's replacement for a member
    taken out of service, was not acted on)."""
    launched = {
        str(e["resource"]) for e in effects if e["field"] == "exists" and e["before"] == "absent"
    }
    return {
        str(e["resource"])
        for e in effects
        if str(e["resource"]).startswith("i-")
        and (e["field"] == "state" or e["field"].startswith("groups:"))
    } - launched


def foreign_event(scenario: str, event: Any) -> str | None:
    """Why the event says it is another account's (its ``account``, a Health event's
    ``detail.affectedAccount``, or, for the runbooks that read them, ARNs in ``resources`` of
    another account or partition), or None."""
    if not isinstance(event, dict):
        return None
    def other(account: Any) -> bool:  # blanks around this account's ID do not make another's
        return account not in (None, "") and str(account).strip() != HOME

    account = event.get("account")
    if other(account):
        return f"account {account!r}"
    detail = event.get("detail")
    if scenario == "ebs-quota-forecast" and isinstance(detail, dict):
        affected = detail.get("affectedAccount")
        if other(affected):
            return f"detail.affectedAccount {affected!r}"
    resources = event.get("resources")
    if scenario != "health-abuse" and isinstance(resources, list):
        for arn in resources:
            parts = arn.split(":") if isinstance(arn, str) else []
            if len(parts) >= 6 and parts[0] == "arn" and (
                parts[1] != "aws" or (re.fullmatch(r"\d{12}", parts[4]) and parts[4] != HOME)
            ):
                return f"resource {arn}"
    return None


@dataclass
class Problem:
    kind: str
    detail: str


def problems(scenario: str, event: Any, execution: Any, allowed: set[str]) -> list[Problem]:
    """Everything wrong with how a run ended (empty when it ended as a runbook must)."""
    found: list[Problem] = []
    status, error, outcome = execution.status, execution.error, execution.outcome
    if status == "SUCCEEDED":
        if outcome not in SUCCEEDED_OUTCOMES:
            found.append(Problem("unhandled-end", f"SUCCEEDED with outcome {outcome!r}"))
    elif status == "FAILED" and error in FAILED_ERRORS:
        if not (execution.cause or "").strip():
            found.append(Problem("unhandled-end", f"{error} without a cause"))
    else:
        found.append(Problem("unhandled-end", f"{status} {error}: {(execution.cause or '')[:300]}"))
    for name, message in lambda_failures(execution):
        if name not in allowed and not name.startswith("States."):  # those end the run: above
            found.append(Problem("lambda-crash", f"{name}: {message}"))
    rejected = error == "Runbook.InvalidEvent" or outcome == "no-action"
    changed = [e for e in execution.effects if not delivery_record(e)]
    if rejected and changed:
        found.append(Problem("effects-on-rejected", json.dumps(changed[:4], default=str)))
    duplicate = isinstance(execution.output, dict) and execution.output.get("reason") == (
        "duplicate-delivery"
    )
    if error != "Runbook.InvalidEvent" and not duplicate and not execution.notifications:
        found.append(Problem("silent", f"{status} {outcome or error} and no notification sent"))
    foreign_by = foreign_event(scenario, event)
    if foreign_by and changed:
        found.append(Problem("acted-on-foreign", f"the event is for {foreign_by}, and the run "
                             f"changed {json.dumps(changed[:3], default=str)}"))
    if scenario == "health-abuse":
        foreign = foreign_names(event)
        for instance in sorted(touched_instances(execution.effects) - own_names(event)):
            why = foreign.get(instance, "not named at all")
            found.append(Problem("acted-on-foreign", f"{instance} changed; the event names it "
                                 f"only as {why}"))
    return found


# ----------------------------------------------------------------------------- known defects
@dataclass(frozen=True)
class Known:
    id: str
    file: str
    finding: str
    test: str
    """The strict-xfail test in ``test_known_defects.py`` that reproduces it."""

    def matches(self, scenario: str, problem: Problem) -> bool:
        return bool(KNOWN_SIGNATURES[self.id](scenario, problem))


KNOWN: list[Known] = []
"""None today: every defect the property tests found is fixed, with its test in
``test_findings.py``."""
KNOWN_SIGNATURES: dict[str, Callable[[str, Problem], bool]] = {}


def known_defect(scenario: str, problem: Problem) -> Known | None:
    return next((k for k in KNOWN if k.matches(scenario, problem)), None)


# ----------------------------------------------------------------------------- the tally
@dataclass
class Tally:
    generated: Counter[str] = field(default_factory=Counter)
    """Events generated, by test kind and runbook (``parse:health-abuse``, ``run:...``)."""
    runs: Counter[str] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    known: Counter[str] = field(default_factory=Counter)
    cli_exits: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, kind: str, scenario: str) -> None:
        with self.lock:
            self.generated[f"{kind}:{scenario}"] += 1

    def run(self, scenario: str, execution: Any, found: list[Problem]) -> None:
        with self.lock:
            self.runs[scenario] += 1
            self.ends[f"{scenario} {execution.status} {execution.outcome or execution.error}"] += 1
            for problem in found:
                known = known_defect(scenario, problem)
                if known:
                    self.known[known.id] += 1
                else:
                    self.problems[problem.kind] += 1

    def dump(self, run: str, worker: str, profile: str) -> None:
        """Leave this process's tally for the summary: one file per worker of session ``run``
        (tallies of other sessions older than a day are removed)."""
        STATS_DIR.mkdir(parents=True, exist_ok=True)
        for old in STATS_DIR.glob("*.json"):
            if not old.name.startswith(run) and time.time() - old.stat().st_mtime > 86400:
                old.unlink(missing_ok=True)
        data = {key: dict(getattr(self, key)) for key in
                ("generated", "runs", "ends", "problems", "known", "cli_exits")}
        data["profile"] = {profile: 1}
        (STATS_DIR / f"{run}-{worker}.json").write_text(json.dumps(data, indent=1),
                                                         encoding="utf-8")


TALLY = Tally()


def summary(run: str | None = None) -> list[str]:
    """The tally of every test process of session ``run`` (default: the latest session that
    left one), as lines for the terminal."""
    files = sorted(STATS_DIR.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if run is None and files:
        run = files[-1].name.rsplit("-", 1)[0]
    total: dict[str, Counter[str]] = {}
    for path in files:
        if path.name.rsplit("-", 1)[0] != run:
            continue
        for key, values in json.loads(path.read_text(encoding="utf-8")).items():
            total.setdefault(key, Counter()).update(values)
    if not total:
        return []
    generated = total.get("generated", Counter())
    runs = total.get("runs", Counter())
    problems_seen = total.get("problems", Counter())
    lines = [
        "profile: " + ", ".join(sorted(total.get("profile", Counter()))),
        f"events generated: {sum(generated.values())} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(generated.items())) + ")",
        f"runs: {sum(runs.values())} (" + ", ".join(f"{k} {v}" for k, v in sorted(runs.items()))
        + ")",
        "ends: " + ", ".join(f"{k}: {v}" for k, v in sorted(total.get("ends", Counter()).items())),
        f"unhandled ends: {problems_seen.get('unhandled-end', 0)}, Lambda crashes: "
        f"{problems_seen.get('lambda-crash', 0)}, effects on rejected input: "
        f"{problems_seen.get('effects-on-rejected', 0)}, silent ends: "
        f"{problems_seen.get('silent', 0)}, acted on foreign resources: "
        f"{problems_seen.get('acted-on-foreign', 0)}",
        "known defects met (xfailed): " + (", ".join(
            f"{k} {v}" for k, v in sorted(total.get("known", Counter()).items())) or "none"),
        "CLI exits: " + (", ".join(
            f"{k}: {v}" for k, v in sorted(total.get("cli_exits", Counter()).items())) or "none"),
    ]
    return lines



if __name__ == "__main__":  # python -m tests.property.harness: a session's tally
    found = summary(os.environ.get("OPSFLOW_FUZZ_RUN") or None)
    print("\n".join(["== opsflow property tests ==", *found] if found else
                     ["opsflow property tests: no tally (no property test ran)"]))
