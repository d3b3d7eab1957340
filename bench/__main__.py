"""``make bench``: speed and cost of the local runbooks, and forecast accuracy, in one run.

Numbers are printed, never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5

CASES = [
    ("health-abuse", "events/health-abuse/dos-report-arn.json", "mitigated, 3 instances"),
    ("health-abuse", "events/health-abuse/dos-report-unknown.json", "no-action"),
    ("ebs-quota-forecast", "events/ebs-quota-forecast/daily-schedule.json", "3 regions, 1 request"),
    ("region-failover", "events/region-failover/alarm-primary.json", "Route 53 failover"),
]


def bench_runbooks() -> None:
    from opsflow.engine.runner import LocalEngine

    print(f"Local executions ({RUNS} runs each, fresh emulated account per run; IAM enforced, "
          "and the same run without it for its cost)")
    header = (
        f"{'scenario':<19} {'case':<24} {'median s':>9} {'min s':>7} {'no IAM s':>9} "
        f"{'IAM cost':>9} {'setup s':>8} {'transitions':>11} {'virtual s':>10}"
    )
    print(header)
    print("-" * len(header))
    for scenario, path, label in CASES:
        event = json.loads((ROOT / path).read_text())
        walls, bare, setups, transitions, virtual = [], [], [], set(), set()
        for _ in range(RUNS):
            for enforce in (True, False):
                start = time.perf_counter()
                with LocalEngine(scenarios=[scenario], enforce_iam=enforce) as engine:
                    if enforce:
                        setups.append(time.perf_counter() - start)
                    begin = time.perf_counter()
                    execution = engine.run(scenario, event)
                    (walls if enforce else bare).append(time.perf_counter() - begin)
                transitions.add(execution.transitions)
                virtual.add(execution.virtual_seconds)
        median, without = statistics.median(walls), statistics.median(bare)
        print(
            f"{scenario:<19} {label:<24} {median:>9.3f} {min(walls):>7.3f} {without:>9.3f} "
            f"{(median - without) / without:>+9.0%} "
            f"{statistics.median(setups):>8.3f} {'/'.join(map(str, sorted(transitions))):>11} "
            f"{'/'.join(f'{v:.0f}' for v in sorted(virtual)):>10}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")
    print(
        "transitions = states entered (the Standard-workflow price driver, $0.025 per 1,000); "
        "virtual s = event to final state on the virtual clock; no IAM s = the same run with "
        "no IAM evaluation at all (only to price enforcement; every rehearsal enforces IAM)."
    )


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


def bench_region_outage() -> None:
    """The whole-region outage rehearsal: virtual time from the first datapoint of the outage
    to a verified failover (capacity, then ARC routing controls), transitions, wall time."""
    import time

    from opsflow.engine.runner import LocalEngine

    started = time.perf_counter()
    parameters = {"TrafficMechanism": "arc", "AutoScalingGroupName": "web", "StandbyCapacity": "3"}
    with LocalEngine(scenarios=["region-failover"], parameters=parameters) as engine:
        primary = engine.parameters()["PrimaryRegion"]
        start = engine.clock.now()
        played = engine.chaos_region_outage(primary, minutes=15)
        assert played.event is not None
        detected = (engine.clock.now() - start).total_seconds()
        execution = engine.run("region-failover", played.event)
    wall = time.perf_counter() - started
    print(
        f"region-failover, {primary} down: alarm after {detected:.0f} s, failover verified "
        f"{execution.virtual_seconds:.0f} s later: {detected + execution.virtual_seconds:.0f} s "
        f"virtual from the first bad datapoint; {execution.transitions} transitions, outcome "
        f"{execution.outcome}; {wall:.2f} s wall (engine set-up included)"
    )


def main() -> int:
    bench_runbooks()
    bench_failover_detection()
    bench_region_outage()
    print()
    from bench import forecast_backtest

    return forecast_backtest.main([])


if __name__ == "__main__":
    sys.exit(main())
