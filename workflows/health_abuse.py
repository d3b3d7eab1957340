"""health-abuse: an AWS Health abuse report → verified quarantine of the reported instances.

Detect parses the event and inspects every reported instance (in its own region, or in each
configured region when the event says ``global``); the skeleton then applies the shared guards.
Act runs per instance with bounded concurrency: record the before-state in tags and isolate every
network interface, optionally snapshot the volumes, stop. Every instance's iteration ends, even a
failing one, before the run goes on (so a rollback never races an isolation still in flight).
Verify polls until every instance is stopped and isolated. Rollback restores each touched
instance from its tags, or holds them (``RollbackMode=hold``) and escalates; either way the
cause is built from each instance's final state compared with its before-state, and a rollback
that fails or leaves anything changed escalates naming every instance left changed.

Instances may be in any region, and Step Functions' AWS SDK integrations call their own region
only, so the EC2 work runs in small Lambda functions that take the region as input.
"""

from __future__ import annotations

from typing import Any

from stepfunctions.steps import ChoiceRule

from workflows import runbook, sdk

SCENARIO = "health-abuse"
MAX_CONCURRENCY = 5

SETTINGS = {
    "dryRun": "${DryRun}",
    "abuseCodes": "${AbuseEventCodes}",
    "protectedTagKey": "${ProtectedTagKey}",
    "protectedTagValue": "${ProtectedTagValue}",
    "maxInstances": "${MaxInstances}",
    "regions": "${InstanceRegions}",
    "isolationGroupName": "${IsolationGroupName}",
    "forensicSnapshot": "${ForensicSnapshot}",
    "rollbackMode": "${RollbackMode}",
    "pollSeconds": "${VerifyPollSeconds}",
    "maxPolls": "${VerifyMaxPolls}",
}


def _per_instance() -> dict[str, Any]:
    return {
        "instance.$": "$$.Map.Item.Value",
        "settings.$": "$.plan.settings",
        "dryRun.$": "$.plan.dryRun",
        "execution.$": "$$.Execution.Name",
    }


def _failed_item() -> dict[str, Any]:
    """What a failed iteration keeps beside its error: which instance it was."""
    return {"instanceId.$": "$.instance.instanceId", "region.$": "$.instance.region"}


def _busy_retry() -> sdk.Retry:
    return sdk.Retry(error_equals=["InstanceBusy"], interval_seconds=15, max_attempts=8, backoff_rate=1.5)


def phases() -> runbook.Phases:
    # Detect.
    parse = runbook.lambda_task(
        "Detect: Parse Health event",
        "ParseHealthEventFunction",
        {"event.$": runbook.EVENT, "settings": dict(SETTINGS), "execution.$": "$$.Execution.Id"},
        result_path="$.plan",
    )
    inspect = runbook.lambda_task(
        "Detect: Inspect reported instances",
        "InspectInstancesFunction",
        {"plan.$": "$.plan"},
        result_path="$.plan",
    )
    parse.next(inspect)

    # Act, per instance.
    isolate = runbook.lambda_task(
        "Act: Record and isolate", "IsolateInstanceFunction", {
            "instance.$": "$.instance", "settings.$": "$.settings",
            "dryRun.$": "$.dryRun", "execution.$": "$.execution",
        }, result_path="$.isolation",
    )
    snapshot = runbook.lambda_task(
        "Act: Snapshot volumes", "SnapshotVolumesFunction", {
            "instance.$": "$.instance", "settings.$": "$.settings",
            "dryRun.$": "$.dryRun", "execution.$": "$.execution",
        }, result_path="$.snapshot",
    )
    stop = runbook.lambda_task(
        "Act: Stop instance", "StopInstanceFunction", {
            "instance.$": "$.instance", "settings.$": "$.settings",
            "dryRun.$": "$.dryRun", "execution.$": "$.execution",
        }, result_path="$.stop",
    )
    want_snapshot = sdk.Choice("Act: Forensic snapshot?")
    want_snapshot.add_choice(ChoiceRule.BooleanEquals("$.settings.forensicSnapshot", True), snapshot)
    want_snapshot.default_choice(stop)
    isolate.next(want_snapshot)
    snapshot.next(stop)
    quarantine = sdk.Map(
        "Act: Quarantine instances",
        items_path="$.plan.targets",
        item_selector=_per_instance(),
        max_concurrency=MAX_CONCURRENCY,
        result_path="$.act",
    )
    quarantine.attach_iterator(isolate)
    quarantined = runbook.settle_each_item(
        quarantine,
        keep="Act: Keep instance failure",
        item=_failed_item(),
        collect="Act: Collect failures",
        question="Act: Every instance done?",
        read="Act: Read first failure",
        failures_path="$.actFailures",
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
    restore = runbook.lambda_task(
        "Rollback: Restore instance", "RestoreInstanceFunction",
        {"instance.$": "$.instance", "settings.$": "$.settings", "execution.$": "$.execution"},
        result_path=None,
    )
    restore.add_retry(_busy_retry())
    restore_all = sdk.Map(
        "Rollback: Restore instances",
        items_path="$.plan.targets",
        item_selector=_per_instance(),
        max_concurrency=MAX_CONCURRENCY,
        result_path="$.restore",
    )
    restore_all.attach_iterator(restore)
    restored = runbook.settle_each_item(
        restore_all,
        keep="Rollback: Keep instance failure",
        item=_failed_item(),
        collect="Rollback: Collect failures",
        question="Rollback: Every restore done?",
        read="Rollback: Read first failure",
        failures_path="$.restoreFailures",
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
