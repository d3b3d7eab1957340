"""Every handler logs with the execution's ID as correlation ID and is traced: the compiled state
machines pass the ID to every Lambda task, every function of the template is wrapped by
``runbook_kit.telemetry.handler``, and the wrapper puts the ID on every log line."""

from __future__ import annotations

import importlib
import io
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from runbook_kit import telemetry

from opsflow import template as cfn
from opsflow.engine import stack
from tests.unit.test_asl_and_template import walk_states
from workflows.catalog import SCENARIOS

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:opsflow-HealthAbuseStateMachine:run-1"
CONTEXT = SimpleNamespace(
    function_name="opsflow-Test",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:opsflow-Test",
    aws_request_id="request-1",
)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_lambda_task_passes_the_execution_id(scenario: str) -> None:
    definition = json.loads(
        (cfn.ROOT / "statemachines" / f"{scenario}.asl.json").read_text(encoding="utf-8")
    )
    tasks = [
        (name, state) for name, state in walk_states(definition)
        if state.get("Type") == "Task"
        and ("FunctionArn}" in state["Resource"] or ":lambda:invoke" in state["Resource"])
    ]
    assert tasks
    for name, state in tasks:
        payload = state["Parameters"].get("Payload", state["Parameters"])
        ids = {key for key, value in payload.items() if value == "$$.Execution.Id"}
        assert ids & {"executionId.$", "execution.$"}, name


def test_every_function_of_the_template_is_wrapped() -> None:
    functions = stack.Stack(cfn.parameter_defaults(cfn.cached()), "123456789012", "us-east-1")
    found = functions.functions()
    assert found
    for function in found.values():
        module, _, name = function.handler.rpartition(".")
        handler = getattr(importlib.import_module(module), name)
        assert getattr(handler, "correlation_id_path", None) in {
            telemetry.EXECUTION, telemetry.FUNCTION_URL, telemetry.SCHEDULE, telemetry.STATUS_CHANGE
        }, function.logical


def _lines(correlation: str, event: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    # A new service each time: Powertools keeps one stream per service name.
    logger = Logger(service=f"opsflow-test-{uuid.uuid4().hex}", level="INFO", stream=out)

    @telemetry.handler(logger, correlation)
    def handle(payload: Any, context: Any) -> str:
        logger.info("working")
        return "done"

    assert handle(event, CONTEXT) == "done"
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(
    "payload",
    [
        {"executionId": EXECUTION, "plan": {}},
        {"execution": EXECUTION, "event": {}},
        # A Map item's own "execution" is the execution's name; executionId wins.
        {"execution": "run-1", "executionId": EXECUTION},
    ],
)
def test_a_task_logs_with_the_execution_id(payload: dict[str, Any]) -> None:
    (line,) = _lines(telemetry.EXECUTION, payload)
    assert line["correlation_id"] == EXECUTION
    assert line["function_request_id"] == "request-1"
    assert line["service"].startswith("opsflow-test-")


def test_a_function_url_request_logs_with_its_request_id() -> None:
    (line,) = _lines(telemetry.FUNCTION_URL, {"requestContext": {"requestId": "url-request-7"}})
    assert line["correlation_id"] == "url-request-7"


def test_a_payload_that_is_no_object_still_reaches_the_handler() -> None:
    (line,) = _lines(telemetry.EXECUTION, ["not", "an", "object"])
    assert line.get("correlation_id") is None
