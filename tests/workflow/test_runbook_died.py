"""No silent failure on AWS: a run that ends outside its own error handling (here stopped by
hand mid-act; likewise an uncatchable error or the execution timeout) still reaches a person,
through the stack's RunbookDiedRule on Step Functions' own status-change event."""

from __future__ import annotations

import threading
from typing import Any

import boto3

from tests.conftest import load_event

SCENARIO = "health-abuse"


def test_a_stopped_run_is_reported_by_eventbridge(engine: Any) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    stopped = threading.Event()

    def stop_after_act(item: dict[str, Any]) -> None:
        """Stop the run as an operator would, once it has acted and before it verifies."""
        entered = (item.get("stateEnteredEventDetails") or {}).get("name", "")
        if entered == "Verify: Start checks" and not stopped.is_set():
            stopped.set()
            arn = sfn.list_executions(stateMachineArn=engine.state_machines[SCENARIO],
                                      statusFilter="RUNNING")["executions"][0]["executionArn"]
            sfn.stop_execution(executionArn=arn, error="Operator.Stop", cause="stopped by hand")

    execution = engine.run(SCENARIO, load_event("health-abuse/dos-report-arn.json"),
                           on_event=stop_after_act)

    assert execution.status == "ABORTED"
    alerts = [n for n in execution.notifications if "outside its runbook" in n["message"]]
    assert len(alerts) == 1
    assert execution.name in alerts[0]["message"] and "ABORTED" in alerts[0]["message"]
    assert "console.aws.amazon.com/states" in alerts[0]["message"]


def test_a_run_that_ends_in_its_own_named_state_is_not_reported_twice(engine: Any) -> None:
    execution = engine.run(SCENARIO, load_event("health-abuse/malformed-no-detail.json"))

    assert execution.error == "Runbook.InvalidEvent"
    assert not [n for n in execution.notifications if "outside its runbook" in n["message"]]
