"""Nearest-neighbour search over an embedding set: exact numpy below a size threshold (and as the
oracle), an hnswlib index above it, persisted beside the catalog with a manifest that tells when
it is stale; filtered search returns k results whenever k samples pass the filter."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from al_core.db.catalog import Catalog
from al_core.embeddings import EmbeddingSet, comparable_identity, load_vectors, sql

#: Sets up to this size are searched exactly (a matrix product); above it through hnswlib.
EXACT_THRESHOLD = 20_000
#: hnswlib parameters: recall@10 1.000 at p50 ~1-2 ms on 100k and 300k x 512 clustered vectors
#: (BENCHMARKS.md; ef 64 already gave 1.000 there, 128 keeps a margin for harder real data).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
#: A filter passing at most this share of the set (or this many samples) is searched exactly over
#: its own rows: an HNSW walk would visit mostly rejected nodes.
SUBSET_SHARE = 0.05
SUBSET_MAX = 50_000
MANIFEST_VERSION = 1

#: Scans of at most this many (row, query) products run on one BLAS thread.
SMALL_SCAN = 50_000

_LOCK = threading.Lock()  # the shared hnswlib index's ef, set per search
_SAVE_LOCK = threading.Lock()  # index files of this process: written or read one at a time
_BLAS_LOCK = threading.Lock()  # threadpoolctl's limit is process-wide: one small scan at a time


def _one_blas_thread() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def index_dir(catalog_path: Path) -> Path:
    """Where a catalog's indexes live (a derived cache: safe to delete, rebuilt when needed)."""
    catalog_path = Path(catalog_path).resolve()
    return catalog_path.parent / f"{catalog_path.stem}.indexes"


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``vectors`` ``(n, d)`` by inner product with each of ``queries`` ``(m, d)``.

    Returns ``(rows (m, k'), scores (m, k'))`` best first, ``k' = min(k, n)``.
    """
    n = vectors.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
    if n * len(queries) <= SMALL_SCAN:  # BLAS threads cost more than they save here (~12 ms a
        with _BLAS_LOCK, _one_blas_thread():  # call on a busy machine, BENCHMARKS.md)
            scores = np.asarray(queries, np.float32) @ np.asarray(vectors, np.float32).T
    else:
        scores = np.asarray(queries, np.float32) @ np.asarray(vectors, np.float32).T
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (len(queries), 1))
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)


@dataclass
class SetState:
    """What an index records of its set: count, xor of (id, key) hashes, newest write generation,
    and which catalog file it is (a catalog rebuilt at the same path is another one)."""

    count: int
    fingerprint: int
    generation: int
    catalog: str = ""

    @classmethod
    def of(cls, cat: Catalog, emb: EmbeddingSet) -> SetState:
        count, fp, gen = cat.query_rows(sql.state(emb.table))[0]
        return cls(int(count), int(fp), int(gen), str(cat.scalar(sql.CATALOG_UUID) or ""))


def knn_all(index: VectorIndex, k: int) -> tuple[np.ndarray, np.ndarray]:
    """hnswlib's ``k`` nearest of every vector of ``index`` (labels, distances), at a fixed ef."""
    with _LOCK:
        index.hnsw_.set_ef(max(HNSW_EF_SEARCH, k + 1))
        try:
            return index.hnsw_.knn_query(np.asarray(index.vectors_), k=k)
        finally:
            index.hnsw_.set_ef(HNSW_EF_SEARCH)


class VectorIndex:
    """Search structure of one set: ``keys_`` (n,) sample keys ascending, ``vectors_`` (n, d)
    L2-normalized rows in that order, and ``hnsw_`` (an hnswlib index labelled by sample key) above
    :data:`EXACT_THRESHOLD`."""

    def __init__(self, emb: EmbeddingSet, keys: np.ndarray, vectors: np.ndarray, state: SetState,
                 hnsw: Any = None, how: str = "built") -> None:
        self.emb = emb
        self.keys_ = keys
        self.vectors_ = vectors
        self.state_ = state
        self.hnsw_ = hnsw
        self.how_ = how  # "exact", "built", "loaded", "updated": what opening it took

    @property
    def size(self) -> int:
        return len(self.keys_)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Row positions of the given sample keys that the set has (others dropped)."""
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self.keys_, keys)
        pos = np.clip(pos, 0, max(len(self.keys_) - 1, 0))
        return pos[(len(self.keys_) > 0) & (self.keys_[pos] == keys)] if len(self.keys_) else pos[:0]

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest sample keys to ``query`` ``(d,)`` and their cosine scores, best first.

        ``allowed`` (sample keys) restricts the answer to the samples passing a filter;
        ``exclude`` removes keys (the query samples). Returns fewer than ``k`` only when fewer
        samples qualify.
        """
        q = np.asarray(query, np.float32).reshape(1, -1)
        exclude = np.unique(np.asarray(exclude if exclude is not None else [], np.int64))
        if allowed is not None:
            allowed_rows = self.rows_of(np.setdiff1d(np.asarray(allowed, np.int64), exclude))
            if (self.hnsw_ is None or len(allowed_rows) <= SUBSET_MAX
                    or len(allowed_rows) <= SUBSET_SHARE * self.size):
                return self._exact_rows(q, k, allowed_rows)
            return self._hnsw(q, k, set(self.keys_[allowed_rows].tolist()), allowed_rows)
        if self.hnsw_ is None:
            rows = np.setdiff1d(np.arange(self.size), self.rows_of(exclude)) if exclude.size else None
            return self._exact_rows(q, k, rows)
        return self._hnsw(q, k, None, None, exclude=set(exclude.tolist()))

    def _exact_rows(self, q: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        vecs = self.vectors_ if rows is None else self.vectors_[np.sort(rows)]
        keys = self.keys_ if rows is None else self.keys_[np.sort(rows)]
        top, scores = exact_search(vecs, q, k)
        return keys[top[0]], scores[0]

    def _hnsw(self, q: np.ndarray, k: int, allowed: set[int] | None, allowed_rows: np.ndarray | None,
              exclude: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        available = len(allowed_rows) if allowed_rows is not None else self.size - len(exclude or ())
        want = min(int(k), available)
        if want <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if allowed is not None:
            def keep(label: int) -> bool:
                return label in allowed
        elif exclude:
            def keep(label: int) -> bool:
                return label not in exclude
        else:
            keep = None
        ef = max(HNSW_EF_SEARCH, 2 * want)
        for _ in range(4):  # a filter that rejects many neighbours may need a wider walk
            with _LOCK:
                self.hnsw_.set_ef(ef)
                try:
                    labels, dists = self.hnsw_.knn_query(q, k=want, filter=keep, num_threads=1)
                except RuntimeError:  # fewer than ``want`` found at this ef
                    labels = None
                finally:
                    self.hnsw_.set_ef(HNSW_EF_SEARCH)
            if labels is not None:
                return labels[0].astype(np.int64), (1.0 - dists[0]).astype(np.float32)
            ef *= 4
        rows = allowed_rows if allowed_rows is not None else np.setdiff1d(
            np.arange(self.size), self.rows_of(np.fromiter(exclude or (), np.int64)))
        return self._exact_rows(q, k, rows)


def _files(folder: Path, emb: EmbeddingSet) -> dict[str, Path]:
    base = folder / f"set-{emb.set_id}"
    return {"manifest": base.with_suffix(".json"), "hnsw": base.with_suffix(".hnsw"),
            "keys": Path(f"{base}.keys.npy"), "vectors": Path(f"{base}.vectors.npy")}


def read_manifest(catalog_path: Path, emb: EmbeddingSet) -> dict[str, Any] | None:
    path = _files(index_dir(catalog_path), emb)["manifest"]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def staleness(cat: Catalog, emb: EmbeddingSet, exact_threshold: int = EXACT_THRESHOLD) -> str | None:
    """Why the persisted index of ``emb`` cannot be used as it is (``None``: it is current, or
    the set is small enough to be searched exactly without one)."""
    manifest = read_manifest(cat.path, emb)
    state = SetState.of(cat, emb)
    if state.count <= exact_threshold:
        return None
    if manifest is None:
        return "no index built yet"
    if manifest.get("version") != MANIFEST_VERSION or manifest.get("identity") != comparable_identity(emb.identity):
        return "built by another version or for another model"
    if manifest.get("catalog") != state.catalog:
        return "built for another catalog file at this path"
    if (manifest["count"], manifest["fingerprint"], manifest["generation"]) != (
            state.count, str(state.fingerprint), state.generation):
        return (f"the set changed since it was built ({manifest['count']} vectors then, "
                f"{state.count} now)")
    return None


def _save(folder: Path, emb: EmbeddingSet, index: VectorIndex, seconds: float) -> None:
    """Persist ``index`` (unique temporary names, then renames, the manifest last); a folder that
    cannot be written (a read-only catalog's) only means the next process builds it again."""
    try:
        with _SAVE_LOCK:
            _write_files(folder, emb, index, seconds)
    except OSError:
        pass


def _write_files(folder: Path, emb: EmbeddingSet, index: VectorIndex, seconds: float) -> None:
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    files = _files(folder, emb)
    tag = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    tmp = {k: tag / p.name for k, p in files.items()}
    files["manifest"].unlink(missing_ok=True)  # no manifest, no index: a crash leaves it stale
    index.hnsw_.save_index(str(tmp["hnsw"]))
    with open(tmp["keys"], "wb") as fh:
        np.save(fh, index.keys_)
    with open(tmp["vectors"], "wb") as fh:
        np.save(fh, np.asarray(index.vectors_))
    for key in ("hnsw", "keys", "vectors"):
        os.replace(tmp[key], files[key])
    manifest = {"version": MANIFEST_VERSION, "set_id": emb.set_id, "set": emb.name,
                "identity": comparable_identity(emb.identity), "catalog": index.state_.catalog,
                "count": index.state_.count,
                "fingerprint": str(index.state_.fingerprint), "generation": index.state_.generation,
                "dim": emb.dim, "space": "ip", "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                "ef_search": HNSW_EF_SEARCH, "seconds": round(seconds, 3), "built_at": time.time()}
    tmp["manifest"].write_text(json.dumps(manifest, indent=1))
    os.replace(tmp["manifest"], files["manifest"])
    tag.rmdir()


def build_hnsw(vectors: np.ndarray, keys: np.ndarray, threads: int = -1) -> Any:
    """An hnswlib inner-product index of ``vectors`` ``(n, d)`` labelled by ``keys`` ``(n,)``."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=int(vectors.shape[1]))
    index.init_index(max_elements=max(len(vectors), 1), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION,
                     random_seed=100, allow_replace_deleted=False)
    if len(vectors):
        index.add_items(vectors, keys, num_threads=threads)
    index.set_ef(HNSW_EF_SEARCH)
    return index


def open_index(cat: Catalog, emb: EmbeddingSet, *, exact_threshold: int = EXACT_THRESHOLD,
               rebuild: bool = False) -> VectorIndex:
    """The search structure of ``emb``: exact in memory for a small set; otherwise the persisted
    hnswlib index, brought up to date (new vectors added) or rebuilt when stale."""
    state = SetState.of(cat, emb)
    if state.count <= exact_threshold:
        keys, _, vectors = load_vectors(cat, emb)
        return VectorIndex(emb, keys, vectors, state, how="exact")

    folder = index_dir(cat.path)
    files = _files(folder, emb)
    manifest = None if rebuild else read_manifest(cat.path, emb)
    usable = (manifest is not None and manifest.get("version") == MANIFEST_VERSION
              and manifest.get("identity") == comparable_identity(emb.identity)
              and manifest.get("catalog") == state.catalog
              and manifest["generation"] <= state.generation
              and all(files[k].exists() for k in ("hnsw", "keys", "vectors")))
    t0 = time.perf_counter()
    if usable:
        then = cat.query_rows(sql.state_up_to(emb.table, manifest["generation"]))[0]
        if (int(then[0]), str(int(then[1]))) == (manifest["count"], manifest["fingerprint"]):
            vi = _load(files, emb, state, manifest)
            if vi is not None:
                if state.generation != manifest["generation"]:
                    _add_new(cat, vi, manifest["generation"])
                    vi.how_ = "updated"
                    _save(folder, emb, vi, time.perf_counter() - t0)
                return vi
    keys, _, vectors = load_vectors(cat, emb)
    vi = VectorIndex(emb, keys, vectors, state, build_hnsw(vectors, keys), how="built")
    _save(folder, emb, vi, time.perf_counter() - t0)
    return vi


def _load(files: dict[str, Path], emb: EmbeddingSet, state: SetState, manifest: dict[str, Any]
          ) -> VectorIndex | None:
    """The persisted index, or None when its files disagree with the manifest (read while
    another process was replacing them): the caller rebuilds."""
    import hnswlib

    try:
        with _SAVE_LOCK:
            index = hnswlib.Index(space="ip", dim=emb.dim)
            index.load_index(str(files["hnsw"]), max_elements=max(state.count, manifest["count"]))
            keys = np.load(files["keys"])
            vectors = np.load(files["vectors"])
    except (OSError, RuntimeError, ValueError):
        return None
    if not (len(keys) == len(vectors) == index.get_current_count() == manifest["count"]):
        return None
    return VectorIndex(emb, keys, vectors, state, index, how="loaded")


def _add_new(cat: Catalog, vi: VectorIndex, after_generation: int) -> None:
    """Add (or replace) the vectors written after ``after_generation``, in the index and arrays."""
    keys, _, vectors = load_vectors(cat, vi.emb, after_generation)
    if not len(keys):
        return
    vi.hnsw_.resize_index(max(vi.hnsw_.get_max_elements(), vi.size + len(keys)))
    vi.hnsw_.add_items(vectors, keys)
    all_keys = np.concatenate([vi.keys_, keys])
    all_vecs = np.concatenate([np.asarray(vi.vectors_), vectors])
    _, last = np.unique(all_keys[::-1], return_index=True)  # a replaced vector: keep the new one
    keep = np.sort(len(all_keys) - 1 - last)
    order = np.argsort(all_keys[keep], kind="stable")
    vi.keys_ = all_keys[keep][order]
    vi.vectors_ = all_vecs[keep][order]
