"""Every path of the health-abuse runbook, run for real on the emulated account.

Each test asserts outcomes: the execution's status, error and states (its history), and the
EC2 state of the account afterwards, never that a function was called.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from health_abuse.quarantine import UNCHECKED_WITHOUT_GROUP

from opsflow.engine.boundary import parse_fault
from tests.conftest import (
    EVENTS,
    check_function_payload,
    check_sample_event,
    failed_tasks,
    function_payloads,
    load_event,
)

SCENARIO = "health-abuse"
ISOLATION = "opsflow-isolation"


def with_overrides(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    event["opsflow"] = {**event.get("opsflow", {}), **overrides}
    return event


def instances(engine: Any) -> dict[str, dict[str, Any]]:
    """Every instance of the world: state, groups per interface, tags."""
    result = {}
    for region in engine.regions(SCENARIO):
        ec2 = boto3.client("ec2", region_name=region)
        for reservation in ec2.describe_instances()["Reservations"]:
            for i in reservation["Instances"]:
                result[i["InstanceId"]] = {
                    "region": region,
                    "state": i["State"]["Name"],
                    "groups": {
                        e["NetworkInterfaceId"]: sorted(g["GroupName"] for g in e["Groups"])
                        for e in i["NetworkInterfaces"]
                    },
                    "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                }
    return result


def ids(engine: Any) -> dict[str, str]:
    return engine.world[SCENARIO]["instances"]


def ec2_effects(execution: Any) -> list[dict[str, Any]]:
    return [e for e in execution.effects if e["resource"].startswith(("i-", "sg-", "snap-"))]


def test_mitigated(engine: Any) -> None:
    event = load_event("health-abuse/dos-report-arn.json")
    assert [r.scenario for r in engine.match(event)] == [SCENARIO]
    execution = engine.run(SCENARIO, event)

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "mitigated"
    world = instances(engine)
    for name in ("shop-web-1", "shop-web-2", "batch-eu-1"):
        instance = world[ids(engine)[name]]
        assert instance["state"] == "stopped"
        assert all(groups == [ISOLATION] for groups in instance["groups"].values())
        assert instance["tags"]["opsflow:before-state"] == "running"
    assert world[ids(engine)["payments-api"]]["state"] == "running"
    assert "Verify: Check instances" in execution.states
    assert execution.states[-1] == "Mitigated"
    subjects = [n["subject"] for n in execution.notifications]
    assert any("quarantining 3" in s for s in subjects)
    assert any("verified" in s for s in subjects)
    assert execution.virtual_seconds >= 40  # an instance takes 40 virtual seconds to stop


def test_nothing_to_do(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-unknown.json"))

    assert execution.status == "SUCCEEDED"
    assert execution.outcome == "no-action"
    assert execution.output["reason"] == "nothing-to-do"
    assert ec2_effects(execution) == []
    assert "Act: Quarantine instances" not in execution.states


def test_unknown_entities_are_reported_and_nothing_changes(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-unknown.json"))

    message = execution.notifications[0]["message"]
    assert "arn:ec2-1-101002929" in message
    assert "203.0.113.17" in message
    assert "i-0123456789abcdef0: not found in us-east-1" in message
    assert "210987654321" in message  # another account's instance: reported, never acted on
    assert all(i["state"] == "running" for i in instances(engine).values())


def test_dry_run(engine: Any) -> None:
    before = instances(engine)
    event = with_overrides(load_event("health-abuse/dos-report-arn.json"), dryRun=True)
    execution = engine.run(SCENARIO, event)

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "dry-run"
    assert instances(engine) == before
    assert ec2_effects(execution) == []
    checks = [item["isolation"]["checks"] for item in execution.output["actions"]]
    # No isolation group exists yet, so moving the interfaces into it cannot be checked; every
    # other call is checked with DryRun, under the functions' own IAM.
    assert all(set(c.values()) <= {"ok", UNCHECKED_WITHOUT_GROUP} for c in checks)
    assert all(c["createTags"] == "ok" for c in checks)
    assert {item["stop"]["stopInstances"] for item in execution.output["actions"]} == {"ok"}
    assert "Verify: Check instances" not in execution.states


def test_protected_instance_is_skipped(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-protected.json"))

    assert execution.outcome == "no-action"
    assert instances(engine)[ids(engine)["payments-api"]]["state"] == "running"
    assert "protected (Stage=Prod)" in execution.notifications[0]["message"]


def test_cap_exceeded_escalates_without_acting(engine: Any) -> None:
    event = with_overrides(load_event("health-abuse/dos-report-arn.json"), maxInstances=2)
    execution = engine.run(SCENARIO, event)

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.Escalated"
    assert "above the blast-radius cap of 2" in execution.cause
    assert ec2_effects(execution) == []
    assert "ESCALATED" in execution.notifications[0]["subject"]


def test_duplicate_delivery_acts_once(engine: Any) -> None:
    event = load_event("health-abuse/dos-report-bare-ids.json")
    first = engine.run(SCENARIO, event)
    second = engine.run(SCENARIO, event)

    assert first.outcome == "mitigated"
    assert second.status == "SUCCEEDED"
    assert second.outcome == "no-action"
    assert second.output["reason"] == "duplicate-delivery"
    assert second.effects == []
    assert second.notifications == []


def test_manual_rerun_ignores_the_duplicate_record(engine: Any) -> None:
    event = load_event("health-abuse/dos-report-bare-ids.json")
    engine.run(SCENARIO, with_overrides(event, dryRun=True))
    assert engine.run(SCENARIO, event).outcome == "mitigated"
    again = engine.run(SCENARIO, with_overrides(event, ignoreDuplicate=True))
    assert again.outcome == "mitigated"  # already quarantined: verified again, nothing new


def test_pages_are_separate_deliveries(engine: Any) -> None:
    first = engine.run(SCENARIO, load_event("health-abuse/dos-report-paged-1of2.json"))
    second = engine.run(SCENARIO, load_event("health-abuse/dos-report-paged-2of2.json"))

    assert (first.outcome, second.outcome) == ("mitigated", "mitigated")
    world = instances(engine)
    assert world[ids(engine)["shop-web-1"]]["state"] == "stopped"
    assert world[ids(engine)["shop-web-2"]]["state"] == "stopped"


def test_global_event_finds_the_instance_in_a_configured_region(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-global.json"))

    assert execution.outcome == "mitigated"
    assert instances(engine)[ids(engine)["batch-eu-1"]]["state"] == "stopped"


@pytest.mark.parametrize(
    ("throttles", "task_failures"),
    [(2, 0), (5, 1)],
    ids=["absorbed-by-the-sdk", "retried-by-the-state-machine"],
)
def test_throttled_stop_is_retried_and_mitigated(
    engine_factory: Any, throttles: int, task_failures: int
) -> None:
    """The functions' SDK retries a throttled call twice (standard mode) below the task; what it
    cannot absorb fails the task as Throttled, and the state machine retries that."""
    engine = engine_factory(faults=(f"ec2:StopInstances=RequestLimitExceeded*{throttles}",))
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-bare-ids.json"))

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "mitigated"
    assert failed_tasks(execution, "Throttled") == task_failures
    assert engine.faults[0].seen == throttles + 1  # every attempt reached the API
    assert execution.states.count("Act: Stop instance") == 1  # a Retry stays in the state
    assert instances(engine)[ids(engine)["shop-web-1"]]["state"] == "stopped"


def test_permanent_failure_rolls_back_to_the_before_state(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",))
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.RolledBack"
    assert "AccessDenied" in execution.cause
    for instance_id in (ids(engine)["shop-web-1"], ids(engine)["batch-eu-1"]):
        assert f"{instance_id} (" in execution.cause
    assert instances(engine) == before
    assert "Rollback: Restore instances" in execution.states
    assert any("rolled back" in n["subject"] for n in execution.notifications)


def test_verify_that_never_converges_rolls_back(engine_factory: Any) -> None:
    # Two checks 15 s apart cannot see an instance that takes 40 s to stop.
    engine = engine_factory(VerifyMaxPolls="2")
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-bare-ids.json"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.RolledBack"
    assert "not confirmed after 2 checks" in execution.cause
    assert execution.states.count("Verify: Check instances") == 2
    assert instances(engine) == before


def test_instance_stuck_stopping_escalates_when_rollback_cannot_finish(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=Hang",), VerifyMaxPolls="2")
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-bare-ids.json"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.Escalated"
    assert "Rollback failed" in execution.cause
    assert failed_tasks(execution, "InstanceBusy") >= 1


def test_failed_dry_run_never_restores_an_instance_held_by_an_earlier_run(
    engine_factory: Any,
) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",), RollbackMode="hold")
    event = load_event("health-abuse/dos-report-bare-ids.json")
    assert engine.run(SCENARIO, event).error == "Runbook.Escalated"
    held = instances(engine)[ids(engine)["shop-web-1"]]

    rerun = engine.run(SCENARIO, with_overrides(event, dryRun=True, ignoreDuplicate=True))

    assert rerun.status == "FAILED"
    assert "Nothing was changed" in rerun.cause
    assert "Rollback: Restore instances" not in rerun.states
    assert instances(engine)[ids(engine)["shop-web-1"]] == held


def test_rollback_leaves_instances_quarantined_by_an_earlier_run(engine_factory: Any) -> None:
    engine = engine_factory()
    assert engine.run(SCENARIO, load_event("health-abuse/dos-report-paged-1of2.json")).outcome == (
        "mitigated"
    )
    quarantined = instances(engine)[ids(engine)["shop-web-1"]]
    engine.boundary.faults.append(parse_fault("ec2:StopInstances=UnauthorizedOperation"))
    event = load_event("health-abuse/dos-report-arn.json")
    failed = engine.run(SCENARIO, event)

    assert failed.error == "Runbook.RolledBack"
    assert instances(engine)[ids(engine)["shop-web-1"]] == quarantined


def test_terminated_instance_is_skipped(engine: Any) -> None:
    boto3.client("ec2", region_name="us-east-1").terminate_instances(
        InstanceIds=[ids(engine)["shop-web-2"]]
    )
    event = load_event("health-abuse/dos-report-bare-ids.json")
    event["detail"]["affectedEntities"][1]["status"] = "IMPAIRED"
    execution = engine.run(SCENARIO, event)
    assert execution.outcome == "mitigated", execution.cause
    assert "already terminated" in execution.notifications[0]["message"]


def test_hold_mode_leaves_instances_isolated_and_escalates(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",), RollbackMode="hold")
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-bare-ids.json"))

    assert execution.error == "Runbook.Escalated"
    assert "'hold'" in execution.cause
    web_1 = instances(engine)[ids(engine)["shop-web-1"]]
    assert all(groups == [ISOLATION] for groups in web_1["groups"].values())


def test_access_denied_while_detecting_escalates_and_changes_nothing(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:DescribeInstances=UnauthorizedOperation",))
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.Escalated"
    assert "Detection failed (AccessDenied)" in execution.cause
    assert ec2_effects(execution) == []


def test_kill_switch_turns_the_act_into_a_notification(engine: Any) -> None:
    engine.set_kill_switch("on")
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.outcome == "no-action"
    assert execution.output["reason"] == "kill-switch"
    assert ec2_effects(execution) == []
    assert "kill switch on" in execution.notifications[0]["subject"]


@pytest.mark.parametrize(
    "name", ["malformed-no-detail.json", "malformed-entities.json"]
)
def test_malformed_event_is_rejected(engine: Any, name: str) -> None:
    execution = engine.run(SCENARIO, load_event(f"health-abuse/{name}"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.InvalidEvent"
    assert execution.cause and "Traceback" not in execution.cause
    assert execution.effects == []


EXPECTED = {
    "dos-report-arn.json": ("SUCCEEDED", "mitigated"),
    "dos-report-bare-ids.json": ("SUCCEEDED", "mitigated"),
    "dos-report-global.json": ("SUCCEEDED", "mitigated"),
    "dos-report-paged-1of2.json": ("SUCCEEDED", "mitigated"),
    "dos-report-paged-2of2.json": ("SUCCEEDED", "mitigated"),
    "dos-report-protected.json": ("SUCCEEDED", "no-action"),
    "dos-report-unknown.json": ("SUCCEEDED", "no-action"),
    "dos-report-unaffected.json": ("SUCCEEDED", "no-action"),
    "closed-report.json": ("SUCCEEDED", "no-action"),
    "malformed-no-detail.json": ("FAILED", "Runbook.InvalidEvent"),
    "malformed-entities.json": ("FAILED", "Runbook.InvalidEvent"),
    "copyright-report.json": (None, None),
}


def test_every_sample_event_is_covered() -> None:
    assert {p.name for p in (EVENTS / "health-abuse").glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_event_runs(engine: Any, name: str) -> None:
    # A status of None: not a quarantine abuse code, no rule starts the runbook.
    check_sample_event(engine, SCENARIO, name, EXPECTED[name], must_match=True)


def test_sample_events_name_the_world(engine: Any) -> None:
    known = set(ids(engine).values())
    for name in ("dos-report-arn.json", "dos-report-bare-ids.json", "dos-report-protected.json"):
        text = (EVENTS / "health-abuse" / name).read_text()
        assert any(instance_id in text for instance_id in known), name


@pytest.mark.parametrize("payload", function_payloads(SCENARIO))
def test_every_function_payload_runs(engine: Any, payload: str) -> None:
    check_function_payload(engine, SCENARIO, payload)


# ---------------------------------------------------------------- found by a hostile tester


@pytest.mark.parametrize("event", [[], "x", 42, True, None], ids=repr)
def test_input_that_is_not_an_object_is_an_invalid_event(engine: Any, event: Any) -> None:
    before = instances(engine)
    execution = engine.run(SCENARIO, event)

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.InvalidEvent", execution.cause
    assert execution.cause.startswith("the event must be a JSON object")
    assert execution.states[-1] == "Invalid event"
    assert execution.effects == []
    assert instances(engine) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", "aws.health "),
        ("detail-type", "AWS Health Abuse Event "),
        ("detail-type", "AWS Health Event"),
        ("source", "opsflow.manual"),
    ],
)
def test_identity_other_than_the_rule_is_rejected(engine: Any, field: str, value: str) -> None:
    event = load_event("health-abuse/dos-report-arn.json")
    event[field] = value
    assert engine.match(event) == []  # the rule would not start it either
    execution = engine.run(SCENARIO, event)

    assert execution.error == "Runbook.InvalidEvent"
    assert f"{field} is {value!r}" in execution.cause
    assert execution.effects == []


def test_foreign_arn_is_never_acted_on_when_the_event_names_no_account(engine: Any) -> None:
    event = load_event("health-abuse/dos-report-unknown.json")
    event.pop("account")
    event["detail"].pop("affectedAccount", None)
    execution = engine.run(SCENARIO, event)

    assert execution.outcome == "no-action", execution.cause
    assert ec2_effects(execution) == []
    assert all(i["state"] == "running" for i in instances(engine).values())
    assert "210987654321" in execution.notifications[0]["message"]


def test_event_of_another_account_is_rejected(engine: Any) -> None:
    event = load_event("health-abuse/dos-report-arn.json")
    event["account"] = "210987654321"
    execution = engine.run(SCENARIO, event)

    assert execution.error == "Runbook.InvalidEvent"
    assert "for account 210987654321" in execution.cause
    assert ec2_effects(execution) == []


@pytest.mark.parametrize("status", ["UNIMPAIRED", "UNKNOWN", "PENDING"])
def test_entities_not_reported_affected_are_not_acted_on(engine: Any, status: str) -> None:
    event = load_event("health-abuse/dos-report-bare-ids.json")
    for entity in event["detail"]["affectedEntities"]:
        entity["status"] = status
    execution = engine.run(SCENARIO, event)

    assert execution.outcome == "no-action", execution.cause
    assert ec2_effects(execution) == []
    web_1 = ids(engine)["shop-web-1"]
    assert instances(engine)[web_1]["state"] == "running"
    assert f"{web_1}: status {status}" in execution.notifications[0]["message"]


def delete_isolation_groups(engine: Any) -> None:
    """Remove the (empty) isolating groups a rolled-back run left, so the next run creates
    them afresh, as a first quarantine in a VPC does."""
    for region in engine.regions(SCENARIO):
        ec2 = boto3.client("ec2", region_name=region)
        found = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [ISOLATION]}]
        )["SecurityGroups"]
        for group in found:
            ec2.delete_security_group(GroupId=group["GroupId"])


def test_rollback_never_races_an_isolation_still_in_flight(engine: Any) -> None:
    """Every instance's snapshot is denied, one iteration's failure comes while the others are
    still isolating: the rollback must wait for them, or it finds an instance untouched that is
    isolated a moment later and reports it returned. Before the fix about 1 run in 6 raced
    (each with a fresh isolation group), so the run is repeated 40 times."""
    engine.boundary.faults.append(parse_fault("ec2:CreateSnapshots=UnauthorizedOperation"))
    event = with_overrides(load_event("health-abuse/dos-report-arn.json"), ignoreDuplicate=True)
    before = instances(engine)
    for attempt in range(40):
        execution = engine.run(SCENARIO, event)

        assert instances(engine) == before, (attempt, execution.cause)
        assert execution.error == "Runbook.RolledBack", (attempt, execution.cause)
        assert "Every touched instance was returned" in execution.cause
        assert ", isolated" not in execution.cause, (attempt, execution.cause)
        delete_isolation_groups(engine)


def test_rollback_stuck_on_stopping_instances_names_each_one_left_changed(
    engine_factory: Any,
) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=Hang",))
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.Escalated"
    assert "Rollback failed (InstanceBusy" in execution.cause
    world = instances(engine)
    for name in ("shop-web-1", "shop-web-2", "batch-eu-1"):
        instance_id = ids(engine)[name]
        assert world[instance_id]["state"] == "stopping"  # what the account says
        assert f"{instance_id} ({world[instance_id]['region']}): stopping, not isolated" in (
            execution.cause
        )
    assert "Returned to before-state: none." in execution.cause
    assert any("ROLLBACK FAILED" in n["subject"] for n in execution.notifications)


def test_rollback_failing_in_another_region_names_what_is_left(engine_factory: Any) -> None:
    engine = engine_factory(
        faults=(
            "ec2@us-east-1:StopInstances=UnauthorizedOperation",
            "ec2@eu-west-1:StartInstances=UnauthorizedOperation",
        )
    )
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.Escalated"
    assert execution.cause.startswith("Rollback failed (AccessDenied on")
    world = instances(engine)
    eu = ids(engine)["batch-eu-1"]
    assert world[eu]["state"] == "stopped"
    assert f"{eu} (eu-west-1): stopped, not isolated" in execution.cause
    assert "(before: running" in execution.cause
    for name in ("shop-web-1", "shop-web-2"):
        instance_id = ids(engine)[name]
        assert world[instance_id] == before[instance_id]
        assert instance_id in execution.cause.split("Returned to before-state: ")[1]
