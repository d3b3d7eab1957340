"""region-failover's data-plane traffic switch: ARC routing controls, reached at the cluster's
regional endpoints in turn; and the control-plane dependency of the other mechanisms, stated
in the pre-flight and the report.

Assertions read the routing control states from the account (the ARC fake) and the Route 53
weights afterwards, and the execution history.
"""

from __future__ import annotations

from typing import Any

import boto3

from tests.conftest import load_event

SCENARIO = "region-failover"
PRIMARY, STANDBY = "us-east-2", "us-east-1"
BEFORE = {f"web-{STANDBY}": "Off", f"web-{PRIMARY}": "On"}
AFTER = {f"web-{STANDBY}": "On", f"web-{PRIMARY}": "Off"}


def states(engine: Any) -> dict[str, str]:
    return dict(engine.fakes["route53-recovery-cluster"].states())


def weights(engine: Any) -> dict[str, int]:
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = engine.world[SCENARIO]["zoneId"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {r["SetIdentifier"]: r["Weight"] for r in records if "Weight" in r}


def cluster_calls(engine: Any, operation: str) -> list[str]:
    """The regions whose cluster endpoint each ``operation`` request went to, in order."""
    return [region for service, name, region in engine.boundary.calls
            if service == "route53-recovery-cluster" and name == operation]


def test_failover_with_routing_controls_is_mitigated(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="arc")
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert states(engine) == AFTER
    assert weights(engine) == {STANDBY: 0, PRIMARY: 100}  # the weighted records untouched
    assert {(e["resource"], e["before"], e["after"]) for e in execution.effects} >= {
        (f"routing-control/web-{STANDBY}", "Off", "On"),
        (f"routing-control/web-{PRIMARY}", "On", "Off"),
    }
    # One atomic update, at the first endpoint, so the safety rule never saw zero regions On.
    assert engine.fakes["route53-recovery-cluster"].updates == [
        {arn: state for arn, state in zip(_controls(engine), ("On", "Off"), strict=True)}
    ]
    assert "data plane only" in execution.notifications[0]["message"]


def _controls(engine: Any) -> list[str]:
    pairs = dict(p.split("=", 1) for p in engine.parameters()["RoutingControlArns"])
    return [pairs[STANDBY], pairs[PRIMARY]]


def test_each_cluster_endpoint_is_tried_until_one_answers(engine_factory: Any) -> None:
    engine = engine_factory(
        ("route53-recovery-cluster@us-west-2:UpdateRoutingControlStates=InternalServerException",
         "route53-recovery-cluster@eu-west-1:UpdateRoutingControlStates="
         "EndpointTemporarilyUnavailableException"),
        TrafficMechanism="arc",
    )
    engine.fakes["route53-recovery-cluster"].set_unreachable({"us-east-1"})
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert states(engine) == AFTER
    tried = cluster_calls(engine, "UpdateRoutingControlStates")
    assert tried[-1] == "ap-northeast-1"
    assert [r for r in dict.fromkeys(tried)] == ["us-east-1", "us-west-2", "eu-west-1",
                                                 "ap-northeast-1"]


def test_no_cluster_endpoint_answering_escalates_and_moves_nothing(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="arc")
    everywhere = {r for r, _ in (p.split("=", 1)
                                 for p in engine.parameters()["RoutingControlEndpoints"])}
    engine.fakes["route53-recovery-cluster"].set_unreachable(everywhere)
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.status == "FAILED"
    assert execution.error == "Runbook.Escalated", execution.cause
    assert "no endpoint of the ARC cluster answered" in execution.cause
    assert states(engine) == BEFORE
    assert engine.fakes["route53-recovery-cluster"].updates == []


def test_routing_control_verify_failure_rolls_back_the_states(engine_factory: Any) -> None:
    engine = engine_factory(
        ("route53-recovery-cluster:ListRoutingControls=AccessDeniedException",),
        TrafficMechanism="arc",
    )
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "The recorded traffic split was restored" in execution.cause
    assert states(engine) == BEFORE
    assert len(engine.fakes["route53-recovery-cluster"].updates) == 2  # shift, then restore


def test_routing_control_failback_moves_traffic_home(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="arc")
    assert engine.run(SCENARIO, load_event("region-failover/alarm-primary.json")).outcome == (
        "mitigated")
    execution = engine.run(SCENARIO, load_event("region-failover/failback.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert states(engine) == BEFORE


def test_route53_weights_say_they_depend_on_its_control_plane(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    first, verified = execution.notifications[0]["message"], execution.notifications[-1]["message"]
    for message in (first, verified):  # the pre-flight's notice and the report
        assert "depends on Route 53's control plane" in message and "us-east-1" in message
        assert "TrafficMechanism=arc" in message


def test_the_accelerator_dial_says_it_depends_on_its_control_plane(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="globalaccelerator")
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    for message in (execution.notifications[0]["message"], execution.notifications[-1]["message"]):
        assert "Global Accelerator's control plane" in message and "us-west-2" in message


def test_routing_control_dry_run_sets_nothing(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="arc")
    event = load_event("region-failover/alarm-primary.json")
    event["opsflow"] = {"dryRun": True}
    execution = engine.run(SCENARIO, event)

    assert execution.outcome == "dry-run", execution.cause
    assert states(engine) == BEFORE
    assert engine.fakes["route53-recovery-cluster"].updates == []
    assert cluster_calls(engine, "GetRoutingControlState")  # read, at the first endpoint


def failover_object(engine: Any) -> str:
    from opsflow.engine.worlds.region_failover import FAILOVER_BUCKET, FAILOVER_KEY

    s3 = boto3.client("s3", region_name=STANDBY)
    return s3.get_object(Bucket=FAILOVER_BUCKET, Key=FAILOVER_KEY)["Body"].read().decode()


def test_standby_takes_over_on_the_s3_data_plane(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="standby-takes-over")
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert not [c for c in engine.boundary.calls if c[0] == "route53"]  # no Route 53 API
    assert failover_object(engine) == "opsflow: standby serves"
    assert weights(engine) == {STANDBY: 0, PRIMARY: 100}
    assert "data plane only (an S3 object" in execution.notifications[0]["message"]
    # The report's effects show the switch itself: the object's text, read from the account.
    assert {(e["field"], e["before"], e["after"]) for e in execution.effects
            if e["resource"].startswith("s3://") and e["field"] == "body"} == {
        ("body", "opsflow: primary serves", "opsflow: standby serves")}
    failback = engine.run(SCENARIO, load_event("region-failover/failback.json"))
    assert failback.outcome == "mitigated", failback.cause
    assert failover_object(engine) == "opsflow: primary serves"


def test_standby_takes_over_verify_failure_puts_the_object_back(engine_factory: Any) -> None:
    engine = engine_factory(("s3:HeadObject=AccessDenied",), TrafficMechanism="standby-takes-over")
    execution = engine.run(SCENARIO, load_event("region-failover/alarm-primary.json"))

    assert execution.error == "Runbook.RolledBack", execution.cause
    assert "The recorded traffic split was restored" in execution.cause
    assert failover_object(engine) == "opsflow: primary serves"
