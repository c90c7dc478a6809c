"""Real browser: `al-explorer serve` on a demo catalog, driven by headless Chromium (Playwright)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "overview.png"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(demo_build: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    """The app served by the real CLI on a free loopback port: ``(url, catalog, labeled counts)``."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run the README's test command (scripts/test.sh), which installs it")
    path = tmp_path_factory.mktemp("served") / "catalog.duckdb"
    shutil.copy(demo_build[0], path)
    con = duckdb.connect(str(path), read_only=True)
    counts = dict(con.execute("SELECT label, count(*) FROM samples WHERE label IS NOT NULL GROUP BY 1").fetchall())
    con.close()
    port = _free_port()
    log = open(path.with_suffix(".log"), "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "al_core", "serve", "--catalog", str(path), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"the app did not start: {path.with_suffix('.log').read_text()[-2000:]}")
    yield url, path, counts
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_a_page_opened_first_by_its_url_keeps_the_shell(served: tuple[str, Path, dict], browser: object) -> None:
    url, _, _ = served  # first request of this server: Streamlit would run pages/samples.py bare
    page = browser.new_page()
    page.goto(f"{url}/samples", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Samples')", timeout=90_000)
    nav = page.locator("[data-testid='stSidebarNav']")
    nav.get_by_text("Overview", exact=True).wait_for(timeout=30_000)
    assert nav.get_by_text("_components").count() == 0
    page.close()


def test_overview_renders_charts_and_a_bar_click_drills_down(served: tuple[str, Path, dict], browser: object,
                                                             tmp_path: Path) -> None:
    url, _, counts = served
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Overview')", timeout=90_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=90_000)
    page.wait_for_timeout(1500)
    assert page.get_by_text("Under-represented slices").count() == 1
    shot = SCREENSHOT if os.environ.get("AL_EXPLORER_SCREENSHOTS") else tmp_path / "overview.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    bars = page.locator(".js-plotly-plot").first.locator(".bars .point path")
    bars.nth(len(counts) - 1).click(force=True)  # the labeled bar of the rarest class
    heading = page.locator("h3:has-text('Drill-down')")
    heading.wait_for(timeout=60_000)
    label = re.search(r"labeled as (\S+)", heading.inner_text()).group(1)
    total = page.get_by_text(re.compile(r"^\d[\d,]* samples$")).first.inner_text()
    assert int(total.split()[0].replace(",", "")) == counts[label]

    page.get_by_role("button", name="Enlarge").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("img").first.wait_for(timeout=30_000)
    dialog.get_by_text(label).first.wait_for(timeout=30_000)
    assert dialog.locator("img").count() == 1
    page.close()


def test_cli_write_while_the_app_runs_names_the_app(served: tuple[str, Path, dict], tmp_path: Path) -> None:
    from al_core.db.catalog import read_owner

    url, path, _ = served  # the app took the file on its first page view (the test above)
    owner = read_owner(path)
    assert owner and owner["role"] == "app" and owner["url"] == url
    (tmp_path / "m.csv").write_text("path\nx.png\n")
    proc = subprocess.run([sys.executable, "-m", "al_core", "ingest", str(tmp_path / "m.csv"), "--catalog",
                           str(path), "--no-probe"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"running al-explorer app at {url}" in proc.stderr
    assert "Traceback" not in proc.stderr
