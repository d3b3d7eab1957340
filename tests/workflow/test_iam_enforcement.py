"""IAM as the rehearsal enforces it, call by call: who a call runs as, which resources and
condition keys AWS evaluates for it, and the error a refused call gets."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import failed_tasks, load_event
from tests.workflow.test_iam_rehearsals import without

SCENARIO = "health-abuse"


def ids(engine: Any) -> dict[str, str]:
    return engine.world[SCENARIO]["instances"]


def target(engine: Any, name: str, region: str = "us-east-1") -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=region)
    instance = ec2.describe_instances(InstanceIds=[ids(engine)[name]])["Reservations"][0]["Instances"][0]
    return {"instanceId": instance["InstanceId"], "region": region, "vpcId": instance["VpcId"],
            "state": "running", "name": name}


def payload(engine: Any, name: str, dry_run: bool = False, region: str = "us-east-1") -> dict[str, Any]:
    return {"instance": target(engine, name, region), "settings": {"isolationGroupName": "opsflow-isolation"},
            "dryRun": dry_run, "execution": "test-execution"}


def calls(engine: Any, role: str, action: str) -> list[Any]:
    return [c for c in engine.authorizer.calls if c.principal.endswith(f"/opsflow-{role}") and c.action == action]


def test_the_guard_refuses_to_isolate_a_protected_instance_whatever_the_code_does(engine: Any) -> None:
    """The isolate function's role may move interfaces, but the guard policy's explicit Deny on
    instances tagged Stage=Prod wins: EC2 evaluates the interface's instance too."""
    succeeded, error = engine.invoke("IsolateInstanceFunction", payload(engine, "payments-api"))

    assert not succeeded
    assert error["errorType"] == "AccessDenied"
    assert "UnauthorizedOperation" in error["errorMessage"]
    refused = [c for c in engine.authorizer.calls if not c.allowed]
    assert refused[0].reason == "explicit-deny"
    assert refused[0].policy == "opsflow-ProtectedInstancesGuard"
    assert refused[0].resource.endswith(f"instance/{ids(engine)['payments-api']}")


def test_an_interface_change_is_evaluated_on_the_interface_its_instance_and_the_groups(
    engine: Any,
) -> None:
    succeeded, _ = engine.invoke("IsolateInstanceFunction", payload(engine, "shop-web-2"))

    assert succeeded
    evaluated = {c.resource.split(":")[-1].split("/")[0] for c in
                 calls(engine, "IsolateInstanceFunctionRole", "ec2:ModifyNetworkInterfaceAttribute")}
    assert evaluated == {"network-interface", "instance", "security-group"}


def test_tag_on_create_is_authorized_as_create_tags_with_the_create_action(engine: Any) -> None:
    succeeded, _ = engine.invoke("IsolateInstanceFunction", payload(engine, "shop-web-1"))

    assert succeeded
    tagging = [c for c in calls(engine, "IsolateInstanceFunctionRole", "ec2:CreateTags")
               if c.request.context.get("ec2:CreateAction") == "CreateSecurityGroup"]
    assert tagging and tagging[0].allowed and tagging[0].resource.endswith("security-group/*")
    assert tagging[0].request.context["aws:RequestTag/opsflow:role"] == "isolation"


def test_a_customer_managed_key_needs_kms_through_ec2(engine: Any) -> None:
    """batch-eu-1's data volume is encrypted with a customer managed key (the world's): the
    snapshot needs KMS permissions scoped with kms:ViaService."""
    succeeded, _ = engine.invoke("SnapshotVolumesFunction", payload(engine, "batch-eu-1", region="eu-west-1"))

    assert succeeded
    grants = calls(engine, "SnapshotVolumesFunctionRole", "kms:CreateGrant")
    assert grants and grants[0].allowed
    assert grants[0].request.context["kms:ViaService"] == "ec2.eu-west-1.amazonaws.com"


def test_a_refused_call_gets_the_services_own_error(engine: Any) -> None:
    """SNS refuses with AuthorizationError (403); the message names principal, action, resource."""
    sns = boto3.client("sns", region_name="us-east-1")
    topic = sns.list_topics()["Topics"][0]["TopicArn"]
    role = "arn:aws:iam::123456789012:role/opsflow-CheckQuarantineFunctionRole"
    denial = engine.authorizer.authorize(role, sns, "Publish", {"TopicArn": topic, "Message": "x"}, "us-east-1")

    assert denial is not None
    assert (denial.code, denial.status) == ("AuthorizationError", 403)
    assert "opsflow-CheckQuarantineFunctionRole" in denial.message
    assert "sns:Publish" in denial.message and topic in denial.message


def test_a_decision_is_made_again_once_the_roles_policies_are_replaced(engine: Any) -> None:
    """Decisions are remembered per request; a role whose policies are replaced (a grant taken
    away, as a rehearsal does) is decided on its new policies from the next call."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    role = "arn:aws:iam::123456789012:role/opsflow-CheckQuarantineFunctionRole"
    params = {"InstanceIds": [ids(engine)["shop-web-1"]]}
    assert engine.authorizer.authorize(role, ec2, "DescribeInstances", params, "us-east-1") is None
    assert engine.authorizer.authorize(role, ec2, "DescribeInstances", params, "us-east-1") is None

    found = engine.principals[role]
    found.policies = [(name, without(doc, "ec2:DescribeInstances")) for name, doc in found.policies]
    denial = engine.authorizer.authorize(role, ec2, "DescribeInstances", params, "us-east-1")

    assert denial is not None and denial.code == "UnauthorizedOperation"
    assert [c.allowed for c in engine.authorizer.calls if c.action == "ec2:DescribeInstances"
            and c.principal == role][-3:] == [True, True, False]


def test_calls_run_as_the_state_machine_role_and_each_functions_own_role(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.outcome == "mitigated", execution.cause
    by_action = {}
    for call in engine.authorizer.calls:
        by_action.setdefault(call.action, set()).add(call.principal.rsplit("/", 1)[-1])
    assert by_action["lambda:InvokeFunction"] == {"opsflow-HealthAbuseStateMachineRole"}
    assert by_action["dynamodb:PutItem"] == {"opsflow-HealthAbuseStateMachineRole"}
    assert by_action["ec2:StopInstances"] == {"opsflow-StopInstanceFunctionRole"}
    assert "opsflow-IsolateInstanceFunctionRole" in by_action["ec2:ModifyNetworkInterfaceAttribute"]


def test_a_denied_lambda_invoke_is_named_as_step_functions_names_it(engine: Any) -> None:
    """Without lambda:InvokeFunction the task fails Lambda.AWSLambdaException (the Lambda API
    does not model AccessDeniedException), which the runbook's Catch handles."""
    machine = engine.principals["arn:aws:iam::123456789012:role/opsflow-HealthAbuseStateMachineRole"]
    machine.policies = [(name, doc) for name, doc in machine.policies
                        if "lambda:InvokeFunction" not in json.dumps(doc)]
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.status == "FAILED"
    assert failed_tasks(execution, "Lambda.AWSLambdaException") >= 1
    assert "AccessDeniedException" in json.dumps(execution.history, default=str)


@pytest.mark.parametrize("engine_faults", [("lambda:Invoke=TooManyRequestsException*1",)])
def test_a_throttled_invoke_is_lambda_too_many_requests_and_is_retried(
    engine_factory: Any, engine_faults: tuple[str, ...]
) -> None:
    engine = engine_factory(faults=engine_faults)
    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"))

    assert execution.outcome == "mitigated", execution.cause
    assert failed_tasks(execution, "Lambda.TooManyRequestsException") == 1


def test_an_operation_the_reference_does_not_know_is_an_engine_error(engine: Any) -> None:
    from opsflow.engine.iam.catalog import CatalogError

    ec2 = boto3.client("ec2", region_name="us-east-1")
    role = "arn:aws:iam::123456789012:role/opsflow-StopInstanceFunctionRole"
    with pytest.raises(CatalogError):
        engine.authorizer.authorize(role, ec2, "NoSuchOperation", {}, "us-east-1")


def test_operators_calls_are_not_judged(engine: Any) -> None:
    """A test or the engine acting as the account's operator makes calls as no runbook role."""
    before = len(engine.authorizer.calls)
    boto3.client("ec2", region_name="us-east-1").stop_instances(InstanceIds=[ids(engine)["payments-api"]])
    assert len(engine.authorizer.calls) == before
    with pytest.raises(ClientError):
        boto3.client("ec2", region_name="us-east-1").stop_instances(InstanceIds=["i-0000000000000000a"])
