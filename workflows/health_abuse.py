"""health-abuse: an AWS Health abuse report → verified quarantine of the reported instances.

Detect parses the event and inspects every reported instance (in its own region, or in each
configured region when the event says ``global``); the skeleton then applies the shared guards.
Act runs per batch of instances (``plan.BATCH_SIZE`` of them, with EC2's multi-resource calls)
with bounded concurrency: record the before-state in tags; take each instance out of service
(Auto Scaling ``Standby`` or detached, deregistered from every target group and classic load
balancer, drained within a bound); turn termination protection on, shutdown behaviour to stop
and DeleteOnTermination off, disassociate the instance profile, tag the volumes; isolate
every network interface; optionally snapshot the volumes; stop. Every batch's iteration ends, even a failing one, before
the run goes on (so a rollback never races an isolation still in flight). Verify polls until
every instance is stopped, isolated, out of service and protected. Rollback restores each
touched instance from its tags (in the reverse order: started, groups, protections and profile,
load balancers, back in its group),
or holds them (``RollbackMode=hold``) and escalates; either way the cause is built from each
instance's final state compared with its before-state, and a rollback that fails or leaves
anything changed escalates naming the instances left changed.

Step Functions holds a state's data to 256 KiB, so the state stays small: the parse replaces the
event with the plan (the event is the execution's input, in its history), the plan carries the
targets as batches of IDs, each Map keeps only its iterations' ``result`` and failures, and the
verify and rollback functions read the account, not the Map results. An event whose plan cannot
fit is refused at the first task (``Runbook.InvalidEvent``, naming the limit).

Instances may be in any region, and Step Functions' AWS SDK integrations call their own region
only, so the EC2 work runs in small Lambda functions that take the region as input.
"""

from __future__ import annotations

from typing import Any

from stepfunctions.steps import ChoiceRule

from workflows import runbook, sdk

SCENARIO = "health-abuse"
MAX_CONCURRENCY = 5
"""Batches in flight at once (each a few EC2 calls per instance): with at most
``ceil(MaxInstances / BATCH_SIZE)`` batches, the act takes a few rounds of function calls."""

SETTINGS = {
    "dryRun": "${DryRun}",
    "abuseCodes": "${AbuseEventCodes}",
    "protectedTagKey": "${ProtectedTagKey}",
    "protectedTagValue": "${ProtectedTagValue}",
    "maxInstances": "${MaxInstances}",
    "regions": "${InstanceRegions}",
    "isolationGroupName": "${IsolationGroupName}",
    "forensicSnapshot": "${ForensicSnapshot}",
    "autoScalingMode": "${AutoScalingMode}",
    "rollbackMode": "${RollbackMode}",
    "pollSeconds": "${VerifyPollSeconds}",
    "maxPolls": "${VerifyMaxPolls}",
}


def _per_batch() -> dict[str, Any]:
    """What each Map iteration starts with; its tasks leave what they report at ``$.result``."""
    return {
        "batch.$": "$$.Map.Item.Value",
        "settings.$": "$.plan.settings",
        "dryRun.$": "$.plan.dryRun",
        "execution.$": "$$.Execution.Name",
        "event.$": "$.plan.event.eventArn",
        "result": {},
    }


def _batch_task(name: str, function: str, result: str | None, dry_run: bool = True) -> sdk.Task:
    payload = {"batch.$": "$.batch", "settings.$": "$.settings", "execution.$": "$.execution",
               "event.$": "$.event"}
    if dry_run:
        payload["dryRun.$"] = "$.dryRun"
    return runbook.lambda_task(
        name, function, payload, result_path=f"$.result.{result}" if result else "$.result"
    )


DRAIN_INTERVAL_SECONDS = 15
DRAIN_ATTEMPTS = 20
"""How long the act waits for deregistered targets to drain: 20 checks 15 s apart, the 300 s
of Elastic Load Balancing's default deregistration delay; still draining after that fails the
batch (and the run rolls back)."""


def _draining_retry() -> sdk.Retry:
    return sdk.Retry(error_equals=["TargetsDraining"], interval_seconds=DRAIN_INTERVAL_SECONDS,
                     max_attempts=DRAIN_ATTEMPTS, backoff_rate=1.0)


def _busy_retry() -> sdk.Retry:
    return sdk.Retry(error_equals=["InstanceBusy"], interval_seconds=15, max_attempts=8, backoff_rate=1.5)


def phases() -> runbook.Phases:
    # Detect. The plan replaces the event in the state (ResultPath "$"): the event stays the
    # execution's input, and the states carry only what the plan keeps of it.
    parse = runbook.read_event("Detect: Parse Health event", "ParseHealthEventFunction", SETTINGS)
    inspect = runbook.lambda_task(
        "Detect: Inspect reported instances",
        "InspectInstancesFunction",
        {"plan.$": "$.plan"},
        result_path="$.plan",
    )
    parse.next(inspect)

    # Act, per batch: out of service (and drained) first, then protected and isolated.
    take_out = _batch_task("Act: Take out of service", "TakeOutOfServiceFunction", "service")
    take_out.add_retry(_draining_retry())
    isolate = _batch_task("Act: Record and isolate", "IsolateInstanceFunction", "isolation")
    take_out.next(isolate)
    snapshot = _batch_task("Act: Snapshot volumes", "SnapshotVolumesFunction", "snapshot")
    stop = _batch_task("Act: Stop instances", "StopInstanceFunction", "stop")
    want_snapshot = sdk.Choice("Act: Forensic snapshot?")
    want_snapshot.add_choice(ChoiceRule.BooleanEquals("$.settings.forensicSnapshot", True), snapshot)
    want_snapshot.default_choice(stop)
    isolate.next(want_snapshot)
    snapshot.next(stop)
    quarantine = sdk.Map(
        "Act: Quarantine instances",
        items_path="$.plan.batches",
        item_selector=_per_batch(),
        max_concurrency=MAX_CONCURRENCY,
        result_path="$.act",
    )
    quarantine.attach_iterator(take_out)
    quarantined = runbook.settle_each_item(
        quarantine,
        keep="Act: Keep batch failure",
        item={},
        collect=None,
        question="Act: Every batch done?",
        read="Act: Read first failure",
        failures_path=None,
        error_path="$.error",
    )

    # Verify.
    verify = runbook.verify_loop(
        wait=sdk.Wait("Verify: Wait for instances", seconds_path="$.plan.settings.pollSeconds"),
        check=runbook.lambda_task(
            "Verify: Check instances",
            "CheckQuarantineFunction",
            {"plan.$": "$.plan", "attempt.$": "$.verify.attempt"},
            result_path="$.verify",
        ),
        question="Verify: Stopped and isolated?",
        not_confirmed="Quarantine not confirmed",
    )

    # Rollback.
    restore_or_hold = sdk.Choice("Rollback: Restore or hold?")
    restore = _batch_task(
        "Rollback: Restore batch", "RestoreInstanceFunction", None, dry_run=False
    )
    restore.add_retry(_busy_retry())
    restore_all = sdk.Map(
        "Rollback: Restore instances",
        items_path="$.plan.batches",
        item_selector=_per_batch(),
        max_concurrency=MAX_CONCURRENCY,
        result_path="$.restore",
    )
    restore_all.attach_iterator(restore)
    restored = runbook.settle_each_item(
        restore_all,
        keep="Rollback: Keep batch failure",
        item={},
        collect=None,
        question="Rollback: Every restore done?",
        read="Rollback: Read first failure",
        failures_path=None,
        error_path="$.rollbackError",
    )
    summarise = runbook.lambda_task(
        "Rollback: Report final state", "SummariseRollbackFunction",
        {"plan.$": "$.plan", "error.$": "$.error", "mode": "restore"}, result_path="$.rollback",
    )
    left = runbook.lambda_task(
        "Rollback: Report what is left", "SummariseRollbackFunction",
        {"plan.$": "$.plan", "error.$": "$.error", "rollbackError.$": "$.rollbackError",
         "mode": "failed"},
        result_path="$.rollback",
    )
    hold = runbook.lambda_task(
        "Rollback: Hold and report", "SummariseRollbackFunction",
        {"plan.$": "$.plan", "error.$": "$.error", "mode": "hold"}, result_path="$.rollback",
    )
    restore_or_hold.add_choice(
        ChoiceRule.And([
            ChoiceRule.StringEquals("$.plan.settings.rollbackMode", "hold"),
            ChoiceRule.BooleanEquals("$.plan.dryRun", False),
        ]),
        hold,
    )
    # A dry run changed nothing: report, never restore (an instance may be held by an earlier run).
    restore_or_hold.add_choice(ChoiceRule.BooleanEquals("$.plan.dryRun", True), summarise)
    restore_or_hold.default_choice(restore_all)
    restored.done.default_choice(summarise)
    restored.first_failure.next(left)
    quarantined.first_failure.next(restore_or_hold)

    return runbook.Phases(
        scenario=SCENARIO,
        comment="opsflow health-abuse: AWS Health abuse report -> verified quarantine of the "
        "reported EC2 instances, with rollback.",
        detect=parse,
        detect_tail=inspect,
        act=quarantine,
        act_tail=quarantined.done,
        verify=verify,
        rollback=restore_or_hold,
        rollback_tail=summarise,
        rollback_escalate_from=[hold],
        rollback_report=left,
    )


def definition() -> dict[str, Any]:
    return runbook.build(phases())
