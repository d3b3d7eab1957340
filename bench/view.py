"""``make bench``, opsflow view: the page's size, the time to write it, and the time headless
Chromium takes to lay the graph out and draw it (median of a few loads)."""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

LOADS = 3
COMMAND = ["trigger", "events/health-abuse/dos-report-arn.json"]


def main() -> None:
    from opsflow import cli, screenshot, view

    with tempfile.TemporaryDirectory() as scratch:
        cli.RUNS, cli.VIEWS = Path(scratch) / "runs", Path(scratch) / "views"
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(COMMAND)
        (saved,) = cli.RUNS.glob("*.json")
        writes = []
        for _ in range(LOADS):
            begin = time.perf_counter()
            page = view.write(view.load_saved(saved), cli.VIEWS / "page.html")
            writes.append(time.perf_counter() - begin)
        size = page.stat().st_size
        elk = view.ELK.stat().st_size
        try:
            from playwright.sync_api import sync_playwright

            screenshot.chromium()
        except (ImportError, SystemExit) as missing:
            print(f"opsflow view: {size / 1024:.0f} KiB page; no browser timing ({missing})")
            return
        loads = []
        with sync_playwright() as playwright:
            browser = screenshot.launch(playwright)
            for _ in range(LOADS):
                tab = browser.new_page(viewport={"width": 1600, "height": 1000})
                begin = time.perf_counter()
                tab.goto(page.as_uri())
                tab.wait_for_selector("body[data-rendered='true']", state="attached")
                loads.append(time.perf_counter() - begin)
                tab.close()
            browser.close()
    print(
        f"opsflow view of {' '.join(COMMAND)}: page {size / 1024:.0f} KiB "
        f"({elk / 1024:.0f} KiB of it the ELK bundle), written in "
        f"{statistics.median(writes) * 1000:.0f} ms; Chromium loads, lays out and draws it in "
        f"{statistics.median(loads) * 1000:.0f} ms (median of {LOADS}, min "
        f"{min(loads) * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
