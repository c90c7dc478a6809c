"""2D maps of an embedding set: PCA at once, UMAP as a background job; stored in the catalog with
the set's state, reused until the set changes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from al_core.db.catalog import Catalog, new_connection
from al_core.embeddings import EmbeddingSet, load_vectors, sql
from al_core.embeddings.index import SetState
from al_core.view import sql as view_sql
from al_core.view.filters import Filter

METHODS = ("pca", "umap")
#: UMAP settings: PCA initialisation and fewer epochs on large sets keep 100k points near 30 s.
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
UMAP_SEEDED_MAX = 20_000
#: Rows of the warm-up's parallel fit: above umap-learn's 4,096-point switch to pynndescent.
UMAP_WARM_ROWS = 5_000

_WARM = threading.Event()


#: PCA directions are estimated from at most this many rows (a fixed random sample), then every
#: row is projected: 100k x 512 in well under a second.
PCA_SAMPLE = 20_000


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components ``(n, 2)`` of ``vectors`` ``(n, d)`` (the d x d
    covariance of at most :data:`PCA_SAMPLE` rows), sign-fixed so the result is deterministic."""
    x = np.asarray(vectors, np.float32)
    if len(x) == 0:
        return np.zeros((0, 2), np.float32)
    sample = x if len(x) <= PCA_SAMPLE else x[np.sort(np.random.default_rng(0).choice(
        len(x), PCA_SAMPLE, replace=False))]
    mean = sample.mean(axis=0, dtype=np.float64)
    centred = sample.astype(np.float64) - mean
    _, vecs = np.linalg.eigh(centred.T @ centred)
    comps = vecs[:, ::-1][:, :2]
    if comps.shape[1] < 2:
        comps = np.pad(comps, ((0, 0), (0, 2 - comps.shape[1])))
    comps = comps * np.where(comps[np.abs(comps).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    return ((x - mean.astype(np.float32)) @ comps.astype(np.float32)).astype(np.float32)


def umap_2d(vectors: np.ndarray, seed: int = 0, progress: Callable[[str], None] | None = None,
            parallel: bool | None = None) -> np.ndarray:
    """UMAP ``(n, 2)`` of ``vectors`` ``(n, d)`` (cosine metric, PCA init).

    Up to :data:`UMAP_SEEDED_MAX` points it is reproducible (seeded, one thread); above, it runs
    on every core with fewer epochs (umap-learn's seeding forces a single thread). ``parallel``
    forces one path or the other (the warm-up compiles both).
    """
    import umap

    n = len(vectors)
    if n < 4:
        return pca_2d(vectors)
    seeded = n <= UMAP_SEEDED_MAX if parallel is None else not parallel
    epochs = 200 if seeded else 100
    reducer = umap.UMAP(n_components=2, n_neighbors=min(UMAP_NEIGHBORS, n - 1), min_dist=UMAP_MIN_DIST,
                        metric="cosine", init="pca", n_epochs=epochs, random_state=seed if seeded else None,
                        n_jobs=1 if seeded else -1, low_memory=True, verbose=False)
    if progress:
        progress(f"UMAP of {n:,} points ({epochs} epochs)")
    return reducer.fit_transform(np.asarray(vectors, np.float32)).astype(np.float32)


def warm_up_umap() -> None:
    """Pay numba's one-time compile on small fits (call it in a background thread at start): the
    seeded single-thread path, and the parallel path with pynndescent's neighbour search, which
    compile different functions (a first 100k map paid over 20 s of compiling when only a tiny
    seeded fit had been warmed)."""
    if _WARM.is_set():
        return
    rng = np.random.default_rng(0)
    umap_2d(rng.normal(size=(300, 8)).astype(np.float32), parallel=False)
    # above 4,096 points umap-learn finds neighbours with pynndescent (below, exactly): compile it
    umap_2d(rng.normal(size=(UMAP_WARM_ROWS, 8)).astype(np.float32), parallel=True)
    _WARM.set()


def fingerprint(state: SetState) -> str:
    return f"{state.count}:{state.fingerprint}:{state.generation}"


def compute_map(cat: Catalog, emb: EmbeddingSet, method: str = "umap", *, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Compute and store the ``method`` map of ``emb`` (replacing an older one); returns its run."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    state = SetState.of(cat, emb)
    keys, ids, vectors = load_vectors(cat, emb)
    t0 = time.perf_counter()
    xy = pca_2d(vectors) if method == "pca" else umap_2d(vectors, seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    frame = pd.DataFrame({"sample_id": pd.array(ids.tolist(), dtype="string"),
                          "x": xy[:, 0], "y": xy[:, 1]})
    params = json.dumps({"seed": seed, "neighbors": UMAP_NEIGHBORS, "min_dist": UMAP_MIN_DIST}
                        if method == "umap" else {})
    cur = new_connection()
    try:
        cur.register("map_frame", frame)
        with cat.transaction(f"store the {method} map of {emb.name!r}", con=cur):
            for q in sql.delete_map(emb.set_id, method):
                cur.execute(*q)
            cur.execute(*sql.insert_map(emb.set_id, method, "map_frame"))
            cur.execute(*sql.record_map(emb.set_id, method, len(frame), fingerprint(state), params, seconds))
    finally:
        cur.close()
    return {"method": method, "n": len(frame), "seconds": seconds, "fingerprint": fingerprint(state)}


def map_status(cat: Catalog, emb: EmbeddingSet, method: str) -> str:
    """``current``, ``stale`` (the set changed since) or ``missing``."""
    rows = cat.query_rows(sql.map_run(emb.set_id, method))
    if not rows:
        return "missing"
    return "current" if rows[0][1] == fingerprint(SetState.of(cat, emb)) else "stale"


def map_points(cat: Catalog, emb: EmbeddingSet, method: str, flt: Filter | None = None,
               color: str | None = None, run: Any = None) -> pd.DataFrame:
    """Stored points ``sample_id, x, y`` (+ ``label``, ``pred_label``, ``confidence``, ``correct``,
    and ``color`` when a field is named) of the samples passing ``flt``."""
    flt = flt or Filter()
    fields = cat.metadata_fields()
    run = view_sql.view_run(flt, run or flt.run)
    pred = f"{run.label} AS pred_label, {run.confidence} AS confidence" if run else \
        "NULL::VARCHAR AS pred_label, NULL::FLOAT AS confidence"
    extra = ""
    if color and color in fields:
        extra = f", s.{view_sql.quote_ident(color)} AS color"
    view = view_sql.filtered_view(flt, fields, run, f"s.sample_id, s.label, {pred}{extra}")
    text, params = view_sql.over(
        view, "SELECT m.sample_id, m.x, m.y, v.* EXCLUDE (sample_id) FROM embedding_maps m "
              "JOIN v USING (sample_id) WHERE m.set_id = ? AND m.method = ? ORDER BY m.sample_id",
        [emb.set_id, method])
    frame = cat.query_df(text, params)
    frame["correct"] = np.where(frame["label"].isna() | frame["pred_label"].isna(), None,
                                frame["label"] == frame["pred_label"])
    return frame
