"""Ingest rate at scale: a synthetic N-sample manifest + predictions (no images) into a fresh catalog.

Usage: python bench/bench_ingest.py [--rows 1000000] [--repeats 3] [--classes 10] [--write]
Each step runs through the real CLI in a fresh process, for CSV and for Parquet input.
Baseline: DuckDB loading the same files into plain tables (no validation, no catalog).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402


def make_files(folder: Path, rows: int, n_classes: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    classes = [f"class_{i}" for i in range(n_classes)]
    ids = np.char.add("s", np.arange(rows).astype(str))
    labeled = rng.random(rows) < 0.4
    label = np.where(labeled, rng.choice(classes, rows), None)
    manifest = pd.DataFrame({
        "sample_id": ids,
        "path": np.char.add(np.char.add("images/", ids), ".jpg"),
        "label": label,
        "split": np.where(labeled, rng.choice(["train", "val", "test"], rows), "unlabeled"),
        "weather": rng.choice(["clear", "rain", "fog", "snow"], rows, p=[0.7, 0.15, 0.1, 0.05]),
        "time_of_day": rng.choice(["day", "dusk", "night"], rows),
        "brightness": rng.random(rows),
        "camera_id": rng.integers(0, 32, rows),
        "captured_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, rows), unit="s"),
    })
    probs = rng.dirichlet(np.ones(n_classes), rows).astype(np.float32)
    preds = pd.DataFrame({"sample_id": ids, **{f"prob_{c}": probs[:, i] for i, c in enumerate(classes)}})
    m, p = folder / "manifest.parquet", folder / "predictions.parquet"
    manifest.to_parquet(m, index=False)
    preds.to_parquet(p, index=False)
    return m, p


def _cli(*args: str) -> float:
    """Seconds for one `al-explorer` command in a fresh process (start-up included: end to end)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "al_core", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"al-explorer {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed


def _raw(db: Path, manifest: Path, preds: Path, reader: str) -> None:
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE m AS SELECT * FROM {reader}(?)", [str(manifest)])
    con.execute(f"CREATE TABLE p AS SELECT * FROM {reader}(?)", [str(preds)])
    con.close()


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def bench_format(work: Path, fmt: str, manifest: Path, preds: Path, repeats: int) -> dict[str, float]:
    """Median seconds of the CLI's manifest ingest and predictions import, and of raw DuckDB."""
    db = work / f"catalog_{fmt}.duckdb"

    def fresh() -> None:
        for f in work.glob(f"catalog_{fmt}.duckdb*"):
            f.unlink()

    times: dict[str, list[float]] = {"manifest": [], "predictions": [], "raw": []}
    reader = {"csv": "read_csv", "parquet": "read_parquet"}[fmt]
    for _ in range(repeats):  # interleaved, so drift on the machine hits both sides alike
        fresh()
        _cli("info", "--catalog", str(db))  # create the empty catalog (untimed: done once per catalog)
        times["manifest"].append(_cli("ingest", str(manifest), "--catalog", str(db), "--no-probe",
                                      "--no-progress"))
        times["predictions"].append(_cli("import-predictions", str(preds), "--run", "bench-run",
                                         "--catalog", str(db)))
        fresh()
        t0 = time.perf_counter()
        _raw(db, manifest, preds, reader)
        times["raw"].append(time.perf_counter() - t0)
    return {k: _median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="write results to docs/BENCHMARKS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="al-bench-"))
    rows = args.rows
    try:
        manifest, preds = make_files(work, rows, args.classes)
        files = {"parquet": (manifest, preds),
                 "csv": (work / "manifest.csv", work / "predictions.csv")}
        con = duckdb.connect()
        for src, dst in zip((manifest, preds), files["csv"], strict=True):
            con.execute(f"COPY (SELECT * FROM read_parquet(?)) TO {sql_literal(dst)} (HEADER)", [str(src)])
        con.close()
        lines = [
            f"Machine: {machine()}. Dataset: {rows:,} samples (5 metadata fields, 40% labeled), "
            f"{args.classes}-class probability vectors. Each step is one `al-explorer` command in a "
            "fresh process (start-up included) into a freshly created empty catalog, images not probed "
            f"(`--no-probe`); median of {args.repeats} runs. Baseline, measured in the same run "
            "and interleaved: raw DuckDB loading the same two files into plain tables "
            "(`CREATE TABLE AS read_csv/read_parquet`, no validation, no catalog).",
            "",
            "| input | step | al-explorer s | rows/s | raw DuckDB s | rows/s | al-explorer / raw rate |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for fmt, (m, p) in files.items():
            med = bench_format(work, fmt, m, p, args.repeats)
            both = med["manifest"] + med["predictions"]
            lines += [
                f"| {fmt} | manifest ingest (validate + samples + typed metadata + label history) "
                f"| {med['manifest']:.2f} | {rows / med['manifest']:,.0f} | | | |",
                f"| {fmt} | predictions import (validate every vector + upsert) "
                f"| {med['predictions']:.2f} | {rows / med['predictions']:,.0f} | | | |",
                f"| {fmt} | both files | {both:.2f} | {2 * rows / both:,.0f} | {med['raw']:.2f} "
                f"| {2 * rows / med['raw']:,.0f} | {med['raw'] / both:.0%} |",
            ]
            print("\n".join(lines[-3:]), flush=True)
        print("\n".join(lines))
        if args.write:
            write_section("ingest", "## Ingest (bench/bench_ingest.py)\n\n" + "\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sql_literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


if __name__ == "__main__":
    main()
