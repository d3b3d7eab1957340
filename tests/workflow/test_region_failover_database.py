"""The data tier of a region failover: the Aurora global database's writer moves into the target
region before traffic does (a switchover when the writer's region answers; a failover with data
loss only when it does not and the template allows it), is verified there, and is switched back
on rollback where AWS allows; where it does not, the escalation says where everything is."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from opsflow.engine.boundary import parse_fault
from opsflow.engine.fakes import rds_global_clusters as fake_module
from tests.conftest import load_event
from tests.workflow.test_region_outage import outage_run, standby_desired

SCENARIO = "region-failover"
PRIMARY, STANDBY = "us-east-2", "us-east-1"
DATA = {"GlobalClusterIdentifier": "shop", "TrafficMechanism": "arc",
        "AutoScalingGroupName": "web", "StandbyCapacity": "3"}
ALARM = "region-failover/alarm-primary.json"
FAILBACK = "region-failover/failback.json"


def writer(engine: Any) -> str:
    return str(engine.fakes["rds"].writer("shop"))


def replication(engine: Any) -> dict[str, str]:
    view = engine.fakes["rds"].observe()
    return {region: value for (key, region, field), value in view.items()
            if field == "replication"}


def serving(engine: Any) -> dict[str, str]:
    return dict(engine.fakes["route53-recovery-cluster"].states())


def moves(engine: Any) -> list[str]:
    return [f"{c['kind']} to {c['to'].split(':')[3]}" for c in engine.fakes["rds"].calls]


def operator_switches_over(engine: Any, region: str, wait: bool = True) -> None:
    """A switchover of the writer to ``region`` by hand, through the RDS API; with ``wait``,
    until it has ended."""
    boto3.client("rds", region_name=STANDBY).switchover_global_cluster(
        GlobalClusterIdentifier="shop", TargetDbClusterIdentifier=f"shop-{region}")
    if wait:
        engine.clock.advance(fake_module.SWITCHOVER_SECONDS)


def test_a_drill_switches_the_writer_over_before_traffic_moves(engine_factory: Any) -> None:
    engine = engine_factory(**DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.outcome == "mitigated", execution.cause
    assert writer(engine) == STANDBY and moves(engine) == [f"switchover to {STANDBY}"]
    assert replication(engine) == {STANDBY: "writer", PRIMARY: "connected"}
    states = execution.states
    assert states.index("Act: Scale target capacity") < states.index("Act: Move database writer")
    assert states.index("Act: Writer moved?") < states.index("Act: Record and shift traffic")
    # Traffic moved only once the writer was there: the switch takes its time on the clock.
    assert states.count("Act: Check writer") == fake_module.SWITCHOVER_SECONDS // 30
    assert {(e["resource"], e["field"]): (e["before"], e["after"]) for e in execution.effects
            if e["resource"] == "global-cluster/shop" and e["region"] == "global"} == {
        ("global-cluster/shop", "writer"): (PRIMARY, STANDBY)}


def test_outage_with_data_loss_allowed_fails_the_writer_over_from_the_standby(
    engine_factory: Any,
) -> None:
    engine = engine_factory(AllowDataLoss="true", **DATA)
    execution = outage_run(engine)

    assert execution.outcome == "mitigated", execution.cause
    assert moves(engine) == [f"failover to {STANDBY}"]
    assert writer(engine) == STANDBY and standby_desired() == 3
    assert replication(engine)[PRIMARY] == "pending-resync"
    assert serving(engine) == {f"web-{STANDBY}": "On", f"web-{PRIMARY}": "Off"}


def test_outage_without_data_loss_allowed_escalates_with_nothing_moved(
    engine_factory: Any,
) -> None:
    engine = engine_factory(**DATA)
    execution = outage_run(engine)

    assert execution.error == "Runbook.Escalated"
    assert "AllowDataLoss is false" in str(execution.cause)
    assert f"writer shop-{PRIMARY} in {PRIMARY}" in str(execution.cause)
    assert moves(engine) == [] and writer(engine) == PRIMARY
    assert standby_desired() == 0
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}


def test_aurora_failover_fails_traffic_not_moved_escalated_with_the_clusters_state(
    engine_factory: Any,
) -> None:
    engine = engine_factory(("rds:SwitchoverGlobalCluster=InvalidGlobalClusterStateFault",), **DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.RolledBack", execution.cause
    cause = str(execution.cause)
    assert "InvalidGlobalClusterStateFault" in cause and "Traffic was not moved" in cause
    assert f"global database shop: writer shop-{PRIMARY} in {PRIMARY}, status available" in cause
    assert "Record and shift traffic" not in " ".join(execution.states)
    assert writer(engine) == PRIMARY and standby_desired() == 0
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}


def test_verify_fails_traffic_writer_and_capacity_are_put_back_in_that_order(
    engine_factory: Any,
) -> None:
    engine = engine_factory(("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
                            **DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert moves(engine) == [f"switchover to {STANDBY}", f"switchover to {PRIMARY}"]
    assert writer(engine) == PRIMARY and standby_desired() == 0
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
    assert "Rollback: Wait for writer" in execution.states
    # In reverse order of the act: traffic back, then the writer, then capacity.
    ops = [c["operation"] for c in execution.calls]
    rollback = ops.index("UpdateRoutingControlStates", ops.index("UpdateRoutingControlStates") + 1)
    back = ops.index("SwitchoverGlobalCluster", ops.index("SwitchoverGlobalCluster") + 1)
    scaled_down = max(i for i, op in enumerate(ops) if op == "UpdateAutoScalingGroup")
    assert rollback < back < scaled_down
    assert "The recorded traffic split was restored" in str(execution.cause)
    assert f"writer shop-{PRIMARY} in {PRIMARY}" in str(execution.cause)
    # Of the database, traffic and capacity, nothing is left changed.
    left = {(e["resource"], e["field"]) for e in execution.effects
            if e["resource"].startswith(("global-cluster/", "routing-control/", "asg/"))}
    assert left == set(), left


def test_verify_fails_after_a_failover_with_data_loss_the_escalation_says_what_is_where(
    engine_factory: Any,
) -> None:
    engine = engine_factory(
        ("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
        AllowDataLoss="true", **DATA)
    execution = outage_run(engine)

    assert execution.error == "Runbook.Escalated", execution.cause
    cause = str(execution.cause)
    assert "failover with data loss and cannot be moved back" in cause
    assert f"{PRIMARY} pending-resync" in cause and f"writer shop-{STANDBY} in {STANDBY}" in cause
    assert f"now {PRIMARY} 0, {STANDBY} 100" in cause
    # Traffic stays with the writer; the standby stays scaled to carry it.
    assert writer(engine) == STANDBY and standby_desired() == 3
    assert serving(engine) == {f"web-{STANDBY}": "On", f"web-{PRIMARY}": "Off"}


def test_a_writer_too_slow_to_move_is_rolled_back_as_far_as_aws_allows(
    engine_factory: Any,
) -> None:
    engine = engine_factory(FailoverMaxPolls="1", **DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.Escalated", execution.cause
    cause = str(execution.cause)
    assert "DatabaseNotMoved" in cause and "Traffic was not moved" in cause
    assert "The writer is NOT back" in cause and f"switchover to {STANDBY} in progress" in cause
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
    assert standby_desired() == 3  # held: scaled down only once the writer is back


def test_failback_moves_the_writer_back_through_a_switchover(engine_factory: Any) -> None:
    engine = engine_factory(**DATA)
    assert engine.run(SCENARIO, load_event(ALARM)).outcome == "mitigated"
    execution = engine.run(SCENARIO, load_event(FAILBACK))

    assert execution.outcome == "mitigated", execution.cause
    assert moves(engine) == [f"switchover to {STANDBY}", f"switchover to {PRIMARY}"]
    assert writer(engine) == PRIMARY
    assert replication(engine) == {PRIMARY: "writer", STANDBY: "connected"}
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}


def test_dry_run_reads_the_database_and_moves_nothing(engine_factory: Any) -> None:
    engine = engine_factory(DryRun="true", **DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.outcome == "dry-run", execution.cause
    assert moves(engine) == [] and writer(engine) == PRIMARY
    assert any("would switch over shop" in str(e) for e in execution.history)


def test_a_writer_already_in_the_target_is_left_alone(engine_factory: Any) -> None:
    engine = engine_factory(**DATA)
    operator_switches_over(engine, STANDBY)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.outcome == "mitigated", execution.cause
    assert moves(engine) == [f"switchover to {STANDBY}"]  # the operator's, none of the runbook's
    assert "Act: Check writer" not in execution.states


def test_a_slow_writer_is_switched_back_once_its_switchover_ends(engine_factory: Any) -> None:
    # Act gives up (3 checks, 90 s) before the 120 s switchover ends. The rollback puts traffic
    # back, waits for that switchover to end, then switches the writer back: a switch back takes
    # as long, more than the 3 checks it may wait, so the run escalates saying it is under way.
    engine = engine_factory(FailoverMaxPolls="3", **DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.Escalated", execution.cause
    assert moves(engine) == [f"switchover to {STANDBY}", f"switchover to {PRIMARY}"]
    cause = str(execution.cause)
    assert "The writer is NOT back" in cause and f"switchover to {PRIMARY} in progress" in cause
    assert "the switch back this rollback started is still under way" in cause
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
    assert standby_desired() == 3  # held: the writer is not back yet
    engine.clock.advance(fake_module.SWITCHOVER_SECONDS)
    assert writer(engine) == PRIMARY  # the switch back the rollback started lands


def test_a_writer_region_that_refuses_but_answers_is_not_failed_over(
    engine_factory: Any,
) -> None:
    # Access denied (or throttled) is an answer: the region is up, and a failover with data
    # loss would lose writes for nothing. Nothing moves.
    engine = engine_factory((f"rds@{PRIMARY}:DescribeGlobalClusters=AccessDenied",),
                            AllowDataLoss="true", **DATA)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.Escalated", execution.cause
    assert f"cannot tell whether {PRIMARY}'s RDS endpoint answers" in str(execution.cause)
    assert moves(engine) == [] and writer(engine) == PRIMARY and standby_desired() == 0


def test_a_move_under_way_is_not_taken_for_a_writer_already_there(engine_factory: Any) -> None:
    engine = engine_factory(**DATA)
    operator_switches_over(engine, STANDBY)
    operator_switches_over(engine, PRIMARY, wait=False)  # and starts moving it back
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.Escalated", execution.cause
    assert "another switchover or failover is under way" in str(execution.cause)
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}


def test_a_retried_move_is_not_started_twice(engine_factory: Any) -> None:
    """A task retried after its call was taken (a Lambda service error on the way back) finds
    the switchover under way and does not ask again (which RDS would refuse)."""
    from tests.conftest import load_event as payload_of

    engine = engine_factory(**DATA)
    payload = payload_of("region-failover/functions/MoveDatabaseFunction.json")
    payload["plan"]["dryRun"] = False
    first = engine.invoke("MoveDatabaseFunction", payload)
    again = engine.invoke("MoveDatabaseFunction", payload)

    assert first[0] and again[0], again
    assert first[1]["summary"].endswith("started")
    assert again[1]["summary"].endswith("already under way")
    assert moves(engine) == [f"switchover to {STANDBY}"]


def test_a_database_that_cannot_be_read_in_the_rollback_still_gets_traffic_back(
    engine_factory: Any,
) -> None:
    engine = engine_factory(("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
                            **DATA)
    listen_for = "Rollback: Restore traffic, writer, capacity"

    def deny_database_reads(item: dict[str, Any]) -> None:
        if (item.get("stateEnteredEventDetails") or {}).get("name") == listen_for:
            engine.boundary.faults.append(
                parse_fault("rds:DescribeGlobalClusters=AccessDenied"))

    execution = engine.run(SCENARIO, load_event(ALARM), on_event=deny_database_reads)

    assert execution.error == "Runbook.Escalated", execution.cause
    cause = str(execution.cause)
    assert "The recorded traffic split was restored" in cause
    assert "could not be read" in cause and "is not known" in cause
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
    assert standby_desired() == 3  # held until the writer is known to be back


def test_iam_refuses_a_failover_with_data_loss_the_template_does_not_allow(
    engine_factory: Any,
) -> None:
    engine = engine_factory(**DATA)  # AllowDataLoss false
    role = engine.functions["MoveDatabaseFunction"].role
    rds = boto3.client("rds", region_name=STANDBY)
    target = {"GlobalClusterIdentifier": "shop",
              "TargetDbClusterIdentifier": f"arn:aws:rds:{STANDBY}:123456789012:cluster:shop-{STANDBY}"}
    assert engine.authorizer.authorize(role, rds, "SwitchoverGlobalCluster", target, STANDBY) is None
    denial = engine.authorizer.authorize(role, rds, "FailoverGlobalCluster",
                                         {**target, "AllowDataLoss": True}, STANDBY)
    assert denial is not None and "rds:FailoverGlobalCluster" in denial.message


def _solo(engine: Any) -> None:
    engine.fakes["rds"].add_global_cluster("solo", {PRIMARY: "solo-primary"}, writer=PRIMARY)


def _elsewhere(engine: Any) -> None:
    engine.fakes["rds"].add_global_cluster(
        "far", {PRIMARY: "far-p", STANDBY: "far-s", "eu-west-1": "far-e"}, writer="eu-west-1")


def _behind(engine: Any) -> None:
    engine.fakes["rds"].set_synchronization("shop", STANDBY, "pending-resync")


@pytest.mark.parametrize("cluster, prepare, faults, says", [
    ("solo", _solo, (), f"has no cluster in {STANDBY}"),
    ("far", _elsewhere, (), f"the writer is in neither {PRIMARY} nor {STANDBY}"),
    ("shop", _behind, (), f"{STANDBY} is not in sync"),
    ("shop", None, (f"rds@{STANDBY}:DescribeGlobalClusters=AccessDenied",),
     "cannot read the global database shop"),
    ("nope", None, (), "cannot read the global database nope"),
])
def test_a_database_the_move_cannot_rely_on_escalates_at_pre_flight_with_nothing_moved(
    engine_factory: Any, cluster: str, prepare: Any, faults: tuple[str, ...], says: str,
) -> None:
    engine = engine_factory(faults, **{**DATA, "GlobalClusterIdentifier": cluster})
    if prepare is not None:
        prepare(engine)
    execution = engine.run(SCENARIO, load_event(ALARM))

    assert execution.error == "Runbook.Escalated", execution.cause
    assert "Pre-flight failed" in str(execution.cause) and says in str(execution.cause)
    assert moves(engine) == [] and standby_desired() == 0
    assert serving(engine) == {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
