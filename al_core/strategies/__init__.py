"""Selection strategies: small pure functions on arrays that score a pool, then pick a batch.

Conventions (modAL's "score, then pick", typed):

- ``probs`` is ``(n, c)``: one row of class probabilities per pool sample; ``vectors`` is
  ``(n, d)`` (embeddings; cosine geometry, so rows are L2-normalized by the caller or here).
- A *score* function returns ``(n,)`` floats where **higher means pick first**.
- A *pick* function returns ``(b,)`` int64 row indices into the pool, ``b = min(budget, n)``,
  distinct, in pick order (rank 1 first). Ties are broken by an explicit ``rng`` so the same seed
  gives the same batch; no function reads global random state.
- Bad arguments raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

#: Probabilities are clipped to this before a logarithm (0 · log 0 is taken as 0).
LOG_EPS = 1e-12
#: TypiClust's cluster cap (as in its authors' code): a large labeled set would otherwise ask
#: k-means for thousands of clusters.
TYPICLUST_MAX_CLUSTERS = 500


# ------------------------------------------------------------------------------------ checks
def _probs(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-d array (samples, classes), got shape {p.shape}")
    if not np.isfinite(p).all():
        row = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise ValueError(f"{name} row {row} holds a NaN or infinite probability")
    return p


def _budget(budget: int, n: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
    return min(int(budget), n)


def _vectors(vectors: np.ndarray, name: str = "vectors") -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (samples, dim), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def _rng(rng: np.random.Generator) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy Generator (np.random.default_rng(seed))")
    return rng


# ------------------------------------------------------------------------------------ scores
def least_confidence(probs: np.ndarray) -> np.ndarray:
    """``1 − max_c p_c`` per row ``(n,)``."""
    return 1.0 - _probs(probs).max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """``1 − (p₁ − p₂)`` per row ``(n,)``: the smallest gap between the two most probable
    classes scores highest (a one-class run has gap 1, score 0)."""
    p = _probs(probs)
    if p.shape[1] == 1:
        return np.zeros(len(p))
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, LOG_EPS, None))).sum(axis=axis)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy ``−Σ_c p_c ln p_c`` per row ``(n,)`` (nats; 0 · ln 0 = 0)."""
    return _entropy(_probs(probs))


def vote_entropy(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Vote entropy ``−Σ_c (V_c/m) ln (V_c/m)`` of ``votes`` ``(m, n)``: the predicted class index
    of each of ``m`` models (runs or stochastic passes) for each of ``n`` samples."""
    v = np.asarray(votes)
    if v.ndim != 2 or v.shape[0] < 1:
        raise ValueError(f"votes must be a 2-d array (models, samples), got shape {v.shape}")
    if not np.issubdtype(v.dtype, np.integer) or (v.size and (v.min() < 0 or v.max() >= n_classes)):
        raise ValueError(f"votes must be class indices in [0, {n_classes})")
    m, n = v.shape
    counts = np.zeros((n, n_classes))
    np.add.at(counts, (np.tile(np.arange(n), m), v.ravel()), 1.0)
    return _entropy(counts / m)


def bald(probs_stack: np.ndarray) -> np.ndarray:
    """BALD, the mutual information ``H[mean_m p] − mean_m H[p]`` per sample ``(n,)`` of
    ``probs_stack`` ``(m, n, c)``: ``m`` runs or stochastic passes over the same samples."""
    s = np.asarray(probs_stack, dtype=np.float64)
    if s.ndim != 3 or s.shape[0] < 1:
        raise ValueError(f"probs_stack must be a 3-d array (models, samples, classes), got shape {s.shape}")
    for i in range(s.shape[0]):
        _probs(s[i], f"probs_stack[{i}]")
    return np.maximum(_entropy(s.mean(axis=0)) - _entropy(s).mean(axis=0), 0.0)


SCORES = {"least-confidence": least_confidence, "margin": margin, "entropy": entropy}


# ------------------------------------------------------------------------------------- picks
def random_pick(n: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """``budget`` distinct rows of ``n`` drawn uniformly without replacement."""
    return _rng(rng).permutation(int(n))[: _budget(budget, int(n))].astype(np.int64)


def top_scores(scores: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of the ``budget`` highest ``scores`` ``(n,)``, highest first; equal scores in a
    random order drawn from ``rng`` (not the pool's order, which would favour early rows)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or np.isnan(s).any():
        raise ValueError("scores must be a 1-d array without NaN")
    b = _budget(budget, len(s))
    tie = _rng(rng).permutation(len(s))
    return np.lexsort((tie, -s))[:b].astype(np.int64)


def _min_sq_dist(vectors: np.ndarray, centers: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Squared distance from each row of ``vectors`` to its nearest row of ``centers`` (unit
    rows: ``2 − 2 cos``), chunked to bound memory."""
    out = np.full(len(vectors), np.inf, dtype=np.float32)
    for start in range(0, len(centers), chunk):
        sims = vectors @ centers[start:start + chunk].T
        np.minimum(out, 2.0 - 2.0 * sims.max(axis=1), out=out)
    return np.maximum(out, 0.0)


def k_center_greedy(vectors: np.ndarray, budget: int, rng: np.random.Generator,
                    labeled: np.ndarray | None = None) -> np.ndarray:
    """Core-set selection (Sener & Savarese 2018): repeatedly pick the pool row farthest from
    every center so far, ``argmax_i min_j ‖x_i − c_j‖``. Centers start as ``labeled`` ``(m, d)``
    (already labeled samples); with none, the first pick is drawn from ``rng``. The result's
    covering radius is at most twice the optimal one. ``vectors`` ``(n, d)``; cosine geometry."""
    return k_center(vectors, budget, rng, labeled)[0]


def k_center(vectors: np.ndarray, budget: int, rng: np.random.Generator,
             labeled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`k_center_greedy`'s picks ``(b,)`` and each pick's distance to the nearest center
    before it ``(b,)`` (NaN for a first pick drawn at random)."""
    v = _vectors(vectors)
    b = _budget(budget, len(v))
    picks = np.empty(b, dtype=np.int64)
    radii = np.full(b, np.nan)
    if b == 0:
        return picks, radii
    if labeled is not None and len(labeled):
        dist = _min_sq_dist(v, _vectors(labeled, "labeled"))
        start = 0
    else:
        picks[0] = _rng(rng).integers(len(v))
        dist = _min_sq_dist(v, v[picks[:1]])
        start = 1
    for i in range(start, b):
        picks[i] = int(np.argmax(dist))
        radii[i] = np.sqrt(max(float(dist[picks[i]]), 0.0))
        np.minimum(dist, np.maximum(2.0 - 2.0 * (v @ v[picks[i]]), 0.0), out=dist)
        dist[picks[i]] = -1.0  # never again, even among exact duplicates
    return picks, radii


def covering_radius(vectors: np.ndarray, centers: np.ndarray) -> float:
    """``max_i min_j ‖x_i − c_j‖`` (unit rows): how far the farthest row is from every center."""
    return float(np.sqrt(_min_sq_dist(_vectors(vectors), _vectors(centers, "centers")).max()))


def hybrid(scores: np.ndarray, vectors: np.ndarray, budget: int, rng: np.random.Generator,
           top_m: int | None = None, labeled: np.ndarray | None = None) -> np.ndarray:
    """Uncertainty, then diversity: the ``top_m`` highest ``scores`` (default ``10 × budget``),
    among which k-center greedy picks ``budget`` (centers seeded with ``labeled``)."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(vectors):
        raise ValueError(f"scores ({len(s)}) and vectors ({len(vectors)}) differ in length")
    b = _budget(budget, len(s))
    m = max(b, 10 * b if top_m is None else int(top_m))
    candidates = top_scores(s, m, rng)
    return candidates[k_center_greedy(np.asarray(vectors)[candidates], b, rng, labeled)]


def typiclust(vectors: np.ndarray, budget: int, rng: np.random.Generator,
              labeled: np.ndarray | None = None, neighbors: int = 20) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022) for cold starts: cluster pool + labeled rows into
    ``min(len(labeled) + budget, TYPICLUST_MAX_CLUSTERS)`` clusters (k-means), then, largest cluster first among those holding
    no labeled row, pick its most typical row: typicality = 1 / mean distance to its
    ``min(neighbors, size − 1)`` nearest rows in the cluster. Clusters are re-used (largest
    uncovered first, then largest) if there are fewer uncovered clusters than the budget."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    v = _vectors(vectors)
    lab = np.zeros((0, v.shape[1]), np.float32) if labeled is None else _vectors(labeled, "labeled")
    b = _budget(budget, len(v))
    if b == 0:
        return np.empty(0, np.int64)
    both = np.vstack([v, lab])
    k = min(len(both), len(lab) + b, TYPICLUST_MAX_CLUSTERS)
    seed = int(_rng(rng).integers(2**31 - 1))
    model = (KMeans(k, n_init=1, random_state=seed) if len(both) <= 20_000
             else MiniBatchKMeans(k, n_init=1, random_state=seed, batch_size=4096))
    assign = model.fit_predict(both)
    pool_assign, covered = assign[: len(v)], set(assign[len(v):].tolist())
    sizes = np.bincount(pool_assign, minlength=k)
    order = [c for c in sorted(range(k), key=lambda c: (c in covered, -sizes[c], c)) if sizes[c]]
    ranked: dict[int, np.ndarray] = {}  # a cluster's rows, most typical first (computed when needed)
    picks: list[int] = []
    for r in range(b):  # round r takes each cluster's r-th most typical row
        for c in order:
            if c not in ranked:
                rows = np.flatnonzero(pool_assign == c)
                ranked[c] = rows[np.argsort(-_typicality(v[rows], neighbors), kind="stable")]
            if r < len(ranked[c]):
                picks.append(int(ranked[c][r]))
                if len(picks) == b:
                    return np.array(picks, np.int64)
    return np.array(picks, np.int64)


def _typicality(rows: np.ndarray, neighbors: int, chunk: int = 256) -> np.ndarray:
    """``1 / mean distance to the nearest min(neighbors, n − 1) other rows`` ``(n,)`` of unit
    ``rows`` ``(n, d)``, in chunks of rows."""
    n = len(rows)
    if n == 1:
        return np.ones(1)
    k = min(neighbors, n - 1)
    out = np.empty(n)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d = np.sqrt(np.maximum(2.0 - 2.0 * (rows[start:stop] @ rows.T), 0.0))
        d[np.arange(stop - start), np.arange(start, stop)] = np.inf
        out[start:stop] = 1.0 / (np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1) + 1e-12)
    return out


def badge(probs: np.ndarray, features: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding on the gradient embeddings
    ``g_i = (p_i − onehot(ŷ_i)) ⊗ h_i`` ``(n, c·f)`` of ``probs`` ``(n, c)`` and the model's
    penultimate ``features`` ``(n, f)``, ŷ = argmax p. The first pick is the largest gradient;
    each next one is drawn with probability ∝ D², its squared distance to the nearest pick so far
    (so confident rows, near 0, are rarely drawn, and a drawn row's duplicates never). When every
    row left is at distance 0, the rest is drawn uniformly."""
    p = _probs(probs)
    h = np.asarray(features, dtype=np.float64)
    if h.ndim != 2 or len(h) != len(p):
        raise ValueError(f"features must be (samples, dim) with {len(p)} rows, got shape {h.shape}")
    rng = _rng(rng)
    b = _budget(budget, len(p))
    if b == 0:
        return np.empty(0, np.int64)
    residual = p.copy()
    residual[np.arange(len(p)), p.argmax(axis=1)] -= 1.0
    grads = (residual[:, :, None] * h[:, None, :]).reshape(len(p), -1)
    sq = (grads ** 2).sum(axis=1)
    picks = [int(np.argmax(sq))]
    d2 = np.maximum(sq + sq[picks[0]] - 2.0 * grads @ grads[picks[0]], 0.0)
    d2[picks[0]] = 0.0
    while len(picks) < b:
        total = d2.sum()
        if total <= 0:
            rest = np.setdiff1d(np.arange(len(p)), picks)
            picks.extend(int(i) for i in rng.permutation(rest)[: b - len(picks)])
            break
        nxt = int(rng.choice(len(p), p=d2 / total))
        picks.append(nxt)
        np.minimum(d2, np.maximum(sq + sq[nxt] - 2.0 * grads @ grads[nxt], 0.0), out=d2)
        d2[nxt] = 0.0
    return np.array(picks, np.int64)


def balanced_quota(pool_groups: Sequence[Hashable], labeled_counts: Mapping[Hashable, int],
                   budget: int, rng: np.random.Generator) -> dict[Hashable, int]:
    """How many to pick per group so that labeled counts end as even as possible (water-filling):
    each pick goes to the group with the fewest labeled + picked so far that still has pool rows
    left; ties in a random order from ``rng``. Groups absent from the pool get nothing."""
    available: dict[Hashable, int] = {}
    for g in pool_groups:
        available[g] = available.get(g, 0) + 1
    b = _budget(budget, sum(available.values()))
    groups = list(available)
    tie = _rng(rng).permutation(len(groups))
    heap = [(int(labeled_counts.get(g, 0)), int(tie[i]), i) for i, g in enumerate(groups)]
    heapq.heapify(heap)
    quota = dict.fromkeys(groups, 0)
    for _ in range(b):
        level, t, i = heapq.heappop(heap)
        g = groups[i]
        quota[g] += 1
        if quota[g] < available[g]:
            heapq.heappush(heap, (level + 1, t, i))
    return {g: q for g, q in quota.items() if q}


def balanced(pool_groups: Sequence[Hashable], labeled_counts: Mapping[Hashable, int], budget: int,
             rng: np.random.Generator, scores: np.ndarray | None = None) -> np.ndarray:
    """Class or slice balance: :func:`balanced_quota` per group (a predicted class, a metadata
    slice), filled within each group by ``scores`` (highest first) or at random; rows are
    returned interleaved across groups, rarest-labeled group first."""
    groups = list(pool_groups)
    n = len(groups)
    s = np.zeros(n) if scores is None else np.asarray(scores, dtype=np.float64)
    if len(s) != n:
        raise ValueError(f"scores ({len(s)}) and pool_groups ({n}) differ in length")
    quota = balanced_quota(groups, labeled_counts, budget, rng)
    by_group: dict[Hashable, np.ndarray] = {}
    index = np.arange(n)
    codes = {g: i for i, g in enumerate(quota)}
    code_of = np.array([codes.get(g, -1) for g in groups])
    for g, q in quota.items():
        rows = index[code_of == codes[g]]
        by_group[g] = rows[top_scores(s[rows], q, rng)]
    order = sorted(quota, key=lambda g: (labeled_counts.get(g, 0), codes[g]))
    out: list[int] = []
    for r in range(max(quota.values(), default=0)):
        out.extend(int(by_group[g][r]) for g in order if r < len(by_group[g]))
    return np.array(out, np.int64)


def nearest_to_seeds(vectors: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Similarity-seeded score ``(n,)``: each pool row's highest cosine to any of ``seeds``
    ``(s, d)`` (the tagged or selected examples)."""
    v, s = _vectors(vectors), _vectors(seeds, "seeds")
    if len(s) == 0:
        raise ValueError("seeds is empty: tag or select at least one example")
    if s.shape[1] != v.shape[1]:
        raise ValueError(f"seeds have dimension {s.shape[1]}, vectors {v.shape[1]}")
    return 1.0 - _min_sq_dist(v, s) / 2.0


def drop_near_duplicates(vectors: np.ndarray, order: np.ndarray, threshold: float,
                         kept: np.ndarray | None = None) -> np.ndarray:
    """``order`` (rows in pick order) without every row whose cosine to an earlier kept row (or
    to a row of ``kept`` ``(m, d)``, e.g. other parts of the batch) is ≥ ``threshold``."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    v = _vectors(vectors)
    rows = np.asarray(order, np.int64)
    first = np.zeros((0, v.shape[1]), np.float32) if kept is None or not len(kept) else _vectors(kept, "kept")
    bank = np.empty((len(first) + len(rows), v.shape[1]), np.float32)
    bank[: len(first)] = first
    size = len(first)
    out: list[int] = []
    for i in rows:
        if size and float((bank[:size] @ v[i]).max()) >= threshold:
            continue
        out.append(int(i))
        bank[size] = v[i]
        size += 1
    return np.array(out, np.int64)
