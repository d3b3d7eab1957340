"""``make screenshot``: the README's picture of an ``opsflow view`` page, taken in Debian's headless
Chromium (driven by Playwright, a development dependency).

``python -m opsflow.screenshot [FILE]`` runs the demo's throttled health-abuse run, writes its
page, opens it, clicks the state that was retried, and saves a PNG. Pixels differ between
machines (fonts, Chromium's version), so the picture is not drift-checked byte for byte; the
tests check that it exists and is the size stated here.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from opsflow.template import ROOT

OUT = ROOT / "docs" / "view-health-abuse.png"
SIZE = (1600, 1000)
"""The viewport, and so the picture's size in pixels."""
COMMAND = ["run", "health-abuse", "--event", "events/health-abuse/dos-report-bare-ids.json",
           "--fault", "ec2:StopInstances=RequestLimitExceeded*4"]
"""The demo's second run: Stop instances is throttled, then retried."""
CLICK = "Act: Stop instances"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
"""Headless and quiet: no background connections (the machine has no network but registries)."""


def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        raise SystemExit("Debian's chromium is not installed (make test installs it)")
    return found


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)


def main(argv: list[str] | None = None) -> int:
    import contextlib
    import io

    from playwright.sync_api import sync_playwright

    from opsflow import cli

    out = Path((argv or sys.argv[1:] or [str(OUT)])[0])
    with tempfile.TemporaryDirectory() as scratch:
        cli.RUNS, cli.VIEWS = Path(scratch) / "runs", Path(scratch) / "views"
        with contextlib.redirect_stdout(io.StringIO()):
            if cli.main(["--view", *COMMAND]) != 0:
                raise SystemExit("the demo run did not succeed")
        (page_path,) = cli.VIEWS.glob("*.html")
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": SIZE[0], "height": SIZE[1]})
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-rendered='true']", state="attached", timeout=60_000)
            page.click(f'#graph g[data-state="{CLICK}"]')
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
