"""The ARC routing-control fake (``route53-recovery-cluster``), through real boto3 clients pointed
at the cluster's regional endpoints and the emulated API boundary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from opsflow.engine import boundary
from opsflow.engine.boundary import Boundary
from opsflow.engine.fakes.route53_recovery_cluster import RoutingControlFake
from tests.shapes import assert_matches_shape

UNVALIDATED = Config(parameter_validation=False, retries={"max_attempts": 1})
ENDPOINT_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2"]


@dataclass
class Cluster:
    fake: RoutingControlFake
    endpoints: dict[str, str]
    panel: str
    east: str
    ohio: str
    rule: str

    def client(self, region: str = "us-west-2") -> Any:
        return boto3.client("route53-recovery-cluster", region_name=region,
                            endpoint_url=self.endpoints.get(region), config=UNVALIDATED)

    def call(self, method: str, region: str = "us-west-2", **params: Any) -> dict[str, Any]:
        client = self.client(region)
        response: dict[str, Any] = getattr(client, method)(**params)
        operation = client.meta.method_to_api_mapping[method]
        output = client.meta.service_model.operation_model(operation).output_shape
        body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        if output is not None:
            assert_matches_shape(body, output, operation)
        return response

    def fails(self, method: str, region: str = "us-west-2", **params: Any) -> ClientError:
        with pytest.raises(ClientError) as error:
            getattr(self.client(region), method)(**params)
        return error.value


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with mock_aws():
        fake = RoutingControlFake()
        described = fake.add_cluster("shop", ENDPOINT_REGIONS)
        panel = fake.add_control_panel(described["ClusterArn"], "shop")
        east = fake.add_routing_control(panel, "web-us-east-1", "Off")
        ohio = fake.add_routing_control(panel, "web-us-east-2", "On")
        rule = fake.add_assertion_rule(panel, "one-region-serves", [east, ohio], 1)
        boundary.activate(Boundary(fakes={"route53-recovery-cluster": fake}))
        try:
            yield Cluster(fake, {e["Region"]: e["Endpoint"] for e in described["ClusterEndpoints"]},
                          panel, east, ohio, rule)
        finally:
            boundary.deactivate()


def test_every_endpoint_serves_the_same_state(cluster: Cluster) -> None:
    for region in ENDPOINT_REGIONS:
        found = cluster.call("get_routing_control_state", region, RoutingControlArn=cluster.ohio)
        assert (found["RoutingControlName"], found["RoutingControlState"]) == ("web-us-east-2", "On")


def test_one_update_moves_both_controls_atomically(cluster: Cluster) -> None:
    cluster.call("update_routing_control_states", "eu-west-1", UpdateRoutingControlStateEntries=[
        {"RoutingControlArn": cluster.east, "RoutingControlState": "On"},
        {"RoutingControlArn": cluster.ohio, "RoutingControlState": "Off"},
    ])
    assert cluster.fake.states() == {"web-us-east-1": "On", "web-us-east-2": "Off"}
    listed = cluster.call("list_routing_controls", ControlPanelArn=cluster.panel)
    assert {c["RoutingControlName"]: c["RoutingControlState"]
            for c in listed["RoutingControls"]} == {"web-us-east-1": "On", "web-us-east-2": "Off"}


def test_an_update_that_breaks_a_safety_rule_changes_nothing(cluster: Cluster) -> None:
    error = cluster.fails("update_routing_control_state", RoutingControlArn=cluster.ohio,
                          RoutingControlState="Off")
    assert error.response["Error"]["Code"] == "ValidationException"
    assert "one-region-serves" in error.response["Error"]["Message"]
    assert cluster.fake.states() == {"web-us-east-1": "Off", "web-us-east-2": "On"}
    # Break glass: the rule named in SafetyRulesToOverride is not checked.
    cluster.call("update_routing_control_state", RoutingControlArn=cluster.ohio,
                 RoutingControlState="Off", SafetyRulesToOverride=[cluster.rule])
    assert cluster.fake.states()["web-us-east-2"] == "Off"


def test_unknown_control_and_bad_state_are_refused(cluster: Cluster) -> None:
    missing = cluster.fails("get_routing_control_state",
                            RoutingControlArn=f"{cluster.panel}/routingcontrol/0000")
    assert missing.response["Error"]["Code"] == "ResourceNotFoundException"
    bad = cluster.fails("update_routing_control_state", RoutingControlArn=cluster.east,
                        RoutingControlState="ON")
    assert bad.response["Error"]["Code"] == "ValidationException"
    assert cluster.fake.states()["web-us-east-1"] == "Off"


def test_a_region_without_an_endpoint_or_unreachable_does_not_answer(cluster: Cluster) -> None:
    with pytest.raises(EndpointConnectionError):
        cluster.client("us-east-2").get_routing_control_state(RoutingControlArn=cluster.east)
    cluster.fake.set_unreachable({"us-east-1"})
    with pytest.raises(EndpointConnectionError):
        cluster.client("us-east-1").get_routing_control_state(RoutingControlArn=cluster.east)
    assert cluster.call("get_routing_control_state", "us-west-2",
                        RoutingControlArn=cluster.east)["RoutingControlState"] == "Off"


def test_too_many_entries_are_refused(cluster: Cluster) -> None:
    entries = [{"RoutingControlArn": cluster.east, "RoutingControlState": "On"}] * 26
    error = cluster.fails("update_routing_control_states", UpdateRoutingControlStateEntries=entries)
    assert error.response["Error"]["Code"] == "ServiceLimitExceededException"
    assert cluster.fake.updates == []
