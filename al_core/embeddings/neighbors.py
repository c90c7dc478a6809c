"""From one set's nearest neighbours: near-duplicate pairs above a similarity threshold, and a
kNN-distance outlier score (far from its nearest neighbours = unusual)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from al_core.db.catalog import Catalog
from al_core.embeddings.index import VectorIndex, exact_search, knn_all
from al_core.embeddings.search import ids_for_keys

#: Neighbours an outlier score averages over.
OUTLIER_K = 10
#: Default cosine similarity from which two samples count as near duplicates.
NEAR_DUPLICATE_SIMILARITY = 0.97
_BLOCK = 2048


def knn(index: VectorIndex, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's ``k`` nearest others: ``(neighbour rows (n, k), cosine similarities (n, k))``.

    Exact in blocks for a set searched exactly; through hnswlib (batched) above the threshold.
    """
    n = index.size
    k = min(int(k), n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    if index.hnsw_ is None:
        rows = np.empty((n, k), np.int64)
        sims = np.empty((n, k), np.float32)
        vectors = np.asarray(index.vectors_)
        for start in range(0, n, _BLOCK):
            block = vectors[start:start + _BLOCK]
            top, score = exact_search(vectors, block, k + 1)
            for i in range(len(block)):  # drop the vector itself, wherever ties put it
                keep = top[i] != start + i
                rows[start + i] = top[i][keep][:k]
                sims[start + i] = score[i][keep][:k]
        return rows, sims
    labels, dists = knn_all(index, k + 1)
    rows = np.searchsorted(index.keys_, labels)
    # the vector itself moves last (it may be missing among ties: then the k+1-th goes)
    order = np.argsort(rows == np.arange(n)[:, None], axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(rows, order, axis=1),
            np.take_along_axis(1.0 - dists, order, axis=1).astype(np.float32))


def outlier_scores(cat: Catalog, index: VectorIndex, k: int = OUTLIER_K) -> pd.DataFrame:
    """``sample_id``, ``outlier_score`` (mean cosine distance to the ``k`` nearest others),
    highest first."""
    _, sims = knn(index, k)
    score = 1.0 - sims.mean(axis=1) if sims.shape[1] else np.zeros(index.size)
    order = np.argsort(-score, kind="stable")
    return pd.DataFrame({"sample_id": ids_for_keys(cat, index.keys_[order]),
                         "outlier_score": np.round(score[order].astype(float), 6)})


def near_duplicate_pairs(cat: Catalog, index: VectorIndex, threshold: float = NEAR_DUPLICATE_SIMILARITY,
                         k: int = 10) -> pd.DataFrame:
    """Pairs ``sample_a < sample_b`` whose cosine similarity is at least ``threshold`` (among
    each one's ``k`` nearest), most similar first: ``sample_a``, ``sample_b``, ``similarity``."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], not {threshold}")
    rows, sims = knn(index, k)
    a = np.repeat(np.arange(index.size), rows.shape[1])
    b = rows.ravel()
    s = sims.ravel()
    hit = s >= threshold
    a, b, s = a[hit], b[hit], s[hit]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = pd.DataFrame({"lo": lo, "hi": hi, "similarity": s}).drop_duplicates(["lo", "hi"])
    pairs = pairs.sort_values(["similarity", "lo", "hi"], ascending=[False, True, True], kind="stable")
    ids_lo = ids_for_keys(cat, index.keys_[pairs["lo"].to_numpy()])
    ids_hi = ids_for_keys(cat, index.keys_[pairs["hi"].to_numpy()])
    first = [min(x, y) for x, y in zip(ids_lo, ids_hi, strict=True)]
    second = [max(x, y) for x, y in zip(ids_lo, ids_hi, strict=True)]
    return pd.DataFrame({"sample_a": first, "sample_b": second,
                         "similarity": np.round(pairs["similarity"].to_numpy().astype(float), 6)})
