"""The CLI's conventions: --version, NO_COLOR, help text without markup, and every command in
the README with its usage and help (the block ``opsflow build`` generates from the parser)."""

from __future__ import annotations

import argparse
import io
import re
from importlib.metadata import version
from typing import Any

import pytest

from opsflow import build, cli, report
from opsflow.template import ROOT

MARKUP = re.compile(r"`|\*\*|\x1b\[|<[a-z]+>|\[[^\]]+\]\(")
"""Backticks, bold, ANSI escapes, HTML tags, Markdown links."""


def commands(parser: argparse.ArgumentParser, prefix: str = "opsflow") -> list[tuple[str, Any, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((f"{prefix} {name}", sub, str(helps[name])))
                found.extend(commands(sub, f"{prefix} {name}"))
    return found


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.parser().parse_args(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.strip() == f"opsflow {version('opsflow')}"


def test_every_help_text_is_plain() -> None:
    parser = cli.parser()
    texts = [(a.option_strings, a.help) for a in parser._actions]
    for name, sub, text in commands(parser):
        assert text and not MARKUP.search(text), name
        texts += [(f"{name} {a.option_strings or a.dest}", a.help) for a in sub._actions]
    for where, text in texts:
        assert not MARKUP.search(str(text or "")), where


def test_readme_lists_every_command_with_its_help() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(build.CLI_START, 1)[1].split(build.CLI_END, 1)[0]
    leaves = [(n, s, t) for n, s, t in commands(cli.parser())
              if not any(isinstance(a, argparse._SubParsersAction) for a in s._actions)]
    assert len(leaves) >= 12
    lines = block.splitlines()
    for name, _sub, text in leaves:
        at = [i for i, line in enumerate(lines) if line == name or line.startswith(name + " ")]
        assert at, f"{name} is not in the README's CLI reference"
        assert lines[at[0] + 1].strip() == text, f"{name}'s help differs in the README"
    assert block.strip() == build.cli_reference().strip()  # as generated, not hand-edited


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_color_turns_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", _Terminal())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli.colour() is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.colour() is False
    trace = report.Trace(out=_Terminal(), colour=cli.colour())
    trace({"timestamp": "2026-03-14T03:12:00Z", "type": "TaskStateEntered",
           "stateEnteredEventDetails": {"name": "Detect: Read alarm", "input": "{}"}})
    assert "\x1b[" not in trace.out.getvalue()  # type: ignore[attr-defined]


def test_piped_output_has_no_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli.colour() is False


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """``opsflow ... | head``: the pipe closes before the report is written."""
    import fcntl
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    fcntl.fcntl(write, 1031, 4096)  # F_SETPIPE_SZ: a page, less than the report
    process = subprocess.Popen([sys.executable, "-m", "opsflow", "world", "--json"], cwd=ROOT,
                               stdout=write, stderr=subprocess.PIPE,
                               env={**os.environ, "OPSFLOW_WORKER_SOCKET": "/nonexistent"})
    os.close(write)
    os.read(read, 10)
    os.close(read)
    assert process.stderr is not None
    error = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in error and error == ""


def test_the_command_ends_without_teardown_and_loses_no_output(tmp_path: Any) -> None:
    """``opsflow`` ends with ``os._exit`` once it has flushed what it wrote (the interpreter's
    teardown of a rehearsal's heap takes about a second): a report written to a file, which
    buffers it, arrives whole, with the command's own status; a usage error is one line and 2."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPSFLOW_WORKER_SOCKET": "/nonexistent"}
    out = tmp_path / "world.json"
    with out.open("w") as stdout:
        done = subprocess.run([sys.executable, "-m", "opsflow", "world", "--json"], cwd=ROOT,
                              stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(out.read_bytes()) > 8192  # more than one buffer's worth
    assert json.loads(out.read_text())  # whole: it parses
    usage = subprocess.run([sys.executable, "-m", "opsflow", "run", "nosuch"], cwd=ROOT,
                           capture_output=True, text=True, env=env, timeout=300)
    assert usage.returncode == 2 and usage.stdout == ""
    assert usage.stderr.count("\n") == 1 and usage.stderr.startswith("opsflow: error: ")
