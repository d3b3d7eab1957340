"""The ``opsflow`` command line: usage errors, quick commands, and ``rerun --aws`` (stubbed)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from opsflow import cli
from tests.conftest import ROOT

SCENARIO = "health-abuse"
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:HealthAbuse"
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:HealthAbuse:first-run"
STARTED = datetime(2026, 3, 14, 3, 12, tzinfo=UTC)


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``opsflow argv``; assert exit 2 with exactly one line on stderr; return that line."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("opsflow: error: ")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert out == ""
    return err


# ------------------------------------------------------------------------- usage errors
def test_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "command" in usage_error(capsys, [])


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'frobnicate'" in usage_error(capsys, ["frobnicate"])


def test_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--nope" in usage_error(capsys, ["list", "--nope"])


def test_run_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["run", "no-such-scenario"])
    assert "unknown scenario 'no-such-scenario'" in err
    assert SCENARIO in err


def test_run_missing_event_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    err = usage_error(capsys, ["run", SCENARIO, "--event", str(missing)])
    assert "no such event file" in err
    assert str(missing) in err


def test_run_invalid_json_event(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "aws.health",\n  oops\n}', encoding="utf-8")
    err = usage_error(capsys, ["run", SCENARIO, "--event", str(bad)])
    assert f"{bad} is not valid JSON" in err


@pytest.mark.parametrize("command", ["run", "trigger", "invoke"])
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="deeper-than-the-json-reader"),
        pytest.param('{"a":' * 5_000 + "1" + "}" * 5_000, id="objects"),
        pytest.param("[" * (cli.MAX_EVENT_DEPTH + 1) + "]" * (cli.MAX_EVENT_DEPTH + 1),
                     id="one-level-too-deep"),
    ],
)
def test_deeply_nested_event_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, text: str
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(text, encoding="utf-8")
    argv = {
        "run": ["run", SCENARIO, "--event", str(deep)],
        "trigger": ["trigger", str(deep)],
        "invoke": ["invoke", "ParseHealthEventFunction", "--event", str(deep)],
    }[command]
    err = usage_error(capsys, argv)
    assert "nests arrays or objects" in err and str(deep) in err


def test_event_nested_to_the_limit_is_read(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * cli.MAX_EVENT_DEPTH + "]" * cli.MAX_EVENT_DEPTH, encoding="utf-8")
    assert cli._read_event(str(deep)) is not None


def test_trigger_missing_event_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "no such event file" in usage_error(capsys, ["trigger", str(tmp_path / "none.json")])


def test_trigger_event_must_be_an_object(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = tmp_path / "list.json"
    event.write_text("[1, 2]", encoding="utf-8")
    assert "must hold one EventBridge event" in usage_error(capsys, ["trigger", str(event)])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ec2-StopInstances", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("ec2:StopInstances=Throttling*0", "expected SERVICE[@REGION]:Operation=ErrorCode[*N]"),
        ("nosuch:StopInstances=Throttling", "unknown service 'nosuch'"),
        ("ec2:StopInstance=Throttling", "has no operation 'StopInstance'"),
    ],
)
def test_run_bad_fault(capsys: pytest.CaptureFixture[str], spec: str, message: str) -> None:
    assert message in usage_error(capsys, ["run", SCENARIO, "--fault", spec])


def test_run_bad_param(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["run", SCENARIO, "--param", "DryRun"])
    assert "bad --param 'DryRun': expected Name=Value" in err


def test_run_param_without_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert "bad --param '=1'" in usage_error(capsys, ["run", SCENARIO, "--param", "=1"])


def test_run_unknown_template_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    assert "no parameter 'Nope'" in usage_error(capsys, ["run", SCENARIO, "--param", "Nope=1"])


def test_rerun_without_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert "give a RUN_ID" in usage_error(capsys, ["rerun"])


def test_rerun_unknown_id(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = f"nonexistent-{uuid.uuid4().hex}"
    assert f"no saved run '{run_id}'" in usage_error(capsys, ["rerun", run_id])


def test_rerun_redrive_needs_aws(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--redrive needs --aws" in usage_error(capsys, ["rerun", "--redrive"])


@pytest.mark.parametrize(
    "arn",
    [
        "not-an-arn",
        STATE_MACHINE_ARN,
        "arn:aws:lambda:us-east-1:123456789012:function:x:y",
    ],
)
def test_rerun_aws_rejects_what_is_not_an_execution_arn(
    capsys: pytest.CaptureFixture[str], arn: str
) -> None:
    err = usage_error(capsys, ["rerun", "--aws", arn])
    assert f"not a Step Functions execution ARN: {arn}" in err


def test_invoke_unknown_function(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["invoke", "UnknownFunction", "--event", "x"])
    assert "unknown function 'UnknownFunction'" in err
    assert "ParseHealthEventFunction" in err


def test_invoke_needs_an_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--event" in usage_error(capsys, ["invoke", "ParseHealthEventFunction"])


def test_world_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown scenario 'nope'" in usage_error(capsys, ["world", "nope"])


# ------------------------------------------------------------------------- quick commands
def test_list_names_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out, err = capsys.readouterr()
    assert re.search(rf"^{re.escape(SCENARIO)}\s", out, re.MULTILINE)
    assert err == ""


def test_build_check_finds_no_drift(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["build", "--check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "match workflows/" in out


# ------------------------------------------------------------------------- rerun --aws, stubbed
class JsonEqual:
    """Equal to a JSON document that decodes to ``expected``."""

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and json.loads(other) == self.expected

    def __repr__(self) -> str:
        return f"JsonEqual({self.expected!r})"

    __hash__ = None  # type: ignore[assignment]


class Matches:
    """Equal to a string that fully matches ``pattern``."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __repr__(self) -> str:
        return f"Matches({self.pattern.pattern!r})"

    __hash__ = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """One session for the module: botocore loads the service model once."""
    return boto3.session.Session()


@pytest.fixture
def stepfunctions(session: boto3.session.Session) -> Iterator[tuple[Any, Stubber]]:
    client = session.client(
        "stepfunctions",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def describe_response(execution_input: str) -> dict[str, Any]:
    return {
        "executionArn": EXECUTION_ARN,
        "stateMachineArn": STATE_MACHINE_ARN,
        "status": "FAILED",
        "startDate": STARTED,
        "input": execution_input,
    }


def test_rerun_aws_starts_a_new_execution_with_the_same_input(
    stepfunctions: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = stepfunctions
    event = {"source": "aws.health", "detail": {"eventTypeCode": "AWS_ABUSE_DOS_REPORT"}}
    new_arn = f"{EXECUTION_ARN}-rerun"
    stub.add_response(
        "describe_execution", describe_response(json.dumps(event)), {"executionArn": EXECUTION_ARN}
    )
    stub.add_response(
        "start_execution",
        {"executionArn": new_arn, "startDate": STARTED},
        {
            "stateMachineArn": STATE_MACHINE_ARN,
            "name": Matches(r"rerun-first-run-[0-9a-f]{8}"),
            "input": JsonEqual({**event, "opsflow": {"ignoreDuplicate": True}}),
        },
    )
    assert cli.rerun_aws(EXECUTION_ARN, redrive=False, region=None, client=client) == 0
    out, _ = capsys.readouterr()
    assert out == f"started {new_arn}\n"


def test_rerun_aws_keeps_existing_overrides(
    stepfunctions: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = stepfunctions
    event = {"detail": {}, "opsflow": {"dryRun": True}}
    stub.add_response(
        "describe_execution", describe_response(json.dumps(event)), {"executionArn": EXECUTION_ARN}
    )
    stub.add_response(
        "start_execution",
        {"executionArn": f"{EXECUTION_ARN}-2", "startDate": STARTED},
        {
            "stateMachineArn": STATE_MACHINE_ARN,
            "name": ANY,
            "input": JsonEqual(
                {"detail": {}, "opsflow": {"dryRun": True, "ignoreDuplicate": True}}
            ),
        },
    )
    assert cli.rerun_aws(EXECUTION_ARN, redrive=False, region=None, client=client) == 0
    assert capsys.readouterr().out == f"started {EXECUTION_ARN}-2\n"


def test_rerun_aws_name_fits_the_limit_for_long_execution_names(
    stepfunctions: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = stepfunctions
    long_name = "x" * 80
    arn = f"{STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{long_name}"
    stub.add_response("describe_execution", describe_response("{}"), {"executionArn": arn})
    stub.add_response(
        "start_execution",
        {"executionArn": f"{EXECUTION_ARN}-3", "startDate": STARTED},
        {
            "stateMachineArn": STATE_MACHINE_ARN,
            "name": Matches(r"rerun-x{50}-[0-9a-f]{8}"),
            "input": JsonEqual({"opsflow": {"ignoreDuplicate": True}}),
        },
    )
    assert cli.rerun_aws(arn, redrive=False, region=None, client=client) == 0
    capsys.readouterr()


def test_rerun_aws_redrive(
    stepfunctions: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = stepfunctions
    stub.add_response(
        "redrive_execution", {"redriveDate": STARTED}, {"executionArn": EXECUTION_ARN}
    )
    assert cli.rerun_aws(EXECUTION_ARN, redrive=True, region=None, client=client) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"redrove {EXECUTION_ARN} at ")


@pytest.mark.parametrize(
    ("argv", "region"),
    [
        (["rerun", "--aws", EXECUTION_ARN, "--redrive"], "us-east-1"),
        (["rerun", "--aws", EXECUTION_ARN, "--redrive", "--region", "eu-west-1"], "eu-west-1"),
    ],
)
def test_rerun_aws_uses_the_arns_region_unless_told(
    stepfunctions: tuple[Any, Stubber],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    region: str,
) -> None:
    client, stub = stepfunctions
    regions: list[str | None] = []

    def fake_client(service: str, region_name: str | None = None, **_: Any) -> Any:
        assert service == "stepfunctions"
        regions.append(region_name)
        return client

    monkeypatch.setattr(boto3, "client", fake_client)
    stub.add_response(
        "redrive_execution", {"redriveDate": STARTED}, {"executionArn": EXECUTION_ARN}
    )
    assert cli.main(argv) == 0
    assert regions == [region]
    assert capsys.readouterr().out.startswith(f"redrove {EXECUTION_ARN}")


def test_rerun_corrupt_saved_run_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli, "RUNS", tmp_path)
    (tmp_path / "broken.json").write_text('{"run_id": "broken", "scen', encoding="utf-8")
    assert "broken" in usage_error(capsys, ["rerun", "broken"])


def test_rerun_aws_unknown_execution_is_a_usage_error(
    stepfunctions: tuple[Any, Stubber],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, stub = stepfunctions
    monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: client)
    stub.add_client_error(
        "describe_execution",
        service_error_code="ExecutionDoesNotExist",
        service_message=f"Execution Does Not Exist: '{EXECUTION_ARN}'",
        http_status_code=400,
        expected_params={"executionArn": EXECUTION_ARN},
    )
    assert "ExecutionDoesNotExist" in usage_error(capsys, ["rerun", "--aws", EXECUTION_ARN])


def test_every_demo_step_is_a_valid_command_line() -> None:
    import shlex

    from opsflow import cli, demo

    makefile = (ROOT / "Makefile").read_text()
    assert "\n\t$(OPSFLOW) --view demo\n" in makefile
    for title, line, _ in demo.STEPS:
        argv = shlex.split(line)
        args = cli.parser().parse_args(argv)
        assert args.func is not cli.cmd_demo, title
        for word in argv:
            if word.startswith("events/"):
                assert (ROOT / word).is_file(), (title, word)


def test_the_demo_reports_a_failing_step_and_runs_the_rest(
    monkeypatch: Any, capsys: Any
) -> None:
    from opsflow import demo

    monkeypatch.setattr(demo, "STEPS", [demo.Step("one", "list"), demo.Step("two", "list --bad"),
                                        demo.Step("three", "list", expect=2)])
    seen: list[list[str]] = []

    def main(argv: list[str]) -> int:
        seen.append(argv)
        return 2 if "--bad" in argv else 0

    assert demo.run(main) == 1
    assert seen == [["list"], ["list", "--bad"], ["list"]]
    out = capsys.readouterr().out
    assert "== two ==" in out
    assert "FAILED: step 2 (list) exited 2, expected 0; step 3 (list) exited 0, expected 2" in out
