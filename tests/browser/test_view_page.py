"""Every demo run's ``opsflow view`` page, opened in headless Chromium (Debian's package, driven
by Playwright): every state is drawn, each coloured as the execution history says, Map
iterations and retries counted, a click shows the state's panel, and the page logs no error.

The demo runs are the steps of ``opsflow demo`` (``make demo``), run here through the CLI
exactly as the demo runs them.

Playwright (for Python, pointed at ``/usr/bin/chromium``; it downloads no browser) rather than
Chromium's ``--dump-dom``/``--screenshot`` flags: the test must wait for the layout to finish,
read computed colours, click a state, and hear every console message, page error and network
request, which those flags cannot do and a hand-written DevTools-protocol client would only
re-implement."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from runbook_kit.notices import SMS_LIMIT

from opsflow import cli, demo, screenshot
from opsflow.template import ROOT

TASK_FAILURES = {"TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"}
SCHEDULED = {"TaskScheduled", "LambdaFunctionScheduled"}


COMMANDS = demo.commands()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(shutil.which("chromium") or "/usr/bin/chromium").is_file():
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    with sync_playwright() as playwright:
        launched = screenshot.launch(playwright)
        yield launched
        launched.close()


def states_of(definition: dict[str, Any]) -> dict[str, str]:
    """Every state's name → type, nested ones included."""
    found: dict[str, str] = {}
    pending = [definition]
    while pending:
        current = pending.pop()
        for name, state in current["States"].items():
            found[name] = state["Type"]
            for inner in [state.get("ItemProcessor") or state.get("Iterator"), *state.get("Branches", [])]:
                if inner:
                    pending.append(inner)
    return found


def expected(history: list[dict[str, Any]], types: dict[str, str]) -> dict[str, str]:
    """What the history says of each state: not run, failed (a Fail state reached, or an
    error nothing took), caught (an error after which another state ran), retried (an error,
    then the task again), else succeeded. Each task failure is traced back through
    ``previousEventId`` to the state that entered it."""
    by_id = {e["id"]: e for e in history}
    following: dict[int, list[dict[str, Any]]] = {}
    for event in history:
        following.setdefault(event.get("previousEventId") or 0, []).append(event)
    entered = {e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e}
    result = {name: ("notrun" if name not in entered else "succeeded") for name in types}
    rank = ["notrun", "succeeded", "retried", "caught", "failed"]
    for name in entered:
        if types[name] == "Fail":
            result[name] = "failed"
    for event in history:
        if event["type"] not in TASK_FAILURES:
            continue
        back = by_id[event["previousEventId"]]
        while "stateEnteredEventDetails" not in back:
            back = by_id[back["previousEventId"]]
        name = back["stateEnteredEventDetails"]["name"]
        after = [e["type"] for e in following.get(event["id"], [])]
        if any(kind in SCHEDULED for kind in after):
            status = "retried"
        elif any(kind.endswith(("StateEntered", "StateExited")) for kind in after):
            status = "caught"
        else:
            status = "failed"
        if rank.index(status) > rank.index(result[name]):
            result[name] = status
    return result


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_demo_run_page_in_chromium(
    command: list[str], browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(cli, "VIEWS", tmp_path / "views")
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = cli.main(["--view", *command])
    assert code in (0, 1), printed.getvalue()[-2000:]
    saved = sorted((tmp_path / "runs").glob("*.json"))
    assert saved, "the demo command saved no run"
    for record_path in saved:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        for note in record["report"]["notifications"]:
            assert 0 < len(note["sms"]) <= SMS_LIMIT, note["subject"]  # one SMS, not a letter
        page_path = tmp_path / "views" / f"{record['run_id']}.html"
        assert f"view: {page_path}" in printed.getvalue()
        check_page(browser, page_path, record, tmp_path / f"{record['run_id']}.png")


def check_page(browser: Any, page_path: Path, record: dict[str, Any], shot: Path) -> None:
    history = record["history"]
    types = states_of(json.loads(record["definition"]))
    want = expected(history, types)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request {r.url}")
            if not r.url.startswith(("file:", "data:")) else None)
    try:
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-rendered]", state="attached", timeout=60_000)
        assert page.get_attribute("body", "data-rendered") == "true", problems
        drawn = page.evaluate("""() => Array.from(document.querySelectorAll('#graph [data-state]'))
            .filter(g => g.dataset.type !== 'Branch')
            .map(g => ({name: g.dataset.state, status: g.dataset.status,
                        fill: getComputedStyle(g.querySelector('rect')).fill,
                        count: (g.querySelector('.count') || {}).textContent || '',
                        box: g.getBBox().width > 0}))""")
        swatches = page.evaluate("""() => Object.fromEntries(Array.from(
            document.querySelectorAll('.legend .swatch')).map(s =>
            [s.dataset.status, getComputedStyle(s).backgroundColor]))""")
        by_name = {d["name"]: d for d in drawn}
        assert sorted(by_name) == sorted(types), "every state drawn once"
        assert len(drawn) == len(types)
        for name, status in want.items():
            node = by_name[name]
            assert node["box"], f"{name} has no size"
            assert node["status"] == status, f"{name}: drawn {node['status']}, history says {status}"
            assert node["fill"] == swatches[status], f"{name} is not coloured as {status}"
        for name, kind in types.items():
            if kind == "Map" and want[name] != "notrun":
                iterations = sum(1 for e in history if e["type"] == "MapIterationStarted"
                                 and e["mapIterationStartedEventDetails"]["name"] == name)
                assert re.search(rf"\b{iterations} iterations?\b", by_name[name]["count"]), name
            if want[name] == "retried":
                assert "\u21bb" in by_name[name]["count"], f"{name}'s retries are not counted"
        ran = [e["stateEnteredEventDetails"]["name"] for e in history
               if "stateEnteredEventDetails" in e and types[e["stateEnteredEventDetails"]["name"]] == "Task"]
        if ran:
            page.click(f'#graph g[data-state="{ran[0]}"]')
            panel = page.locator(f'[data-detail="{ran[0]}"]')
            assert panel.is_visible()
            assert "Input" in panel.inner_text() and "AWS calls" in panel.inner_text()
        assert page.locator("table.events tr").count() == len(history) + 1
        assert record["verdict"] and record["verdict"] in page.inner_text("#verdict")
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 20_000
        assert problems == []
    finally:
        page.close()


def test_readme_shows_a_screenshot_of_a_view() -> None:
    """Taken by ``make screenshot``; pixels vary by machine, so only its presence and size are
    held."""
    import struct

    png = screenshot.OUT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == screenshot.SIZE
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    assert f"]({screenshot.OUT.relative_to(ROOT)})" in readme
