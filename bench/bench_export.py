"""Batch selection at scale: a 1,000-sample uncertainty batch and a 1,000-sample hybrid batch
(the 10,000 most uncertain, then k-center greedy) from a 1M-sample catalog with 512-d embeddings,
through ``select_batch``, beside plain numpy doing the same selection on arrays read straight
from DuckDB.

Usage: python bench/bench_export.py [--rows 1000000] [--budget 1000] [--repeats 3]

The catalog is the diagnostics bench's (1M samples, 40% labeled, 10-class probabilities), copied
once to ``bench/out/export_n<rows>`` and given an embedding set of clustered 512-d vectors. Each
timing is the median of ``--repeats`` runs with the catalog's read connection closed first (cold:
a fresh connection, vectors read from the file every time). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _report import machine  # noqa: E402
from bench_diagnostics import build_catalog  # noqa: E402
from bench_similarity import clustered  # noqa: E402

from al_core import embeddings, view  # noqa: E402
from al_core.db.catalog import Catalog  # noqa: E402
from al_core.strategies import k_center_greedy  # noqa: E402
from al_core.strategies.recipes import CENTERS_MAX, Recipe, select_batch  # noqa: E402

OUT = ROOT / "bench" / "out"
SET = "bench-512"


def build(rows: int) -> Path:
    """The diagnostics catalog with an embedding set of ``rows`` clustered 512-d vectors."""
    target = OUT / f"export_n{rows}" / "catalog.duckdb"
    if target.exists():
        return target
    source = build_catalog(rows, 10)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    with Catalog.open(target) as cat:
        ids = [r[0] for r in cat.query_rows("SELECT sample_id FROM samples ORDER BY sample_key")]
        vectors, _ = clustered(len(ids), 512, seed=0)
        t0 = time.perf_counter()
        for start in range(0, len(ids), 200_000):  # chunked commits, as the embedding job does
            embeddings.store_embeddings(cat, SET, "bench clustered 512-d", ids[start:start + 200_000],
                                        vectors[start:start + 200_000])
        print(f"stored {len(ids):,} vectors in {time.perf_counter() - t0:.1f} s", flush=True)
    return target


# ------------------------------------------------------------------------ plain numpy baselines
POOL = ("SELECT s.sample_id, p.probs FROM samples s JOIN predictions p ON p.sample_key = s.sample_key "
        "AND p.run_id = 1 WHERE s.label IS NULL AND lower(coalesce(s.split, '')) NOT IN "
        "('val', 'valid', 'validation', 'test') ORDER BY s.sample_id")


def _pool(con: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, np.ndarray]:
    table = con.sql(POOL).to_arrow_table()
    ids = np.array(table.column("sample_id").to_pylist(), dtype=object)
    col = table.column("probs").combine_chunks()
    return ids, col.flatten().to_numpy().astype(np.float64).reshape(len(ids), -1)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


def numpy_uncertainty(path: Path, budget: int) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        ids, probs = _pool(con)
    finally:
        con.close()
    scores = _entropy(probs)
    top = np.argpartition(-scores, budget)[:budget]
    return ids[top[np.argsort(-scores[top], kind="stable")]].tolist()


def numpy_hybrid(path: Path, budget: int) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        ids, probs = _pool(con)
        table = con.sql("SELECT v.sample_id, v.vector, s.label IS NOT NULL AS labeled FROM embedding_vectors_1 v "
                        "JOIN samples s USING (sample_id)").to_arrow_table()
    finally:
        con.close()
    vec_ids = table.column("sample_id").to_pylist()
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().reshape(len(vec_ids), -1)
    where = {s: i for i, s in enumerate(vec_ids)}
    labeled = sorted(s for s, lab in zip(vec_ids, table.column("labeled").to_pylist(), strict=True) if lab)
    chosen = [labeled[i] for i in np.linspace(0, len(labeled) - 1, CENTERS_MAX).astype(np.int64)]
    centers = vectors[[where[s] for s in chosen]]  # the same evenly spaced labeled subset as the app
    centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    scores = _entropy(probs)
    top = np.argpartition(-scores, 10 * budget)[:10 * budget]
    cand = vectors[[where[s] for s in ids[top]]]
    picks = k_center_greedy(cand, budget, np.random.default_rng(0), labeled=centers)
    return ids[top[picks]].tolist()


def timed(fn, repeats: int, setup=None) -> tuple[float, list[float], object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        if setup:
            setup()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    path = build(args.rows)
    cat = Catalog.open(path, read_only=True)
    run = view.list_runs(cat)["bench-run"][0]
    pool = cat.query_rows(f"SELECT count(*) FROM ({POOL})")[0][0]
    rows = []
    for name, recipe, set_name, baseline in (
            ("uncertainty (entropy)", Recipe.single("entropy"), None, numpy_uncertainty),
            ("hybrid (top 10 × budget by entropy, then k-center)", Recipe.single("hybrid"), SET, numpy_hybrid)):
        t_al, runs_al, picked = timed(lambda r=recipe, s=set_name: select_batch(
            cat, r, args.budget, run=run, set_name=s, seed=0), args.repeats, setup=cat.close)
        t_np, runs_np, base = timed(lambda b=baseline: b(path, args.budget), args.repeats)
        same = len(set(picked["sample_id"]) & set(base)) / args.budget
        rows.append(f"| {name} | {len(picked):,} | {t_al:.2f} ({', '.join(f'{t:.2f}' for t in runs_al)}) | "
                    f"{t_np:.2f} ({', '.join(f'{t:.2f}' for t in runs_np)}) | {t_al / t_np:.2f}× | {same:.0%} |")
        print(rows[-1], flush=True)
    cat.close()
    print("\n".join([
        f"\nMachine: {machine()}. `{' '.join(sys.argv)}`. Pool: {pool:,} unlabeled samples of {args.rows:,} "
        f"(40% labeled); 10-class probabilities; embedding set of {args.rows:,} × 512 clustered vectors.",
        "",
        "| batch | picked | `select_batch` s (runs) | plain numpy s (runs) | ratio | same picks |",
        "|---|---:|---:|---:|---:|---:|", *rows]))


if __name__ == "__main__":
    main()
