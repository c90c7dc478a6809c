"""Ingest rate at scale: a synthetic N-sample manifest + predictions (no images) into a fresh catalog.

Usage: python bench/bench_ingest.py [--rows 1000000] [--repeats 3] [--classes 10] [--write]
Baseline: DuckDB loading the same files into plain tables (no validation, no catalog).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, median_time, write_section  # noqa: E402

from al_core.db.catalog import Catalog  # noqa: E402
from al_core.ingest import import_predictions, ingest_manifest  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="write results to docs/BENCHMARKS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="al-bench-"))
    try:
        manifest, preds = make_files(work, args.rows, args.classes)
        db = work / "catalog.duckdb"

        def fresh() -> None:
            for f in work.glob("catalog.duckdb*"):
                f.unlink()

        times: dict[str, list[float]] = {"manifest": [], "predictions": []}
        for _ in range(args.repeats):
            fresh()
            with Catalog.open(db) as cat:
                t0 = time.perf_counter()
                ingest_manifest(cat, manifest, probe=False, progress=False)
                t1 = time.perf_counter()
                import_predictions(cat, preds, "bench-run")
                t2 = time.perf_counter()
            times["manifest"].append(t1 - t0)
            times["predictions"].append(t2 - t1)

        def raw() -> None:
            con = duckdb.connect(str(db))
            con.execute("CREATE TABLE m AS SELECT * FROM read_parquet(?)", [str(manifest)])
            con.execute("CREATE TABLE p AS SELECT * FROM read_parquet(?)", [str(preds)])
            con.close()

        baseline = median_time(raw, args.repeats, setup=fresh)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        total = med["manifest"] + med["predictions"]
        rows = args.rows
        lines = [
            f"Machine: {machine()}. Dataset: {rows:,} samples (5 metadata fields, 40% labeled), "
            f"{args.classes}-class probability vectors; Parquet input; median of {args.repeats} runs, "
            "each into a fresh catalog, images not probed (`--no-probe`).",
            "",
            "| step | median s | rows/s |",
            "| --- | ---: | ---: |",
            f"| manifest ingest (validate + samples + typed metadata + label history) | {med['manifest']:.2f} | {rows / med['manifest']:,.0f} |",
            f"| predictions import (validate every vector + upsert) | {med['predictions']:.2f} | {rows / med['predictions']:,.0f} |",
            f"| both | {total:.2f} | {2 * rows / total:,.0f} |",
            f"| baseline: raw DuckDB `CREATE TABLE AS read_parquet` of both files | {baseline:.2f} | {2 * rows / baseline:,.0f} |",
            "",
            f"al-explorer / raw DuckDB time ratio: {total / baseline:.1f}x (the price of validation, "
            "primary keys and label history).",
        ]
        print("\n".join(lines))
        if args.write:
            write_section("ingest", "## Ingest (bench/bench_ingest.py)\n\n" + "\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
