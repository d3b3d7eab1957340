"""region-failover: an anomaly-detected latency alarm → a verified cross-region traffic shift.

Detect reads the alarm event (only the configured alarms, only OK → ALARM), works out the
impaired and target regions, and runs the pre-flight: traffic really is in the impaired region,
no failover within the cooldown (state in Parameter Store), and the target region is healthy
(enough healthy NLB targets, its own canary alarm OK): otherwise escalate and move nothing.
An optional human approval comes before the act. Act records the before-state and shifts the
traffic (ARC routing controls, the standby-takes-over object, Route 53 weighted records or a
Global Accelerator traffic dial), after scaling the target's Auto Scaling group and waiting for
its instances to be healthy, and moving an Aurora global database's writer into the target
(switchover; failover with data loss only when the writer's region is down and AllowDataLoss). Verify waits for the
change to be in sync and the target's canary to stay healthy for consecutive checks; only then is
the failover recorded, which starts the cooldown (a failover that was rolled back starts none).
Rollback restores the recorded split, then switches a switched-over writer back (a writer moved
with data loss stays, and traffic with it), then (only once traffic and writer are back) the
target's recorded capacity, and reports each as it then is; a rollback that
fails or leaves the split changed escalates with the traffic read from the account. A manual run with ``{"opsflow": {"mode": "failback"}}`` moves
traffic back with the same pre-flight, verify and rollback.
"""

from __future__ import annotations

from typing import Any

from stepfunctions.steps import ChoiceRule

from workflows import runbook, sdk

SCENARIO = "region-failover"

SETTINGS = {
    "dryRun": "${DryRun}",
    "primaryRegion": "${PrimaryRegion}",
    "standbyRegion": "${StandbyRegion}",
    "alarms": "${CanaryAlarms}",
    "alarmRegion": "${AlarmRegion}",
    "mechanism": "${TrafficMechanism}",
    "hostedZoneId": "${HostedZoneId}",
    "recordName": "${RecordName}",
    "listenerArn": "${AcceleratorListenerArn}",
    "autoScalingGroup": "${AutoScalingGroupName}",
    "standbyCapacity": "${StandbyCapacity}",
    "routingControls": "${RoutingControlArns}",
    "routingControlEndpoints": "${RoutingControlEndpoints}",
    "failoverBucket": "${FailoverBucket}",
    "failoverObjectKey": "${FailoverObjectKey}",
    "targetGroups": "${TargetGroupArns}",
    "globalCluster": "${GlobalClusterIdentifier}",
    "allowDataLoss": "${AllowDataLoss}",
    "minHealthyTargets": "${MinHealthyTargets}",
    "cooldownMinutes": "${FailoverCooldownMinutes}",
    "healthyPolls": "${HealthyPollsRequired}",
    "pollSeconds": "${FailoverPollSeconds}",
    "maxPolls": "${FailoverMaxPolls}",
    "stateParameter": "${FailoverStateParameterName}",
    "requireApproval": "${RequireApproval}",
    "approvalTimeoutSeconds": "${ApprovalTimeoutSeconds}",
}


def phases() -> runbook.Phases:
    parse = runbook.read_event("Detect: Read alarm", "ParseAlarmFunction", SETTINGS)
    preflight = runbook.lambda_task(
        "Detect: Pre-flight target region", "PreflightFunction", {"plan.$": "$.plan"},
        result_path="$.plan",
    )
    parse.next(preflight)

    shift = runbook.lambda_task(
        "Act: Record and shift traffic", "ShiftTrafficFunction", {"plan.$": "$.plan"},
        result_path="$.act",
    )
    # The data tier before traffic: the global database's writer moves into the target region
    # (no global database configured, or its writer already there: at once).
    move_data = _until_ready("Act: Move database writer", "Act: Writer moved?",
                             "Act: Wait for writer", "Act: Check writer",
                             "MoveDatabaseFunction", "database", then=shift)
    # Capacity before that: the target's group is scaled, then its own instances must be
    # healthy in the target group (no group configured: ready at once).
    scale = _until_ready("Act: Scale target capacity", "Act: Capacity ready?",
                         "Act: Wait for capacity", "Act: Check capacity",
                         "ScaleCapacityFunction", "capacity", then=move_data)

    verify = runbook.verify_loop(
        wait=sdk.Wait("Verify: Wait for propagation", seconds_path="$.plan.settings.pollSeconds"),
        check=runbook.lambda_task(
            "Verify: Check target region",
            "CheckFailoverFunction",
            {"plan.$": "$.plan", "act.$": "$.act", "verify.$": "$.verify"},
            result_path="$.verify",
        ),
        question="Verify: In sync and healthy?",
        not_confirmed="Failover not confirmed",
        start={"attempt": 0, "streak": 0},
    )

    # Verified: record it (the cooldown starts only for a failover that stayed in place). The
    # function that records the runbook's state before shifting is the one that may write it.
    record = runbook.lambda_task(
        "Verify: Record verified move",
        "ShiftTrafficFunction",
        {"plan.$": "$.plan", "act.$": "$.act", "record": "verified"},
        result_path="$.recorded",
    )

    restore = runbook.lambda_task(
        "Rollback: Restore traffic, writer, capacity",
        "RestoreTrafficFunction",
        {"plan.$": "$.plan", "error.$": "$.error"},
        result_path="$.rollback",
    )
    # A switched-over writer is switched back once traffic is: wait for it, then capacity.
    data_back = sdk.Choice("Rollback: Writer switching back?")
    wait_back = sdk.Wait("Rollback: Wait for writer", seconds_path="$.plan.settings.pollSeconds")
    check_back = runbook.lambda_task(
        "Rollback: Check writer, then capacity",
        "RestoreTrafficFunction",
        {"plan.$": "$.plan", "error.$": "$.error", "rollback.$": "$.rollback", "check": True},
        result_path="$.rollback",
    )
    restore.next(data_back)
    data_back.add_choice(ChoiceRule.BooleanEquals("$.rollback.waiting", True), wait_back)
    wait_back.next(check_back)
    check_back.next(data_back)
    report = runbook.lambda_task(
        "Rollback: Report traffic left",
        "RestoreTrafficFunction",
        {"plan.$": "$.plan", "error.$": "$.error", "rollbackError.$": "$.rollbackError",
         "report": True},
        result_path="$.rollback",
    )

    return runbook.Phases(
        scenario=SCENARIO,
        comment="opsflow region-failover: anomaly-detected latency -> verified cross-region "
        "traffic shift, with rollback and failback.",
        detect=parse,
        detect_tail=preflight,
        act=scale,
        act_tail=shift,
        verify=verify,
        verified=record,
        verified_tail=record,
        rollback=restore,
        rollback_tail=data_back,
        rollback_escalate_from=[],
        rollback_report=report,
        approval=True,
    )


def _until_ready(start: str, question: str, wait: str, check: str, function: str, key: str,
                 then: Any) -> sdk.Task:
    """``start`` (``function`` on the plan, its result at ``$.<key>``), then ``check`` (the same
    function with ``"check": true``) every ``pollSeconds`` until ``$.<key>.ready``; then
    ``then``. The function ends the wait itself (its error once the checks run out)."""
    first = runbook.lambda_task(start, function, {"plan.$": "$.plan"}, result_path=f"$.{key}")
    ready = sdk.Choice(question)
    pause = sdk.Wait(wait, seconds_path="$.plan.settings.pollSeconds")
    again = runbook.lambda_task(
        check, function, {"plan.$": "$.plan", f"{key}.$": f"$.{key}", "check": True},
        result_path=f"$.{key}",
    )
    first.next(ready)
    ready.add_choice(ChoiceRule.BooleanEquals(f"$.{key}.ready", True), then)
    ready.default_choice(pause)
    pause.next(again)
    again.next(ready)
    return first


def definition() -> dict[str, Any]:
    return runbook.build(phases())
