"""``opsflow view``: one execution as the Step Functions console shows it, in a single HTML file.

The page holds everything it needs (no network to open it): the state machine's graph, laid out
by ELK (``elkjs`` from npm, inlined) and coloured by what the execution history says each state
did; a panel per state (input, output, error and cause, virtual timestamps, the AWS calls it made
and the effects on the account); the event table in ``GetExecutionHistory`` form; the
notifications sent; the verdict.

The same history and definition come from a saved local run (``.opsflow/runs/RUN_ID.json``) or
from a real execution (``DescribeExecution``, ``DescribeStateMachineForExecution``,
``GetExecutionHistory``). ``opsflow build`` draws each runbook's graph as an SVG with the same
layout code, run by node (``opsflow/assets/graph.js``).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsflow.engine.boundary import published_texts
from opsflow.engine.calls import PARAMS_CHARS, READS
from opsflow.template import ROOT

ASSETS = Path(__file__).parent / "assets"
ELK = ROOT / "node_modules" / "elkjs" / "lib" / "elk.bundled.js"
STATUSES = ("succeeded", "failed", "caught", "retried", "notrun")
"""How a state is drawn: ran and left normally; the execution failed there (or it is a Fail
state that was reached); its error was caught by a Catch; it succeeded after retries; not run."""
_WORST = {"notrun": 0, "succeeded": 1, "retried": 2, "caught": 3, "failed": 4}
_FAILED_TYPES = {
    "TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed",
    "LambdaFunctionFailed", "LambdaFunctionTimedOut", "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed", "ActivityFailed", "ActivityTimedOut", "ActivityScheduleFailed",
    "ExecutionFailed", "MapStateFailed", "ParallelStateFailed", "MapIterationFailed",
}
_SCHEDULED = {"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"}
_OPENS = {"MapIterationStarted", "MapStateStarted", "ParallelStateStarted"}
"""Events after which the next state entered is inside the state that logged them."""


MAX_VISITS = 10
"""Visits shown in full on a state's panel (a Map of 200 items visits its states 200 times)."""


class ViewError(ValueError):
    """The run cannot be shown (unknown, unreadable, or saved without its history)."""


# ---------------------------------------------------------------------- history, as AWS returns it
def _stamp(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return str(value)


def aws_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """History events in ``GetExecutionHistory``'s JSON form (timestamps as ISO-8601 in UTC,
    as the AWS CLI prints them), whatever they were read from."""
    result = []
    for event in events:
        item = dict(event)
        item["timestamp"] = _stamp(item["timestamp"])
        item["type"] = str(getattr(item["type"], "value", item["type"]))
        result.append(item)
    return result


def history_document(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The whole ``GetExecutionHistory`` answer (every page joined, so no ``nextToken``)."""
    return {"events": aws_events(events)}


# ---------------------------------------------------------------------- what a run is
@dataclass
class Run:
    """What the view shows of one execution, from either source."""

    name: str
    execution_arn: str
    state_machine_arn: str
    status: str
    definition: dict[str, Any]
    events: list[dict[str, Any]]
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    verdict: str = ""
    notifications: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] | None = None
    """The account's diff (None: not known, as for a real execution)."""
    calls: list[dict[str, Any]] | None = None
    """Every AWS call with the StateEntered event id of its state (None: not known)."""
    source: str = "local"


def saved_record(execution: Any, parameters: dict[str, str], verdict: str) -> dict[str, Any]:
    """What ``opsflow run``/``trigger``/``rerun`` keep of a run, for ``rerun``, ``view`` and
    ``history``."""
    return {
        "run_id": execution.name,
        "scenario": execution.scenario,
        "input": execution.input,
        "faults": execution.faults,
        "parameters": parameters,
        "saved": datetime.now(UTC).isoformat(),
        "report": execution.to_report(),
        "verdict": verdict,
        "definition": execution.definition,
        "history": aws_events(execution.history),
        "calls": execution.calls,
    }


def load_saved(path: Path) -> Run:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        report = record["report"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ViewError(f"saved run {path.stem!r} is unreadable: {error}") from None
    if "history" not in record or "definition" not in record:
        raise ViewError(
            f"saved run {path.stem!r} was saved without its history; run it again "
            f"(opsflow rerun {path.stem}) to view it"
        )
    arn = str(report.get("execution_arn") or "")
    return Run(
        name=str(record.get("run_id") or path.stem),
        execution_arn=arn,
        state_machine_arn=arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
        status=str(report.get("status")),
        definition=json.loads(record["definition"]),
        events=list(record["history"]),
        input=record.get("input"),
        output=report.get("output"),
        error=report.get("error"),
        cause=report.get("cause"),
        verdict=str(record.get("verdict") or ""),
        notifications=list(report.get("notifications") or []),
        effects=list(report.get("effects") or []),
        calls=list(record.get("calls") or []),
    )


def load_aws(execution_arn: str, client: Any) -> Run:
    """A real execution, read through the Step Functions API (every history page)."""
    described = client.describe_execution(executionArn=execution_arn)
    machine = client.describe_state_machine_for_execution(executionArn=execution_arn)
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("get_execution_history").paginate(
        executionArn=execution_arn, includeExecutionData=True
    ):
        events.extend(page["events"])

    def parsed(text: Any) -> Any:
        try:
            return json.loads(text) if isinstance(text, str) else text
        except ValueError:
            return text

    status = str(described["status"])
    output = parsed(described.get("output"))
    verdict = status
    if isinstance(output, dict) and output.get("outcome"):
        verdict = f"{str(output['outcome']).upper()}: {output.get('summary', '')}"
    elif described.get("error"):
        verdict = f"{status} {described.get('error')}: {described.get('cause', '')}"
    return Run(
        name=str(described["name"]),
        execution_arn=execution_arn,
        state_machine_arn=str(described["stateMachineArn"]),
        status=status,
        definition=json.loads(machine["definition"]),
        events=aws_events(events),
        input=parsed(described.get("input")),
        output=output,
        error=described.get("error"),
        cause=described.get("cause"),
        verdict=verdict,
        notifications=_published(events),
        source="aws",
    )


def _published(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Notifications a real execution sent through its own ``sns:publish`` tasks (what Lambda
    code publishes is not in the history)."""
    found = []
    for event in events:
        details = event.get("taskScheduledEventDetails") or {}
        if details.get("resourceType") == "sns" and details.get("resource") == "publish":
            try:
                params = json.loads(details.get("parameters") or "{}")
            except ValueError:
                continue
            message, sms = published_texts(params)
            found.append({"target": params.get("TopicArn", ""), "subject": params.get("Subject", ""),
                          "message": message, "sms": sms})
    return found


# ---------------------------------------------------------------------- what each state did
@dataclass
class Visit:
    """One entry into a state (a state in a Map is visited once per iteration, a state in a
    loop once per turn)."""

    state: str
    entered: int
    """The ``*StateEntered`` event's id."""
    outer: Visit | None
    events: list[dict[str, Any]] = field(default_factory=list)
    exited: bool = False
    continued: bool = False
    """Another state was entered from this one (after an error: a Catch took it)."""

    @property
    def attempts(self) -> int:
        return sum(1 for e in self.events if e["type"] in _SCHEDULED)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in _FAILED_TYPES and e["type"] != "ExecutionFailed"
                and e["type"] != "MapIterationFailed"]

    @property
    def last_failed(self) -> bool:
        """The state's own last attempt ended in an error."""
        kinds = [e["type"] for e in self.events
                 if e["type"] in _FAILED_TYPES or e["type"].endswith("Succeeded")
                 or e["type"] in _SCHEDULED]
        kinds = [k for k in kinds if k not in ("MapIterationFailed", "MapIterationSucceeded",
                                               "ExecutionFailed")]
        return bool(kinds) and kinds[-1] in _FAILED_TYPES


@dataclass
class StateView:
    name: str
    type: str
    status: str = "notrun"
    visits: list[Visit] = field(default_factory=list)
    retries: int = 0
    iterations: int = 0
    failed_iterations: int = 0


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def visits(events: list[dict[str, Any]]) -> list[Visit]:
    """Each state entry, with the events that belong to it. Events of concurrent Map
    iterations interleave in the history; ``previousEventId`` chains each to its own thread, so
    an event belongs to the visit of the event before it in its chain."""
    return _chain(events)[0]


def owners(events: list[dict[str, Any]]) -> dict[int, Visit | None]:
    """Each event's id → the visit it belongs to (None: the execution's own events)."""
    return _chain(events)[1]


def _chain(events: list[dict[str, Any]]) -> tuple[list[Visit], dict[int, Visit | None]]:
    owner: dict[int, Visit | None] = {}
    kinds: dict[int, str] = {}
    closed: set[int] = set()
    found: list[Visit] = []
    for event in events:
        previous = event.get("previousEventId") or 0
        kinds[event["id"]] = str(event["type"])
        parent = owner.get(previous)
        if "stateEnteredEventDetails" in event:
            if parent is not None and (
                previous in closed
                or (kinds.get(previous) not in _OPENS and parent.last_failed)
            ):
                parent.continued = True  # the next state, by Next or (after an error) by Catch
                parent = parent.outer
            visit = Visit(_details(event)["name"], event["id"], parent, [event])
            found.append(visit)
            owner[event["id"]] = visit
            continue
        if parent is not None and previous in closed:
            parent = parent.outer
        owner[event["id"]] = parent
        if parent is not None:
            parent.events.append(event)
            if "stateExitedEventDetails" in event:
                parent.exited = True
                closed.add(event["id"])
    return found, owner


def flatten(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state of a definition by name, nested ones (Map, Parallel) included."""
    found: dict[str, dict[str, Any]] = {}
    pending = [definition]
    while pending:
        current = pending.pop()
        for name, state in current.get("States", {}).items():
            found[name] = state
            inner = state.get("ItemProcessor") or state.get("Iterator")
            if inner:
                pending.append(inner)
            pending.extend(state.get("Branches", []))
    return found


def analyse(run: Run) -> dict[str, StateView]:
    """Each state of the definition with how the history says it went."""
    states = {name: StateView(name, spec["Type"]) for name, spec in flatten(run.definition).items()}
    failed_run = run.status in ("FAILED", "TIMED_OUT", "ABORTED")
    for visit in visits(run.events):
        view = states.get(visit.state)
        if view is None:
            continue
        view.visits.append(visit)
        view.retries += max(0, visit.attempts - 1)
        view.iterations += sum(1 for e in visit.events if e["type"] == "MapIterationStarted")
        view.failed_iterations += sum(1 for e in visit.events if e["type"] == "MapIterationFailed")
        if view.type == "Fail":
            status = "failed"
        elif visit.last_failed and visit.continued:
            status = "caught"
        elif visit.last_failed or (failed_run and not visit.exited and not visit.continued):
            status = "failed"
        elif visit.failures:
            status = "retried"
        else:
            status = "succeeded"
        if _WORST[status] > _WORST[view.status]:
            view.status = status
    return states


# ---------------------------------------------------------------------- the graph
def _phase(name: str) -> str:
    head = name.split(":", 1)[0]
    return head.lower() if head in ("Detect", "Notify", "Act", "Verify", "Rollback") else "end"


def graph(definition: dict[str, Any], states: dict[str, StateView] | None = None) -> dict[str, Any]:
    """The nodes (Map and Parallel as groups holding their states) and edges that
    ``assets/graph.js`` lays out; with ``states``, each coloured by its status."""
    edges: list[dict[str, Any]] = []

    def node(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        view = states.get(name) if states else None
        item: dict[str, Any] = {
            "id": name, "label": name, "type": spec["Type"], "phase": _phase(name),
            "status": view.status if view else None,
            "visits": len(view.visits) if view else 0,
            "retries": view.retries if view else 0,
            "iterations": view.iterations if view else 0,
            "failedIterations": view.failed_iterations if view else 0,
            "terminal": bool(spec.get("End")) or spec["Type"] in ("Succeed", "Fail"),
        }
        inner = spec.get("ItemProcessor") or spec.get("Iterator")
        if inner:
            item["children"] = scope(inner, name)
        if spec.get("Branches"):
            item["children"] = [
                {"id": f"{name}#branch{i + 1}", "label": f"branch {i + 1}", "type": "Branch",
                 "phase": "", "status": None, "children": scope(branch, f"{name}#branch{i + 1}")}
                for i, branch in enumerate(spec["Branches"])
            ]
        return item

    def scope(current: dict[str, Any], container: str) -> list[dict[str, Any]]:
        nodes = [node(name, spec) for name, spec in current["States"].items()]
        for name, spec in current["States"].items():
            targets: list[tuple[str, str, str]] = []
            if "Next" in spec:
                targets.append((spec["Next"], "next", ""))
            for rule in spec.get("Choices", []):
                targets.append((rule["Next"], "choice", ""))
            if "Default" in spec:
                targets.append((spec["Default"], "default", "otherwise"))
            for catch in spec.get("Catch", []):
                label = ", ".join(catch["ErrorEquals"]).replace("States.ALL", "any error")
                targets.append((catch["Next"], "catch", label))
            for target, kind, label in targets:
                edges.append({"id": f"e{len(edges)}", "source": name, "target": target,
                              "kind": kind, "label": label, "container": container})
        return nodes

    nodes = scope(definition, "")
    return {"nodes": nodes, "edges": edges, "start": definition["StartAt"]}


def _node(argv: list[str], stdin: str) -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                              timeout=120)
    except FileNotFoundError:
        raise ViewError("node is not installed: the diagrams need Node.js (make node_modules/.installed)") from None
    if done.returncode != 0:
        raise ViewError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def svgs(definitions: list[dict[str, Any]]) -> list[str]:
    """Each state machine's graph as an SVG, laid out by ELK (one node process for all)."""
    if not ELK.is_file():
        raise ViewError(f"{ELK.relative_to(ROOT)} is missing: run npm ci (make node_modules/.installed)")
    models = [graph(definition) for definition in definitions]
    drawn = json.loads(_node(["node", str(ASSETS / "svg.js"), str(ELK)], json.dumps(models)))
    return [str(text) for text in drawn]


# ---------------------------------------------------------------------- the page
def _pretty(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _pre(value: Any, limit: int = 20000) -> str:
    text = _pretty(value)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return f"<pre>{html.escape(text)}</pre>"


def _times(run: Run) -> tuple[datetime | None, dict[int, datetime]]:
    stamps = {e["id"]: datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00"))
              for e in run.events}
    return (min(stamps.values()) if stamps else None), stamps


def _effects_by_visit(run: Run) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Each effect attributed to the visits whose changing calls name its resource; the rest
    (no changing call names them) stay with the run."""
    by_visit: dict[int, list[dict[str, Any]]] = {}
    left = []
    for effect in run.effects or []:
        resource = str(effect["resource"])
        key = resource.split(" ")[0].split("/")[0]
        owners = {
            call["entered"] for call in run.calls or []
            if call.get("entered") is not None and not call.get("error")
            and not call["operation"].startswith(READS)
            and (key in call.get("resources", []) or key in call.get("params", ""))
        }
        for owner in owners:
            by_visit.setdefault(owner, []).append(effect)
        if not owners:
            left.append(effect)
    return by_visit, left


def _effects_table(effects: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(e['resource']))}</td><td>{html.escape(str(e['region']))}</td>"
        f"<td>{html.escape(str(e['field']))}</td><td>{html.escape(_short(e['before']))}</td>"
        f"<td>{html.escape(_short(e['after']))}</td></tr>"
        for e in effects
    )
    return ("<table class='grid'><tr><th>resource</th><th>region</th><th>field</th>"
            f"<th>before</th><th>after</th></tr>{rows}</table>")


def _short(value: Any) -> str:
    return "—" if value is None else str(value)


def _panel(view: StateView, run: Run, start: datetime | None, stamps: dict[int, datetime],
           effects: dict[int, list[dict[str, Any]]]) -> str:
    parts = [f"<section class='panel' data-detail='{html.escape(view.name, quote=True)}' hidden>",
             f"<h3>{html.escape(view.name)} <span class='badge st-{view.status}'>"
             f"{_STATUS_TEXT[view.status]}</span></h3>",
             f"<p class='meta'>{html.escape(view.type)} state · {len(view.visits)} visit(s)"
             + (f" · {view.retries} retr{'y' if view.retries == 1 else 'ies'}" if view.retries else "")
             + (f" · {view.iterations} iteration(s), {view.failed_iterations} failed"
                if view.type == "Map" else "") + "</p>"]
    if not view.visits:
        parts.append("<p>Not run in this execution.</p>")
    for number, visit in enumerate(view.visits, 1):
        if number > MAX_VISITS:
            parts.append(f"<p class='meta'>… and {len(view.visits) - MAX_VISITS} more visit(s): "
                         "their events are in the table below.</p>")
            break
        entered = stamps.get(visit.entered)
        exits = [e for e in visit.events if "stateExitedEventDetails" in e]
        left = stamps.get(exits[-1]["id"]) if exits else None
        offset = f" (+{(entered - start).total_seconds():.1f} s)" if entered and start else ""
        parts.append(f"<details class='visit' {'open' if number == 1 else ''}>"
                     f"<summary>visit {number}: entered {_stamp(entered)}{offset}"
                     + (f", left {_stamp(left)}" if left else ", never left") + "</summary>")
        parts.append("<h4>Input</h4>" + _pre(_details(visit.events[0]).get("input")))
        if exits:
            parts.append("<h4>Output</h4>" + _pre(_details(exits[-1]).get("output")))
        for failure in visit.failures:
            details = _details(failure)
            parts.append(f"<h4>{html.escape(failure['type'])} at {_stamp(stamps.get(failure['id']))}"
                         f"</h4><p class='error'>{html.escape(str(details.get('error', '')))}</p>"
                         + _pre(details.get("cause", "")))
        calls = [c for c in run.calls or [] if c.get("entered") == visit.entered]
        if run.calls is None:
            tasks = [e for e in visit.events if e["type"] in _SCHEDULED]
            rows = "".join(
                f"<tr><td>{html.escape(_stamp(stamps.get(e['id'])))}</td>"
                f"<td>{html.escape(str(d.get('resourceType', '')))}:"
                f"{html.escape(str(d.get('resource', '')))}</td>"
                f"<td>{html.escape(str(d.get('region', '')))}</td>"
                f"<td><code>{html.escape(str(d.get('parameters', d.get('input', '')))[:PARAMS_CHARS])}"
                "</code></td></tr>"
                for e in tasks for d in [_details(e)]
            )
            parts.append(
                f"<h4>AWS calls ({len(tasks)} by the state machine)</h4>"
                + ("<table class='grid'><tr><th>time</th><th>call</th><th>region</th>"
                   f"<th>parameters</th></tr>{rows}</table>" if tasks else "")
                + "<p class='meta'>The calls a Lambda function made are not in a real "
                "execution's history: see CloudTrail and the X-Ray trace.</p>")
        else:
            rows = "".join(
                f"<tr class='{'bad' if c.get('error') else ''}'><td>{html.escape(c['time'])}</td>"
                f"<td>{html.escape(c['service'])}:{html.escape(c['operation'])}</td>"
                f"<td>{html.escape(str(c['region']))}</td>"
                f"<td>{html.escape(str(c.get('principal') or '').rsplit('/', 1)[-1])}</td>"
                f"<td>{html.escape(c.get('error') or 'ok')}</td>"
                f"<td><code>{html.escape(c.get('params', ''))}</code></td></tr>"
                for c in calls
            )
            parts.append(f"<h4>AWS calls ({len(calls)})</h4>" + (
                "<table class='grid'><tr><th>virtual time</th><th>call</th><th>region</th>"
                f"<th>as</th><th>result</th><th>parameters</th></tr>{rows}</table>"
                if calls else "<p>None.</p>"))
        if run.effects is not None:
            mine = effects.get(visit.entered, [])
            parts.append(f"<h4>Effects on the account ({len(mine)})</h4>"
                         + (_effects_table(mine) if mine else "<p>None attributed to this visit.</p>"))
        parts.append("</details>")
    parts.append("</section>")
    return "".join(parts)


_STATUS_TEXT = {"succeeded": "Succeeded", "failed": "Failed", "caught": "Caught error",
                "retried": "Succeeded after retry", "notrun": "Not run"}


def _event_table(run: Run, stamps: dict[int, datetime], start: datetime | None,
                 names: dict[int, str]) -> str:
    rows = []
    for event in run.events:
        details = _details(event)
        stamp = stamps[event["id"]]
        offset = (stamp - start).total_seconds() if start else 0.0
        shown = json.dumps(details, default=str, ensure_ascii=False) if details else ""
        rows.append(
            f"<tr class='{'bad' if event['type'] in _FAILED_TYPES else ''}'>"
            f"<td>{event['id']}</td><td>{html.escape(str(event['type']))}</td>"
            f"<td>{html.escape(names.get(event['id'], ''))}</td>"
            f"<td>{html.escape(_stamp(stamp))}</td><td>+{offset:.1f} s</td>"
            f"<td><code>{html.escape(shown[:400] + ('…' if len(shown) > 400 else ''))}</code></td>"
            "</tr>"
        )
    return ("<table class='grid events'><tr><th>ID</th><th>Type</th><th>Step</th>"
            "<th>Timestamp</th><th>Elapsed</th><th>Details</th></tr>" + "".join(rows) + "</table>")


def _notifications(run: Run) -> str:
    if not run.notifications:
        return "<p>None.</p>"
    items = []
    for note in run.notifications:
        items.append(
            f"<details class='note'><summary>{html.escape(str(note.get('subject', '')))}</summary>"
            f"<p class='meta'>to {html.escape(str(note.get('target', '')))}</p>"
            f"<p><b>SMS</b> ({len(str(note.get('sms', '')))} characters): "
            f"{html.escape(str(note.get('sms', '')))}</p>"
            f"<pre>{html.escape(str(note.get('message', '')))}</pre></details>"
        )
    return "".join(items)


def _json_script(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (``<\\/`` is JSON for ``</``)."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\u0021--")


def _code_script(text: str) -> str:
    """JavaScript safe inside a ``<script>`` element: only ``</script`` and ``<!--`` end or
    confuse one, and a backslash before ``/`` or ``!`` keeps strings and patterns as they are."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.I).replace("<!--", "<\\!--")


def page(run: Run) -> str:
    """The whole self-contained HTML page of ``run``."""
    if not ELK.is_file():
        raise ViewError(f"{ELK.relative_to(ROOT)} is missing: run npm ci (make node_modules/.installed)")
    states = analyse(run)
    start, stamps = _times(run)
    owner = owners(run.events)
    names = {event_id: visit.state for event_id, visit in owner.items() if visit is not None}
    for call in run.calls or []:
        visit = owner.get(call.get("event") or 0)
        call["entered"] = visit.entered if visit is not None else None
    effects, unattributed = _effects_by_visit(run)
    panels = "".join(_panel(v, run, start, stamps, effects) for v in states.values())
    model = graph(run.definition, states)
    model["statusText"] = _STATUS_TEXT
    ok = run.status == "SUCCEEDED"
    counts = {s: sum(1 for v in states.values() if v.status == s) for s in STATUSES}
    legend = "".join(
        f"<span class='key'><span class='swatch st-{s}' data-status='{s}'></span>"
        f"{_STATUS_TEXT[s]} ({counts[s]})</span>" for s in STATUSES
    )
    effects_html = ""
    if run.effects is not None:
        effects_html = (
            f"<h2>Effects on the account ({len(run.effects)})</h2>"
            "<p class='meta'>A diff of the emulated account before and after the run; each is also "
            "shown on the state whose call named its resource.</p>"
            + (_effects_table(run.effects) if run.effects else "<p>None: the account is unchanged.</p>")
            + (f"<p class='meta'>{len(unattributed)} effect(s) named by no call of a state.</p>"
               if unattributed else "")
        )
    source = ("local run on the embedded emulation (virtual time)" if run.source == "local"
              else "execution in AWS")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(run.name)} · opsflow view</title>
<style>{(ASSETS / "view.css").read_text(encoding="utf-8")}</style>
</head><body>
<header><h1>{html.escape(run.name)}</h1>
<p class="verdict {'ok' if ok else 'bad'}" id="verdict">{html.escape(run.verdict or run.status)}</p>
<p class="meta">{html.escape(source)} · status {html.escape(run.status)} ·
{html.escape(run.execution_arn)} · {len(run.events)} events</p></header>
<main>
<section id="graph-area"><h2>Graph</h2><div class="legend">{legend}</div>
<div id="graph" aria-label="state machine graph"><p class="meta">Laying out…</p></div></section>
<aside id="details"><h2>Step details</h2><p id="hint" class="meta">Click a state in the graph.</p>
{panels}</aside>
</main>
<section><h2>Execution input and output</h2>
<div class="two"><div><h4>Input</h4>{_pre(run.input)}</div><div><h4>Output</h4>{_pre(run.output)}
{('<h4>Error</h4><p class="error">' + html.escape(str(run.error)) + '</p>' + _pre(run.cause or '')) if run.error else ''}
</div></div></section>
<section><h2>Notifications ({len(run.notifications)})</h2>{_notifications(run)}</section>
{effects_html}
<section><h2>Events ({len(run.events)})</h2>{_event_table(run, stamps, start, names)}</section>
<script type="application/json" id="model">{_json_script(model)}</script>
<script>{_code_script(ELK.read_text(encoding="utf-8"))}</script>
<script>{_code_script((ASSETS / "graph.js").read_text(encoding="utf-8"))}</script>
<script>{_code_script((ASSETS / "view.js").read_text(encoding="utf-8"))}</script>
</body></html>
"""


def write(run: Run, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(run), encoding="utf-8")
    return out
