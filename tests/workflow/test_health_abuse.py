"""Every path of the health-abuse runbook, run for real on the emulated account.

Each test asserts outcomes: the execution's status, error and states (its history), and the
EC2 state of the account afterwards, never that a function was called.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import boto3
import pytest
from health_abuse.quarantine import UNCHECKED_WITHOUT_GROUP
from runbook_kit.parameters import PARAMETERS

from opsflow.engine.boundary import parse_fault
from tests.conftest import (
    EVENTS,
    ROOT,
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


def restored(engine: Any, before: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The instances as they are now, checked to be those of ``before`` plus, at most, the
    replacements the Auto Scaling group launched while a member was out of service, each
    terminated again when the member came back (the group's desired capacity lowered)."""
    now = instances(engine)
    for instance_id, instance in now.items():
        if instance_id not in before:
            assert instance["state"] == "terminated", (instance_id, instance)
            assert instance["tags"].get("aws:autoscaling:groupName") == "shop-web"
    return {instance_id: now[instance_id] for instance_id in before}


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
    actions = execution.output["actions"]
    assert actions["failures"] == []
    # One batch per Map iteration; each reports its checks counted by outcome.
    checks = [batch["isolation"]["checks"] for batch in actions["results"]]
    # No isolation group exists yet, so moving the interfaces into it cannot be checked; every
    # other call is checked with DryRun, under the functions' own IAM.
    assert all(
        set(c["modifyNetworkInterfaceAttribute"]) <= {"ok", UNCHECKED_WITHOUT_GROUP}
        for c in checks
    )
    assert all(set(c["createTags"]) == {"ok"} for c in checks)
    stopped = [batch["stop"]["checks"]["stopInstances"] for batch in actions["results"]]
    assert sum(counts["ok"] for counts in stopped) == 3
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
    assert execution.states.count("Act: Stop instances") == 1  # a Retry stays in the state
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
    assert restored(engine, before) == before
    assert "Rollback: Restore instances" in execution.states
    assert any("rolled back" in n["subject"] for n in execution.notifications)


def test_a_rollback_whose_tag_cleanup_is_throttled_is_retried_and_forgets_every_record(
    engine_factory: Any,
) -> None:
    """The restore deletes the record tags of a batch together, after giving each instance back;
    when EC2 throttles that past the SDK's retries, the restore fails Throttled, the state
    machine retries it, and the retry (finding each instance already given back) deletes them."""
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",
                                    "ec2:DeleteTags=RequestLimitExceeded*4"))
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert failed_tasks(execution, "Throttled") >= 1
    assert restored(engine, before) == before
    for region in engine.regions(SCENARIO):
        ec2 = boto3.client("ec2", region_name=region)
        kept = [t for e in ec2.describe_network_interfaces()["NetworkInterfaces"]
                for t in e.get("TagSet", []) if t["Key"].startswith("opsflow:")]
        assert kept == [], (region, kept)


def test_verify_that_never_converges_rolls_back(engine_factory: Any) -> None:
    # Two checks 15 s apart cannot see an instance that takes 40 s to stop.
    engine = engine_factory(VerifyMaxPolls="2")
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-bare-ids.json"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.RolledBack"
    assert "not confirmed after 2 checks" in execution.cause
    assert execution.states.count("Verify: Check instances") == 2
    assert restored(engine, before) == before


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
    world = instances(engine)
    eu = ids(engine)["batch-eu-1"]
    # The failure names the call, the instance and its region (one batch holds both regions).
    assert execution.cause.startswith(
        f"Rollback failed (AccessDenied: StartInstances of {eu} in eu-west-1"
    )
    assert world[eu]["state"] == "stopped"
    assert f"{eu} (eu-west-1): stopped, not isolated" in execution.cause
    assert "(before: running" in execution.cause
    for name in ("shop-web-1", "shop-web-2"):
        instance_id = ids(engine)[name]
        assert world[instance_id] == before[instance_id]
        assert instance_id in execution.cause.split("Returned to before-state: ")[1]


# ---------------------------------------------------------------- events of any size


FLEET_CIDR = "10.60.0.0/16"


def fleet(count: int) -> list[str]:
    """``count`` running web servers in one VPC of us-east-1, made through the engine's boto3."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock=FLEET_CIDR)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.60.0.0/20")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName="fleet-web", Description="fleet web traffic", VpcId=vpc
    )["GroupId"]
    made: list[str] = []
    while len(made) < count:
        size = min(1000, count - len(made))
        result = ec2.run_instances(
            ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=size, MaxCount=size,
            SubnetId=subnet, SecurityGroupIds=[group],
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": "Name", "Value": "fleet-web"},
                                         {"Key": "Stage", "Value": "Dev"}]}],
        )
        made += [i["InstanceId"] for i in result["Instances"]]
    return made


def report(entities: list[str], thread: str) -> dict[str, Any]:
    """A DoS report naming ``entities`` (instance ARNs or bare IDs) as AWS sends it: in
    ``resources`` and in ``affectedEntities``."""
    event = load_event("health-abuse/dos-report-arn.json")
    event["resources"] = list(entities)
    event["detail"]["affectedEntities"] = [{"entityValue": value} for value in entities]
    event["detail"]["communicationId"] = thread
    event["detail"]["eventRegion"] = "us-east-1"
    return event


def arns(instance_ids: list[str]) -> list[str]:
    return [f"arn:aws:ec2:us-east-1:123456789012:instance/{i}" for i in instance_ids]


def largest_state(execution: Any, after: str | None = None) -> tuple[int, str]:
    """The largest input or output of any state or task in the run's history (after state
    ``after`` exited, when given), in bytes as Step Functions counts them, and where it was."""
    largest = (0, "")
    counting = after is None
    for item in execution.history:
        for key, details in item.items():
            if not (isinstance(details, dict) and key.endswith("EventDetails")):
                continue
            if item["type"].endswith("StateExited") and details.get("name") == after:
                counting = True
            for field in ("input", "output", "parameters"):
                value = details.get(field)
                if counting and isinstance(value, str):
                    size = len(value.encode("utf-8"))
                    where = f"{item['type']} {details.get('name', details.get('resource', ''))}"
                    largest = max(largest, (size, where.strip()))
    return largest


PARSE = "Detect: Parse Health event"
"""The first task: it replaces the event with the plan, so the states after it carry no event."""


def fleet_states(instance_ids: list[str]) -> dict[str, tuple[str, list[str]]]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    found = {}
    for start in range(0, len(instance_ids), 200):
        page = ec2.describe_instances(InstanceIds=instance_ids[start : start + 200])
        for reservation in page["Reservations"]:
            for i in reservation["Instances"]:
                groups = sorted(g["GroupName"] for e in i["NetworkInterfaces"] for g in e["Groups"])
                found[i["InstanceId"]] = (i["State"]["Name"], groups)
    return found


def no_states_error(execution: Any) -> None:
    assert not str(execution.error or "").startswith("States."), (execution.error, execution.cause)
    assert execution.status != "TIMED_OUT"


def verify_checks(execution: Any) -> list[dict[str, Any]]:
    """What each "Verify: Check instances" of the run found, in order."""
    return [json.loads(e["stateExitedEventDetails"]["output"])["verify"]
            for e in execution.history
            if (e.get("stateExitedEventDetails") or {}).get("name") == "Verify: Check instances"]


@pytest.mark.parametrize("status_read", ["answered", "refused-unknown-id"])
def test_a_verify_check_reads_all_of_only_the_instances_it_can_judge(
    engine_factory: Any, status_read: str
) -> None:
    """Until an instance has stopped, a check reads only its power state (DescribeInstanceStatus)
    and describes the first it lists; when EC2 refuses the status read (an ID it does not
    know), the check describes every target instead. Either way the count is the account's."""
    faults = ("ec2:DescribeInstanceStatus=InvalidInstanceID.NotFound",) if (
        status_read == "refused-unknown-id") else ()
    engine = engine_factory(faults=faults, MaxInstances="30")
    instance_ids = fleet(30)
    execution = engine.run(SCENARIO, report(arns(instance_ids), "fleet-30"))

    assert execution.outcome == "mitigated", execution.cause
    checks = verify_checks(execution)
    assert len(checks) >= 2 and checks[-1]["converged"] is True
    first = checks[0]
    assert first["converged"] is False
    assert first["summary"].startswith("0 of 30 instance(s) stopped, isolated")
    listed = [line for line in first["notice"]["message"]["default"].splitlines()
              if line.startswith("  - ")]
    assert len(listed) == 20
    assert all(": stopping, isolated, groups sg-" in line for line in listed), listed[0]
    assert checks[-1]["summary"] == (
        "30 of 30 instance(s) stopped, isolated, out of service and protected")
    # What the first check described: the 20 it lists, or (the status read refused) all 30.
    checking = [c for c in execution.calls if "CheckQuarantine" in (c["principal"] or "")]
    assert [c["operation"] for c in checking[:2]] == ["DescribeInstanceStatus", "DescribeInstances"]
    described = [r for r in checking[1]["resources"] if r.startswith("i-")]
    assert len(described) == (20 if status_read == "answered" else 30)
    world = fleet_states(instance_ids)
    assert {state for state, _ in world.values()} == {"stopped"}


RACE_WINDOW = 1.0
"""Wall seconds a held isolation waits for a rollback that would race it (it starts within
milliseconds of the failure that causes it)."""


def test_rollback_never_races_an_isolation_still_in_flight(engine_factory: Any) -> None:
    """Two batches (50 instances and 1), every snapshot denied. The big batch's isolation is
    held until the small batch has failed and a rollback would have begun (its restore called,
    or RACE_WINDOW gone by): the rollback must wait for the big batch's iteration to end. A run
    that went on at the first failure would restore before the isolation and report the 50
    instances returned while they are being isolated."""
    import threading

    engine = engine_factory(faults=("ec2:CreateSnapshots=UnauthorizedOperation",),
                            MaxInstances="51")
    instance_ids = fleet(51)
    before = fleet_states(instance_ids)
    small_failed, restoring = threading.Event(), threading.Event()
    order: list[str] = []

    def size(payload: dict[str, Any]) -> int:
        return sum(len(ids) for ids in payload["batch"].values())

    def isolate(call: Any, payload: dict[str, Any]) -> Any:
        if size(payload) == 50:
            assert small_failed.wait(60), "the small batch never failed"
            restoring.wait(RACE_WINDOW)
            order.append("big batch isolates")
        return call(payload)

    def snapshot(call: Any, payload: dict[str, Any]) -> Any:
        try:
            return call(payload)
        except Exception:
            if size(payload) == 1:
                order.append("small batch failed")
                small_failed.set()
            raise

    def restore(call: Any, payload: dict[str, Any]) -> Any:
        order.append("restore")
        restoring.set()
        return call(payload)

    for logical, wrapper in (("IsolateInstanceFunction", isolate),
                             ("SnapshotVolumesFunction", snapshot),
                             ("RestoreInstanceFunction", restore)):
        name = engine.functions[logical].name
        engine.boundary.lambdas[name] = functools.partial(wrapper, engine.boundary.lambdas[name])
    execution = engine.run(SCENARIO, report(arns(instance_ids), "fleet-race"))

    assert order[:2] == ["small batch failed", "big batch isolates"], order
    assert "restore" in order and order.index("restore") > 1, order
    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "Every touched instance was returned" in execution.cause
    assert ", isolated" not in execution.cause
    assert fleet_states(instance_ids) == before


@pytest.mark.heavy
def test_a_thousand_reported_instances_are_mitigated(engine_factory: Any) -> None:
    import time

    engine = engine_factory(MaxInstances="1000")
    instance_ids = fleet(1000)
    event = report(arns(instance_ids), "fleet-1000")
    started = time.perf_counter()
    execution = engine.run(SCENARIO, event)
    wall = time.perf_counter() - started

    no_states_error(execution)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "mitigated"
    world = fleet_states(instance_ids)
    assert {state for state, _ in world.values()} == {"stopped"}
    assert {tuple(groups) for _, groups in world.values()} == {(ISOLATION,)}
    size, where = largest_state(execution)
    later, later_where = largest_state(execution, after=PARSE)
    print(
        f"\n1,000 instances: {wall:.1f} s wall, {execution.virtual_seconds:.0f} s virtual, "
        f"{execution.transitions} transitions, {len(execution.history)} history events, "
        f"event {len(json.dumps(event)):,} bytes; largest state {size:,} bytes ({where}), "
        f"after the parse {later:,} bytes ({later_where})"
    )
    assert size < 256 * 1024 and later < 128 * 1024
    assert execution.states.count("Act: Record and isolate") == 20  # 20 batches of 50
    detected = execution.notifications[0]["message"]
    assert "and 980 more" in detected


@pytest.mark.heavy
def test_a_thousand_instances_whose_stop_is_refused_are_rolled_back(engine_factory: Any) -> None:
    """Every batch fails (StopInstances denied) after isolating: the rollback restores all 1,000,
    and the state stays within 256 KiB with a failure from every batch."""
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",),
                            MaxInstances="1000")
    instance_ids = fleet(1000)
    before = fleet_states(instance_ids)
    execution = engine.run(SCENARIO, report(arns(instance_ids), "fleet-denied"))

    no_states_error(execution)
    assert execution.error == "Runbook.RolledBack", execution.cause
    assert fleet_states(instance_ids) == before
    assert "Every touched instance was returned" in execution.cause
    assert "and 980 more" in execution.cause
    later, where = largest_state(execution, after=PARSE)
    print(f"\n1,000 instances rolled back: largest state after the parse {later:,} bytes ({where})")
    assert later < 128 * 1024


def test_a_rerun_above_the_template_bound_is_an_invalid_event(engine: Any) -> None:
    """A rerun may override maxPolls, within VerifyMaxPolls' bounds only: 200 checks would
    outlast the execution timeout that ``opsflow validate`` proves the template's bounds fit."""
    event = with_overrides(load_event("health-abuse/dos-report-arn.json"), maxPolls=200)
    execution = engine.run(SCENARIO, event)

    polls = PARAMETERS["VerifyMaxPolls"]
    assert execution.error == "Runbook.InvalidEvent"
    assert execution.cause == (
        f"setting 'maxPolls' must be between {polls['MinValue']} and {polls['MaxValue']}, got 200"
    )
    assert execution.states[-1] == "Invalid event"
    assert execution.effects == []


def test_over_the_cap_escalates_and_changes_nothing(engine_factory: Any) -> None:
    engine = engine_factory(MaxInstances="1000")
    instance_ids = fleet(1001)
    before = fleet_states(instance_ids)
    execution = engine.run(SCENARIO, report(arns(instance_ids), "fleet-1001"))

    no_states_error(execution)
    assert execution.error == "Runbook.Escalated"
    assert "1,001 instances reported" in execution.cause
    assert "above the blast-radius cap of 1000" in execution.cause
    assert fleet_states(instance_ids) == before
    assert ec2_effects(execution) == []
    assert "Act: Quarantine instances" not in execution.states


def test_two_thousand_unknown_bare_ids_are_nothing_to_do(engine: Any) -> None:
    unknown = [f"i-{n:017x}" for n in range(1, 2001)]
    event = report(unknown, "unknown-2000")
    event["detail"].pop("eventRegion")  # no region: looked for in every configured region
    execution = engine.run(SCENARIO, event)

    no_states_error(execution)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.outcome == "no-action"
    assert ec2_effects(execution) == []
    message = execution.notifications[0]["message"]
    assert f"{unknown[0]}: not found in us-east-1, eu-west-1" in message
    assert "and 1,980 more" in message
    assert "2,000 skipped" in execution.output["summary"]


@pytest.mark.heavy
def test_an_event_near_256_kib_is_an_invalid_event_naming_the_limit(engine: Any) -> None:
    ids = [f"i-{n:017x}" for n in range(1, 20_000)]
    event = report([], "near-limit")
    event["detail"].pop("affectedEntities")  # the resources list stands for them
    while len(json.dumps(event)) < 255 * 1024:
        event["resources"].append(ids[len(event["resources"])])
    size = len(json.dumps(event).encode())
    assert 250 * 1024 < size < 256 * 1024
    execution = engine.run(SCENARIO, event)

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.InvalidEvent", (execution.error, execution.cause)
    assert "256 KiB" in execution.cause and "262,144" in execution.cause
    assert f"reports {len(event['resources']):,} instance(s)" in execution.cause
    assert execution.states[:2] == ["Detect: Receive event", "Detect: Parse Health event"]
    assert execution.effects == []


def test_the_act_and_the_verify_fit_the_execution_timeout() -> None:
    """``opsflow validate`` proves the verify's waiting fits the execution timeout for every
    value the template allows; the act comes before it. At most ``ceil(MaxInstances /
    BATCH_SIZE)`` batches run, MaxConcurrency at a time, each for at most its tasks' functions'
    timeouts (one attempt each): that and the verify's worst-case waiting fit TimeoutSeconds,
    and the batches' history fits the 25,000 events of one execution."""
    import math

    from health_abuse import plan as planning

    from opsflow import template as cfn
    from opsflow import validate
    from opsflow.engine import limits

    template = cfn.cached()
    definition = json.loads((ROOT / "statemachines" / "health-abuse.asl.json").read_text())
    act = definition["States"]["Act: Quarantine instances"]
    functions = cfn.resources_of_type(template, "AWS::Serverless::Function")
    default_timeout = template["Globals"]["Function"]["Timeout"]

    def timeout(resource: str) -> int:
        logical = resource.removeprefix("${").removesuffix("Arn}")
        return int(functions[logical]["Properties"].get("Timeout", default_timeout))

    per_batch = sum(
        timeout(state["Resource"])
        for state in act["ItemProcessor"]["States"].values()
        if state["Type"] == "Task"
    )
    batches = math.ceil(PARAMETERS["MaxInstances"]["MaxValue"] / planning.BATCH_SIZE)
    rounds = math.ceil(batches / act["MaxConcurrency"])
    (budget,) = [c for c in validate.check_budgets() if c.name.endswith("HealthAbuseStateMachine")]
    waiting = float(re.search(r"worst case (\d+(?:\.\d+)?) s", budget.detail).group(1))
    act_seconds = rounds * per_batch
    assert budget.ok, budget.detail
    assert act_seconds + waiting <= definition["TimeoutSeconds"], (act_seconds, waiting)
    iteration_events = 2 + 5 * len(act["ItemProcessor"]["States"])  # a generous count
    assert batches * iteration_events < limits.HISTORY_LIMIT / 4


# ---------------------------------------------------------------- in service: groups and balancers
def serving(engine: Any, name: str = "shop-web-1") -> dict[str, Any]:
    """What the account says of one instance's service and protections, through the APIs."""
    instance_id = ids(engine)[name]
    world = engine.world[SCENARIO]
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    group = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=["shop-web"])["AutoScalingGroups"][0]
    health = boto3.client("elbv2", region_name="us-east-1").describe_target_health(
        TargetGroupArn=world["targetGroups"]["shop-web"])["TargetHealthDescriptions"]
    api = boto3.client("elbv2", region_name="us-east-1").describe_target_health(
        TargetGroupArn=world["targetGroups"]["shop-api"])["TargetHealthDescriptions"]
    classic = boto3.client("elb", region_name="us-east-1").describe_load_balancers(
        LoadBalancerNames=["shop-legacy"])["LoadBalancerDescriptions"][0]
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {
        "desired": group["DesiredCapacity"],
        "members": {m["InstanceId"]: m["LifecycleState"] for m in group["Instances"]},
        "lifecycle": {m["InstanceId"]: m["LifecycleState"] for m in group["Instances"]}.get(
            instance_id),
        "targets": {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in health},
        "apiTargets": {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in api},
        "classic": [i["InstanceId"] for i in classic["Instances"]],
        "termination": ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="disableApiTermination")["DisableApiTermination"][
            "Value"],
        "shutdown": ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")[
            "InstanceInitiatedShutdownBehavior"]["Value"],
        "deleteOnTermination": {
            m["DeviceName"]: m["Ebs"]["DeleteOnTermination"]
            for m in described["BlockDeviceMappings"]
        },
        "profile": [
            a["IamInstanceProfile"]["Arn"] for a in ec2.describe_iam_instance_profile_associations(
                Filters=[{"Name": "instance-id", "Values": [instance_id]}]
            )["IamInstanceProfileAssociations"]
            if a["State"] in ("associating", "associated")
        ],
        "state": described["State"]["Name"],
    }


def test_the_world_serves_shop_web_1_as_production_does(engine: Any) -> None:
    now = serving(engine)
    web_1 = ids(engine)["shop-web-1"]
    assert now["lifecycle"] == "InService" and now["desired"] == 1
    assert now["targets"] == {web_1: "healthy"} and now["classic"] == [web_1]
    assert now["apiTargets"] == {web_1: "healthy"}  # registered by hand, not by the group
    assert now["shutdown"] == "terminate" and not now["termination"]
    assert set(now["deleteOnTermination"].values()) == {True}
    assert now["profile"] == [engine.world[SCENARIO]["instanceProfiles"]["shop-web"]]


def test_asg_member_quarantined_keeps_the_group_capacity_in_standby_nothing_terminated(
    engine: Any,
) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.outcome == "mitigated", execution.cause
    web_1 = ids(engine)["shop-web-1"]
    now = serving(engine)
    assert now["lifecycle"] == "Standby"
    assert now["desired"] == 1  # kept: the group launched a replacement into service
    replacement = [i for i, state in now["members"].items() if i != web_1]
    assert len(replacement) == 1 and now["members"][replacement[0]] == "InService"
    assert not [i for i in instances(engine).values() if i["state"] == "terminated"]
    assert now["state"] == "stopped"
    effects = {(e["resource"], e["field"]): (e["before"], e["after"]) for e in execution.effects}
    assert effects[(web_1, "asg:shop-web")] == ("InService", "Standby")
    assert effects[(web_1, "target:shop-web")] == ("registered", None)
    assert effects[(web_1, "elb:shop-legacy")] == ("registered", None)
    assert effects[(web_1, "terminationProtection")] == (False, True)


def test_target_deregistered_and_drained_before_the_instance_is_isolated(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.outcome == "mitigated", execution.cause
    web_1 = ids(engine)["shop-web-1"]
    now = serving(engine)
    assert web_1 not in now["targets"] and web_1 not in now["classic"]
    assert web_1 not in now["apiTargets"]  # deregistered by the runbook, drained
    # The act waited for the deregistered target to drain (the world's target group drains
    # for 30 s), then isolated: the drain is in the history as retries of the first task.
    assert failed_tasks(execution, "TargetsDraining") >= 1
    history = execution.history
    drained = max(i for i, e in enumerate(history)
                  if (e.get("lambdaFunctionFailedEventDetails") or {}).get("error")
                  == "TargetsDraining")
    isolating = min(i for i, e in enumerate(history)
                    if (e.get("stateEnteredEventDetails") or {}).get("name")
                    == "Act: Record and isolate")
    assert drained < isolating
    assert execution.virtual_seconds >= 30 + 40


def test_shutdown_behaviour_terminate_is_changed_to_stop_before_stopping(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.outcome == "mitigated", execution.cause
    now = serving(engine)
    assert now["shutdown"] == "stop" and now["termination"] is True
    assert set(now["deleteOnTermination"].values()) == {False}
    assert now["profile"] == []
    assert now["state"] == "stopped"
    web_1 = ids(engine)["shop-web-1"]
    tags = instances(engine)[web_1]["tags"]
    assert tags["opsflow:before-protection"] == "termination=false;shutdown=terminate"
    assert tags["opsflow:before-profile"] == engine.world[SCENARIO]["instanceProfiles"]["shop-web"]


def test_volumes_and_snapshots_are_tagged_with_event_instance_and_execution(engine: Any) -> None:
    event = load_event("health-abuse/dos-report-arn.json")
    execution = engine.run(SCENARIO, event)

    assert execution.outcome == "mitigated", execution.cause
    web_1 = ids(engine)["shop-web-1"]
    ec2 = boto3.client("ec2", region_name="us-east-1")
    run = execution.execution_arn.rsplit(":", 1)[-1]
    expected = {"opsflow:event": event["detail"]["eventArn"], "opsflow:forensic-of": web_1,
                "opsflow:quarantined-by": run}
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [web_1]}])
    snapshots = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:opsflow:forensic-of", "Values": [web_1]}])
    assert snapshots["Snapshots"]
    for item in volumes["Volumes"] + snapshots["Snapshots"]:
        tags = {t["Key"]: t["Value"] for t in item["Tags"]}
        assert expected.items() <= tags.items(), tags


def test_rollback_returns_the_member_in_service_and_registered(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",))
    before = serving(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "Every touched instance was returned" in execution.cause
    now = serving(engine)
    web_1 = ids(engine)["shop-web-1"]
    assert now["lifecycle"] == "InService" and now["desired"] == before["desired"]
    assert {i: s for i, s in now["members"].items() if s == "InService"} == {web_1: "InService"}
    assert web_1 in now["targets"] and now["classic"] == [web_1]
    assert now["apiTargets"] == {web_1: "healthy"}
    assert {k: now[k] for k in ("termination", "shutdown", "deleteOnTermination", "profile")} == {
        k: before[k] for k in ("termination", "shutdown", "deleteOnTermination", "profile")}
    assert not [k for k in instances(engine)[web_1]["tags"] if k.startswith("opsflow:")]


def test_enter_standby_denied_rolls_back_with_nothing_left_out_of_service(
    engine_factory: Any,
) -> None:
    engine = engine_factory(faults=("autoscaling:EnterStandby=AccessDenied",))
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "EnterStandby" in execution.cause
    now = serving(engine)
    web_1 = ids(engine)["shop-web-1"]
    assert now["lifecycle"] == "InService" and now["desired"] == 1
    assert now["targets"] == {web_1: "healthy"} and now["classic"] == [web_1]
    assert restored(engine, before) == before


def test_dry_run_of_an_asg_member_changes_nothing(engine: Any) -> None:
    before, world = serving(engine), instances(engine)
    event = with_overrides(load_event("health-abuse/dos-report-arn.json"), dryRun=True)
    execution = engine.run(SCENARIO, event)

    assert execution.outcome == "dry-run", execution.cause
    assert serving(engine) == before and instances(engine) == world
    assert [e for e in execution.effects if not e["resource"].startswith("opsflow-Dedupe")] == []
    checks = {}
    for batch in execution.output["actions"]["results"]:
        checks.update(batch["service"]["checks"])
        checks.update(batch["isolation"]["checks"])
    # Auto Scaling and Elastic Load Balancing have no DryRun: what each would do is reported.
    assert checks["not checked: the API has no DryRun; would enter standby"] == 1
    assert checks["not checked: the API has no DryRun; would deregister from a target group"] == 2
    assert checks[
        "not checked: the API has no DryRun; would deregister from a classic load balancer"] == 1
    for name in ("terminationProtection", "shutdownBehavior", "deleteOnTermination"):
        assert checks[name] == {"ok": 1} or set(checks[name]) == {"ok"}


def test_detach_mode_takes_the_member_out_of_its_group(
    engine_factory: Any,
) -> None:
    engine = engine_factory(AutoScalingMode="detach")
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))
    assert execution.outcome == "mitigated", execution.cause
    now = serving(engine)
    assert now["lifecycle"] is None and now["desired"] == 1
    assert instances(engine)[ids(engine)["shop-web-1"]]["state"] == "stopped"


def test_detach_mode_rollback_attaches_the_member_again(engine_factory: Any) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",),
                            AutoScalingMode="detach")
    rolled = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))
    assert rolled.error == "Runbook.RolledBack", rolled.cause
    back = serving(engine)
    assert back["lifecycle"] == "InService" and back["desired"] == 1


def test_hold_mode_leaves_the_member_contained_and_says_what_was_done(
    engine_factory: Any,
) -> None:
    engine = engine_factory(faults=("ec2:StopInstances=UnauthorizedOperation",),
                            RollbackMode="hold")
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.Escalated", execution.cause
    now = serving(engine)
    assert now["lifecycle"] == "Standby" and now["targets"].get(ids(engine)["shop-web-1"]) is None
    web_1 = ids(engine)["shop-web-1"]
    line = execution.cause.split(f"{web_1} (us-east-1): ", 1)[1]
    now_part, before_part = line.split(" (before: ", 1)
    # Exactly what was done: in Standby, off every load balancer, protected, isolated.
    assert "service asg=shop-web:Standby," in now_part
    assert "termination=true;shutdown=stop" in now_part and "profile=" not in now_part
    assert before_part.startswith("running")
    assert "asg=shop-web:InService;tg=shop-api/" in before_part and "elb=shop-legacy" in before_part


def test_draining_that_never_ends_rolls_back_within_its_bound(engine_factory: Any) -> None:
    engine = engine_factory(faults=("elbv2:DeregisterTargets=Hang",))
    before = instances(engine)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "still draining" in execution.cause
    assert failed_tasks(execution, "TargetsDraining") == 21  # the first try and 20 retries
    assert serving(engine)["lifecycle"] == "InService"
    assert restored(engine, before) == before


def test_the_guard_refuses_to_take_a_member_out_of_a_protected_group(engine: Any) -> None:
    """The protected tag on the Auto Scaling group: IAM's explicit deny refuses EnterStandby,
    whatever the function decides, and the run rolls back with nothing out of service."""
    boto3.client("autoscaling", region_name="us-east-1").create_or_update_tags(Tags=[{
        "ResourceId": "shop-web", "ResourceType": "auto-scaling-group", "Key": "Stage",
        "Value": "Prod", "PropagateAtLaunch": False}])
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "EnterStandby" in execution.cause and "AccessDenied" in execution.cause
    refused = [c for c in engine.authorizer.calls
               if c.action == "autoscaling:EnterStandby" and not c.allowed]
    assert refused and refused[0].reason == "explicit-deny"
    now = serving(engine)
    assert now["lifecycle"] == "InService" and now["desired"] == 1
    assert ids(engine)["shop-web-1"] in now["targets"]
