"""The CLI's warm worker: commands run in forks of it exactly as in a new process (their output,
their exit status, their usage errors), and a client whose settings or code differ from the
worker's runs the command itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.template import ROOT


def opsflow(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsflow", *argv], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    where = tmp_path_factory.mktemp("worker")
    env = {**os.environ, "OPSFLOW_WORKER_SOCKET": str(where / "w.sock"),
           "OPSFLOW_RUNS_DIR": str(where / "runs"), "NO_COLOR": "1"}
    started = opsflow("worker", "start", "--idle-minutes", "10", env=env)
    assert started.returncode == 0, started.stderr
    try:
        yield env
    finally:
        opsflow("worker", "stop", env=env)


def pid_of(env: dict[str, str]) -> int:
    status = opsflow("worker", "status", env=env)
    assert status.returncode == 0, status.stdout
    return int(status.stdout.split("pid ")[1].split(",")[0])


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_a_run_in_the_worker_is_a_run_in_a_new_process(worker: dict[str, str]) -> None:
    served = opsflow("run", "region-failover", "--json", env=worker)
    local = opsflow("run", "region-failover", "--json",
                    env={**worker, "OPSFLOW_WORKER_SOCKET": str(Path(worker["OPSFLOW_RUNS_DIR"])
                                                                .parent / "none.sock")})

    assert served.returncode == local.returncode == 0, served.stderr
    ours, theirs = report(served)["executions"][0], report(local)["executions"][0]
    for key in ("status", "outcome", "states", "transitions", "virtual_seconds"):
        assert ours[key] == theirs[key], key
    assert [n["subject"] for n in ours["notifications"]] == [
        n["subject"] for n in theirs["notifications"]]
    saved = Path(worker["OPSFLOW_RUNS_DIR"])  # the client's settings, not the worker's
    assert any(p.name.startswith(ours["execution_arn"].rsplit(":", 1)[-1]) for p in saved.iterdir())


def test_exit_statuses_and_usage_errors_are_the_commands(worker: dict[str, str]) -> None:
    wrong = opsflow("run", "no-such-scenario", env=worker)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "opsflow: error: unknown scenario 'no-such-scenario'; known: health-abuse, "
        "region-failover, ebs-quota-forecast"]
    escalated = opsflow("chaos", "region-outage", "--route53-down", "--param",
                        "AutoScalingGroupName=web", "--param", "StandbyCapacity=3", env=worker)
    assert escalated.returncode == 1 and "FAILED Runbook.Escalated" in escalated.stdout


def test_the_command_ran_in_a_fork_of_the_worker(worker: dict[str, str]) -> None:
    pid = pid_of(worker)
    process = subprocess.Popen([sys.executable, "-m", "opsflow", "run", "health-abuse"],
                               cwd=ROOT, env=worker, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    while process.poll() is None:
        seen |= children(pid)
        time.sleep(0.01)
    out, _ = process.communicate()
    assert process.returncode == 0 and "MITIGATED" in out
    assert seen, "no fork of the worker ran the command"


def test_a_client_with_other_settings_runs_the_command_itself(worker: dict[str, str]) -> None:
    other = Path(worker["OPSFLOW_RUNS_DIR"]).parent / "other-runs"
    result = opsflow("run", "health-abuse", env={**worker, "OPSFLOW_RUNS_DIR": str(other)})

    assert result.returncode == 0, result.stderr
    assert list(other.iterdir()), "the run was not saved where the client said"
    assert opsflow("worker", "status", env=worker).returncode == 0  # still serving the others


def test_a_worker_whose_code_changed_stops_and_the_client_runs_locally(
    tmp_path: Path,
) -> None:
    import socket

    from opsflow import worker as module

    env = {**os.environ, "OPSFLOW_WORKER_SOCKET": str(tmp_path / "w.sock"),
           "OPSFLOW_RUNS_DIR": str(tmp_path / "runs")}
    assert opsflow("worker", "start", env=env).returncode == 0
    try:
        # A client of other code asks (what any client sees after an edit of the sources).
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(env["OPSFLOW_WORKER_SOCKET"])
        with open(tmp_path / "out", "w+") as out:
            module._send(connection, {"argv": ["list"], "cwd": str(ROOT), "env": env,
                                      "digest": "other", "code": "other"},
                         [out.fileno(), out.fileno(), out.fileno()])
            answers = list(module._lines(connection))
        connection.close()
        assert answers == [{"refused": "the worker runs other code or settings"}]
        deadline = time.monotonic() + 15
        while opsflow("worker", "status", env=env).returncode == 0:
            assert time.monotonic() < deadline, "the worker kept serving changed code"
            time.sleep(0.2)
        # With no worker, the command runs in the client's own process.
        assert opsflow("list", env=env).returncode == 0
    finally:
        opsflow("worker", "stop", env=env)
