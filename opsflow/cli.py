"""``opsflow``: build, validate and run the runbooks on the embedded AWS emulation.

Exit codes: 0 when every execution succeeded, 1 when any did not (or a check failed), 2 for
usage and input errors (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, NoReturn

from opsflow import tune_gc
from opsflow.template import ROOT

RUNS = Path(os.environ.get("OPSFLOW_RUNS_DIR") or ROOT / ".opsflow" / "runs")
"""Where local runs are saved for ``opsflow rerun``, ``view`` and ``history`` (``OPSFLOW_RUNS_DIR``
moves it)."""
VIEWS = RUNS.parent / "views"
"""Where ``opsflow view`` writes its pages unless told ``--out``."""


def colour() -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set to anything (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


class UsageError(Exception):
    """Bad usage or input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _scenario(name: str) -> str:
    from workflows.catalog import SCENARIOS

    if name not in SCENARIOS:
        raise UsageError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return name


MAX_EVENT_DEPTH = 100
"""Deepest nesting of arrays and objects an event file may have. EventBridge events are a few
levels deep; a file far deeper is not an event, and Python's JSON reader (recursive) would
otherwise crash on it."""


def event_depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (iterative: any depth is safe)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            pending += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _read_event(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such event file: {path}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    try:
        event = json.loads(text)
    except RecursionError:
        raise UsageError(
            f"{path} nests arrays or objects too deeply to be an event "
            f"(at most {MAX_EVENT_DEPTH} levels)"
        ) from None
    except ValueError as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None
    depth = event_depth(event)
    if depth > MAX_EVENT_DEPTH:
        raise UsageError(
            f"{path} nests arrays or objects {depth} levels deep; an event has at most "
            f"{MAX_EVENT_DEPTH}"
        )
    return event


def _faults(specs: list[str]) -> list[Any]:
    from opsflow.engine.boundary import FaultSpecError, parse_fault

    try:
        return [parse_fault(spec) for spec in specs]
    except FaultSpecError as error:
        raise UsageError(str(error)) from None


def _params(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"bad --param {pair!r}: expected Name=Value")
        result[key] = value
    return result


def _with_dry_run(event: Any, dry_run: bool) -> Any:
    if dry_run and isinstance(event, dict):
        event = dict(event)
        overrides = dict(event.get("opsflow") or {})
        overrides["dryRun"] = True
        event["opsflow"] = overrides
    return event


def _engine(args: argparse.Namespace, scenarios: list[str] | None = None) -> Any:
    from opsflow.engine.runner import EngineError, LocalEngine

    engine = LocalEngine(
        faults=_faults(args.fault),
        parameters=_params(args.param),
        scenarios=scenarios,
        approval=getattr(args, "approval", None),
    )
    try:
        engine.parameters()
    except EngineError as error:
        raise UsageError(str(error)) from None
    return engine


def _save(execution: Any, parameters: dict[str, str]) -> str:
    from opsflow import report, view

    RUNS.mkdir(parents=True, exist_ok=True)
    run_id = execution.name
    record = view.saved_record(execution, parameters, report.verdict(execution))
    (RUNS / f"{run_id}.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return run_id


def _execute(
    args: argparse.Namespace, engine: Any, plan: list[tuple[str, Any, Any]], matched: Any
) -> int:
    from opsflow import report

    executions = []
    human = not args.json
    if args.kill_switch:
        engine.set_kill_switch("on")
    for scenario, event, rule in plan:
        trace = report.Trace(colour=colour()) if human else None
        if human:
            print(f"\n▶ {scenario}  (local, {'faults: ' + ', '.join(args.fault) if args.fault else 'no faults'})")
        execution = engine.run(scenario, event, on_event=trace, rule=rule)
        run_id = _save(execution, _params(args.param))
        if human:
            report.print_summary(execution, colour=colour())
            print(f"  run id: {run_id}  (opsflow rerun {run_id}, opsflow view {run_id})")
        if getattr(args, "view", False):
            _write_view(run_id, out=sys.stdout if human else sys.stderr)
        executions.append(execution)
    if args.json:
        print(json.dumps(report.json_report(executions, matched), indent=2, default=str))
    return 0 if all(e.status == "SUCCEEDED" for e in executions) else 1


def cmd_list(args: argparse.Namespace) -> int:
    from workflows.catalog import SCENARIOS

    for s in SCENARIOS.values():
        print(f"{s.id:<20} {s.title}")
        print(f"{'':<20} trigger: {s.trigger}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from opsflow import build

    results = build.compile_all()
    if args.check:
        drifted = [b for b in results if b.drifted]
        for b in drifted:
            print(
                f"drift: {b.path.relative_to(ROOT)} differs from workflows/ (run opsflow build)",
                file=sys.stderr,
            )
        if not drifted:
            print(f"{len(results)} generated file(s) match workflows/")
        return 1 if drifted else 0
    build.write(results)
    for b in results:
        print(f"{'wrote' if b.drifted else 'unchanged'} {b.path.relative_to(ROOT)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from opsflow import validate

    checks = validate.run_all()
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"{mark} {check.name}" + (f": {check.detail}" if check.detail and not check.ok else ""))
    failed = sum(1 for c in checks if not c.ok)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_diagram(args: argparse.Namespace) -> int:
    from opsflow import diagram

    scenario = _scenario(args.scenario)
    path = ROOT / "statemachines" / f"{scenario}.asl.json"
    print(diagram.mermaid(json.loads(path.read_text(encoding="utf-8"))), end="")
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    from opsflow.engine import observe, worlds

    scenarios = [_scenario(args.scenario)] if args.scenario else list(worlds.BUILDERS)
    with _engine(args, scenarios) as engine:
        regions = sorted({r for s in scenarios for r in engine.regions(s)})
        resources = [
            {k: r[k] for k in ("type", "id", "region", "state", "tags")}
            for r in observe.resources(regions)
        ]
    if args.json:
        print(json.dumps({"resources": resources}, indent=2))
        return 0
    for r in resources:
        tags = ", ".join(f"{k}={v}" for k, v in r["tags"].items())
        print(f"{r['type']:<18} {r['id']:<22} {r['region']:<10} {r['state']:<18} {tags}")
    return 0


def iam_summary(results: list[Any]) -> dict[str, Any]:
    """Per principal: the distinct calls made, those denied, and the Allow statements no call of
    any rehearsal needed."""
    from opsflow import rehearsals

    principals: dict[str, dict[str, Any]] = {}
    unused: dict[str, set[tuple[str, str, tuple[str, ...]]]] = {}
    for result in results:
        for arn, grants in result.unused.items():
            if arn not in result.scope:
                continue
            mine = {
                (p, sid, tuple(actions))
                for p, sid, actions in grants
                if not rehearsals.not_rehearsed(p, sid)
            }
            unused[arn] = mine if arn not in unused else unused[arn] & mine
        unexpected = {id(c) for c in result.unexpected()}
        for call in result.calls:
            entry = principals.setdefault(
                call.principal, {"calls": set(), "denied": set(), "refused": set()})
            entry["calls"].add((call.action, call.resource))
            if not call.allowed:
                # A refusal the rehearsal causes on purpose (``Rehearsal.without``) is no problem.
                kind = "denied" if id(call) in unexpected else "refused"
                entry[kind].add((call.action, call.resource, result.rehearsal.name))
    summary = {}
    for arn in sorted(set(principals) | set(unused)):
        entry = principals.get(arn, {"calls": set(), "denied": set(), "refused": set()})
        summary[arn] = {
            "calls": sorted(f"{a} {r}" for a, r in entry["calls"]),
            "denied": sorted(f"{a} {r} ({case})" for a, r, case in entry["denied"]),
            "refused on purpose": sorted(f"{a} {r} ({case})" for a, r, case in entry["refused"]),
            "unused": sorted(f"{p}/{sid}: {', '.join(actions)}" for p, sid, actions in unused.get(arn, set())),
        }
    return summary


def cmd_iam(args: argparse.Namespace) -> int:
    from opsflow import rehearsals

    scenario = _scenario(args.scenario) if args.scenario else None
    results = [rehearsals.rehearse(case) for case in rehearsals.rehearsals(scenario)]
    summary = iam_summary(results)
    denied = sum(len(v["denied"]) for v in summary.values())
    if args.json:
        print(json.dumps({"rehearsals": [
            {"name": r.rehearsal.name, "why": r.rehearsal.why, "status": r.status,
             "outcome": r.outcome, "error": r.error} for r in results
        ], "principals": summary}, indent=2))
        return 1 if denied else 0
    for r in results:
        end = r.outcome or r.error or ""
        print(f"rehearsed {r.rehearsal.name}: {r.status} {end} ({r.rehearsal.why})")
    for arn, entry in summary.items():
        role = arn.rsplit("/", 1)[-1]
        print(f"\n{role}: {len(entry['calls'])} distinct call(s), {len(entry['denied'])} denied")
        for line in entry["denied"]:
            print(f"  DENIED {line}")
        for line in entry["refused on purpose"]:
            print(f"  refused on purpose {line}")
        for line in entry["unused"]:
            print(f"  unused grant {line}")
    print(f"\n{len(results)} rehearsals, {denied} denied call(s)")
    return 1 if denied else 0


def cmd_run(args: argparse.Namespace) -> int:
    from workflows.catalog import SCENARIOS

    scenario = _scenario(args.scenario)
    event = _read_event(args.event or str(ROOT / SCENARIOS[scenario].sample_event))
    event = _with_dry_run(event, args.dry_run)
    with _engine(args, [scenario]) as engine:
        return _execute(args, engine, [(scenario, event, None)], None)


def cmd_trigger(args: argparse.Namespace) -> int:
    event = _with_dry_run(_read_event(args.event_file), args.dry_run)
    if not isinstance(event, dict):
        raise UsageError(f"{args.event_file} must hold one EventBridge event (a JSON object)")
    with _engine(args) as engine:
        rules = engine.match(event)
        matched = [{"rule": r.name, "scenario": r.scenario} for r in rules]
        if not args.json:
            if not rules:
                print("No rule in template.yaml matches this event: nothing started.")
            for r in rules:
                print(f"rule {r.name} matched → {r.scenario}")
        return _execute(args, engine, [(r.scenario, event, r) for r in rules], matched)


def cmd_invoke(args: argparse.Namespace) -> int:
    from opsflow import template as cfn

    functions = cfn.resources_of_type(cfn.cached(), "AWS::Serverless::Function")
    if args.function not in functions:
        raise UsageError(f"unknown function {args.function!r}; known: {', '.join(functions)}")
    payload = _read_event(args.event)
    with _engine(args) as engine:
        succeeded, result = engine.invoke(args.function, payload)
    if not succeeded:  # exactly what Lambda reports
        result = {k: result.get(k) for k in ("errorType", "errorMessage")}
    print(json.dumps(result, indent=2, default=str))
    return 0 if succeeded else 1


def cmd_rerun(args: argparse.Namespace) -> int:
    if args.aws:
        return rerun_aws(args.aws, args.redrive, args.region)
    if args.redrive:
        raise UsageError("--redrive needs --aws EXECUTION_ARN")
    path = _saved_path(args.run_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        scenario, event = _scenario(record["scenario"]), record["input"]
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"saved run {args.run_id!r} is unreadable: {error}") from None
    args.fault = args.fault or record.get("faults", [])
    args.param = args.param or [f"{k}={v}" for k, v in record.get("parameters", {}).items()]
    event = _with_dry_run(event, args.dry_run)
    with _engine(args, [scenario]) as engine:
        return _execute(args, engine, [(scenario, event, None)], None)


def _saved_path(run_id: str | None) -> Path:
    if not run_id:
        raise UsageError("give a RUN_ID (see .opsflow/runs/) or --aws EXECUTION_ARN")
    path = RUNS / f"{run_id}.json"
    if "/" in run_id or not path.is_file():
        raise UsageError(f"no saved run {run_id!r} in {RUNS}")
    return path


def _load_run(args: argparse.Namespace, client: Any = None) -> Any:
    from opsflow import view

    try:
        if args.aws:
            return load_aws(args.aws, args.region, client)
        return view.load_saved(_saved_path(args.run_id))
    except view.ViewError as error:
        raise UsageError(str(error)) from None


def load_aws(execution_arn: str, region: str | None, client: Any = None) -> Any:
    """A real execution, read through the Step Functions API (``opsflow view/history --aws``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from opsflow import view

    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] != "execution":
        raise UsageError(f"not a Step Functions execution ARN: {execution_arn}")
    try:
        if client is None:
            import boto3

            client = boto3.client("stepfunctions", region_name=region or parts[3])
        return view.load_aws(execution_arn, client)
    except (ClientError, BotoCoreError) as error:
        raise UsageError(str(error)) from None


def _write_view(run_id: str, out: Any) -> Path:
    from opsflow import view

    path = VIEWS / f"{run_id}.html"
    try:
        view.write(view.load_saved(_saved_path(run_id)), path)
    except view.ViewError as error:
        raise UsageError(str(error)) from None
    print(f"  view: {path}", file=out)
    return path


def cmd_view(args: argparse.Namespace, client: Any = None) -> int:
    import webbrowser

    from opsflow import view

    run = _load_run(args, client)
    out = Path(args.out) if args.out else VIEWS / f"{run.name}.html"
    try:
        view.write(run, out)
    except (view.ViewError, OSError) as error:
        raise UsageError(str(error)) from None
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB; opens offline in any browser)")
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0


def cmd_history(args: argparse.Namespace, client: Any = None) -> int:
    from opsflow import view

    run = _load_run(args, client)
    if args.format == "aws":
        print(json.dumps(view.history_document(run.events), indent=2, ensure_ascii=False))
        return 0
    names = {e["id"]: v.state for v in view.visits(run.events) for e in v.events}
    for event in run.events:
        print(f"{event['id']:>5}  {event['timestamp']:<32}  {event['type']:<28}  "
              f"{names.get(event['id'], '')}")
    return 0


def _chaos_region(args: argparse.Namespace, engine: Any) -> str:
    """``--region`` (default: the failover's primary), one of the regions its world has."""
    region = str(args.region or engine.parameters()["PrimaryRegion"])
    if region not in engine.regions("region-failover"):
        raise UsageError(f"--region must be one of {', '.join(engine.regions('region-failover'))}")
    return region


def cmd_chaos_latency(args: argparse.Namespace) -> int:
    if not 1 <= args.delay_ms <= 60000:
        raise UsageError("--delay-ms must be between 1 and 60000")
    if not 0 <= args.jitter_ms <= args.delay_ms:
        raise UsageError("--jitter-ms must be between 0 and --delay-ms")
    if not 1 <= args.minutes <= 1440:
        raise UsageError("--minutes must be between 1 and 1440")
    with _engine(args, ["region-failover"]) as engine:
        region = _chaos_region(args, engine)
        played = engine.chaos_latency(region, args.delay_ms, args.minutes, args.jitter_ms)
        return _run_chaos(args, engine, played)


def cmd_chaos_region_outage(args: argparse.Namespace) -> int:
    if not 1 <= args.minutes <= 1440:
        raise UsageError("--minutes must be between 1 and 1440")
    with _engine(args, ["region-failover"]) as engine:
        region = _chaos_region(args, engine)
        if region == engine.stack.region:
            raise UsageError(
                f"--region {region} is where the stack runs: the runbook would go down with it"
            )
        status = None if args.errors == "connection" else int(args.errors)
        played = engine.chaos_region_outage(region, args.minutes, args.route53_down, status)
        return _run_chaos(args, engine, played)


def _run_chaos(args: argparse.Namespace, engine: Any, played: Any) -> int:
    """Print what the game day played, then deliver the alarm's event through the rules."""
    if not args.json:
        for line in played.log:
            print(line)
    if played.event is None:
        if args.json:
            print(json.dumps({"matched": [], "executions": [], "alarm": None}, indent=2))
        else:
            print("The alarm never left OK: nothing was started.")
        return 0
    event = _with_dry_run(played.event, args.dry_run)
    rules = engine.match(event)
    matched = [{"rule": r.name, "scenario": r.scenario} for r in rules]
    if not args.json:
        for r in rules:
            print(f"rule {r.name} matched → {r.scenario}")
    return _execute(args, engine, [(r.scenario, event, r) for r in rules], matched)


def rerun_aws(execution_arn: str, redrive: bool, region: str | None, client: Any = None) -> int:
    """Start a new execution with the same input in a real account (or redrive a failed one)."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] != "execution":
        raise UsageError(f"not a Step Functions execution ARN: {execution_arn}")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _rerun_aws(execution_arn, parts, redrive, region, client)
    except (ClientError, BotoCoreError) as error:
        raise UsageError(str(error)) from None


def _rerun_aws(
    execution_arn: str, parts: list[str], redrive: bool, region: str | None, client: Any
) -> int:
    if client is None:
        import boto3

        client = boto3.client("stepfunctions", region_name=region or parts[3])
    if redrive:
        result = client.redrive_execution(executionArn=execution_arn)
        print(f"redrove {execution_arn} at {result['redriveDate']}")
        return 0
    description = client.describe_execution(executionArn=execution_arn)
    event = json.loads(description.get("input") or "{}")
    if isinstance(event, dict):
        overrides = dict(event.get("opsflow") or {})
        overrides["ignoreDuplicate"] = True
        event["opsflow"] = overrides
    name = f"rerun-{parts[7][:50]}-{uuid.uuid4().hex[:8]}"
    started = client.start_execution(
        stateMachineArn=description["stateMachineArn"], name=name, input=json.dumps(event)
    )
    print(f"started {started['executionArn']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from opsflow import demo

    return demo.run(main, view=bool(getattr(args, "view", False)))


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="opsflow", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"opsflow {_version()}")
    top.add_argument("--view", action="store_true",
                     help="also write the HTML view of every run the command makes")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def runnable(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print the JSON report")
        p.add_argument("--dry-run", action="store_true", help="check every change, make none")
        p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                       help="inject SERVICE:Operation=ErrorCode[*N] (N failures, then success)")
        p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="override a template.yaml parameter for this local run")
        p.add_argument("--kill-switch", action="store_true", help="run with the kill switch on")
        answer = p.add_mutually_exclusive_group()
        answer.add_argument("--approve", dest="approval", action="store_const", const="approve",
                            help="approve a human-approval step (default: no answer, it times out)")
        answer.add_argument("--reject", dest="approval", action="store_const", const="reject",
                            help="reject a human-approval step")

    p = sub.add_parser("demo", help="run every scenario end to end (make demo), in one process")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "worker",
        help="a warm worker: start one, and every later opsflow command runs in a fork of it "
        "(no imports, no world to build); stop it; or show whether one runs",
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--idle-minutes", type=float, default=None,
                   help="stop after this many minutes without a command (default 30)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("list", help="list the scenarios")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("build", help="compile workflows/ to statemachines/")
    p.add_argument("--check", action="store_true", help="fail if statemachines/ is out of date")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("validate", help="validate the compiled ASL and template.yaml")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("diagram", help="print a scenario's state machine as a Mermaid flowchart")
    p.add_argument("scenario")
    p.set_defaults(func=cmd_diagram)
    p = sub.add_parser(
        "iam", help="rehearse every sample event with IAM enforced: calls, denials, unused grants"
    )
    p.add_argument("scenario", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_iam)
    p = sub.add_parser("world", help="show the emulated account a scenario runs against")
    p.add_argument("scenario", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_world, fault=[], param=[])
    p = sub.add_parser("run", help="run a scenario's state machine locally")
    p.add_argument("scenario")
    p.add_argument("--event", metavar="FILE", help="event file (default: the scenario's sample)")
    runnable(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("trigger", help="route an EventBridge event through template.yaml's rules")
    p.add_argument("event_file")
    runnable(p)
    p.set_defaults(func=cmd_trigger)
    p = sub.add_parser("invoke", help="run one function in-process with a payload")
    p.add_argument("function", help="logical ID in template.yaml, e.g. ParseHealthEventFunction")
    p.add_argument("--event", required=True, metavar="FILE")
    p.set_defaults(func=cmd_invoke, fault=[], param=[])
    p = sub.add_parser("rerun", help="rerun a saved local run, or an execution in AWS")
    p.add_argument("run_id", nargs="?")
    p.add_argument("--aws", metavar="EXECUTION_ARN", help="start a new execution with its input")
    p.add_argument("--redrive", action="store_true", help="with --aws: redrive the failed execution")
    p.add_argument("--region", help="with --aws: region (default: the ARN's)")
    runnable(p)
    p.set_defaults(func=cmd_rerun)
    p = sub.add_parser(
        "view", help="write one self-contained HTML page of a run: graph, steps, events"
    )
    p.add_argument("run_id", nargs="?", help="a saved local run (see .opsflow/runs/)")
    p.add_argument("--aws", metavar="EXECUTION_ARN", help="read a real execution instead")
    p.add_argument("--region", help="with --aws: region (default: the ARN's)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: .opsflow/views/)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    p.set_defaults(func=cmd_view)
    p = sub.add_parser("history", help="print a run's execution history")
    p.add_argument("run_id", nargs="?", help="a saved local run (see .opsflow/runs/)")
    p.add_argument("--aws", metavar="EXECUTION_ARN", help="read a real execution instead")
    p.add_argument("--region", help="with --aws: region (default: the ARN's)")
    p.add_argument("--format", choices=("text", "aws"), default="text",
                   help="text: one line per event; aws: the GetExecutionHistory JSON")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("chaos", help="game-day fault injection on the virtual clock")
    chaos = p.add_subparsers(dest="chaos", required=True, parser_class=_Parser)
    q = chaos.add_parser(
        "latency",
        help="play the tc netem latency document: the canary degrades, the anomaly alarm is "
        "evaluated, its event goes through template.yaml's rules",
    )
    q.add_argument("--region", help="the region whose canary degrades (default: PrimaryRegion)")
    q.add_argument("--delay-ms", type=int, default=300)
    q.add_argument("--jitter-ms", type=int, default=20)
    q.add_argument("--minutes", type=int, default=15)
    runnable(q)
    q.set_defaults(func=cmd_chaos_latency)
    q = chaos.add_parser(
        "region-outage",
        help="take a whole region down: its API endpoints refuse connections, the canary times "
        "out on it, the alarm fires from the stack's region, the runbook runs from there",
    )
    q.add_argument("--region", help="the region that goes down (default: PrimaryRegion)")
    q.add_argument("--minutes", type=int, default=15)
    q.add_argument("--route53-down", action="store_true",
                   help="Route 53's API (its control plane, us-east-1) is down too")
    q.add_argument("--errors", choices=["connection", "500", "503"], default="connection",
                   help="how the region's endpoints fail: refuse connections (default), or "
                   "answer every call with HTTP 500 or 503")
    runnable(q)
    q.set_defaults(func=cmd_chaos_region_outage)
    return top


def cmd_worker(args: argparse.Namespace) -> int:
    from opsflow import worker

    if args.action == "start":
        minutes = worker.IDLE_MINUTES if args.idle_minutes is None else args.idle_minutes
        if not 0 < minutes <= 24 * 60:
            raise UsageError("--idle-minutes must be more than 0 and at most 1440")
        already = worker.running()
        pid = worker.start(minutes)
        print(f"worker {'already running' if already else 'started'}: pid {pid}, socket "
              f"{worker.socket_path()}")
        return 0
    if args.action == "stop":
        print("worker stopped" if worker.stop() else "no worker running")
        return 0
    found = worker.running()
    print(f"worker running: pid {found}, socket {worker.socket_path()}" if found
          else "no worker running")
    return 0 if found else 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opsflow")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        from opsflow import worker

        served = worker.run(sys.argv[1:])  # in a fork of a warm worker, when one runs
        if served is not None:
            return served
    tune_gc()
    try:
        args = parser().parse_args(argv)
        return int(args.func(args))
    except UsageError as error:
        print(f"opsflow: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``opsflow ... | head``): no traceback, and nothing more to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def run() -> NoReturn:
    """The ``opsflow`` command: :func:`main`, then exit without tearing the interpreter down.
    A rehearsal leaves a few hundred MiB of emulated account and models behind, which the
    interpreter would free object by object (about a second) before the shell gets its prompt
    back. Everything the command wrote is flushed first (standard streams, logging); it closes
    every file it writes, and no thread of it outlives its engine."""
    try:
        status = main()
    except SystemExit as done:  # argparse's --help and usage errors, as Python would end them
        if done.code is None or isinstance(done.code, int):
            status = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            status = 1
    finish(status)


def finish(status: int) -> NoReturn:
    """End the process with ``status`` once what it wrote is flushed (standard streams,
    logging), without the interpreter's teardown (see :func:`run`)."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader went away, or the stream is closed
            pass
    os._exit(status)


if __name__ == "__main__":
    run()
