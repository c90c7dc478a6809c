"""Batch recipes: one labeling budget split into parts, each filled by a strategy, in order,
without overlap, from the pool a recipe's exclusions leave; near-duplicates dropped in-batch.

A recipe in TOML (``--recipe FILE.toml``)::

    dedupe = 0.97                 # cosine; pairs at or above it keep only the first (needs a set)
    exclude_splits = ["val", "test"]
    [[part]]
    strategy = "hybrid"
    share = 0.5                   # of the budget (or: count = 200)
    top_m = 2000
    [[part]]
    strategy = "seeded"
    share = 0.3
    tag = "green-cone-night"
    [[part]]
    strategy = "random"
    share = 0.2

Same recipe + seed + catalog → the same batch: the pool is read in ``sample_id`` order and every
random draw comes from one ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from al_core import strategies as st
from al_core.db.catalog import Catalog
from al_core.errors import AlExplorerError
from al_core.strategies import sql
from al_core.view.filters import Filter
from al_core.view.sql import RunRef

#: name → (what it reads, its parameters and their defaults, one line of what it does)
STRATEGIES: dict[str, tuple[frozenset[str], dict[str, Any], str]] = {
    "random": (frozenset(), {}, "uniform without replacement (an unbiased estimate)"),
    "least-confidence": (frozenset({"run"}), {}, "1 − max p"),
    "margin": (frozenset({"probs"}), {}, "smallest p1 − p2 first"),
    "entropy": (frozenset({"probs"}), {}, "−Σ p ln p"),
    "vote-entropy": (frozenset(), {"runs": None}, "disagreement of the top-1 votes of several runs"),
    "bald": (frozenset(), {"runs": None}, "H[mean p] − mean H[p] over several runs"),
    "k-center": (frozenset({"set"}), {}, "core-set: farthest from everything labeled or picked"),
    "typiclust": (frozenset({"set"}), {"neighbors": 20}, "most typical sample of each uncovered cluster"),
    "badge": (frozenset({"probs"}), {"features": None}, "k-means++ on gradient embeddings (p − onehot) ⊗ features"),
    "hybrid": (frozenset({"probs", "set"}), {"top_m": None, "score": "entropy"},
               "the top-M most uncertain, then k-center among them"),
    "class-balance": (frozenset({"run"}), {}, "predicted classes rare in the labeled set first"),
    "slice-balance": (frozenset(), {"field": None}, "values of a metadata field rare in the labeled set first"),
    "seeded": (frozenset({"set"}), {"tag": None, "ids": None}, "nearest unlabeled neighbours of tagged examples"),
    "label-errors": (frozenset({"probs"}), {}, "labeled samples whose label the run contradicts, to re-label"),
    "draft": (frozenset(), {}, "the hand-picked next batch (the cart), in the order added"),
}
NAMES = tuple(STRATEGIES)
#: Splits a batch never draws from unless the recipe says otherwise (evaluation data).
EVAL_SPLITS = ("val", "valid", "validation", "test")
DEDUPE_DEFAULT = 0.97
#: Most labeled samples used as k-center / hybrid / TypiClust centers (an evenly spaced subset).
CENTERS_MAX = 20_000
#: Vector reads up to this many ids are remembered for the rest of a selection.
MEMO_MAX = 50_000
SELECTION_COLUMNS = ["rank", "sample_id", "part", "strategy", "score", "part_rank"]


class RecipeError(AlExplorerError, ValueError):
    """A recipe or a strategy that cannot run, in words naming the file, part and field."""


@dataclass(frozen=True)
class Part:
    """One part of a recipe: a strategy with its parameters and its share or count of the budget."""

    strategy: str
    share: float | None = None
    count: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy}
        if self.share is not None:
            out["share"] = self.share
        if self.count is not None:
            out["count"] = self.count
        return {**out, **dict(self.params)}


@dataclass(frozen=True)
class Recipe:
    """Parts filled in order, and the exclusions that shape the pool."""

    parts: tuple[Part, ...]
    dedupe: float | None = DEDUPE_DEFAULT
    exclude_labeled: bool = True
    exclude_open_batches: bool = True
    exclude_splits: tuple[str, ...] = EVAL_SPLITS
    exclude_tag: str | None = "exclude"

    @classmethod
    def single(cls, strategy: str, **params: Any) -> Recipe:
        """A one-part recipe: the whole budget to ``strategy``."""
        return cls.from_dict({"part": [{"strategy": strategy, "share": 1.0, **params}]}, "--strategy")

    @classmethod
    def from_toml(cls, text: str, source: str = "recipe") -> Recipe:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise RecipeError(f"{source}: not valid TOML ({err})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "recipe") -> Recipe:
        known = {"part", "dedupe", "exclude_labeled", "exclude_open_batches", "exclude_splits", "exclude_tag"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        raw_parts = data.get("part")
        if not isinstance(raw_parts, list) or not raw_parts:
            raise RecipeError(f"{source}: needs at least one [[part]] with a strategy")
        parts = tuple(_part(p, f"{source}: part {i + 1}") for i, p in enumerate(raw_parts))
        dedupe = data.get("dedupe", DEDUPE_DEFAULT)
        if dedupe is False:
            dedupe = None
        if dedupe is not None and (isinstance(dedupe, bool) or not isinstance(dedupe, (int, float))
                                   or not 0 < dedupe <= 1):
            raise RecipeError(f"{source}: dedupe must be a cosine in (0, 1] (or false), got {dedupe!r}")
        splits = data.get("exclude_splits", EVAL_SPLITS)
        if not isinstance(splits, list | tuple) or not all(isinstance(s, str) for s in splits):
            raise RecipeError(f"{source}: exclude_splits must be a list of split names")
        tag = data.get("exclude_tag", "exclude")
        if tag is not None and not isinstance(tag, str):
            raise RecipeError(f"{source}: exclude_tag must be a tag name")
        for key in ("exclude_labeled", "exclude_open_batches"):
            if not isinstance(data.get(key, True), bool):
                raise RecipeError(f"{source}: {key} must be true or false")
        shares = [p.share for p in parts if p.share is not None]
        if sum(shares) > 1 + 1e-9:
            raise RecipeError(f"{source}: the parts' shares add up to {sum(shares):g}, more than 1")
        return cls(parts, None if dedupe is None else float(dedupe),
                   bool(data.get("exclude_labeled", True)), bool(data.get("exclude_open_batches", True)),
                   tuple(splits), tag or None)

    def to_dict(self) -> dict[str, Any]:
        return {"part": [p.to_dict() for p in self.parts], "dedupe": self.dedupe if self.dedupe else False,
                "exclude_labeled": self.exclude_labeled, "exclude_open_batches": self.exclude_open_batches,
                "exclude_splits": list(self.exclude_splits), "exclude_tag": self.exclude_tag or ""}

    def counts(self, budget: int) -> list[int]:
        """Samples per part: counts as given, then shares of the budget left, by largest remainder
        (ties to the earlier part); a budget smaller than the counts fills the earlier parts first."""
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise RecipeError(f"budget must be a whole number >= 0, got {budget!r}")
        out = [0] * len(self.parts)
        left = budget
        for i, p in enumerate(self.parts):
            if p.count is not None:
                out[i] = min(p.count, left)
                left -= out[i]
        shared = [(i, p.share) for i, p in enumerate(self.parts) if p.share is not None]
        exact = [(i, s * left) for i, s in shared]
        for i, x in exact:
            out[i] = math.floor(x + 1e-9)
        spare = round(sum(x for _, x in exact)) - sum(out[i] for i, _ in exact)
        for i, _ in sorted(exact, key=lambda t: (-(t[1] - math.floor(t[1] + 1e-9)), t[0]))[:max(spare, 0)]:
            out[i] += 1
        return out


def _part(raw: Any, where: str) -> Part:
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{where}: must be a table with a strategy")
    name = raw.get("strategy")
    if name not in STRATEGIES:
        raise RecipeError(f"{where}: unknown strategy {name!r} (known: {', '.join(NAMES)})")
    share, count = raw.get("share"), raw.get("count")
    if (share is None) == (count is None):
        raise RecipeError(f"{where} ({name}): give exactly one of share (of the budget) or count")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1):
        raise RecipeError(f"{where} ({name}): share must be in (0, 1], got {share!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise RecipeError(f"{where} ({name}): count must be a whole number >= 0, got {count!r}")
    allowed = STRATEGIES[name][1]
    params = {k: v for k, v in raw.items() if k not in ("strategy", "share", "count")}
    for key in params:
        if key not in allowed:
            hint = f"its parameters: {', '.join(allowed)}" if allowed else "it takes no parameters"
            raise RecipeError(f"{where} ({name}): unknown parameter {key!r} ({hint})")
    return Part(name, None if share is None else float(share), count, params)


# ----------------------------------------------------------------------------- the pool
class _Context:
    """What strategies read, loaded once per selection and only when a part needs it."""

    def __init__(self, cat: Catalog, ids: np.ndarray, run: RunRef | None, set_name: str | None) -> None:
        self.cat, self.ids, self.run, self.set_name = cat, ids, run, set_name
        self._cache: dict[str, Any] = {}
        #: ids kept out of every part that draws outside the pool (open batches, the exclude tag)
        self.excluded: set[str] = set()
        #: the pool's query (``sample_id, sample_key`` in ``sample_id`` order)
        self.pool_query: tuple[str, list[Any]] = (sql.EMPTY_POOL, [])

    def predictions(self, run: RunRef | None = None
                    ) -> tuple[list[str], np.ndarray | None, np.ndarray, np.ndarray]:
        """``(classes, probs (n, c) or None for a top-1 run, pred labels (n,), confidence (n,))``
        for the pool; rows without a prediction have label None and NaN rows."""
        run = run or self.run
        if run is None:
            raise RecipeError("this strategy needs a model run: import predictions or pass --run")
        key = f"pred:{run.run_id}"
        if key in self._cache:
            return self._cache[key]
        rows = self.cat.query_rows(*sql.run_classes(run.run_id))
        classes, has_probs = list(rows[0][0]), bool(rows[0][1])
        with self.cat.read() as cur:  # the pool's own query joined by the integer key (no id list sent)
            text, params = sql.pool_predictions(self.pool_query, run.run_id)
            table = cur.sql(text, params=params).to_arrow_table()
        labels = _text_array(table.column("pred_label"))
        conf = table.column("confidence").to_numpy(zero_copy_only=False).astype(np.float64)
        probs = _prob_matrix(table.column("probs").combine_chunks(), len(classes)) if has_probs else None
        self._cache[key] = (classes, probs, labels, conf)
        return self._cache[key]

    def vectors_of(self, ids: Sequence[str], set_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(has (n,) bool, vectors (has.sum(), d))`` of ``ids`` in an embedding set (the
        recipe's by default), read for just those ids; small reads are remembered."""
        from al_core import embeddings

        name = set_name or self.set_name
        if not name:
            raise RecipeError("this strategy needs an embedding set: pass --set (al-explorer embed makes one)")
        if f"set:{name}" not in self._cache:
            self._cache[f"set:{name}"] = embeddings.get_set(self.cat, name)
        emb = self._cache[f"set:{name}"]
        memo: dict[str, np.ndarray | None] = self._cache.setdefault(f"memo:{name}", {})
        ids = list(ids)
        if len(ids) > MEMO_MAX:
            return embeddings.vectors_matrix(self.cat, emb, ids)
        missing = [i for i in ids if i not in memo]
        if missing:
            has, vecs = embeddings.vectors_matrix(self.cat, emb, missing)
            rows = iter(vecs)
            for i, h in zip(missing, has, strict=True):
                memo[i] = next(rows) if h else None
        found = [memo[i] for i in ids]
        has = np.array([v is not None for v in found], dtype=bool)
        vecs = np.array([v for v in found if v is not None], dtype=np.float32).reshape(int(has.sum()), emb.dim)
        return has, vecs

    def labeled_ids(self) -> list[str]:
        if "labeled" not in self._cache:
            self._cache["labeled"] = [r[0] for r in self.cat.query_rows(sql.LABELED_IDS)]
        return self._cache["labeled"]


def _text_array(column: Any) -> np.ndarray:
    """An Arrow string column as a numpy object array (None for NULL), through its dictionary:
    repeated values (class names) are decoded once."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column.combine_chunks() if hasattr(column, "combine_chunks") else column)
    values = np.array(encoded.dictionary.to_pylist() + [None], dtype=object)
    codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return values[codes]


def _prob_matrix(column: Any, k: int) -> np.ndarray:
    """``(n, k)`` float64 from an Arrow list column; rows missing or of another length are NaN."""
    import pyarrow.compute as pc

    n = len(column)
    out = np.full((n, k), np.nan)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    ok = np.nan_to_num(lengths.astype(np.float64), nan=-1) == k
    if ok.all() and column.null_count == 0:
        return column.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(n, k)
    for i in np.flatnonzero(ok):
        out[i] = column[int(i)].values.to_numpy(zero_copy_only=False)
    return out


@dataclass
class _State:
    """Pool rows still free, and what the batch holds so far."""

    free: np.ndarray  # (n,) bool over the pool
    picked_ids: list[str] = field(default_factory=list)
    #: proposed but dropped as a near-duplicate of an earlier pick: not proposed again
    rejected: set[str] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)


def select_batch(cat: Catalog, recipe: Recipe, budget: int, *, run: RunRef | None = None,
                 set_name: str | None = None, seed: int = 0, flt: Filter | None = None) -> pd.DataFrame:
    """The batch a recipe picks: columns :data:`SELECTION_COLUMNS` in pick order (``rank`` 1
    first; ``part`` 1-based; ``score`` the strategy's own number, NaN for random picks). A part
    that cannot fill its share (a draft shorter than its count, a strategy out of candidates)
    passes the rest to the next part; the batch is shorter than the budget only when the last
    parts run out too.

    ``flt`` (a sidebar filter) narrows the pool before the recipe's exclusions. Raises
    RecipeError when a part's strategy lacks what it reads (a run, probabilities, a set).
    """
    counts = recipe.counts(budget)
    flt = flt or Filter()
    fields = cat.metadata_fields()
    text, params = sql.pool(flt, fields, flt.run, labeled=recipe.exclude_labeled,
                            open_batches=recipe.exclude_open_batches, splits=recipe.exclude_splits,
                            tag=recipe.exclude_tag, columns="s.sample_id, s.sample_key")
    with cat.read() as cur:
        ids = _text_array(cur.sql(text, params=params).to_arrow_table().column("sample_id"))
    ctx = _Context(cat, ids, run, set_name)
    ctx.pool_query = (text, params)
    ctx.excluded = {r[0] for r in cat.query_rows(*sql.excluded(recipe.exclude_open_batches, recipe.exclude_tag))}
    state = _State(free=np.ones(len(ids), dtype=bool))
    rng = np.random.default_rng(seed)
    dedupe = recipe.dedupe if set_name else None
    carry = 0  # what a part could not fill (a short draft, a small pool) passes to the next
    for number, (part, need) in enumerate(zip(recipe.parts, counts, strict=True), start=1):
        carry = need + carry - _fill_part(ctx, state, part, number, need + carry, rng, dedupe)
    out = pd.DataFrame(state.rows, columns=[c for c in SELECTION_COLUMNS if c != "rank"])
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _fill_part(ctx: _Context, state: _State, part: Part, number: int, need: int,
               rng: np.random.Generator, dedupe: float | None) -> int:
    """Pick up to ``need`` for ``part``; returns how many it got."""
    got = 0
    for _ in range(6):  # near-duplicates removed: ask again for the shortfall
        if got >= need:
            break
        ids, scores = _pick(ctx, state, part, need - got, rng)
        if not len(ids):
            break
        # the hand-picked draft is kept whole: the user chose each sample
        keep = set(ids) if part.strategy == "draft" else _not_near_duplicates(ctx, state, ids, dedupe)
        for i, score in zip(ids, scores, strict=True):
            _release(ctx, state, i)
            if i not in keep:
                state.rejected.add(i)
            else:
                got += 1
                state.picked_ids.append(i)
                state.rows.append({"sample_id": i, "part": number, "strategy": part.strategy,
                                   "score": score, "part_rank": got})
    return got


def _release(ctx: _Context, state: _State, sample_id: str) -> None:
    """Take a sample out of the free pool (picked, or dropped as a near-duplicate)."""
    if "pos" not in ctx._cache:  # built once: sample_id → pool row
        ctx._cache["pos"] = dict(zip(ctx.ids.tolist(), range(len(ctx.ids)), strict=True))
    row = ctx._cache["pos"].get(sample_id)
    if row is not None:
        state.free[row] = False


def _not_near_duplicates(ctx: _Context, state: _State, ids: list[str], dedupe: float | None) -> set[str]:
    if dedupe is None:
        return set(ids)
    has, vecs = ctx.vectors_of(ids)
    kept_has, kept = ctx.vectors_of(state.picked_ids)
    order = st.drop_near_duplicates(vecs, np.arange(len(vecs)), dedupe, kept=kept if len(kept) else None)
    with_vec = [i for i, h in zip(ids, has, strict=True) if h]
    return {with_vec[j] for j in order.tolist()} | {i for i, h in zip(ids, has, strict=True) if not h}


def _pick(ctx: _Context, state: _State, part: Part, need: int, rng: np.random.Generator
          ) -> tuple[list[str], list[float]]:
    """``need`` more ids for ``part`` from the free pool (or its own candidates), with scores."""
    name, params = part.strategy, dict(part.params)
    if name == "draft":
        taken = set(state.picked_ids) | state.rejected
        ids = [r[0] for r in ctx.cat.query_rows(sql.DRAFT_ITEMS) if r[0] not in taken][:need]
        return ids, [math.nan] * len(ids)
    if name == "label-errors":
        return _label_errors(ctx, state, need, ctx.excluded)
    free = np.flatnonzero(state.free)
    if name == "random":
        rows = free[st.random_pick(len(free), need, rng)]
        return ctx.ids[rows].tolist(), [math.nan] * len(rows)
    if name in ("least-confidence", "margin", "entropy"):
        scores, ok = _uncertainty(ctx, name, free)
        top = st.top_scores(scores[ok], need, rng)
        return ctx.ids[free[ok][top]].tolist(), scores[ok][top].tolist()
    if name in ("vote-entropy", "bald"):
        scores, ok = _committee(ctx, name, free, params.get("runs"))
        top = st.top_scores(scores[ok], need, rng)
        return ctx.ids[free[ok][top]].tolist(), scores[ok][top].tolist()
    if name in ("class-balance", "slice-balance"):
        return _balance(ctx, name, free, need, rng, params.get("field"))
    if name == "badge":
        return _badge(ctx, free, need, rng, params.get("features"))
    if name == "hybrid":
        return _hybrid(ctx, state, free, need, rng, params)
    rows, vecs = _with_vectors(ctx, free)
    if name == "seeded":
        seeds = _seed_vectors(ctx, params)
        scores = st.nearest_to_seeds(vecs, seeds)
        top = st.top_scores(scores, need, rng)
        return ctx.ids[rows[top]].tolist(), scores[top].tolist()
    centers = _centers(ctx, state)
    if name == "k-center":
        pick, radii = st.k_center(vecs, need, rng, labeled=centers)
        return ctx.ids[rows[pick]].tolist(), radii.tolist()
    if name == "typiclust":
        pick = st.typiclust(vecs, need, rng, labeled=centers, neighbors=int(params.get("neighbors", 20)))
        return ctx.ids[rows[pick]].tolist(), [math.nan] * len(pick)
    raise RecipeError(f"unknown strategy {name!r}")


def _hybrid(ctx: _Context, state: _State, free: np.ndarray, need: int, rng: np.random.Generator,
            params: dict[str, Any]) -> tuple[list[str], list[float]]:
    """The ``top_m`` most uncertain free rows (default 10 × need), then k-center among those
    with a vector; only the candidates' vectors are read."""
    score_name = params.get("score", "entropy")
    if score_name not in st.SCORES:
        raise RecipeError(f"hybrid: score must be one of {', '.join(st.SCORES)}, not {score_name!r}")
    scores, ok = _uncertainty(ctx, score_name, free)
    top_m = params.get("top_m")
    m = max(need, 10 * need if top_m is None else int(top_m))
    top = st.top_scores(scores[ok], m, rng)
    cand = free[ok][top]
    rows, vecs = _with_vectors(ctx, cand)
    cand_scores = scores[ok][top][np.isin(cand, rows)]
    pick = st.k_center_greedy(vecs, need, rng, labeled=_centers(ctx, state))
    return ctx.ids[rows[pick]].tolist(), cand_scores[pick].tolist()


def _uncertainty(ctx: _Context, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(len(rows),)`` and which rows have them (a prediction from the run)."""
    classes, probs, labels, conf = ctx.predictions()
    if probs is None:
        if name != "least-confidence":
            raise RecipeError(f"{name} needs class probabilities; run {ctx.run.name!r} has top-1 "  # type: ignore[union-attr]
                              "predictions only (least-confidence works from its confidences)")
        c = conf[rows]
        ok = np.isfinite(c)
        return np.where(ok, 1.0 - np.nan_to_num(c), 0.0), ok
    p = probs[rows]
    ok = np.isfinite(p).all(axis=1)
    scores = np.zeros(len(rows))
    if ok.any():
        scores[ok] = st.SCORES[name](p[ok])
    return scores, ok


def _committee(ctx: _Context, name: str, rows: np.ndarray, runs: Any) -> tuple[np.ndarray, np.ndarray]:
    from al_core import view

    if not isinstance(runs, list) or len(runs) < 2:
        raise RecipeError(f"{name}: give runs = [\"run-a\", \"run-b\", ...], at least two model runs")
    known = view.list_runs(ctx.cat)
    missing = [r for r in runs if r not in known]
    if missing:
        raise RecipeError(f"{name}: no model run {missing[0]!r} (known: {', '.join(known) or 'none'})")
    preds = [ctx.predictions(known[r][0]) for r in runs]
    classes = preds[0][0]
    if any(p[0] != classes for p in preds):
        raise RecipeError(f"{name}: the runs {runs} do not share the same classes")
    if name == "bald":
        if any(p[1] is None for p in preds):
            raise RecipeError("bald needs class probabilities from every run")
        stack = np.stack([p[1][rows] for p in preds])  # type: ignore[index]
        ok = np.isfinite(stack).all(axis=(0, 2))
        scores = np.zeros(len(rows))
        if ok.any():
            scores[ok] = st.bald(stack[:, ok])
        return scores, ok
    index = {c: i for i, c in enumerate(classes)}
    votes = np.array([[index.get(lab, -1) for lab in p[2][rows]] for p in preds])
    ok = (votes >= 0).all(axis=0)
    scores = np.zeros(len(rows))
    if ok.any():
        scores[ok] = st.vote_entropy(votes[:, ok], len(classes))
    return scores, ok


def _balance(ctx: _Context, name: str, rows: np.ndarray, need: int, rng: np.random.Generator,
             field_name: Any) -> tuple[list[str], list[float]]:
    if name == "class-balance":
        _, probs, labels, _ = ctx.predictions()
        groups = labels[rows]
        ok = np.array([g is not None for g in groups], dtype=bool)
        counts = dict(ctx.cat.query_rows(sql.LABELED_CLASSES))
    else:
        fields = ctx.cat.metadata_fields()
        if field_name not in fields:
            raise RecipeError(f"slice-balance: field must be one of the catalog's metadata fields "
                              f"({', '.join(fields) or 'none'}), not {field_name!r}")
        key = f"field:{field_name}"
        if key not in ctx._cache:
            with ctx.cat.read() as cur:
                text, params = sql.pool_field_values(ctx.pool_query, field_name)
                ctx._cache[key] = _text_array(cur.sql(text, params=params).to_arrow_table().column("value"))
        groups = ctx._cache[key][rows]
        ok = np.ones(len(rows), dtype=bool)
        counts = dict(ctx.cat.query_rows(*sql.labeled_values(field_name)))
        probs = ctx.predictions()[1] if ctx.run is not None else None
    scores = None
    if probs is not None:
        p = probs[rows[ok]]
        fine = np.isfinite(p).all(axis=1)
        scores = np.zeros(len(p))
        scores[fine] = st.entropy(p[fine])
    pick = st.balanced(list(groups[ok]), counts, need, rng, scores=scores)
    chosen = rows[ok][pick]
    return ctx.ids[chosen].tolist(), [float(counts.get(g, 0)) for g in groups[ok][pick]]


def _badge(ctx: _Context, rows: np.ndarray, need: int, rng: np.random.Generator,
           features: Any) -> tuple[list[str], list[float]]:
    _, probs, _, _ = ctx.predictions()
    if probs is None:
        raise RecipeError("badge needs class probabilities from the run")
    vec_rows, vecs = _with_vectors(ctx, rows, features)
    p = probs[vec_rows]
    ok = np.isfinite(p).all(axis=1)
    pick = st.badge(p[ok], vecs[ok], need, rng)
    return ctx.ids[vec_rows[ok][pick]].tolist(), [math.nan] * len(pick)


def _with_vectors(ctx: _Context, rows: np.ndarray, set_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pool rows that have a vector in the set, and those vectors ``(m, d)``."""
    has, vecs = ctx.vectors_of(ctx.ids[rows].tolist(), set_name)
    return rows[has], vecs


def _centers(ctx: _Context, state: _State) -> np.ndarray | None:
    """Vectors of the labeled samples and of the batch so far: what is already covered. Above
    :data:`CENTERS_MAX` labeled samples, an evenly spaced subset of them (in sample_id order)
    stands for the labeled set: distances to 400k centers would dominate the selection."""
    if "labeled_vecs" not in ctx._cache:
        labeled = ctx.labeled_ids()
        if len(labeled) > CENTERS_MAX:
            labeled = [labeled[i] for i in np.linspace(0, len(labeled) - 1, CENTERS_MAX).astype(np.int64)]
        ctx._cache["labeled_vecs"] = ctx.vectors_of(labeled)[1]
    picked = ctx.vectors_of(state.picked_ids)[1]
    both = np.vstack([ctx._cache["labeled_vecs"], picked])
    return both if len(both) else None


def _seed_vectors(ctx: _Context, params: dict[str, Any]) -> np.ndarray:
    tag, ids = params.get("tag"), params.get("ids")
    if (tag is None) == (ids is None):
        raise RecipeError("seeded: give tag = \"...\" (the examples carrying it) or ids = [...]")
    seeds = [r[0] for r in ctx.cat.query_rows(*sql.tagged(str(tag)))] if tag is not None else list(ids)
    _, vecs = ctx.vectors_of(seeds)
    if not len(vecs):
        what = f"tag {tag!r}" if tag is not None else "the given ids"
        raise RecipeError(f"seeded: no sample with {what} has a vector in set {ctx.set_name!r}")
    return vecs


def _label_errors(ctx: _Context, state: _State, need: int, excluded: set[str]) -> tuple[list[str], list[float]]:
    """Labeled samples, likeliest label error first (``score``: the diagnostics' normalized
    margin, ascending), less those the recipe excludes (open batches, the exclude tag)."""
    from al_core import diagnostics

    if ctx.run is None:
        raise RecipeError("label-errors needs a model run with probabilities: pass --run")
    issues = diagnostics.label_issues(ctx.cat, ctx.run, Filter())
    if "reason" in issues.attrs:
        raise RecipeError(f"label-errors: {issues.attrs['reason']}")
    taken = set(state.picked_ids) | state.rejected | excluded
    out = issues[~issues["sample_id"].isin(taken)].head(need)
    return out["sample_id"].tolist(), out["score"].astype(float).tolist()
