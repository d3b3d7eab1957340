"""The Service Quotas fake, through real boto3 clients and the emulated API boundary."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from opsflow.engine import boundary
from opsflow.engine.boundary import Boundary
from opsflow.engine.clock import VirtualClock
from opsflow.engine.fakes.service_quotas import (
    EBS_QUOTAS,
    EBS_SERVICE_NAME,
    Progression,
    ServiceQuotasFake,
)
from tests.shapes import assert_matches_shape

UNVALIDATED = Config(parameter_validation=False)
"""Clients as the state-machine interpreter makes them: no client-side parameter validation, so
the fake's own validation answers, as the service would."""

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
ACCOUNT = "123456789012"
GP3 = "L-7A658B76"
GP2 = "L-D18FCD1D"
IO2 = "L-09BD8365"
SNAPSHOTS = "L-309BACF6"
HOUR = 3600.0

@dataclass
class World:
    clock: VirtualClock
    fake: ServiceQuotasFake
    client: BaseClient
    clients: dict[str, BaseClient]

    def call(self, method: str, region: str = REGION, **params: Any) -> dict[str, Any]:
        """Call through a real boto3 client; check the response against the output shape."""
        client = self.client if region == REGION else self.region_client(region)
        response: dict[str, Any] = getattr(client, method)(**params)
        operation = client.meta.method_to_api_mapping[method]
        output = client.meta.service_model.operation_model(operation).output_shape
        body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
        assert output is not None
        assert_matches_shape(body, output, operation)
        return response

    def fails(self, method: str, region: str = REGION, **params: Any) -> ClientError:
        client = self.client if region == REGION else self.region_client(region)
        with pytest.raises(ClientError) as error:
            getattr(client, method)(**params)
        return error.value

    def region_client(self, region: str) -> BaseClient:
        if region not in self.clients:
            self.clients[region] = boto3.client("service-quotas", region_name=region, config=UNVALIDATED)
        return self.clients[region]

    def request(
        self, code: str, value: float, region: str = REGION, **extra: Any
    ) -> dict[str, Any]:
        response = self.call(
            "request_service_quota_increase",
            region,
            ServiceCode="ebs",
            QuotaCode=code,
            DesiredValue=value,
            **extra,
        )
        return response["RequestedQuota"]

    def change(self, request_id: str, region: str = REGION) -> dict[str, Any]:
        response = self.call("get_requested_service_quota_change", region, RequestId=request_id)
        return response["RequestedQuota"]


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def make_world(aws: None) -> Iterator[Callable[..., World]]:
    def _make(progression: Progression | None = None) -> World:
        clock = VirtualClock()
        fake = ServiceQuotasFake(clock, account=ACCOUNT, progression=progression)
        boundary.activate(Boundary(fakes={"service-quotas": fake}))
        client = boto3.client("service-quotas", region_name=REGION, config=UNVALIDATED)
        return World(clock, fake, client, {})

    yield _make
    boundary.deactivate()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def code_of(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


# ------------------------------------------------------------------ quota values
def test_default_value_when_no_applied_value(world: World) -> None:
    error = world.fails("get_service_quota", ServiceCode="ebs", QuotaCode=GP3)
    assert code_of(error) == "NoSuchResourceException"
    assert isinstance(error, world.client.exceptions.NoSuchResourceException)

    quota = world.call("get_aws_default_service_quota", ServiceCode="ebs", QuotaCode=GP3)["Quota"]
    assert quota == {
        "ServiceCode": "ebs",
        "ServiceName": EBS_SERVICE_NAME,
        "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:ebs/{GP3}",
        "QuotaCode": GP3,
        "QuotaName": "Storage for General Purpose SSD (gp3) volumes, in TiB",
        "Value": 50.0,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
        "QuotaAppliedAtLevel": "ACCOUNT",
    }
    io2 = world.call("get_aws_default_service_quota", ServiceCode="ebs", QuotaCode=IO2)
    assert io2["Quota"]["Value"] == 20.0
    snapshots = world.call("get_aws_default_service_quota", ServiceCode="ebs", QuotaCode=SNAPSHOTS)
    assert snapshots["Quota"]["QuotaName"] == "Snapshots per Region"
    assert snapshots["Quota"]["Value"] == 100000.0


def test_applied_value_and_list_service_quotas(world: World) -> None:
    world.fake.set_applied(REGION, GP3, 120)
    world.fake.set_applied(REGION, SNAPSHOTS, 150000)

    quota = world.call("get_service_quota", ServiceCode="ebs", QuotaCode=GP3)["Quota"]
    assert quota["Value"] == 120.0
    assert isinstance(quota["Value"], float)

    listed = world.call("list_service_quotas", ServiceCode="ebs")
    assert [q["QuotaCode"] for q in listed["Quotas"]] == [GP3, SNAPSHOTS]
    assert "NextToken" not in listed
    one = world.call("list_service_quotas", ServiceCode="ebs", QuotaCode=SNAPSHOTS)
    assert [q["Value"] for q in one["Quotas"]] == [150000.0]

    first = world.call("list_service_quotas", ServiceCode="ebs", MaxResults=1)
    assert [q["QuotaCode"] for q in first["Quotas"]] == [GP3]
    second = world.call(
        "list_service_quotas", ServiceCode="ebs", MaxResults=1, NextToken=first["NextToken"]
    )
    assert [q["QuotaCode"] for q in second["Quotas"]] == [SNAPSHOTS]
    assert "NextToken" not in second
    error = world.fails("list_service_quotas", ServiceCode="ebs", NextToken="bm9wZQ==")
    assert code_of(error) == "InvalidPaginationTokenException"


def test_catalogue_names_every_volume_type_once() -> None:
    volume_types = [q["volumeType"] for q in EBS_QUOTAS.values() if q["volumeType"]]
    assert sorted(volume_types) == ["gp2", "gp3", "io1", "io2", "sc1", "st1", "standard"]
    assert EBS_QUOTAS[SNAPSHOTS]["volumeType"] is None


# ------------------------------------------------------------------ increase requests
def test_request_moves_pending_case_opened_approved(world: World) -> None:
    created = world.clock.now()
    request = world.request(GP3, 200)
    assert request["Status"] == "PENDING"
    assert "CaseId" not in request
    assert request["Created"] == created and request["LastUpdated"] == created
    assert request["DesiredValue"] == 200.0
    assert request["QuotaName"] == EBS_QUOTAS[GP3]["name"]
    assert request["ServiceName"] == EBS_SERVICE_NAME
    assert request["QuotaArn"] == f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:ebs/{GP3}"
    assert request["GlobalQuota"] is False
    assert ACCOUNT in request["Requester"]

    world.clock.advance(59)
    assert world.change(request["Id"])["Status"] == "PENDING"
    world.clock.advance(1)
    opened = world.change(request["Id"])
    assert opened["Status"] == "CASE_OPENED"
    assert opened["CaseId"].isdigit()
    assert opened["LastUpdated"] == created + timedelta(seconds=60)
    assert code_of(world.fails("get_service_quota", ServiceCode="ebs", QuotaCode=GP3)) == (
        "NoSuchResourceException"
    )

    world.clock.advance(6 * HOUR)
    approved = world.change(request["Id"])
    assert approved["Status"] == "APPROVED"
    assert approved["CaseId"] == opened["CaseId"]
    assert approved["LastUpdated"] == created + timedelta(seconds=6 * HOUR)
    quota = world.call("get_service_quota", ServiceCode="ebs", QuotaCode=GP3)["Quota"]
    assert quota["Value"] == 200.0
    assert world.fake.applied_value(REGION, GP3) == 200.0

    (listed,) = world.fake.requests()
    assert listed["Region"] == REGION
    assert listed["Id"] == request["Id"] and listed["Status"] == "APPROVED"


def test_duplicate_open_request_is_refused(world: World) -> None:
    first = world.request(GP3, 200)
    error = world.fails(
        "request_service_quota_increase", ServiceCode="ebs", QuotaCode=GP3, DesiredValue=300
    )
    assert code_of(error) == "ResourceAlreadyExistsException"
    world.clock.advance(120)
    assert world.change(first["Id"])["Status"] == "CASE_OPENED"
    error = world.fails(
        "request_service_quota_increase", ServiceCode="ebs", QuotaCode=GP3, DesiredValue=300
    )
    assert code_of(error) == "ResourceAlreadyExistsException"

    assert world.request(GP2, 80)["Status"] == "PENDING"
    world.clock.advance(6 * HOUR)
    second = world.request(GP3, 300)
    assert second["Status"] == "PENDING"
    assert second["Id"] != first["Id"]


def test_history_by_quota_with_status_filter(world: World) -> None:
    first = world.request(GP3, 100)
    world.clock.advance(6 * HOUR)
    second = world.request(GP3, 150)
    world.request(GP2, 60)

    everything = world.call(
        "list_requested_service_quota_change_history_by_quota", ServiceCode="ebs", QuotaCode=GP3
    )
    assert [r["Id"] for r in everything["RequestedQuotas"]] == [first["Id"], second["Id"]]
    approved = world.call(
        "list_requested_service_quota_change_history_by_quota",
        ServiceCode="ebs",
        QuotaCode=GP3,
        Status="APPROVED",
    )
    assert [r["Id"] for r in approved["RequestedQuotas"]] == [first["Id"]]
    pending = world.call(
        "list_requested_service_quota_change_history_by_quota",
        ServiceCode="ebs",
        QuotaCode=GP3,
        Status="PENDING",
    )
    assert [r["Id"] for r in pending["RequestedQuotas"]] == [second["Id"]]

    history = world.call("list_requested_service_quota_change_history", ServiceCode="ebs")
    assert len(history["RequestedQuotas"]) == 3
    open_now = world.call("list_requested_service_quota_change_history", Status="PENDING")
    assert {r["QuotaCode"] for r in open_now["RequestedQuotas"]} == {GP3, GP2}
    error = world.fails("list_requested_service_quota_change_history", ServiceCode="ec2x")
    assert code_of(error) == "NoSuchResourceException"


def test_set_outcome_denied(world: World) -> None:
    world.fake.set_outcome(REGION, GP3, "DENIED", 2 * HOUR)
    request = world.request(GP3, 500)
    world.clock.advance(2 * HOUR - 1)
    assert world.change(request["Id"])["Status"] == "CASE_OPENED"
    world.clock.advance(1)
    denied = world.change(request["Id"])
    assert denied["Status"] == "DENIED"
    assert denied["LastUpdated"] == request["Created"] + timedelta(hours=2)
    assert world.fake.applied_value(REGION, GP3) is None
    assert code_of(world.fails("get_service_quota", ServiceCode="ebs", QuotaCode=GP3)) == (
        "NoSuchResourceException"
    )
    other = world.request(GP2, 500)
    world.clock.advance(6 * HOUR)
    assert world.change(other["Id"])["Status"] == "APPROVED"


def test_set_outcome_for_a_whole_region_and_progression(make_world: Callable[..., World]) -> None:
    world = make_world(Progression(final_status="CASE_CLOSED", final_after=600))
    world.fake.set_outcome(OTHER_REGION, None, "INVALID_REQUEST", 30)
    here = world.request(GP3, 60)
    there = world.request(GP3, 60, region=OTHER_REGION)
    world.clock.advance(600)
    assert world.change(here["Id"])["Status"] == "CASE_CLOSED"
    invalid = world.change(there["Id"], region=OTHER_REGION)
    assert invalid["Status"] == "INVALID_REQUEST"
    assert "CaseId" not in invalid
    with pytest.raises(ValueError, match="final status"):
        world.fake.set_outcome(REGION, GP3, "MAYBE", 10)


def test_support_case_not_allowed_is_not_approved(world: World) -> None:
    request = world.request(IO2, 40, SupportCaseAllowed=False)
    world.clock.advance(60)
    refused = world.change(request["Id"])
    assert refused["Status"] == "NOT_APPROVED"
    assert "CaseId" not in refused


def test_desired_value_must_be_above_current(world: World) -> None:
    for value in (50, 10):
        error = world.fails(
            "request_service_quota_increase", ServiceCode="ebs", QuotaCode=GP3, DesiredValue=value
        )
        assert code_of(error) == "IllegalArgumentException"
    world.fake.set_applied(REGION, GP3, 300)
    error = world.fails(
        "request_service_quota_increase", ServiceCode="ebs", QuotaCode=GP3, DesiredValue=200
    )
    assert code_of(error) == "IllegalArgumentException"
    assert world.request(GP3, 301)["Status"] == "PENDING"


def test_regions_are_independent(world: World) -> None:
    world.fake.set_applied(REGION, GP3, 400)
    error = world.fails("get_service_quota", OTHER_REGION, ServiceCode="ebs", QuotaCode=GP3)
    assert code_of(error) == "NoSuchResourceException"

    here = world.request(GP3, 500)
    there = world.request(GP3, 100, region=OTHER_REGION)
    assert there["QuotaArn"] == f"arn:aws:servicequotas:{OTHER_REGION}:{ACCOUNT}:ebs/{GP3}"
    assert here["Id"] != there["Id"]
    error = world.fails("get_requested_service_quota_change", OTHER_REGION, RequestId=here["Id"])
    assert code_of(error) == "NoSuchResourceException"
    listed = world.call("list_requested_service_quota_change_history", OTHER_REGION)
    assert [r["Id"] for r in listed["RequestedQuotas"]] == [there["Id"]]

    world.clock.advance(6 * HOUR)
    assert world.fake.applied_value(REGION, GP3) == 500.0
    assert world.fake.applied_value(OTHER_REGION, GP3) == 100.0
    assert {(r["Region"], r["DesiredValue"]) for r in world.fake.requests()} == {
        (REGION, 500.0),
        (OTHER_REGION, 100.0),
    }


# ------------------------------------------------------------------ errors
def test_unknown_service_quota_and_request(world: World) -> None:
    error = world.fails("get_aws_default_service_quota", ServiceCode="ec2x", QuotaCode=GP3)
    assert code_of(error) == "NoSuchResourceException"
    error = world.fails("get_aws_default_service_quota", ServiceCode="ebs", QuotaCode="L-00000000")
    assert code_of(error) == "NoSuchResourceException"
    error = world.fails("list_service_quotas", ServiceCode="nosuch")
    assert code_of(error) == "NoSuchResourceException"
    error = world.fails("get_requested_service_quota_change", RequestId="0123456789abcdef")
    assert code_of(error) == "NoSuchResourceException"


def test_missing_parameters_are_illegal(world: World) -> None:
    error = world.fails("get_service_quota", ServiceCode="ebs")
    assert code_of(error) == "IllegalArgumentException"
    assert "QuotaCode" in str(error)
    error = world.fails("request_service_quota_increase", ServiceCode="ebs", QuotaCode=GP3)
    assert code_of(error) == "IllegalArgumentException"
    assert "DesiredValue" in str(error)


def test_other_operations_are_named_as_not_implemented(world: World) -> None:
    error = world.fails("list_services")
    assert code_of(error) == "NotImplemented"
    assert "ListServices" in str(error)


# ------------------------------------------------------------------ determinism, threads
def test_same_actions_give_same_ids(make_world: Callable[..., World]) -> None:
    def run() -> list[tuple[str, str]]:
        world = make_world()
        world.request(GP3, 100)
        world.clock.advance(6 * HOUR)
        world.request(GP3, 200)
        world.clock.advance(60)
        return [(r["Id"], r.get("CaseId", "")) for r in world.fake.requests()]

    assert run() == run()


def test_concurrent_requests(world: World) -> None:
    codes = [code for code, quota in EBS_QUOTAS.items() if quota["volumeType"]]
    errors: list[BaseException] = []

    def ask(code: str) -> None:
        try:
            client = boto3.client("service-quotas", region_name=REGION, config=UNVALIDATED)
            client.request_service_quota_increase(
                ServiceCode="ebs", QuotaCode=code, DesiredValue=1e3
            )
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    requests = world.fake.requests()
    assert sorted(r["QuotaCode"] for r in requests) == sorted(codes)
    assert len({r["Id"] for r in requests}) == len(codes)
