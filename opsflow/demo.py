"""``opsflow demo`` (``make demo``): every scenario end to end on the embedded emulation.

Each step is an ``opsflow`` command line, run in this one process: the same commands, the same
output, without paying for a new interpreter, imports and a cold engine at every step.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from typing import NamedTuple


class Step(NamedTuple):
    title: str
    line: str
    """The command line after ``opsflow``."""
    expect: int = 0
    """The exit status the step must end with (1: a run that escalates on purpose)."""


STEPS: list[Step] = [
    Step("health-abuse: a DoS abuse report arrives through EventBridge; shop-web-1 serves in an "
         "Auto Scaling group behind load balancers (Standby, deregistered and drained, protected, "
         "then isolated)",
         "trigger events/health-abuse/dos-report-arn.json"),
    Step("health-abuse: the same report while EC2 throttles StopInstances 4 times (the SDK retries "
         "twice, the state machine once)",
         "run health-abuse --event events/health-abuse/dos-report-bare-ids.json "
         "--fault ec2:StopInstances=RequestLimitExceeded*4"),
    Step("health-abuse: dry run of the first report (every change checked with EC2 DryRun)",
         "trigger events/health-abuse/dos-report-arn.json --dry-run"),
    Step("region-failover: game day: +300 ms on the primary, us-east-2 -> anomaly alarm seen from "
         "us-east-1 -> failover",
         "chaos latency --region us-east-2 --delay-ms 300 --minutes 15"),
    Step("region-failover: us-east-2 goes down: the alarm fires from us-east-1, which scales its "
         "capacity, fails the Aurora global database's writer over (data loss allowed), then "
         "switches ARC routing controls",
         "chaos region-outage --region us-east-2 --param TrafficMechanism=arc "
         "--param AutoScalingGroupName=web --param StandbyCapacity=3 "
         "--param GlobalClusterIdentifier=shop --param AllowDataLoss=true"),
    Step("region-failover: the same outage with Route 53's control plane down too: the weights "
         "escalate, nothing moved (exit 1 expected)",
         "chaos region-outage --region us-east-2 --route53-down "
         "--param AutoScalingGroupName=web --param StandbyCapacity=3", expect=1),
    Step("region-failover: the same alarm with Global Accelerator, approved by a person",
         "trigger events/region-failover/alarm-primary.json --param TrafficMechanism=globalaccelerator "
         "--param RequireApproval=true --approve"),
    Step("ebs-quota-forecast: the daily schedule fires",
         "trigger events/ebs-quota-forecast/daily-schedule.json"),
    Step("ebs-quota-forecast: eu-west-1 denies access; the other regions are still counted",
         "trigger events/ebs-quota-forecast/health-threshold-breach.json "
         "--fault ec2@eu-west-1:DescribeVolumes=UnauthorizedOperation"),
]
"""The demo's steps, in the order it runs them."""


def commands(view: bool = False) -> list[list[str]]:
    """Each step's arguments after ``opsflow`` (with ``--view``: also write each run's page)."""
    return [(["--view"] if view else []) + shlex.split(step.line) for step in STEPS]


def run(main: Callable[[list[str]], int], view: bool = False) -> int:
    """Run every step with ``main`` (the CLI's); 1 when any step ended otherwise than it must
    (each still runs)."""
    start = time.perf_counter()
    failed: list[str] = []
    for number, (step, argv) in enumerate(zip(STEPS, commands(view), strict=True), 1):
        if number > 1:
            print()
        print(f"== {step.title} ==")
        print(f"$ opsflow {step.line}", flush=True)
        status = main(argv)
        sys.stdout.flush()
        if status != step.expect:
            failed.append(f"step {number} ({step.line.split()[0]}) exited {status}, "
                          f"expected {step.expect}")
    took = time.perf_counter() - start
    print(f"\n== demo: {len(STEPS)} steps in {took:.1f} s"
          + (f"; FAILED: {'; '.join(failed)}" if failed else "") + " ==")
    return 1 if failed else 0
