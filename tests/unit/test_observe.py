"""The account diff reads moto's backends directly (fast); it must see exactly what the EC2 API
shows, in a world with several regions, interfaces, groups, volumes and snapshots."""

from __future__ import annotations

from typing import Any

import boto3
from hypothesis import given
from hypothesis import strategies as st

from opsflow.engine import observe

SCENARIO = "health-abuse"


def normalised(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda r: (r["type"], r["region"], r["id"]))


def test_backends_and_the_api_give_the_same_listing(engine: Any) -> None:
    regions = engine.regions(SCENARIO)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    instance = engine.world[SCENARIO]["instances"]["shop-web-2"]
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "opsflow:probe", "Value": "1"}])
    ec2.stop_instances(InstanceIds=[instance])
    volume = ec2.describe_volumes()["Volumes"][0]["VolumeId"]
    ec2.create_snapshot(VolumeId=volume, TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "opsflow:probe", "Value": "1"}]}])

    by_api = normalised(observe.resources(regions))
    by_backend = normalised(observe.resources(regions, "123456789012"))

    assert by_backend == by_api
    assert {r["type"] for r in by_api} == {
        "ec2:instance", "ec2:security-group", "ec2:volume", "ec2:snapshot"
    }
    assert any(len(r.get("interfaces", {})) == 2 for r in by_api)


def test_the_recorded_history_is_the_apis(engine: Any) -> None:
    """The run's history is read from the interpreter's own list (fast); it must be what
    GetExecutionHistory returns."""
    from tests.conftest import load_event

    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))
    by_api = engine._history_by_api(execution.execution_arn, 0)

    assert execution.history == by_api
    assert len(by_api) > 50


def test_the_stacks_state_traffic_and_alarms_from_backends_are_the_apis() -> None:
    """Route 53 weights, alarm states, DynamoDB items and SSM values read from moto's backends
    equal what the APIs answer, after a failover changed each of them."""
    from opsflow.engine.runner import ACCOUNT, LocalEngine
    from tests.conftest import load_event

    with LocalEngine(scenarios=["region-failover"]) as engine:
        assert engine.run("region-failover",
                          load_event("region-failover/alarm-primary.json")).outcome == "mitigated"
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        cloudwatch.set_alarm_state(AlarmName=engine.alarm_names[0], StateValue="ALARM",
                                   StateReason="probe")
        by_api: dict[Any, Any] = {}
        route53 = boto3.client("route53", region_name="us-east-1")
        for zone in route53.list_hosted_zones()["HostedZones"]:
            for record in route53.list_resource_record_sets(
                    HostedZoneId=zone["Id"])["ResourceRecordSets"]:
                if "Weight" in record:
                    by_api[(f"{record['Name']} [{record['SetIdentifier']}]", "global",
                            "weight")] = record["Weight"]
        for name in engine.alarm_names:
            by_api[(name, "us-east-1", "state")] = cloudwatch.describe_alarms(
                AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
        by_api.update(observe.snapshot([], engine.tables, engine.ssm_parameters))

        by_backend = observe.traffic_and_alarms(ACCOUNT, engine.alarm_names)
        by_backend.update(observe.stack_state(ACCOUNT, engine.tables, engine.ssm_parameters))

    assert by_backend == by_api
    assert {v for k, v in by_api.items() if k[2] == "weight"} == {0, 100}
    assert "ALARM" in {v for k, v in by_api.items() if k[2] == "state"}
    assert any(k[2] == "item" for k in by_api) and any(k[2] == "value" for k in by_api)


_KEYS = st.tuples(st.sampled_from(["i-1", "vol-2", "sg-3"]), st.sampled_from(["us-east-1", "eu-west-1"]),
                  st.sampled_from(["exists", "state", "size"]))
_VIEWS = st.dictionaries(_KEYS, st.none() | st.integers(0, 3) | st.sampled_from(["a", "b"]))


@given(_VIEWS, _VIEWS)
def test_the_diff_is_every_field_that_differs_in_key_order(
    before: dict[Any, Any], after: dict[Any, Any]
) -> None:
    """Only changed keys are sorted; the effects are those of comparing every key of both."""
    expected = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            if key[2] == "exists":
                old, new = ("absent" if old is None else "present",
                            "absent" if new is None else "present")
            expected.append({"resource": key[0], "region": key[1], "field": key[2],
                             "before": old, "after": new})
    assert observe.diff(before, after) == expected
