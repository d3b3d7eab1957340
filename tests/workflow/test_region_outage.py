"""A whole-region outage rehearsed offline: every API endpoint of the primary refuses
connections, the canary (in the stack's region) times out on it, the alarm fires from the
standby, and the runbook, which runs there, moves capacity and traffic; with Route 53's control
plane down too, the weights escalate with nothing half moved and routing controls still work.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

SCENARIO = "region-failover"
PRIMARY, STANDBY = "us-east-2", "us-east-1"
OUTAGE = {"AutoScalingGroupName": "web", "StandbyCapacity": "3"}


def weights(engine: Any) -> dict[str, int]:
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = engine.world[SCENARIO]["zoneId"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {r["SetIdentifier"]: r["Weight"] for r in records if "Weight" in r}


def standby_desired() -> int:
    group = boto3.client("autoscaling", region_name=STANDBY).describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    return int(group["DesiredCapacity"])


def outage_run(engine: Any, route53_down: bool = False, server_error: int | None = None) -> Any:
    played = engine.chaos_region_outage(PRIMARY, minutes=15, route53_down=route53_down,
                                        server_error=server_error)
    assert played.event is not None, played.log
    assert played.event["detail"]["alarmName"] == f"opsflow-canary-{PRIMARY}"
    assert played.event["region"] == engine.stack.region == STANDBY  # seen from the survivor
    rules = engine.match(played.event)
    assert [r.scenario for r in rules] == [SCENARIO]
    return engine.run(SCENARIO, played.event, rule=rules[0])


def test_the_outage_takes_every_endpoint_of_the_region_down(engine: Any) -> None:
    engine.chaos_region_outage(PRIMARY, minutes=3)
    with pytest.raises(EndpointConnectionError):
        boto3.client("ec2", region_name=PRIMARY).describe_instances()
    assert boto3.client("ec2", region_name=STANDBY).describe_instances()["Reservations"]


@pytest.mark.parametrize("mechanism", ["arc", "standby-takes-over", "route53",
                                       "globalaccelerator"])
def test_outage_of_the_primary_is_mitigated_from_the_standby(
    engine_factory: Any, mechanism: str
) -> None:
    engine = engine_factory(TrafficMechanism=mechanism, **OUTAGE)
    execution = outage_run(engine)

    assert execution.outcome == "mitigated", execution.cause
    assert standby_desired() == 3
    if mechanism == "arc":
        assert engine.fakes["route53-recovery-cluster"].states() == {
            f"web-{STANDBY}": "On", f"web-{PRIMARY}": "Off"}
    elif mechanism == "route53":
        assert weights(engine) == {STANDBY: 100, PRIMARY: 0}
    elif mechanism == "globalaccelerator":
        assert {g["EndpointGroupRegion"]: g["TrafficDialPercentage"]
                for g in engine.fakes["globalaccelerator"].endpoint_groups()} == {
            STANDBY: 100.0, PRIMARY: 0.0}
    # Nothing the runbook needed was in the region that went down.
    assert engine.stack.region == STANDBY


def test_route53_control_plane_down_escalates_the_weights_with_nothing_moved(
    engine_factory: Any,
) -> None:
    engine = engine_factory(TrafficMechanism="route53", **OUTAGE)
    execution = outage_run(engine, route53_down=True)

    assert execution.error == "Runbook.Escalated", execution.cause
    assert "ListResourceRecordSets" in execution.cause
    engine.boundary.unreachable_services.clear()  # read the account as it is
    assert weights(engine) == {STANDBY: 0, PRIMARY: 100}
    assert standby_desired() == 0  # nothing half moved: not even capacity
    assert "Act: Scale target capacity" not in execution.states


def test_route53_control_plane_down_routing_controls_still_mitigate(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="arc", **OUTAGE)
    execution = outage_run(engine, route53_down=True)

    assert execution.outcome == "mitigated", execution.cause
    assert engine.fakes["route53-recovery-cluster"].states()[f"web-{STANDBY}"] == "On"
    assert standby_desired() == 3


def test_outage_without_standby_capacity_escalates_before_scaling(engine_factory: Any) -> None:
    engine = engine_factory(TrafficMechanism="arc", AutoScalingGroupName="web")
    execution = outage_run(engine)

    assert execution.error == "Runbook.Escalated", execution.cause
    assert "set StandbyCapacity" in execution.cause
    assert standby_desired() == 0
    assert engine.fakes["route53-recovery-cluster"].updates == []


def test_cli_region_outage_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    from opsflow import cli

    code = cli.main(["chaos", "region-outage", "--param", "TrafficMechanism=arc",
                     "--param", "AutoScalingGroupName=web", "--param", "StandbyCapacity=3",
                     "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["matched"] == [{"rule": "CanaryAlarmRule", "scenario": SCENARIO}]
    (execution,) = result["executions"]
    assert execution["outcome"] == "mitigated"
    assert {(e["resource"], e["after"]) for e in execution["effects"]} >= {
        (f"routing-control/web-{STANDBY}", "On"), (f"routing-control/web-{PRIMARY}", "Off")}


def test_cli_region_outage_refuses_the_stacks_own_region(capsys: pytest.CaptureFixture[str]) -> None:
    from opsflow import cli

    assert cli.main(["chaos", "region-outage", "--region", STANDBY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "where the stack runs" in err


@pytest.mark.parametrize("status, code", [(503, "ServiceUnavailable"), (500, "InternalFailure")])
def test_an_outage_answering_5xx_is_mitigated_from_the_standby_too(
    engine_factory: Any, status: int, code: str
) -> None:
    engine = engine_factory(TrafficMechanism="arc", GlobalClusterIdentifier="shop",
                            AllowDataLoss="true", **OUTAGE)
    execution = outage_run(engine, server_error=status)

    assert execution.outcome == "mitigated", execution.cause
    failed = {(c["service"], c["operation"]) for c in execution.calls
              if c["region"] == PRIMARY and c["error"] == code}
    assert ("rds", "DescribeGlobalClusters") in failed  # the writer's region, asked and failing
    assert engine.fakes["rds"].writer("shop") == STANDBY and standby_desired() == 3
    with pytest.raises(ClientError) as error:
        boto3.client("ec2", region_name=PRIMARY).describe_instances()
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
