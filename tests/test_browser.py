"""Real browser: `al-explorer serve` on a demo catalog, driven by headless Chromium (Playwright)."""

from __future__ import annotations

import contextlib
import json
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
from urllib.parse import quote

import duckdb
import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "overview.png"

pytestmark = pytest.mark.browser
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


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
    with _serving(path) as url:
        yield url, path, counts


@contextlib.contextmanager
def _serving(path: Path) -> Iterator[str]:
    """The app on ``path`` for the block: its URL; stopped after."""
    proc, url, log = _serve(path)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _serve(path: Path) -> tuple[subprocess.Popen, str, object]:
    """`al-explorer serve` on ``path`` at a free loopback port, once it answers its health check."""
    port = _free_port()
    log = open(path.with_suffix(".log"), "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "al_core", "serve", "--catalog", str(path), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with _NO_PROXY.open(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"the app did not start: {path.with_suffix('.log').read_text()[-2000:]}")
    return proc, url, log


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
    assert nav.get_by_text("_ui").count() == 0
    assert page.get_by_text("Deploy", exact=True).count() == 0  # no developer toolbar for users
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
    page.wait_for_function("(() => { const h = [...document.querySelectorAll('h3')].find("
                           "e => e.innerText.startsWith('Drill-down')); if (!h) return false;"
                           " const r = h.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })()",
                           timeout=30_000)  # the gallery is brought on screen
    label = re.search(r"labeled as (\S+)", heading.inner_text()).group(1)
    total = page.get_by_text(re.compile(r"^\d[\d,]* samples$")).first.inner_text()
    assert int(total.split()[0].replace(",", "")) == counts[label]

    page.get_by_role("button", name="Enlarge").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("img").first.wait_for(timeout=30_000)
    dialog.get_by_text(label).first.wait_for(timeout=30_000)
    assert dialog.locator("img").count() == 1
    page.close()


HOLD_WRITE = """
import sys
from pathlib import Path
from al_core.db.catalog import Catalog
with Catalog(Path(sys.argv[1])).transaction("a long write from a test") as cur:
    print("writing", flush=True)
    sys.stdin.readline()
"""


def _samples_metric(page: object) -> int:
    metric = page.locator("[data-testid='stMetric']", has_text="Samples").first
    return int(metric.locator("[data-testid='stMetricValue']").inner_text().replace(",", ""))


def test_cli_writes_while_the_app_is_open_and_the_app_shows_them(
        served: tuple[str, Path, dict], browser: object, tmp_path: Path) -> None:
    """The acceptance flow: app open in a browser, the CLI ingests and imports, the app reruns."""
    from PIL import Image

    from al_core.db.catalog import Catalog

    url, path, _ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Overview')", timeout=90_000)
    page.locator("[data-testid='stMetricValue']").first.wait_for(timeout=60_000)
    before = _samples_metric(page)

    for i in range(3):
        Image.new("RGB", (20, 20), (40 * i, 90, 200)).save(tmp_path / f"new{i}.png")
    (tmp_path / "m.csv").write_text("path,sample_id\n" + "".join(f"new{i}.png,cli-{i}\n" for i in range(3)))
    classes = Catalog(path).scalar("SELECT classes FROM model_runs ORDER BY run_id LIMIT 1")
    (tmp_path / "p.csv").write_text("sample_id,pred_label,confidence\n"
                                    + "".join(f"cli-{i},{classes[0]},0.5\n" for i in range(3)))
    cli = [sys.executable, "-m", "al_core"]
    t0 = time.monotonic()
    ingest = subprocess.run([*cli, "ingest", str(tmp_path / "m.csv"), "--catalog", str(path), "--no-progress"],
                            capture_output=True, text=True, timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    assert "3 new samples" in ingest.stdout
    preds = subprocess.run([*cli, "import-predictions", str(tmp_path / "p.csv"), "--run", "cli-run",
                            "--catalog", str(path)], capture_output=True, text=True, timeout=120)
    assert preds.returncode == 0, preds.stderr
    assert time.monotonic() - t0 < 60  # neither waited on the open app for long

    page.get_by_role("button", name="Clear filters").click()  # any widget: a rerun of this session
    page.wait_for_function(
        f"[...document.querySelectorAll('[data-testid=stMetricValue]')].some(e => e.innerText.replace(/,/g, '') == '{before + 3}')",
        timeout=60_000)
    assert _samples_metric(page) == before + 3

    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "writing"
        page.reload(wait_until="domcontentloaded")
        page.get_by_text("The catalog is busy").first.wait_for(timeout=60_000)
        page.get_by_text("a long write from a test").first.wait_for(timeout=30_000)
        shot = tmp_path / "busy.png"
        page.screenshot(path=str(shot))
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)
    page.wait_for_selector("h1:has-text('Overview')", timeout=60_000)
    page.locator("[data-testid='stMetricValue']").first.wait_for(timeout=60_000)
    assert page.get_by_text("The catalog is busy").count() == 0
    page.close()


HOSTILE = ["![x](http://127.0.0.1:9/p.png)", "<img src=x onerror=\"document.title='pwned'\">",
           "`tick` **bold** _it_", ":red[red] :material/home: $x^2$", "[link](http://127.0.0.1:9/)",
           "www.example.org me@example.org", '<a href="http://127.0.0.1:9/a">a</a>']


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app on a catalog whose ids, labels and metadata are Markdown and HTML."""
    import pandas as pd
    from PIL import Image

    from al_core import curation
    from al_core.db.catalog import Catalog
    from al_core.ingest import ingest_manifest
    from al_core.view.filters import Filter

    folder = tmp_path_factory.mktemp("hostile")
    rows = []
    for i, text in enumerate(HOSTILE):
        Image.new("RGB", (24, 24), (30 * i, 120, 90)).save(folder / f"{i}.png")
        rows.append({"path": f"{i}.png", "sample_id": f"{text} #{i}", "label": text if i % 2 else None,
                     "split": "train" if i % 2 else "unlabeled", "note": text})
    pd.DataFrame(rows).to_csv(folder / "m.csv", index=False)
    path = folder / "catalog.duckdb"
    with Catalog.open(path) as cat:
        ingest_manifest(cat, folder / "m.csv", progress=False)
        for i, text in enumerate(HOSTILE):  # tags are user text too
            curation.tag(cat, text, curation.Selection.of_ids([f"{text} #{i}"]))
        curation.add_to_batch(cat, curation.Selection.of_filter(Filter()))
    with _serving(path) as url:
        yield url, path


def test_user_text_is_shown_literally_and_nothing_is_fetched_from_outside(
        hostile_app: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    url, _ = hostile_app
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url))
    for route, title in (("overview", "Overview"), ("samples", "Samples"), ("batch", "Next batch"),
                         ("samples?sample=" + quote(f"{HOSTILE[0]} #0"), "Samples")):
        page.goto(f"{url}/{route}", wait_until="domcontentloaded")
        page.wait_for_selector(f"h1:has-text('{title}')", timeout=90_000)
        page.wait_for_timeout(2500)
        if "sample=" in route:  # the detail dialog: the id, the tag, every field
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Link to this sample").wait_for(timeout=30_000)
            assert f"{HOSTILE[0]} #0" in dialog.inner_text().replace("\u2060", "")
            route = "detail"
        elif route in ("samples", "batch"):
            captions = page.locator("[data-testid='stCaptionContainer']").all_inner_texts()
            shown = " ".join(captions).replace("\u2060", "")  # word joiners keep autolinks off
            for i, text in enumerate(HOSTILE):
                assert f"{text} #{i}" in shown, (text, captions)
        page.screenshot(path=str(tmp_path / f"hostile_{route}.png"), full_page=True)
        assert page.title() != "pwned"
        assert page.locator("img[src*='127.0.0.1:9']").count() == 0
        links = page.locator("[data-testid='stMain'] a:not([href^='#'])")  # user text never a link
        assert links.count() == 0, [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert not outside, outside
    page.close()


SHOTS = SCREENSHOT.parent


def _shot(page: object, name: str, tmp_path: Path, full_page: bool = False) -> Path:
    """A screenshot into docs/screenshots/ when AL_EXPLORER_SCREENSHOTS is set (else tmp_path)."""
    shot = (SHOTS if os.environ.get("AL_EXPLORER_SCREENSHOTS") else tmp_path) / name
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=full_page)
    assert shot.stat().st_size > 10_000
    return shot


def _gallery_total(page: object) -> int:
    text = page.locator("[data-testid='stMain']").get_by_text(re.compile(r"^\d[\d,]* samples$")).first
    return int(text.inner_text().split()[0].replace(",", ""))


def _wait_total(page: object, expected: int) -> None:
    page.wait_for_function(
        "n => [...document.querySelectorAll('[data-testid=stMain] p, [data-testid=stMain] strong')]"
        ".some(e => e.innerText.replace(/,/g, '') === n + ' samples')", arg=expected, timeout=60_000)


def _captions(page: object) -> list[str]:
    """The gallery cards' captions, once the cards are drawn (the count above them comes first)."""
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=stMain] [data-testid=stCaptionContainer]')]"
        ".some(e => e.innerText.includes(' · '))", timeout=60_000)
    return [c.replace("\u2060", "") for c in
            page.locator("[data-testid='stMain'] [data-testid='stCaptionContainer']").all_inner_texts()
            if " · " in c]


def _pick(page: object, container: object, label: str, value: str) -> None:
    """Type ``value`` into the multiselect/selectbox labelled ``label`` and press Enter."""
    box = container.locator("[data-testid='stMultiSelect'], [data-testid='stSelectbox']").filter(
        has=page.get_by_text(label, exact=True)).first
    box.locator("input").click()
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    if box.get_attribute("data-testid") == "stMultiSelect":
        page.keyboard.press("Escape")  # close its list (a selectbox closes by itself)


def _act(page: object, button: str, done: str) -> None:
    page.locator("[data-testid='stMain']").get_by_role("button", name=button, exact=True).click()
    page.get_by_text(done).first.wait_for(timeout=60_000)


@pytest.fixture
def fresh_app(demo_build: tuple[Path, object], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app on a fresh copy of the demo (the module's other tests add samples and runs)."""
    path = tmp_path / "fresh.duckdb"
    shutil.copy(demo_build[0], path)
    with _serving(path) as url:
        yield url, path


def test_the_analyst_flow_filter_find_mistakes_tag_and_batch(
        fresh_app: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """Filter to night, keep it through the navigation, find what the model gets wrong at night
    (labeled) or is unsure of (pool, confidence < 0.6), tag those and put them in the next batch."""
    from al_core.db.catalog import Catalog

    url, path = fresh_app
    cat = Catalog(path)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Overview')", timeout=90_000)
    page.wait_for_selector(".js-plotly-plot", timeout=90_000)  # the charts (and the sidebar) came second
    sidebar = page.locator("[data-testid='stSidebar']")
    _pick(page, sidebar, "time_of_day", "night")
    page.wait_for_function("location.search.includes('f.time_of_day=night')", timeout=60_000)

    page.locator("[data-testid='stSidebarNav']").get_by_text("Samples", exact=True).click()
    page.wait_for_selector("h1:has-text('Samples')", timeout=60_000)
    night = cat.scalar("SELECT count(*) FROM samples WHERE time_of_day = 'night'")
    _wait_total(page, night)
    assert "/samples?" in page.url and "f.time_of_day=night" in page.url
    captions = _captions(page)
    assert captions and all(" · night" in c for c in captions), captions
    _shot(page, "samples.png", tmp_path)

    wrong_sql = ("time_of_day = 'night' AND label IS NOT NULL AND pred_label IS NOT NULL "
                 "AND label <> pred_label")
    unsure_sql = "time_of_day = 'night' AND label IS NULL AND pred_confidence <= 0.6"
    wrong = cat.scalar(f"SELECT count(*) FROM samples WHERE {wrong_sql}")
    unsure = cat.scalar(f"SELECT count(*) FROM samples WHERE {unsure_sql}")
    assert wrong and unsure, "the demo has night mistakes and unsure pool predictions"

    sidebar.get_by_role("radio", name="wrong", exact=True).click()  # outcome: labeled, wrong
    _wait_total(page, wrong)
    assert "outcome=wrong" in page.url
    _act(page, f"Select all {wrong:,}", f"{wrong:,} selected")
    _pick(page, page.locator("[data-testid='stMain']"), "Tag", "night-review")
    _act(page, "Tag", f"Added tag 'night-review' to {wrong:,} samples")
    _act(page, "Add to next batch", f"Added {wrong:,} samples to the next batch")

    sidebar.get_by_role("radio", name="unlabeled", exact=True).last.click()  # outcome: the pool
    sidebar.locator("input[aria-label='Confidence — end']").focus()
    for _ in range(40):  # the upper bound from 1.00 to 0.60, a keyboard step of 0.01 each
        page.keyboard.press("ArrowLeft")
    page.wait_for_function("location.search.includes('conf=0.0..0.6')", timeout=60_000)
    _wait_total(page, unsure)
    _act(page, f"Select all {unsure:,}", f"{unsure:,} selected")
    _pick(page, page.locator("[data-testid='stMain']"), "Tag", "night-review")
    _act(page, "Tag", f"Added tag 'night-review' to {unsure:,} samples")
    _act(page, "Add to next batch", f"now {wrong + unsure:,}")

    expected = [r[0] for r in cat.query_rows(
        f"SELECT sample_id FROM samples WHERE ({wrong_sql}) OR ({unsure_sql}) ORDER BY 1")]
    assert [r[0] for r in cat.query_rows(
        "SELECT sample_id FROM tags WHERE tag = 'night-review' ORDER BY 1")] == expected
    assert [r[0] for r in cat.query_rows(
        "SELECT i.sample_id FROM export_items i JOIN export_batches b USING (batch_id) "
        "WHERE b.status = 'draft' ORDER BY 1")] == expected
    sidebar.get_by_text(f"Next batch: {len(expected):,} samples").wait_for(timeout=30_000)

    page.get_by_role("button", name="Enlarge", exact=True).first.click()  # a sample's detail
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Link to this sample").wait_for(timeout=30_000)
    first = page.url.split("sample=")[1]
    dialog.get_by_role("button", name="Next", exact=True).click()
    page.wait_for_function("s => !location.search.endsWith('sample=' + s)", arg=first, timeout=30_000)
    dialog.get_by_text(f"2 of {unsure:,} in this gallery").wait_for(timeout=30_000)
    _shot(page, "detail.png", tmp_path)
    page.keyboard.press("Escape")
    page.wait_for_function("!location.search.includes('sample=')", timeout=30_000)

    sidebar.get_by_text(f"Next batch: {len(expected):,} samples").click()
    page.wait_for_selector("h1:has-text('Next batch')", timeout=60_000)
    sidebar.get_by_role("button", name="Clear filters").click()
    _wait_total(page, len(expected))
    _shot(page, "batch.png", tmp_path)
    page.close()


def test_diagnostics_confusion_cell_opens_its_samples(
        fresh_app: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    from al_core.db.catalog import Catalog

    url, path = fresh_app
    cat = Catalog(path)
    classes = cat.scalar("SELECT classes FROM model_runs ORDER BY run_id LIMIT 1")
    best, n = cat.query_rows("SELECT label, count(*) FROM samples WHERE label = pred_label "
                             "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")[0]
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.goto(f"{url}/diagnostics?view=Confusion", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Diagnostics')", timeout=90_000)
    grid = page.locator(".js-plotly-plot .nsewdrag").first
    grid.wait_for(timeout=90_000)
    page.wait_for_timeout(1500)
    _shot(page, "diagnostics.png", tmp_path)
    box = grid.bounding_box()
    i, k = classes.index(best), len(classes)  # the diagonal cell of the most often right class
    page.mouse.click(box["x"] + (i + 0.5) * box["width"] / k, box["y"] + (i + 0.5) * box["height"] / k)
    heading = page.locator("h3", has_text=f"Drill-down: labeled {best}, predicted {best}")
    heading.wait_for(timeout=60_000)
    _wait_total(page, n)
    page.close()


def test_quality_flag_filters_and_opens_its_gallery(
        fresh_app: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """Filter the Samples gallery by a quality flag in the sidebar, then open the flag's gallery
    on the Image quality page (the filter goes along) and switch to another flag."""
    from al_core.db.catalog import Catalog

    url, path = fresh_app
    cat = Catalog(path)
    dark = cat.scalar("SELECT count(*) FROM samples WHERE q_dark")
    dark_rain = cat.scalar("SELECT count(*) FROM samples WHERE q_dark AND weather = 'rain'")
    blurry = cat.scalar("SELECT count(*) FROM samples WHERE q_blurry")
    assert dark > 0 and blurry > 0
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.goto(f"{url}/samples", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Samples')", timeout=90_000)
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.locator("[data-testid='stExpander'] summary", has_text="Image quality").click()
    _pick(page, sidebar, "q_dark", "true")
    _wait_total(page, dark)
    assert "f.q_dark=true" in page.url
    sidebar.get_by_role("link", name="Image quality").click()
    page.wait_for_selector("h1:has-text('Image quality')", timeout=90_000)
    _wait_total(page, dark)  # the flag's gallery (dark) within the sidebar's filter (dark)
    assert "flag=dark" in page.url and "f.q_dark=true" in page.url
    page.wait_for_timeout(1500)  # the thumbnails
    _shot(page, "quality.png", tmp_path)
    _pick(page, sidebar, "weather", "rain")
    _wait_total(page, dark_rain)
    sidebar.get_by_role("button", name="Clear filters").click()
    _pick(page, page.locator("[data-testid='stMain']"), "Flag", "blurry")
    _wait_total(page, blurry)
    assert "flag=blurry" in page.url
    page.close()


def test_similarity_query_and_a_box_selection_on_the_map(
        fresh_app: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """A card's "Similar" link queries by that sample; a text query on the demo CLIP; then a box
    drawn on the embedding map opens the gallery of exactly the samples inside it."""
    url, _ = fresh_app
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.goto(f"{url}/samples", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Samples')", timeout=90_000)
    first = _captions(page)[0].split(" · ")[0]
    page.locator("[data-testid='stMain']").get_by_role("link", name="Similar").first.click()
    page.wait_for_selector("h1:has-text('Similarity')", timeout=90_000)
    _wait_total(page, 24)
    assert f"like={quote(first)}" in page.url
    shown = [c.split(" · ")[0] for c in _captions(page)]
    assert first not in shown and all("similarity" in c for c in _captions(page))

    page.goto(f"{url}/similarity?text={quote('a car at night')}", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Similarity')", timeout=90_000)
    _wait_total(page, 24)
    page.wait_for_timeout(1500)  # the thumbnails
    _shot(page, "similarity.png", tmp_path)

    page.goto(f"{url}/map", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Embedding map')", timeout=90_000)
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    plot.wait_for(timeout=90_000)
    page.wait_for_timeout(1500)
    page.locator(".js-plotly-plot .modebar-btn[data-title='Box Select']").first.click()
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.30)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.60, steps=12)
    page.mouse.up()
    heading = page.locator("h3", has_text="selected on the map")
    heading.wait_for(timeout=60_000)
    n = int(heading.inner_text().split()[0].replace(",", ""))
    assert n > 0
    _wait_total(page, n)
    page.wait_for_timeout(1500)
    _shot(page, "map.png", tmp_path)
    page.close()


def test_export_a_batch_and_download_it(fresh_app: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """Preview the default recipe on the Export page, record it as Label Studio JSON, download
    the file through the button: its bytes are what the CLI re-exports from the batch history."""
    from al_core import export
    from al_core.db.catalog import Catalog

    url, path = fresh_app
    page = browser.new_page(viewport={"width": 1500, "height": 1400}, accept_downloads=True)
    page.goto(f"{url}/export", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Export')", timeout=90_000)
    budget = page.locator("[data-testid='stNumberInput']").filter(has=page.get_by_text("Budget (samples)")).locator("input")
    budget.fill("40")
    budget.press("Enter")
    page.wait_for_timeout(800)
    _act(page, "Preview the batch", "Preview: 40 samples")
    _wait_total(page, 40)
    page.wait_for_timeout(1500)  # the thumbnails
    _shot(page, "export.png", tmp_path, full_page=True)
    _pick(page, page.locator("[data-testid='stMain']"), "Format", "label-studio")
    page.wait_for_timeout(800)
    _act(page, "Record the batch and prepare its files", "Batch 1 recorded: 40 samples")
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download batch-1.json").first.click()
    got = Path(info.value.path()).read_bytes()
    page.close()
    with Catalog.open(path, read_only=True) as cat:
        batch = export.get_batch(cat, 1)
        assert got == export.render(batch, "label-studio")[""]
    tasks = json.loads(got)
    assert len(tasks) == 40 and set(t["data"]["sample_id"] for t in tasks) == set(batch.items["sample_id"])
