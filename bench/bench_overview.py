"""Overview query latency at scale, beside raw DuckDB on equivalent queries, and the page's script time.

Usage: python bench/bench_overview.py [--sizes 1000000 10000000] [--repeats 5] [--write]
Catalogs are built with the real importers (images not probed) in a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402
from bench_ingest import make_files  # noqa: E402

from al_core import overview  # noqa: E402
from al_core.db.catalog import Catalog  # noqa: E402
from al_core.ingest import import_predictions, ingest_manifest  # noqa: E402
from al_core.view.filters import Filter  # noqa: E402

FILTERED = Filter(splits=("train", "unlabeled"), categorical=(("weather", ("rain", "fog")),),
                  dates=(("captured_at", (date(2024, 2, 1), date(2024, 9, 30))),))
RAW_WHERE = ("split IN ('train', 'unlabeled') AND weather IN ('rain', 'fog') "
             "AND captured_at >= '2024-02-01' AND captured_at < '2024-10-01'")


def queries(run: object) -> dict[str, tuple]:
    """name -> (al_core call, raw DuckDB SQL with {w} for the WHERE clause)."""
    return {
        "counts": (lambda c, f: overview.counts(c, f),
                   "SELECT count(*), count(label), count(DISTINCT label), count(DISTINCT split) FROM samples WHERE {w}"),
        "classes (labeled + pool predictions)": (
            lambda c, f: overview.class_distribution(c, f, run),
            "SELECT label, count(*) FROM samples WHERE {w} AND label IS NOT NULL GROUP BY 1; "
            "SELECT p.pred_label, count(*) FROM samples s JOIN predictions p USING (sample_key) "
            "WHERE {w} AND s.label IS NULL AND p.run_id = 1 GROUP BY 1"),
        "classes per split": (lambda c, f: overview.split_distribution(c, f),
                              "SELECT split, label, count(*) FROM samples WHERE {w} AND label IS NOT NULL GROUP BY ALL"),
        "categorical field (weather)": (lambda c, f: overview.field_distribution(c, f, "weather"),
                                        "SELECT weather, count(*) FROM samples WHERE {w} GROUP BY 1"),
        "histogram (brightness)": (lambda c, f: overview.field_distribution(c, f, "brightness"),
                                   "SELECT floor(brightness * 30), count(*) FROM samples WHERE {w} GROUP BY 1"),
        "timeline (captured_at)": (lambda c, f: overview.field_distribution(c, f, "captured_at"),
                                   "SELECT date_trunc('week', captured_at), count(*) FROM samples WHERE {w} GROUP BY 1"),
        "class x field heatmap": (lambda c, f: overview.class_field_heatmap(c, f, "weather"),
                                  "SELECT label, weather, count(*) FROM samples WHERE {w} AND label IS NOT NULL GROUP BY ALL"),
        "under-represented slices": (
            lambda c, f: overview.under_represented_slices(c, f, run),
            "SELECT weather, time_of_day, coalesce(label, p.pred_label), count(*) FILTER (WHERE label IS NULL), "
            "count(label) FROM samples s LEFT JOIN predictions p USING (sample_key) WHERE {w} GROUP BY ALL"),
    }


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def page_script_ms(path: Path, repeats: int) -> float:
    """Median AppTest run of the whole Overview script, caches cleared each time."""
    import os

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["AL_EXPLORER_CATALOG"] = str(path)
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    AppTest.from_file(app, default_timeout=600).run()  # warm: imports, connection
    times = []
    for _ in range(repeats):
        st.cache_data.clear()
        at = AppTest.from_file(app, default_timeout=600)
        t0 = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, at.exception
    return statistics.median(times)


def bench_size(rows: int, repeats: int, work: Path, page: bool) -> list[str]:
    folder = work / f"n{rows}"
    folder.mkdir()
    manifest, preds = make_files(folder, rows, 10)
    path = folder / "catalog.duckdb"
    with Catalog.open(path) as cat:
        ingest_manifest(cat, manifest, probe=False, progress=False)
        import_predictions(cat, preds, "bench-run")
    manifest.unlink()
    preds.unlink()
    lines = [f"### {rows:,} samples", "", "| query | filter | al-explorer ms | raw DuckDB ms | ratio |",
             "| --- | --- | ---: | ---: | ---: |"]
    with Catalog.open(path, read_only=True) as cat:
        run = overview.latest_run(cat)
        for name, (call, raw) in queries(run).items():
            for label, flt, where in (("none", Filter(), "TRUE"), ("split+weather+dates", FILTERED, RAW_WHERE)):
                call(cat, flt)  # warm
                ours = _median_ms(lambda c=call, f=flt: c(cat, f), repeats)
                statements = [s for s in raw.format(w=where).split("; ") if s]
                base = _median_ms(lambda st=statements: _raw(cat, st), repeats)
                lines.append(f"| {name} | {label} | {ours:.1f} | {base:.1f} | {ours / base:.2f} |")
    if page:
        lines += ["", f"Whole Overview script (AppTest, caches cleared, median of 3): "
                      f"**{page_script_ms(path, 3):.0f} ms**"]
    shutil.rmtree(folder, ignore_errors=True)
    return lines


def _raw(cat: Catalog, statements: list[str]) -> None:
    """The baseline: plain SQL on the same file, through the same (shared, lingering) connection."""
    with cat.read() as cur:
        for statement in statements:
            cur.execute(statement).fetchall()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="al-bench-ov-"))
    lines = [f"Machine: {machine()}. Synthetic catalogs built with the real importers (5 metadata fields, "
             f"40% labeled, 10-class predictions). Median of {args.repeats} runs per query after one warm-up; "
             "the app additionally caches each result per (catalog version, filter), so these are cold-cache "
             "numbers. Raw DuckDB runs the minimal equivalent SQL on the same file.", ""]
    try:
        for rows in args.sizes:
            lines += bench_size(rows, args.repeats, work, page=rows <= 1_000_000) + [""]
            print("\n".join(lines), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.write:
        write_section("overview", "## Overview queries (bench/bench_overview.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
