"""``make bench``: speed and cost of the local runbooks, and forecast accuracy, in one run;
``make bench-scale``: the cost per instance and per volume up to 1,000 and 10,000.

Numbers are printed, never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3

CASES = [
    ("health-abuse", "events/health-abuse/dos-report-arn.json", "mitigated, 3 instances"),
    ("health-abuse", "events/health-abuse/dos-report-unknown.json", "no-action"),
    ("ebs-quota-forecast", "events/ebs-quota-forecast/daily-schedule.json", "3 regions, 1 request"),
    ("region-failover", "events/region-failover/alarm-primary.json", "Route 53 failover"),
]


EXECUTION_GOAL = 0.150
"""Seconds: a local execution of each main case (issue #9)."""
BARE_RATIO_GOAL = 2.0
"""A rehearsal's execution against moto's interpreter running the same definition with the same
in-process Lambdas and none of opsflow's checks."""


def _bare_run(engine: Any, scenario: str, event: dict[str, Any]) -> int:
    """The same execution as moto's interpreter alone runs it: the deployed definition, the
    in-process Lambdas, and nothing of opsflow's (no IAM, no call log, no before/after diff,
    no history read); its end is awaited on the interpreter's own history event. Returns the
    states entered."""
    import threading

    from opsflow.engine import cures

    engine.boundary.authorizer = None
    entered: list[str] = []
    done = threading.Event()

    def listen(item: dict[str, Any]) -> None:
        if "stateEnteredEventDetails" in item:
            entered.append(item["stateEnteredEventDetails"]["name"])
        if item["type"] in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted",
                            "ExecutionTimedOut"):
            done.set()

    cures.HISTORY_LISTENERS.append(listen)
    try:
        engine.client("stepfunctions").start_execution(
            stateMachineArn=engine.state_machines[scenario], name=f"bare-{time.monotonic_ns()}",
            input=json.dumps(event))
        done.wait(60)
    finally:
        cures.HISTORY_LISTENERS.remove(listen)
    return len(entered)


def bench_runbooks() -> None:
    from bench import goals
    from opsflow.engine.runner import LocalEngine

    print(f"Local executions ({RUNS} runs each, fresh emulated account per run, restored from "
          "its snapshot; IAM enforced; bare = moto's interpreter alone on the same definition "
          "and in-process Lambdas)")
    header = (
        f"{'scenario':<19} {'case':<24} {'median s':>9} {'min s':>7} {'bare s':>7} "
        f"{'x bare':>7} {'ms/state':>9} {'no IAM s':>9} {'setup s':>8} {'transitions':>11} "
        f"{'virtual s':>10}"
    )
    print(header)
    print("-" * len(header))
    for scenario, path, label in CASES:
        event = json.loads((ROOT / path).read_text())
        walls, unchecked, bares, setups, transitions, virtual = [], [], [], [], set(), set()
        for _ in range(RUNS):
            for enforce in (True, False):
                start = time.perf_counter()
                with LocalEngine(scenarios=[scenario], enforce_iam=enforce) as engine:
                    if enforce:
                        setups.append(time.perf_counter() - start)
                    begin = time.perf_counter()
                    execution = engine.run(scenario, event)
                    (walls if enforce else unchecked).append(time.perf_counter() - begin)
                transitions.add(execution.transitions)
                virtual.add(execution.virtual_seconds)
            with LocalEngine(scenarios=[scenario], enforce_iam=False) as engine:
                begin = time.perf_counter()
                entered = _bare_run(engine, scenario, event)
                bares.append(time.perf_counter() - begin)
            assert entered == execution.transitions, (scenario, entered, execution.transitions)
        median, bare = statistics.median(walls), statistics.median(bares)
        states = max(transitions)
        print(
            f"{scenario:<19} {label:<24} {median:>9.3f} {min(walls):>7.3f} {bare:>7.3f} "
            f"{median / bare:>6.2f}x {median / states * 1000:>9.1f} "
            f"{statistics.median(unchecked):>9.3f} {statistics.median(setups):>8.3f} "
            f"{'/'.join(map(str, sorted(transitions))):>11} "
            f"{'/'.join(f'{v:.0f}' for v in sorted(virtual)):>10}"
        )
        goals.record(f"execution, {scenario} ({label})", median, EXECUTION_GOAL)
        goals.record(f"  against bare moto, {scenario} ({label})", median / bare,
                     BARE_RATIO_GOAL, "x", f"bare {bare:.3f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")
    print(
        "transitions = states entered (the Standard-workflow price driver, $0.025 per 1,000); "
        "virtual s = event to final state on the virtual clock; ms/state = median / transitions; "
        "no IAM s = the rehearsal with no IAM evaluation (only to price enforcement; every "
        "rehearsal enforces IAM)."
    )


def bench_profile() -> None:
    """Where the slowest main case's time goes, by component (sampled, every thread)."""
    from bench import profile
    from opsflow.engine.runner import LocalEngine

    scenario, path, label = CASES[0]
    event = json.loads((ROOT / path).read_text())
    with LocalEngine(scenarios=[scenario]) as engine:
        engine.run(scenario, event)  # warm
    with LocalEngine(scenarios=[scenario]) as engine:
        with profile.Sampler() as sampler:
            engine.run(scenario, event)
    profile.print_profile(f"Profile of one {scenario} execution ({label}), rehearsal",
                          sampler)
    with LocalEngine(scenarios=[scenario], enforce_iam=False) as engine:
        with profile.Sampler() as sampler:
            _bare_run(engine, scenario, event)
    profile.print_profile("Profile of the same execution, bare moto", sampler)


SETUP_RUNS = 2


def bench_setup() -> None:
    """Engine set-up, built (worlds and stack built, then the snapshot taken: the first engine
    of a process for a build) against restored from that snapshot (every later one)."""
    from opsflow.engine import snapshot, worlds
    from opsflow.engine.runner import LocalEngine

    print(f"Engine set-up (CPU s, min of {SETUP_RUNS}: built = worlds and stack built and the "
          "snapshot taken, restored = from that snapshot)")
    header = f"{'scenarios':<19} {'built s':>8} {'restored s':>11} {'speed-up':>9} {'snapshot':>9}"
    print(header)
    print("-" * len(header))
    for scenarios in [[s] for s in worlds.BUILDERS] + [None]:
        with LocalEngine(scenarios=scenarios):
            pass  # imports and first-use caches out of the figures
        built, restored = [], []
        for _ in range(SETUP_RUNS):
            for times, fresh in ((built, True), (restored, False)):
                if fresh:
                    snapshot.forget()
                start = time.process_time()
                engine = LocalEngine(scenarios=scenarios).__enter__()
                times.append(time.process_time() - start)
                assert engine.restored is not fresh
                engine.__exit__(None, None, None)
        kept = snapshot.saved(snapshot.key(scenarios or list(worlds.BUILDERS), {},
                                           engine.template))
        size = f"{len(kept.blob) / 1024:.0f} KiB" if kept is not None else "-"
        print(f"{'+'.join(scenarios) if scenarios else 'all':<19} {min(built):>8.3f} "
              f"{min(restored):>11.3f} {min(built) / min(restored):>8.0f}x {size:>9}")
    print()


def bench_failover_detection() -> None:
    """Virtual time from the first anomalous datapoint to a verified failover."""
    from opsflow.engine.runner import LocalEngine

    with LocalEngine(scenarios=["region-failover"]) as engine:
        primary = engine.parameters()["PrimaryRegion"]
        start = engine.clock.now()
        played = engine.chaos_latency(primary, delay_ms=300, minutes=15)
        assert played.event is not None
        detected = (engine.clock.now() - start).total_seconds()
        execution = engine.run("region-failover", played.event)
    print(
        f"region-failover, +300 ms on {primary}: alarm after {detected:.0f} s (detection), "
        f"failover verified {execution.virtual_seconds:.0f} s later (reaction): "
        f"{detected + execution.virtual_seconds:.0f} s virtual from the first anomalous "
        f"datapoint; {execution.transitions} transitions, outcome {execution.outcome}"
    )


def _peak_mib() -> float:
    """This process's peak resident memory: ``VmHWM`` on Linux (``ru_maxrss`` survives exec,
    so a child started by a large parent would report the parent's peak), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_run(argv: list[str]) -> NoReturn:
    """``opsflow ARGV`` in this (new) process, ended as the ``opsflow`` command ends
    (``cli.finish``: no interpreter teardown), its peak resident memory on stderr first (the
    last line, JSON). The peak is read inside: a child's ``ru_maxrss`` as its parent sees it
    includes the parent's own, carried across the exec."""
    from opsflow import cli

    status = cli.main(argv)
    print(json.dumps({"peak": _peak_mib()}), file=sys.stderr)
    cli.finish(status)


def _process(argv: list[str]) -> tuple[float, float]:
    """Wall time and peak resident memory of one whole ``opsflow ARGV`` process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", "--process", *argv],
                          capture_output=True, text=True, check=True, cwd=ROOT,
                          env={**os.environ, "NO_COLOR": "1"})
    took = time.perf_counter() - start
    return took, json.loads(done.stderr.strip().splitlines()[-1])["peak"]


def _wall(argv: list[str], runs: int) -> float:
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, cwd=ROOT,
                       env={**os.environ, "NO_COLOR": "1"})
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def bench_cli() -> None:
    """Whole processes, as a person runs them (warm disk caches)."""
    from bench import goals

    opsflow = [sys.executable, "-m", "opsflow"]
    bare = _wall([sys.executable, "-c", "pass"], 1)
    boto = _wall([sys.executable, "-c", "import boto3"], 1)
    engine = _wall([sys.executable, "-c", "import opsflow.engine.runner, moto.ec2, "
                    "moto.stepfunctions, moto.autoscaling, moto.elbv2"], 1)
    helped = _wall([*opsflow, "--help"], 3)
    print("\nWhole CLI processes (wall time, warm caches: the references and each case's run "
          "once, with its peak memory; --help the median of 3, warm runs of 2)")
    print(f"  python -c pass           {bare:6.3f} s   (the interpreter alone)")
    print(f"  python -c 'import boto3' {boto:6.3f} s")
    print(f"  import the engine, moto  {engine:6.3f} s   (what every run imports before it starts)")
    print(f"  opsflow --help           {helped:6.3f} s")
    goals.record("opsflow --help", helped, 0.2)
    for scenario, path, label in CASES:
        took, peak = _process(["run", scenario, "--event", path])
        print(f"  opsflow run {scenario:<19} {took:6.3f} s   ({label}; peak resident memory "
              f"{peak:.0f} MiB: interpreter, imports, engine, world and the run)")
        goals.record(f"opsflow run {scenario}, {label} (new process)", took, 1.0,
                     note=f"imports {engine:.2f} s of it")
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        os.environ["OPSFLOW_WORKER_SOCKET"] = str(Path(where) / "bench.sock")
        try:
            started = time.perf_counter()
            subprocess.run([*opsflow, "worker", "start", "--idle-minutes", "5"], check=True,
                           capture_output=True, cwd=ROOT)
            print(f"  opsflow worker start     {time.perf_counter() - started:6.3f} s   (once: "
                  "imports, every world built)")
            for scenario, path, _ in CASES[:1] + CASES[2:]:
                took = _wall([*opsflow, "run", scenario, "--event", path], 2)
                print(f"  opsflow run {scenario:<19} {took:6.3f} s   (in a fork of the worker)")
                goals.record(f"opsflow run {scenario} (warm worker)", took, 1.0)
        finally:
            subprocess.run([*opsflow, "worker", "stop"], capture_output=True, cwd=ROOT)
            del os.environ["OPSFLOW_WORKER_SOCKET"]


def _timed_run(engine: Any, scenario: str, event: dict[str, Any]) -> tuple[float, str, int]:
    """Seconds of one execution, how it ended, and the AWS calls it made."""
    start = time.perf_counter()
    execution = engine.run(scenario, event)
    took = time.perf_counter() - start
    return took, execution.outcome or execution.error or "", len(execution.calls)


def _abuse_at_scale(count: int) -> tuple[float, str, int]:
    from opsflow.engine.runner import LocalEngine

    event = json.loads((ROOT / "events/health-abuse/dos-report-bare-ids.json").read_text())
    with LocalEngine(scenarios=["health-abuse"], parameters={"MaxInstances": "1000"}) as engine:
        ec2 = engine.client("ec2", "us-east-1")
        vpc = ec2.describe_instances(InstanceIds=[engine.world["health-abuse"]["instances"][
            "shop-web-1"]])["Reservations"][0]["Instances"][0]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.16.0/20")["Subnet"]["SubnetId"]
        ids: list[str] = []
        while len(ids) < count:
            batch = min(count - len(ids), 500)
            reservation = ec2.run_instances(
                ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=batch,
                MaxCount=batch, SubnetId=subnet, TagSpecifications=[{
                    "ResourceType": "instance", "Tags": [{"Key": "Stage", "Value": "Dev"}]}])
            ids += [instance["InstanceId"] for instance in reservation["Instances"]]
        event["detail"]["affectedEntities"] = [
            {"entityValue": instance_id, "status": "IMPAIRED"} for instance_id in ids]
        return _timed_run(engine, "health-abuse", event)


def _census_at_scale(count: int) -> tuple[float, str, int]:
    from moto.ec2.models import ec2_backends

    from opsflow.engine.runner import ACCOUNT, LocalEngine

    regions = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"]
    event = json.loads((ROOT / "events/ebs-quota-forecast/daily-schedule.json").read_text())
    with LocalEngine(scenarios=["ebs-quota-forecast"],
                     parameters={"QuotaRegions": ",".join(regions)}) as engine:
        for index in range(count):
            region = regions[index % len(regions)]
            ec2_backends[ACCOUNT][region].create_volume(
                size=8, zone_name=f"{region}a", volume_type="gp3")
        return _timed_run(engine, "ebs-quota-forecast", event)


SCALE_GOALS = {("instance", 1000): 10.0, ("volume", 10_000): 5.0}
"""Seconds: an abuse report naming 1,000 instances mitigated; a census of 10,000 volumes."""
SCALE = {"instance": (10, 100, 1000), "volume": (100, 1000, 10_000)}
QUICK_SCALE = {"instance": (10, 100), "volume": (100, 1000)}
"""What ``make bench`` measures; ``make bench-scale`` adds the largest points (most of a
minute of moto's per-call cost on their own)."""


def bench_scale(counts: dict[str, tuple[int, ...]]) -> None:
    from bench import goals

    print("\nScale (one run each, after a warm-up run; the cost of each added resource should "
          "stay flat; AWS calls = every call the run made, the handlers' and the state "
          "machine's)")
    _abuse_at_scale(3)
    for label, measure, unit in (
        ("health-abuse: abuse report naming N instances", _abuse_at_scale, "instance"),
        ("ebs-quota-forecast: census of N extra volumes over 4 regions", _census_at_scale,
         "volume"),
    ):
        print(f"  {label}")
        base: tuple[int, float] | None = None
        for count in counts[unit]:
            took, outcome, calls = measure(count)
            limit = SCALE_GOALS.get((unit, count))
            each = f"{took / calls * 1000:.2f} ms each" if calls else "none recorded"
            if limit is not None:
                goals.record(f"{unit}s: {count:,}", took, limit,
                             note=f"{calls:,} AWS calls, {each}")
            marginal = ""
            if base is not None:
                marginal = (f", {(took - base[1]) / (count - base[0]) * 1000:.2f} ms per added "
                            f"{unit}")
            print(f"    N = {count:>6,}: {took:7.3f} s, {took / count * 1000:7.2f} ms per "
                  f"{unit}{marginal}; {calls:,} AWS calls, {each} ({outcome})")
            base = (count, took)
        larger = [c for c in SCALE[unit] if c not in counts[unit]]
        if larger:
            print(f"    N = {', '.join(f'{c:,}' for c in larger)}: make bench-scale")


def machine_reference() -> float:
    """Seconds for a fixed pure-Python loop: this machine's speed in this run, so figures of
    runs on other days (these machines are shared) can be compared by their ratio to it."""
    start = time.perf_counter()
    total = 0
    for number in range(5_000_000):
        total += number & 7
    return time.perf_counter() - start


def bench_region_outage() -> None:
    """The whole-region outage rehearsal: virtual time from the first datapoint of the outage
    to a verified failover (capacity, the database writer, then ARC routing controls),
    transitions, wall time."""
    import time

    from opsflow.engine.runner import LocalEngine

    started = time.perf_counter()
    parameters = {"TrafficMechanism": "arc", "AutoScalingGroupName": "web", "StandbyCapacity": "3",
                  "GlobalClusterIdentifier": "shop", "AllowDataLoss": "true"}
    with LocalEngine(scenarios=["region-failover"], parameters=parameters) as engine:
        primary = engine.parameters()["PrimaryRegion"]
        start = engine.clock.now()
        played = engine.chaos_region_outage(primary, minutes=15)
        assert played.event is not None
        detected = (engine.clock.now() - start).total_seconds()
        execution = engine.run("region-failover", played.event)
        writer = engine.fakes["rds"].writer("shop")
    wall = time.perf_counter() - started
    print(
        f"region-failover, {primary} down: alarm after {detected:.0f} s, failover verified "
        f"{execution.virtual_seconds:.0f} s later: {detected + execution.virtual_seconds:.0f} s "
        f"virtual from the first bad datapoint; {execution.transitions} transitions, outcome "
        f"{execution.outcome}, database writer in {writer}; {wall:.2f} s wall (engine set-up "
        "included)"
    )


BENCH_GOAL = 60.0
"""Seconds: the whole of ``make bench`` (issue #9)."""


def main() -> int:
    from opsflow import tune_gc

    if sys.argv[1:2] == ["--process"]:
        return process_run(sys.argv[2:])
    tune_gc()  # as the CLI does
    if sys.argv[1:2] == ["--setup"]:
        bench_setup()
        return 0
    started = time.perf_counter()
    reference = machine_reference()
    print(f"Machine reference: a pure-Python loop of 5 M steps takes {reference:.3f} s in this "
          "run (compare figures of other runs by their ratio to it)\n")
    from bench import goals

    if sys.argv[1:2] == ["--scale"]:
        bench_scale(SCALE)
        goals.report()
        return 0
    from bench import forecast_backtest, view

    def failover() -> None:
        bench_failover_detection()
        bench_region_outage()

    def page() -> None:
        view.main()
        print()

    sections: list[tuple[str, Callable[[], object]]] = [
        ("set-up", bench_setup), ("executions", bench_runbooks), ("profiles", bench_profile),
        ("failover", failover), ("CLI processes", bench_cli),
        ("scale", lambda: bench_scale(QUICK_SCALE)), ("view", page),
    ]
    spent: list[str] = []
    for name, section in sections:
        begin = time.perf_counter()
        section()
        spent.append(f"{name} {time.perf_counter() - begin:.1f}")
    begin = time.perf_counter()
    status = forecast_backtest.main([])
    spent.append(f"back-test {time.perf_counter() - begin:.1f}")
    took = time.perf_counter() - started
    print(f"\nmake bench: {took:.1f} s wall (seconds per part: {', '.join(spent)})")
    goals.record("make bench (this run)", took, BENCH_GOAL)
    goals.report()
    return status


if __name__ == "__main__":
    sys.exit(main())
