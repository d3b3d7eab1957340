"""``opsflow run SCENARIO --event FILE --json`` in-process with generated event files: exit 0,
1 or 2, never a traceback; 0 exactly when every execution succeeded; a usage error is one line
on stderr; the JSON report is JSON."""

from __future__ import annotations

import contextlib
import io
import json
import traceback
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsflow import cli
from tests.property import harness
from tests.property import strategies as s
from tests.property.conftest import examples
from workflows.catalog import SCENARIOS


def _deep_text(levels: int) -> bytes:
    return ("[" * levels + "1" + "]" * levels).encode()


def files(scenario: str) -> st.SearchStrategy[tuple[bytes, str]]:
    """The bytes of an event file: a generated event as JSON, or what is no event at all."""
    as_json = s.events(scenario).map(
        lambda pair: (json.dumps(pair[0], ensure_ascii=False).encode("utf-8"), pair[1]))
    broken = st.one_of(
        st.binary(max_size=64).map(lambda b: (b, "random bytes")),
        st.sampled_from([b"", b"{", b'{"a": }', b"\xff\xfe{}", b"NaN", b"[1,]", b"{'a': 1}",
                         b'{"source": "aws.health"', b"\x00"]).map(lambda b: (b, "not JSON")),
        st.integers(min_value=s.MAX_DEPTH + 1, max_value=5000).map(
            lambda n: (_deep_text(n), f"nested {n} levels")),
    )
    return st.one_of(as_json, as_json, broken)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cli-events")
    with mock.patch.object(cli, "RUNS", path / "runs"):
        yield path


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except BaseException as escaped:  # what main lets out is a traceback for the user
            err.write("".join(traceback.format_exception(escaped)))
            code = -1
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_opsflow_run_exits_0_1_or_2(scenario: str, workdir: Path) -> None:
    @settings(max_examples=examples("cli"))
    @given(files(scenario))
    def check(pair: tuple[bytes, str]) -> None:
        content, what = pair
        harness.TALLY.event("cli", scenario)
        path = workdir / "event.json"
        path.write_bytes(content)
        code, out, err = run_cli(["run", scenario, "--event", str(path), "--json"])
        harness.TALLY.cli_exits[str(code)] += 1
        assert code in (0, 1, 2), f"{what}: exit {code}\n{err[-3000:]}"
        assert "Traceback" not in err, f"{what}: {err[-3000:]}"
        if code == 2:
            assert out == "" and err.startswith("opsflow: error: ") and err.count("\n") == 1, err
            return
        report = json.loads(out)
        statuses = [e["status"] for e in report["executions"]]
        assert statuses and (code == 0) == all(x == "SUCCEEDED" for x in statuses), statuses

    check()
