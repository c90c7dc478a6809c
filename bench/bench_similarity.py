"""Similarity search, embedding throughput and 2D maps, measured on this machine.

Usage:
  python bench/bench_similarity.py index --n 100000 --dim 512 --queries 200 [--efs 32 64 128 256]
  python bench/bench_similarity.py embed --n 256
  python bench/bench_similarity.py umap --n 100000 --dim 512

index: clustered synthetic vectors (Gaussian clusters with a decaying within-cluster spectrum,
L2-normalized, seeded); queries are held-out points of the same distribution. hnswlib (through
``build_hnsw`` and ``VectorIndex.search``, the module's M / ef constants) against the exact numpy
scan (``exact_search``), which is both the recall oracle and the latency baseline; single queries,
exact and HNSW interleaved query by query. Also recall / latency at other ef values, and filtered
search at 1% (exact over the subset by the SUBSET_* rules) and 10% selectivity, also under a
one-thread BLAS limit (OpenBLAS's thread hand-off dominates small scans on a busy machine).
embed: open_clip ViT-B-32 with random weights (throughput does not depend on them) on 640x480
JPEGs: a one-image-at-a-time loop, the embedding job's pipeline (decode pool ahead of batched
encode), and the bare batched forward in fp32 / bf16; rounds interleaved, medians.
umap: ``pca_2d`` and ``umap_2d`` on clustered vectors after ``warm_up_umap`` (timed apart).
Each subcommand prints a markdown table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _report import machine  # noqa: E402

from al_core.embeddings import index as vindex  # noqa: E402

Row = dict[str, Any]


# --------------------------------------------------------------------------- synthetic vectors

def clustered(n: int, dim: int, *, clusters: int = 1000, spread: float = 0.8, decay: float = 0.5,
              seed: int = 0, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """``(n + extra, dim)`` L2-normalized float32 rows around ``clusters`` Gaussian centres.

    Within-cluster noise has a power-law spectrum (``(i+1)^-decay`` in a shared random basis) and
    total norm ``spread`` times a centre's, like image embeddings' low intrinsic dimension.
    Returns ``(vectors, cluster labels)``; rows are drawn in chunks to bound memory.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scale = (np.arange(1, dim + 1) ** -decay)
    scale *= spread * np.sqrt(dim / np.sum(scale ** 2))
    mix = (scale[:, None] * basis.T).astype(np.float32)  # z @ mix: noise with that spectrum
    labels = rng.integers(0, clusters, n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        z = rng.standard_normal((stop - start, dim), dtype=np.float32)
        block = centres[labels[start:stop]] + z @ mix
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out, labels


def data_and_queries(n: int, dim: int, queries: int, seed: int = 0, spread: float = 0.8,
                     decay: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``n`` indexed rows and ``queries`` held-out rows of the same distribution."""
    both, _ = clustered(n + queries, dim, spread=spread, decay=decay, seed=seed)
    return both[:n], np.ascontiguousarray(both[n:])


class _Set:
    """The bits of an EmbeddingSet that a VectorIndex reads."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim, self.set_id = name, dim, 0


# --------------------------------------------------------------------------- helpers

def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (m, k) present in the same row of ``found``."""
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)]))


def exact_batched(vectors: np.ndarray, queries: np.ndarray, k: int, batch: int = 25) -> np.ndarray:
    """Oracle rows ``(m, k)``, a few queries at a time (a (m, n) score matrix at 1M is big)."""
    return np.concatenate([vindex.exact_search(vectors, queries[i:i + batch], k)[0]
                           for i in range(0, len(queries), batch)])


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def emit(args: argparse.Namespace, body: str, result: Row) -> None:
    print(body, flush=True)
    out = Path(args.out or f"/tmp/bench_similarity_{args.cmd}.json")
    result = {"command": " ".join(sys.argv), "machine": machine(), **result}
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nwrote {out}")


# --------------------------------------------------------------------------- index

def ef_sweep(hnsw: Any, queries: np.ndarray, truth_keys: np.ndarray, k: int, efs: list[int],
             repeats: int) -> list[Row]:
    """Recall@k and single-query latency of a raw ``knn_query`` at each ef (rounds interleaved)."""
    lat: dict[int, list[list[float]]] = {ef: [[] for _ in queries] for ef in efs}
    found: dict[int, np.ndarray] = {}
    for _ in range(repeats):
        for ef in efs:
            hnsw.set_ef(ef)
            labels = np.zeros((len(queries), k), np.int64)
            for i, q in enumerate(queries):
                t0 = time.perf_counter()
                lab, _ = hnsw.knn_query(q[None], k=k, num_threads=1)
                lat[ef][i].append(time.perf_counter() - t0)
                labels[i] = lab[0]
            found[ef] = labels
    hnsw.set_ef(vindex.HNSW_EF_SEARCH)
    rows = []
    for ef in efs:
        per_q = [statistics.median(t) * 1e3 for t in lat[ef]]
        rows.append({"ef": ef, "recall": recall(found[ef], truth_keys), "p50_ms": pct(per_q, 50),
                     "p99_ms": pct(per_q, 99)})
    return rows


def search_vs_exact(vi: vindex.VectorIndex, vectors: np.ndarray, keys: np.ndarray, queries: np.ndarray,
                    k: int, repeats: int) -> Row:
    """``VectorIndex.search`` (HNSW at the module's ef) against ``exact_search`` per query,
    interleaved query by query; per-query medians over ``repeats``."""
    t_h, t_e, got = [], [], []
    for q in queries:
        th, te = [], []
        for _ in range(repeats):
            (res, _), t = timed(lambda q=q: vi.search(q, k))
            th.append(t)
            _, t = timed(lambda q=q: vindex.exact_search(vectors, q[None], k))
            te.append(t)
        got.append(res)
        t_h.append(statistics.median(th) * 1e3)
        t_e.append(statistics.median(te) * 1e3)
    return {"hnsw_ms": t_h, "exact_ms": t_e, "found": np.asarray(got)}


def filtered(vi: vindex.VectorIndex, vectors: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int,
             share: float, seed: int) -> Row:
    """``VectorIndex.search(q, k, allowed=...)`` at ``share`` selectivity vs the exact subset scan."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(keys), max(k, int(share * len(keys))), replace=False))
    allowed = keys[rows]
    sub = np.ascontiguousarray(vectors[rows])
    truth = allowed[exact_batched(sub, queries, k)]
    lat, lat1, found = [], [], []
    for q in queries:  # default BLAS threads, then one BLAS thread, interleaved
        (res, _), t = timed(lambda q=q: vi.search(q, k, allowed=allowed))
        lat.append(t * 1e3)
        found.append(res)
        with threadpool_limits(1, user_api="blas"):
            _, t = timed(lambda q=q: vi.search(q, k, allowed=allowed))
        lat1.append(t * 1e3)
    found_arr = np.asarray(found)
    exact_path = (len(rows) <= vindex.SUBSET_MAX or len(rows) <= vindex.SUBSET_SHARE * vi.size)
    return {"share": share, "allowed": len(rows), "path": "exact subset" if exact_path else "hnsw + filter",
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "p50_ms_blas1": pct(lat1, 50),
            "p99_ms_blas1": pct(lat1, 99), "recall": recall(found_arr, truth),
            "identical": bool(np.array_equal(found_arr, truth)),
            "all_allowed": bool(np.isin(found_arr, allowed).all())}


def run_index(args: argparse.Namespace) -> None:
    k = args.k
    (vectors, queries), t_gen = timed(lambda: data_and_queries(args.n, args.dim, args.queries, args.seed,
                                                                      args.spread, args.decay))
    keys = np.arange(args.n, dtype=np.int64) * 3 + 7  # ascending, not row numbers
    print(f"generated {args.n:,} x {args.dim} (+{args.queries} queries) in {t_gen:.1f} s", flush=True)
    hnsw, t_build = timed(lambda: vindex.build_hnsw(vectors, keys))
    print(f"build_hnsw (M={vindex.HNSW_M}, ef_construction={vindex.HNSW_EF_CONSTRUCTION}): "
          f"{t_build:.1f} s, {args.n / t_build:,.0f} vectors/s", flush=True)
    truth = keys[exact_batched(vectors, queries, k)]
    vi = vindex.VectorIndex(_Set("bench", args.dim), keys, vectors, vindex.SetState(args.n, 0, 0), hnsw)
    efs = sorted(set(args.efs) | {vindex.HNSW_EF_SEARCH})
    sweep = ef_sweep(hnsw, queries, truth, k, efs, args.repeats)
    print("ef sweep done", flush=True)
    main = search_vs_exact(vi, vectors, keys, queries, k, args.repeats)
    rec = recall(main.pop("found"), truth)
    h50, h99 = pct(main["hnsw_ms"], 50), pct(main["hnsw_ms"], 99)
    e50, e99 = pct(main["exact_ms"], 50), pct(main["exact_ms"], 99)
    print("search vs exact done", flush=True)
    filt = [filtered(vi, vectors, keys, queries, k, share, args.seed + 1) for share in args.shares]

    n = f"{args.n:,}"
    body = "\n".join([
        f"## Similarity index: {n} x {args.dim} clustered vectors",
        "",
        f"Machine: {machine()}. `{' '.join(sys.argv)}`. 1,000 Gaussian clusters (noise spread "
        f"{args.spread}, spectrum decay {args.decay}), L2-normalized, "
        f"{args.queries} held-out queries, k={k}; oracle and baseline: `exact_search` (numpy scan). "
        f"Single queries, one thread, median of {args.repeats} per query; HNSW and exact interleaved.",
        "",
        f"Build (`build_hnsw`, M={vindex.HNSW_M}, ef_construction={vindex.HNSW_EF_CONSTRUCTION}, all cores): "
        f"**{t_build:.1f} s** ({args.n / t_build:,.0f} vectors/s).",
        "",
        table(["search", f"recall@{k}", "p50", "p99", "speed-up (p50)"], [
            ["exact numpy scan (baseline)", "1.000", f"{e50:.2f} ms", f"{e99:.2f} ms", "1.0×"],
            [f"`VectorIndex.search`, HNSW ef={vindex.HNSW_EF_SEARCH}", f"{rec:.3f}", f"{h50:.3f} ms",
             f"{h99:.3f} ms", f"{e50 / h50:.0f}×"],
        ]),
        "",
        "Recall and raw `knn_query` latency by ef:",
        "",
        table(["ef", f"recall@{k}", "p50", "p99"],
              [[f"{r['ef']}{' (module)' if r['ef'] == vindex.HNSW_EF_SEARCH else ''}", f"{r['recall']:.3f}",
                f"{r['p50_ms']:.3f} ms", f"{r['p99_ms']:.3f} ms"] for r in sweep]),
        "",
        "Filtered search, `VectorIndex.search(q, 10, allowed=keys)`, checked against exact search over "
        "the allowed subset:",
        "",
        table(["selectivity", "allowed", "path", "p50", "p99", "p50 / p99, 1 BLAS thread", f"recall@{k}",
               "identical to exact"],
              [[f"{f['share']:.0%}", f"{f['allowed']:,}", f["path"], f"{f['p50_ms']:.2f} ms",
                f"{f['p99_ms']:.2f} ms", f"{f['p50_ms_blas1']:.2f} / {f['p99_ms_blas1']:.2f} ms",
                f"{f['recall']:.3f}", "yes" if f["identical"] else "no"] for f in filt]),
    ])
    emit(args, body, {"n": args.n, "dim": args.dim, "queries": args.queries, "k": k,
                      "M": vindex.HNSW_M, "ef_construction": vindex.HNSW_EF_CONSTRUCTION,
                      "ef_search": vindex.HNSW_EF_SEARCH, "build_s": t_build, "gen_s": t_gen,
                      "spread": args.spread, "decay": args.decay, "recall": rec,
                      "hnsw_p50_ms": h50, "hnsw_p99_ms": h99, "exact_p50_ms": e50,
                      "exact_p99_ms": e99, "speedup_p50": e50 / h50, "ef_sweep": sweep, "filtered": filt})


# --------------------------------------------------------------------------- embed

def write_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` 640x480 JPEGs: smooth random colour fields plus noise (photo-like file sizes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        low = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
        arr = np.asarray(low, np.int16) + rng.integers(-20, 21, (480, 640, 3), dtype=np.int16)
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def one_at_a_time(lm: Any, paths: list[Path]) -> np.ndarray:
    """The naive loop: open, preprocess and encode each image alone."""
    import torch
    from PIL import Image

    out = []
    with torch.inference_mode():
        for p in paths:
            with Image.open(p) as img:
                x = lm.preprocess(img.convert("RGB"))[None]
            v = lm.model.encode_image(x.to(dtype=lm.dtype)).float()
            out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
    return np.concatenate(out)


def job_pipeline(lm: Any, paths: list[Path], batch: int) -> np.ndarray:
    """The embedding job's loop without the catalog: ``_decode_ahead`` on its worker pool
    (``load_image`` + preprocess) feeding batched ``encode_images``."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from al_core.embeddings.job import _decode_ahead

    todo = [(p.stem, str(p)) for p in paths]
    workers = min(8, max(2, os.cpu_count() or 2))  # as embed_catalog
    out = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for b in _decode_ahead(pool, lm, todo, batch):
            out.append(lm.encode_images(torch.stack([f.result() for _, f in b])))
    return np.concatenate(out)


def bare_forward(lm: Any, tensors: Any, batch: int) -> np.ndarray:
    return np.concatenate([lm.encode_images(tensors[i:i + batch]) for i in range(0, len(tensors), batch)])


def run_embed(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="al_bench_embed_", dir="/tmp"))
    try:
        _embed_cases(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _embed_cases(args: argparse.Namespace, folder: Path) -> None:
    import copy

    import torch

    from al_core.embeddings.job import cpu_bf16_supported, load_image
    from al_core.embeddings.models import LoadedModel, ModelSpec, load_model

    paths, t_write = timed(lambda: write_jpegs(folder, args.n))
    for p in paths:
        p.read_bytes()  # page cache: time decoding, not the disk
    lm32, t_load = timed(lambda: load_model(ModelSpec("ViT-B-32"), "cpu"))
    lm16 = LoadedModel(**{**lm32.__dict__, "model": copy.deepcopy(lm32.model).to(dtype=torch.bfloat16),
                          "dtype": torch.bfloat16})
    tensors = torch.stack([lm32.preprocess(load_image(str(p), lm32.image_size)) for p in paths])
    print(f"{args.n} JPEGs written in {t_write:.1f} s; model loaded in {t_load:.1f} s; "
          f"torch threads {torch.get_num_threads()}; bf16 supported: {cpu_bf16_supported()}", flush=True)
    ref = bare_forward(lm32, tensors[:args.batch], args.batch)
    got = bare_forward(lm16, tensors[:args.batch], args.batch)  # also warms both up
    min_cos = float((ref * got).sum(axis=1).min())
    cases: dict[str, Callable[[], Any]] = {
        "one image at a time (fp32)": lambda: one_at_a_time(lm32, paths),
        "job pipeline (fp32)": lambda: job_pipeline(lm32, paths, args.batch),
        "job pipeline (bf16)": lambda: job_pipeline(lm16, paths, args.batch),
        f"bare forward, batch {args.batch} (fp32)": lambda: bare_forward(lm32, tensors, args.batch),
        f"bare forward, batch {args.batch} (bf16)": lambda: bare_forward(lm16, tensors, args.batch),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.repeats):  # rounds interleaved: drift and neighbours hit every case alike
        for name, fn in cases.items():
            times[name].append(timed(fn)[1])
        print(f"round {r + 1}: " + ", ".join(f"{nm} {args.n / t[-1]:.1f}" for nm, t in times.items()), flush=True)
    rate = {name: args.n / statistics.median(t) for name, t in times.items()}
    bare32 = rate[f"bare forward, batch {args.batch} (fp32)"]
    bare16 = rate[f"bare forward, batch {args.batch} (bf16)"]
    rows = []
    for name, r in rate.items():
        base = bare16 if "bf16" in name else bare32
        rows.append([name, f"{r:.1f}", f"{statistics.median(times[name]):.2f} s", f"{r / base:.2f}"])
    body = "\n".join([
        f"## Embedding throughput: open_clip ViT-B-32 on this CPU ({args.n} JPEGs, 640x480)",
        "",
        f"Machine: {machine()}. `{' '.join(sys.argv)}`. Random weights (throughput does not depend on "
        f"them); files in the page cache; median of {args.repeats} interleaved rounds; torch threads "
        f"{torch.get_num_threads()}. Share: rate / bare forward of the same precision.",
        "",
        table(["path", "img/s", "time", "share of bare forward"], rows),
        "",
        f"bf16 vs fp32 (weights cast once), batch of {args.batch}: min cosine **{min_cos:.4f}** "
        f"(the job's bar: {0.99}); bf16 / fp32 bare speed: {bare16 / bare32:.2f}×.",
    ])
    emit(args, body, {"n": args.n, "batch": args.batch, "rates": rate, "times": times,
                      "bf16_min_cosine": min_cos, "bf16_supported": cpu_bf16_supported(),
                      "model_load_s": t_load})


# --------------------------------------------------------------------------- umap

def run_umap(args: argparse.Namespace) -> None:
    from al_core.embeddings import maps

    vectors, _ = clustered(args.n, args.dim, seed=args.seed)
    _, t_warm = timed(maps.warm_up_umap)
    print(f"warm_up_umap: {t_warm:.1f} s", flush=True)
    pca_times = [timed(lambda: maps.pca_2d(vectors))[1] for _ in range(args.repeats)]
    umap_runs = [timed(lambda: maps.umap_2d(vectors, seed=args.seed)) for _ in range(2)]
    xy, t_umap = umap_runs[0][0], statistics.median(t for _, t in umap_runs)
    assert xy.shape == (args.n, 2) and np.isfinite(xy).all()
    t_pca = statistics.median(pca_times)
    body = "\n".join([
        f"## 2D maps: {args.n:,} x {args.dim} clustered vectors",
        "",
        f"Machine: {machine()}. `{' '.join(sys.argv)}`. PCA: median of {args.repeats}; UMAP: one run "
        f"(cosine, {maps.UMAP_NEIGHBORS} neighbours, PCA init), after the numba warm-up.",
        "",
        table(["step", "time"], [
            ["`warm_up_umap()` (numba JIT, once per process)", f"{t_warm:.1f} s"],
            ["`pca_2d`", f"{t_pca:.2f} s"],
            ["`umap_2d`", f"{t_umap:.1f} s"],
        ]),
    ])
    emit(args, body, {"n": args.n, "dim": args.dim, "warm_up_s": t_warm, "pca_s": t_pca,
                      "pca_runs_s": pca_times, "umap_s": t_umap,
                      "umap_runs_s": [t for _, t in umap_runs]})


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("index", help="hnswlib vs exact search: build, recall, latency, filters")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--efs", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.10])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--spread", type=float, default=0.8, help="within-cluster noise norm / centre norm")
    p.add_argument("--decay", type=float, default=0.5,
                   help="noise spectrum (i+1)^-decay; 0 = isotropic, the hardest case")
    p = sub.add_parser("embed", help="ViT-B-32 image embedding throughput on the CPU")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("umap", help="pca_2d and umap_2d times")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    for p in sub.choices.values():
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=str, default=None, help="JSON path (default /tmp/bench_similarity_CMD.json)")
    args = ap.parse_args()
    {"index": run_index, "embed": run_embed, "umap": run_umap}[args.cmd](args)


if __name__ == "__main__":
    main()
