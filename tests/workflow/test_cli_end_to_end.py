"""The CLI as a user drives it: exit codes, the JSON report's shape, saved runs and reruns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsflow import cli
from tests.conftest import EVENTS

REPORT_KEYS = {
    "scenario", "execution_arn", "status", "outcome", "error", "cause", "output", "states",
    "transitions", "virtual_seconds", "notifications", "effects",
}


@pytest.fixture(autouse=True)
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cli, "RUNS", tmp_path)
    return tmp_path


def report(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


def test_trigger_json_report_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["trigger", str(EVENTS / "health-abuse/dos-report-arn.json"), "--json"])
    result = report(capsys)

    assert code == 0
    assert result["matched"] == [{"rule": "HealthAbuseRule", "scenario": "health-abuse"}]
    (execution,) = result["executions"]
    assert REPORT_KEYS <= set(execution)
    assert execution["status"] == "SUCCEEDED" and execution["outcome"] == "mitigated"
    assert execution["transitions"] == len(execution["states"])
    assert {"resource", "region", "field", "before", "after"} == set(execution["effects"][0])
    assert {"target", "subject", "message", "sms"} == set(execution["notifications"][0])


def test_failed_run_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([
        "run", "health-abuse", "--json",
        "--fault", "ec2:StopInstances=UnauthorizedOperation",
    ])
    assert code == 1
    assert report(capsys)["executions"][0]["error"] == "Runbook.RolledBack"


def test_unmatched_event_exits_0_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["trigger", str(EVENTS / "health-abuse/copyright-report.json")])
    assert code == 0
    assert "No rule in template.yaml matches this event" in capsys.readouterr().out


def test_saved_run_can_be_rerun(capsys: pytest.CaptureFixture[str], runs_dir: Path) -> None:
    assert cli.main(["run", "ebs-quota-forecast", "--dry-run", "--json"]) == 0
    first = report(capsys)["executions"][0]
    (saved,) = runs_dir.glob("*.json")
    assert cli.main(["rerun", saved.stem, "--json"]) == 0
    again = report(capsys)["executions"][0]
    assert again["outcome"] == first["outcome"] == "dry-run"
    assert again["execution_arn"] != first["execution_arn"]


def test_world_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["world", "health-abuse", "--json"]) == 0
    resources = report(capsys)["resources"]
    assert {"type", "id", "region", "state", "tags"} == set(resources[0])
    assert any(r["tags"].get("Stage") == "Prod" for r in resources)


def test_invoke_runs_one_function(capsys: pytest.CaptureFixture[str]) -> None:
    payload = EVENTS / "health-abuse/functions/ParseHealthEventFunction.json"
    assert cli.main(["invoke", "ParseHealthEventFunction", "--event", str(payload)]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"] == "health-abuse"


def test_chaos_latency_starts_the_failover(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["chaos", "latency", "--region", "us-east-2", "--delay-ms", "300", "--json"])
    result = report(capsys)
    assert code == 0
    assert result["matched"] == [{"rule": "CanaryAlarmRule", "scenario": "region-failover"}]
    assert result["executions"][0]["outcome"] == "mitigated"


def test_chaos_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["chaos", "latency", "--region", "eu-north-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--region must be one of" in err
