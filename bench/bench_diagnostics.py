"""Diagnostics at scale: evaluate + calibration + slices (the Diagnostics page's reads) and label
issues on a catalog of 1M predictions, with 10 and with 100 classes.

Usage: python bench/bench_diagnostics.py [--rows 1000000] [--classes 10 100] [--repeats 3]

Each catalog is built once (reused from ``bench/out/``) with the real importers from
``bench_ingest.make_files`` (40% labeled, 5 metadata fields, one run with full probabilities).
Each timing is the median of ``--repeats`` runs, the catalog's read connection closed before
each (cold: a fresh connection, no cache). Beside each: raw DuckDB / numpy doing the same sums on
a fresh plain connection to the same file. Prints a markdown table (BENCHMARKS.md is not edited).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _report import machine, median_time, synthetic_catalog  # noqa: E402

OUT = ROOT / "bench" / "out"
STAMP = "v1"
TARGETS = {"page reads": 1.0, "label issues": 5.0}


def build_catalog(rows: int, n_classes: int) -> Path:
    """The bench catalog (built once), upgraded to this version's schema if it is older."""
    import time

    from al_core.db.catalog import Catalog

    path = synthetic_catalog(OUT / f"diagnostics_n{rows}_k{n_classes}", rows, n_classes,
                             {"rows": rows, "classes": n_classes, "v": STAMP})
    t0 = time.perf_counter()
    Catalog.open(path).close()  # a read-write open applies pending migrations
    print(f"catalog {path.parent.name} opened read-write (upgrades included) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return path


# ------------------------------------------------------------------------- raw baselines
RAW_CONFUSION = """
SELECT s.label, p.pred_label, count(*),
       sum(-ln(greatest(least(list_extract(p.probs, list_position(r.classes, s.label))::DOUBLE,
                              1 - 1.1920929e-07), 1.1920929e-07)))
FROM samples s JOIN predictions p ON p.sample_key = s.sample_key AND p.run_id = 1
CROSS JOIN (SELECT classes FROM model_runs WHERE run_id = 1) r
WHERE s.label IS NOT NULL GROUP BY ALL"""
RAW_CALIBRATION = """
SELECT least(floor(s.pred_confidence * 15)::INTEGER, 14) AS b, count(*), sum(s.pred_confidence),
       sum((s.label = s.pred_label)::INTEGER)
FROM samples s WHERE s.label IS NOT NULL AND s.pred_label IS NOT NULL GROUP BY b"""
RAW_SLICES = """
WITH v AS (SELECT weather, time_of_day, CASE WHEN brightness < 0.25 THEN 0 WHEN brightness < 0.5
    THEN 1 WHEN brightness < 0.75 THEN 2 ELSE 3 END AS b, camera_id // 8 AS c,
    date_trunc('quarter', captured_at) AS t, split, label, (label = pred_label)::INTEGER AS ok
    FROM samples WHERE label IS NOT NULL AND pred_label IS NOT NULL)
SELECT weather, time_of_day, b, c, t, split, label, count(*), sum(ok) FROM v
GROUP BY GROUPING SETS ((weather), (time_of_day), (b), (c), (t), (split), (label), (weather, label),
    (time_of_day, label), (b, label), (c, label), (t, label))"""
RAW_ISSUES = """
SELECT s.sample_id, list_position(r.classes, s.label) - 1 AS li, p.probs
FROM samples s JOIN predictions p ON p.sample_key = s.sample_key AND p.run_id = 1
CROSS JOIN (SELECT classes FROM model_runs WHERE run_id = 1) r WHERE s.label IS NOT NULL"""


def raw_page(path: Path) -> None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute(RAW_CONFUSION).fetchall()
        con.execute(RAW_CALIBRATION).fetchall()
        con.execute(RAW_SLICES).fetchall()
    finally:
        con.close()


def raw_issues(path: Path) -> None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        table = con.sql(RAW_ISSUES).to_arrow_table()
    finally:
        con.close()
    column = table.column("probs").combine_chunks()
    labels = table.column("li").to_numpy()
    k = len(column[0])
    probs = column.flatten().to_numpy().reshape(-1, k)
    own = probs[np.arange(len(labels)), labels]
    t = np.bincount(labels, weights=own, minlength=k) / np.maximum(np.bincount(labels, minlength=k), 1)
    for start in range(0, len(labels), 65_536):
        p = probs[start:start + 65_536]
        np.where(p >= t.astype(np.float32), p, -np.inf).argmax(axis=1)


def page_reads(cat: object, run: object, flt: object) -> int:
    """What the Diagnostics page reads for one filter; returns the evaluated count."""
    from al_core import diagnostics as dg

    n = dg.evaluate(cat, run, flt).n  # type: ignore[arg-type]
    dg.calibration(cat, run, flt)  # type: ignore[arg-type]
    dg.slices(cat, run, flt)  # type: ignore[arg-type]
    return n


def bench_catalog(path: Path, k: int, repeats: int) -> list[str]:
    from al_core import diagnostics as dg
    from al_core.db.catalog import Catalog
    from al_core.view.filters import Filter

    lines = []
    cat = Catalog.open(path, read_only=True)
    run = dg.find_run(cat, "bench-run")
    filters = {"all labeled": Filter(), "split test": Filter(splits=("test",)),
               "weather rain/fog": Filter(categorical=(("weather", ("rain", "fog")),))}
    for name, flt in filters.items():
        steps = {"evaluate": partial(dg.evaluate, cat, run, flt),
                 "calibration": partial(dg.calibration, cat, run, flt),
                 "slices": partial(dg.slices, cat, run, flt)}
        timings = {step: median_time(fn, repeats, setup=cat.close) for step, fn in steps.items()}
        page = median_time(partial(page_reads, cat, run, flt), repeats, setup=cat.close)
        n = page_reads(cat, run, flt)
        raw = median_time(partial(raw_page, path), repeats) if name == "all labeled" else None
        detail = ", ".join(f"{s} {t:.2f}" for s, t in timings.items())
        lines.append(f"| {k} | page reads, {name} ({detail}) | {page:.2f} | "
                     f"{'' if raw is None else f'{raw:.2f}'} | {TARGETS['page reads']:g} | {n:,} |")
        print(lines[-1], flush=True)
    issues = median_time(partial(dg.label_issues, cat, run, Filter()), repeats, setup=cat.close)
    found = dg.label_issues(cat, run, Filter())
    raw = median_time(partial(raw_issues, path), repeats)
    lines.append(f"| {k} | label issues, all labeled ({found.attrs['n_issues']:,} found) | "
                 f"{issues:.2f} | {raw:.2f} | {TARGETS['label issues']:g} | {found.attrs['n_checked']:,} |")
    print(lines[-1], flush=True)
    cat.close()
    lines += page_scripts(path, k, repeats)
    return lines


#: Diagnostics views timed as whole page runs (the URL's ``view``; the first is the default).
PAGE_VIEWS = ["Per class", "Confusion", "Slices", "Calibration"]


def page_scripts(path: Path, k: int, repeats: int) -> list[str]:
    """The Diagnostics page's whole script per view (AppTest, caches cleared, fresh connection)."""
    import os
    import statistics

    from bench_pages import script_run

    os.environ["AL_EXPLORER_CATALOG"] = str(path)
    script_run(path, "diagnostics", {})  # warm: imports and the script's code
    lines = []
    for view in PAGE_VIEWS:
        times = [script_run(path, "diagnostics", {"view": [view]}) for _ in range(repeats)]
        lines.append(f"| {k} | whole page script, view {view} | {statistics.median(times):.2f} |  | "
                     f"{TARGETS['page reads']:g} | |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lines = [f"Machine: {machine()}", "",
             "| classes | step | al-explorer (s) | raw DuckDB/numpy (s) | target (s) | evaluated |",
             "|---:|---|---:|---:|---:|---:|"]
    for k in args.classes:
        lines += bench_catalog(build_catalog(args.rows, k), k, args.repeats)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
