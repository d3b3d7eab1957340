"""opsflow view and history on real local runs: what each state did, read from the history;
the AWS calls tied to their states; the exported history in GetExecutionHistory's exact shape."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from opsflow import cli, view
from opsflow.engine.boundary import parse_fault
from opsflow.engine.runner import LocalEngine
from tests.conftest import load_event

SCENARIO = "health-abuse"
EVENT = "health-abuse/dos-report-bare-ids.json"


def _run(*faults: str) -> tuple[Any, list[dict[str, Any]]]:
    with LocalEngine(faults=[parse_fault(f) for f in faults], scenarios=[SCENARIO]) as engine:
        execution = engine.run(SCENARIO, load_event(EVENT))
        sfn = engine.client("stepfunctions")
        api = sfn.get_execution_history(executionArn=execution.execution_arn, maxResults=1000)
    return execution, api["events"]


@pytest.fixture(scope="module")
def retried() -> tuple[Any, list[dict[str, Any]]]:
    return _run("ec2:StopInstances=RequestLimitExceeded*4")


@pytest.fixture(scope="module")
def rolled_back() -> tuple[Any, list[dict[str, Any]]]:
    return _run("ec2:StopInstances=UnauthorizedOperation")


def _as_run(execution: Any) -> view.Run:
    record = view.saved_record(execution, {}, "verdict")
    return view.Run(
        name=execution.name, execution_arn=execution.execution_arn, state_machine_arn="",
        status=execution.status, definition=json.loads(record["definition"]),
        events=record["history"], effects=execution.effects, calls=record["calls"],
        notifications=execution.notifications,
    )


def test_retried_task_is_retried_and_the_rest_of_the_path_succeeded(retried: Any) -> None:
    execution, _ = retried
    states = view.analyse(_as_run(execution))
    entered = set(execution.states)

    assert states["Act: Stop instances"].status == "retried"
    assert states["Act: Stop instances"].retries == 1  # the SDK retried twice, the state once
    assert states["Act: Quarantine instances"].iterations == 1
    assert states["Verify: Check instances"].status == "succeeded"
    assert len(states["Verify: Check instances"].visits) == execution.states.count(
        "Verify: Check instances"
    )
    assert {n for n, s in states.items() if s.status == "notrun"} == set(states) - entered
    # Taking an instance out of service waits for its targets to drain (TargetsDraining, retried).
    retried = {n for n, s in states.items() if s.status == "retried"}
    assert retried == {"Act: Stop instances", "Act: Take out of service"}
    assert {n for n, s in states.items() if s.status == "succeeded"} == entered - retried


def test_act_fails_path_is_caught_then_failed(rolled_back: Any) -> None:
    execution, _ = rolled_back
    assert execution.status == "FAILED"
    states = view.analyse(_as_run(execution))

    assert states["Act: Stop instances"].status == "caught"
    assert states["Act: Keep batch failure"].status == "succeeded"
    terminal = [n for n in execution.states if states[n].type == "Fail"]
    assert terminal and all(states[n].status == "failed" for n in terminal)
    assert states["Mitigated"].status == "notrun"


def test_every_call_of_a_task_is_tied_to_its_state(retried: Any) -> None:
    execution, _ = retried
    owner = view.owners(view.aws_events(execution.history))
    by_state: dict[str | None, list[str]] = {}
    for call in execution.calls:
        visit = owner.get(call["event"] or 0)
        by_state.setdefault(visit.state if visit else None, []).append(
            f"{call['service']}:{call['operation']}:{call['error'] or 'ok'}"
        )
    assert by_state["Act: Stop instances"] == [
        "ec2:StopInstances:RequestLimitExceeded", "lambda:Invoke:Lambda.Unhandled",
        "ec2:StopInstances:ok", "lambda:Invoke:ok",
    ]
    assert "ec2:CreateSecurityGroup:ok" in by_state["Act: Record and isolate"]
    assert by_state["Detect: Read kill switch"] == ["ssm:GetParameter:ok"]
    assert by_state[None] == ["stepfunctions:StartExecution:ok"]  # the start itself


def test_effects_sit_with_the_state_whose_call_named_the_resource(retried: Any) -> None:
    execution, _ = retried
    run = _as_run(execution)
    view.page(run)  # ties each call to its visit
    by_visit, _ = view._effects_by_visit(run)
    stop = view.analyse(run)["Act: Stop instances"].visits[0].entered
    stopped = [e for e in by_visit.get(stop, []) if e["field"] == "state"]
    assert stopped and stopped[0]["after"] == "stopped"


def test_history_export_is_get_execution_history_exactly(retried: Any) -> None:
    execution, api = retried
    exported = view.history_document(execution.history)
    assert exported == view.history_document(api)

    # botocore's own model of the answer accepts it, field by field (the Stubber validates a
    # response against the operation's output shape).
    events = copy.deepcopy(exported["events"])
    for event in events:
        event["timestamp"] = datetime.fromisoformat(event["timestamp"])
    client = boto3.client("stepfunctions", region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("get_execution_history", {"events": events})
        answer = client.get_execution_history(executionArn=execution.execution_arn)
    assert len(answer["events"]) == len(exported["events"])
    shape = client.meta.service_model.operation_model("GetExecutionHistory").output_shape
    members = shape.members["events"].member.members
    assert all(set(e) <= set(members) for e in exported["events"])


def test_history_cli_prints_the_saved_runs_history(
    retried: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    execution, api = retried
    monkeypatch.setattr(cli, "RUNS", tmp_path)
    monkeypatch.setattr(cli, "VIEWS", tmp_path / "views")
    cli._save(execution, {})
    assert cli.main(["history", execution.name, "--format", "aws"]) == 0
    assert json.loads(capsys.readouterr().out) == view.history_document(api)

    assert cli.main(["history", execution.name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(api)
    assert any("LambdaFunctionFailed" in line and line.endswith("Act: Stop instances")
               for line in lines)

    assert cli.main(["view", execution.name]) == 0
    page = (tmp_path / "views" / f"{execution.name}.html").read_text(encoding="utf-8")
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page) is None  # nothing to fetch
    assert "<link" not in page
    assert 'data-detail="Act: Stop instances"' in page or "data-detail='Act: Stop instances'" in page
