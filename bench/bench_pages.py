"""Whole-page timings: the first paint in a real browser, and every page x filter at 1M samples.

Usage:
  python bench/bench_pages.py --first-paint [--catalog PATH] [--size 5000] [--repeats 5] [--write]
  python bench/bench_pages.py --pages [--rows 1000000] [--repeats 5] [--write] [--profile]

``--first-paint`` serves the app (``al-explorer serve``) on a demo catalog (built with
``al-explorer demo --no-serve`` into ``bench/out/`` unless ``--catalog`` names one) and drives
Debian's Chromium through Playwright: after the server answers and one warm-up load, each sample
opens a new browser context (a cold tab: no cache, no cookies, a new Streamlit session), and
times page.goto -> the Overview's first metric visible.

``--pages`` builds (once; reused from ``bench/out/``) a synthetic catalog with the real importers
(5 metadata fields, 40% labeled, one 10-class model run, three tags), then runs each page
(Overview, Samples) through AppTest with a filter in its URL, clearing ``st.cache_data`` and
``st.cache_resource`` and closing the catalog's read connection before each run (cold caches,
fresh connection). Beside each script time: the SQL that run issued (recorded from the
catalog's read calls), replayed on a fresh raw DuckDB connection to the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _report import machine, synthetic_catalog, write_section  # noqa: E402

OUT = ROOT / "bench" / "out"
APP = str(ROOT / "app.py")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
METRIC = '[data-testid="stMetricValue"]'
PAGES = {"overview": "pages/overview.py", "samples": "pages/samples.py", "diagnostics": "pages/diagnostics.py"}

#: filter name -> the URL query a shared link would carry (bench catalog: see bench_ingest.make_files)
FILTERS: dict[str, dict[str, list[str]]] = {
    "none": {},
    "split": {"split": ["train"]},
    "class": {"class": ["class_3"]},
    "predicted class": {"pred": ["class_3"]},
    "confidence 0..0.6": {"conf": ["0.0..0.6"]},
    "outcome wrong": {"outcome": ["wrong"]},
    "outcome unlabeled + confidence 0..0.3": {"outcome": ["unlabeled"], "conf": ["0.0..0.3"]},
    "tag include": {"tag": ["reviewed"]},
    "tag exclude": {"notag": ["reviewed"]},
    "weather in (rain, fog) + brightness 0.2..0.5": {"f.weather": ["rain", "fog"], "f.brightness": ["0.2..0.5"]},
}
#: tag -> share of samples (every k-th by a hash of the id)
TAGS = {"reviewed": 20, "hard": 100, "blurry": 10}
BUILD_STAMP = "v1"


# ---------------------------------------------------------------------------- first paint
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(path: Path, app: Path | None = None) -> Iterator[str]:
    """`al-explorer serve` on ``path`` (or ``streamlit run app`` with the same options) at a free
    loopback port, once its health check answers."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    port = _free_port()
    log_path = path.with_suffix(".serve.log")
    cmd = ([sys.executable, "-m", "al_core", "serve", "--catalog", str(path), "--port", str(port)] if app is None
           else [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
                 "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats",
                 "false", "--client.toolbarMode", "minimal"])
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with opener.open(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"the app did not start: {log_path.read_text()[-2000:]}") from None
                    time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


#: When each of these first appears in the page (ms after navigation start), recorded in the page.
MILESTONES = {"app shell": '[data-testid="stApp"]', "sidebar nav": '[data-testid="stSidebarNav"]',
              "title": "h1", "sidebar filter": '[data-testid="stSidebarUserContent"] [data-testid="stMultiSelect"]',
              "first metric": METRIC}
_OBSERVER = """
window.__marks = {};
const wanted = %s;
const check = () => { for (const [k, sel] of Object.entries(wanted))
    if (!(k in window.__marks) && document.querySelector(sel)) window.__marks[k] = performance.now(); };
new MutationObserver(check).observe(document, {subtree: true, childList: true});
"""
BASELINE_APP = """import streamlit as st
st.set_page_config(layout="wide")
st.title("Baseline")
st.metric("Samples", "5,000")
"""
#: the baseline and, after its metric, one small Plotly chart (Plotly's JS is loaded on demand)
PLOTLY_APP = BASELINE_APP + """import plotly.graph_objects as go
st.plotly_chart(go.Figure(go.Bar(x=[1, 2, 3], y=[3, 1, 2])))
"""


def demo_catalog(size: int) -> Path:
    """The real demo (``al-explorer demo --no-serve``) in bench/out/, built once."""
    path = OUT / f"demo_n{size}" / "catalog.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "al_core", "demo", "--no-serve", "--size", str(size),
                    "--catalog", str(path)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"demo catalog {path} ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def first_paint(path: Path, repeats: int, app: Path | None = None, new_tab: bool = False) -> dict[str, Any]:
    """Seconds from page.goto to the Overview's first metric visible, each in a new context (a
    cold browser: nothing cached), or with ``new_tab`` in a new tab of one browser context (what
    a user who opened the app before sees: the browser's cache holds Streamlit's static files);
    with the median time (ms after navigation start) each of :data:`MILESTONES` first appeared."""
    from playwright.sync_api import sync_playwright

    with serving(path, app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        shared = browser.new_context(viewport={"width": 1400, "height": 1000}) if new_tab else None
        if shared is not None:
            shared.add_init_script(_OBSERVER % json.dumps(MILESTONES))

        def load() -> tuple[float, float, dict[str, float]]:
            context = shared or browser.new_context(viewport={"width": 1400, "height": 1000})
            if shared is None:
                context.add_init_script(_OBSERVER % json.dumps(MILESTONES))
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(url + "/", wait_until="commit")
            committed = time.perf_counter() - t0
            page.wait_for_selector(METRIC, state="visible", timeout=60_000)
            painted = time.perf_counter() - t0
            marks = page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
                return {...window.__marks, 'DOMContentLoaded': n.domContentLoadedEventEnd,
                        'load event': n.loadEventEnd}; }""")
            page.close()
            if shared is None:
                context.close()
            return painted, committed, marks

        warm = load()
        samples = [load() for _ in range(repeats)]
        browser.close()
    paints = [s[0] for s in samples]
    names = sorted({k for s in samples for k in s[2]}, key=lambda k: statistics.median(
        s[2].get(k, 1e9) for s in samples))
    return {"warm_up_s": warm[0], "samples_s": paints, "median_s": statistics.median(paints),
            "commit_median_s": statistics.median(s[1] for s in samples),
            "marks_ms": {k: statistics.median(s[2][k] for s in samples if k in s[2]) for k in names}}


def profile_script(path: Path) -> list[str]:
    """Where a cold Overview run's time goes, in one fresh process: imports, then the page."""
    code = f"""
import os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {str(ROOT)!r})
os.environ['AL_EXPLORER_CATALOG'] = {str(path)!r}
import streamlit
t1 = time.perf_counter()
import al_core.overview, al_core.view, al_core.thumbnails
t2 = time.perf_counter()
import torch  # noqa: if al_core imported it, this is free
t3 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=600)
t4 = time.perf_counter(); at.run(); t5 = time.perf_counter()
assert not at.exception, at.exception
at = AppTest.from_file({APP!r}, default_timeout=600)
t6 = time.perf_counter(); at.run(); t7 = time.perf_counter()
print(f"import streamlit {{t1 - t0:.2f}} s; import al_core pages' modules {{t2 - t1:.2f}} s"
      f" (torch already imported: {{'torch' in sys.modules}}); first Overview script run {{t5 - t4:.2f}} s;"
      f" second (new session, cached results) {{t7 - t6:.2f}} s")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def run_first_paint(args: argparse.Namespace) -> None:
    path = Path(args.catalog) if args.catalog else demo_catalog(args.size)
    with _read_only_counts(path) as n:
        samples = n
    tab = first_paint(path, args.repeats, new_tab=True)
    result = first_paint(path, args.repeats)
    verdict = "met" if tab["median_s"] <= 2.0 else "NOT met"
    lines = [f"Machine: {machine()}; Chromium {_chromium_version()} headless (Playwright). Catalog: the real "
             f"demo, {samples:,} samples (`al-explorer demo --no-serve --size {args.size}`). Served by "
             f"`al-explorer serve`; one warm-up load after the server is up, then {args.repeats} loads: "
             "page.goto to the Overview's first metric visible. *New tab*: each load in a new tab of one "
             "browser (its cache holds Streamlit's static files, as for anyone who opened the app before). "
             "*Cold browser*: each load in a new browser context (nothing cached: every script chunk is "
             "fetched and compiled).", "",
             "| measure | new tab s | cold browser s |", "| --- | ---: | ---: |",
             f"| first paint, median of {args.repeats} | **{tab['median_s']:.2f}** | {result['median_s']:.2f} |",
             f"| first paint, all | {', '.join(f'{s:.2f}' for s in tab['samples_s'])} | "
             f"{', '.join(f'{s:.2f}' for s in result['samples_s'])} |",
             f"| warm-up load (first session of the server) | {tab['warm_up_s']:.2f} | {result['warm_up_s']:.2f} |",
             f"| goto until the HTML response commits, median | {tab['commit_median_s']:.2f} | "
             f"{result['commit_median_s']:.2f} |",
             "", f"Target ≤ 2 s in a new tab: {verdict}."]
    if args.profile or result["median_s"] > 2.0:
        base = first_paint(path, args.repeats, app=_baseline_app(BASELINE_APP))
        plot = first_paint(path, args.repeats, app=_baseline_app(PLOTLY_APP))
        lines += ["", "Where the time goes: when each part was first put in the page (median ms after navigation "
                  "start, a MutationObserver in the page), beside two baseline apps of the same Streamlit served "
                  "the same way: `st.title` + one `st.metric`, and the same + one small `st.plotly_chart` after "
                  "the metric:", "",
                  "| milestone | al-explorer Overview ms | baseline ms | baseline + 1 Plotly chart ms |",
                  "| --- | ---: | ---: | ---: |"]
        for name, ms in result["marks_ms"].items():
            cells = [b["marks_ms"].get(name) for b in (base, plot)]
            lines.append(f"| {name} | {ms:.0f} | " + " | ".join("" if c is None else f"{c:.0f}" for c in cells) + " |")
        lines += [f"| **first metric visible** (Playwright, as above) | {result['median_s'] * 1000:.0f} | "
                  f"{base['median_s'] * 1000:.0f} | {plot['median_s'] * 1000:.0f} |", "",
                  "Server side (one fresh process, AppTest): " + " ".join(profile_script(path))]
    print("\n".join(lines))
    if args.write:
        write_section("first-paint", "## First paint (bench/bench_pages.py --first-paint)\n\n" + "\n".join(lines))


def _baseline_app(code: str) -> Path:
    app = OUT / "baseline_app" / f"baseline_{abs(hash(code)) % 10_000}.py"
    app.parent.mkdir(parents=True, exist_ok=True)
    app.write_text(code)
    return app


def _chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.split()[1] if len(out.split()) > 1 else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


@contextmanager
def _read_only_counts(path: Path) -> Iterator[int]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        yield int(con.execute("SELECT count(*) FROM samples").fetchone()[0])
    finally:
        con.close()


# ---------------------------------------------------------------------------- pages at 1M
def build_catalog(rows: int) -> Path:
    """A synthetic catalog of ``rows`` samples with one model run and tags, built once in bench/out/."""
    def tags(cat: Any) -> None:
        with cat.transaction("bench: tags") as cur:
            for tag, every in TAGS.items():
                cur.execute("INSERT INTO tags SELECT sample_id, ?, now()::TIMESTAMP FROM samples "
                            "WHERE hash(sample_id || ?) % ? = 0", [tag, tag, every])

    return synthetic_catalog(OUT / f"pages_n{rows}", rows, 10, {"rows": rows, "tags": TAGS, "v": BUILD_STAMP},
                             extra=tags)


class Recorder:
    """Records every read the catalog runs (text, params, how it was fetched, seconds in the app)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Any], float]] = []
        self.on = False
        self._lock = threading.Lock()

    def install(self) -> None:
        from al_core.db.catalog import Catalog

        for method, fetch in (("query_df", "df"), ("query_rows", "rows")):
            original = getattr(Catalog, method)

            def wrapped(cat: Any, query: Any, params: Any = None, *, _o: Any = original,
                        _f: str = fetch) -> Any:
                t0 = time.perf_counter()
                result = _o(cat, query, params)
                if self.on:
                    text, bound = (query, params or []) if isinstance(query, str) else query
                    with self._lock:
                        self.calls.append((_f, text, list(bound), time.perf_counter() - t0))
                return result

            setattr(Catalog, method, wrapped)


def _cold(path: Path) -> None:
    """What a cold run starts from: no cached results or handles, no open read connection."""
    import gc

    import streamlit as st

    from al_core.db.catalog import Catalog

    st.cache_data.clear()
    st.cache_resource.clear()
    Catalog(path).close()
    gc.collect()


def script_run(path: Path, page: str, params: dict[str, list[str]], rec: Recorder | None = None) -> float:
    """Seconds of one AppTest run of ``page`` opened from a link carrying ``params``, cold."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600)
    for key, values in params.items():
        at.query_params[key] = values
    if page != "overview":
        at.switch_page(PAGES[page])
    _cold(path)
    if rec is not None:
        rec.calls.clear()
        rec.on = True
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    if rec is not None:
        rec.on = False
    if at.exception:
        raise SystemExit(f"{page} {params}: {at.exception[0].value}")
    assert at.title[0].value.lower() == page, at.title
    return elapsed


def raw_replay(path: Path, calls: list[tuple[str, str, list[Any], float]]) -> tuple[float, list[float]]:
    """The recorded SQL on a fresh raw DuckDB connection: (total s including connect, per query s)."""
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(str(path), read_only=True)
    each = []
    try:
        for fetch, text, params, _ in calls:
            q0 = time.perf_counter()
            cur = con.execute(text, params)
            cur.df() if fetch == "df" else cur.fetchall()
            each.append(time.perf_counter() - q0)
    finally:
        con.close()
    return time.perf_counter() - t0, each


def _short(text: str, n: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + " …"


def run_pages(args: argparse.Namespace) -> None:
    path = build_catalog(args.rows)
    os.environ["AL_EXPLORER_CATALOG"] = str(path)
    rec = Recorder()
    rec.install()
    script_run(path, "overview", {})  # warm: imports (torch, plotly, ...), the script's code
    script_run(path, "samples", {})
    rows = []
    profiles = []
    for page in PAGES:
        for name, params in FILTERS.items():
            times, raws, app_sql = [], [], []
            per_query: list[list[float]] = []
            calls: list[tuple[str, str, list[Any], float]] = []
            for _ in range(args.repeats):
                times.append(script_run(path, page, params, rec))
                calls = list(rec.calls)
                app_sql.append(sum(c[3] for c in calls))
                total, each = raw_replay(path, calls)
                raws.append(total)
                per_query.append(each)
            script, raw = statistics.median(times), statistics.median(raws)
            rows.append((page, name, script, raw, statistics.median(app_sql), len(calls)))
            print(f"{page:8} {name:48} script {script * 1000:7.0f} ms  raw SQL {raw * 1000:7.0f} ms  "
                  f"app SQL {statistics.median(app_sql) * 1000:7.0f} ms  ({len(calls)} queries)", flush=True)
            if args.profile or script > 1.0:
                med = [statistics.median(q[i] for q in per_query) for i in range(len(calls))]
                top = sorted(range(len(calls)), key=lambda i: -med[i])[:3]
                profiles.append((page, name, [(med[i], calls[i][1], calls[i][2]) for i in top]))
    lines = [f"Machine: {machine()}. Catalog: {args.rows:,} synthetic samples built with the real importers "
             "(`bench_ingest.make_files`: 5 metadata fields, 40% labeled, 10 classes), one model run with "
             f"probabilities, tags {', '.join(f'{t} (1 in {k})' for t, k in TAGS.items())}. Each cell: the page "
             "opened from a link with that filter in its URL, run by AppTest with `st.cache_data` and "
             "`st.cache_resource` cleared and the catalog's read connection closed first (a cold start for "
             f"that filter); median of {args.repeats}. *raw SQL*: every statement that run issued (recorded "
             "from the catalog's read calls, in order, with their parameters) replayed on a fresh "
             "`duckdb.connect(file, read_only=True)`, connect included. *SQL in app*: the same statements' "
             "time inside the app (through the catalog's shared connection). Target: script ≤ 1 s.", "",
             "| page | filter | script ms | raw SQL ms | script / raw | SQL in app ms | queries |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {p} | {n} | {s * 1000:.0f} | {r * 1000:.0f} | {s / r:.2f} | {a * 1000:.0f} | {q} |"
              for p, n, s, r, a, q in rows]
    worst = max(rows, key=lambda r: r[2])
    over = [r for r in rows if r[2] > 1.0]
    lines += ["", f"Slowest: {worst[0]} / {worst[1]}, {worst[2] * 1000:.0f} ms. "
              + (f"{len(over)} of {len(rows)} page/filter pairs above 1 s." if over else
                 f"All {len(rows)} page/filter pairs within 1 s.")]
    for page, name, top in profiles:
        lines += ["", f"Slowest raw queries of {page} / {name}:", ""]
        lines += [f"- {t * 1000:.0f} ms: `{_short(text)}` {params[:6]}" for t, text, params in top]
    print("\n".join(lines))
    if args.write:
        write_section("pages", f"## Pages at {args.rows:,} samples (bench/bench_pages.py --pages)\n\n" + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--first-paint", action="store_true", help="browser time to the Overview's first metric")
    mode.add_argument("--pages", action="store_true", help="script time of each page x filter at --rows")
    ap.add_argument("--catalog", help="--first-paint: an existing catalog instead of the demo")
    ap.add_argument("--size", type=int, default=5000, help="--first-paint: demo size (default 5000)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="--pages: catalog size (default 1M)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="add where the time goes")
    ap.add_argument("--build-only", action="store_true", help="--pages: build the catalog and stop")
    ap.add_argument("--write", action="store_true", help="rewrite this section of docs/BENCHMARKS.md")
    args = ap.parse_args()
    if args.first_paint:
        run_first_paint(args)
    elif args.build_only:
        print(build_catalog(args.rows))
    else:
        run_pages(args)


if __name__ == "__main__":
    main()
