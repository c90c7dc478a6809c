"""Batch recipes on a small catalog: exclusions, no duplicates, reproducibility, shares, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_core import curation, embeddings, view
from al_core.db.catalog import Catalog
from al_core.ingest import ingest_manifest
from al_core.ingest.predictions import import_predictions_frame
from al_core.strategies.recipes import Recipe, RecipeError, select_batch

CLASSES = ["ant", "bee", "cat", "dog"]
N = 400


@pytest.fixture
def pool_catalog(tmp_path: Path) -> Catalog:
    """400 samples: 30% labeled, splits train/val/test, a weather field, a run with
    probabilities, an embedding set in which samples 1 and 3 mod 50 are near-twins of 0 mod 50."""
    rng = np.random.default_rng(0)
    ids = [f"s{i:04d}" for i in range(N)]
    label = rng.choice(CLASSES, N).astype(object)
    label[rng.random(N) > 0.3] = None
    manifest = pd.DataFrame({"sample_id": ids, "path": [f"images/{i}.png" for i in ids], "label": label,
                             "split": rng.choice(["train", "train", "val", "test"], N),
                             "weather": rng.choice(["clear", "rain", "fog"], N, p=[0.8, 0.15, 0.05])})
    manifest.to_parquet(tmp_path / "m.parquet", index=False)
    cat = Catalog.open(tmp_path / "catalog.duckdb")
    ingest_manifest(cat, tmp_path / "m.parquet", probe=False, progress=False)
    probs = rng.dirichlet(np.full(len(CLASSES), 0.7), N).astype(np.float32)
    import_predictions_frame(cat, pd.DataFrame({"sample_id": ids, "probs": list(probs)}), "run",
                             source="test", classes=CLASSES)
    vectors = rng.normal(size=(N, 16)).astype(np.float32)
    for i in range(0, N, 50):
        vectors[i + 1] = vectors[i] + 0.001
        vectors[i + 3] = vectors[i] * 2.0
    embeddings.store_embeddings(cat, "emb", "test-model", ids, vectors)
    curation.tag(cat, "exclude", curation.Selection.of_ids(ids[:40:3]))
    curation.tag(cat, "seed-me", curation.Selection.of_ids(ids[5:8]))
    return cat


def _run(cat: Catalog):  # noqa: ANN202
    return view.list_runs(cat)["run"][0]


def _allowed(cat: Catalog) -> set[str]:
    """The pool by hand: unlabeled, not val/test, not tagged exclude, not in an exported batch."""
    rows = cat.query_rows(
        "SELECT sample_id FROM samples s WHERE label IS NULL AND split NOT IN ('val', 'test') "
        "AND sample_id NOT IN (SELECT sample_id FROM tags WHERE tag = 'exclude') "
        "AND sample_id NOT IN (SELECT i.sample_id FROM export_items i JOIN export_batches b "
        "USING (batch_id) WHERE b.status IN ('exported', 'sent'))")
    return {r[0] for r in rows}


SINGLE = [("random", {}), ("least-confidence", {}), ("margin", {}), ("entropy", {}), ("k-center", {}),
          ("typiclust", {}), ("hybrid", {"top_m": 60}), ("class-balance", {}),
          ("slice-balance", {"field": "weather"}), ("seeded", {"tag": "seed-me"}), ("badge", {"features": "emb"})]


@pytest.mark.parametrize(("strategy", "params"), SINGLE)
def test_each_strategy_picks_only_from_the_pool_without_repeats(pool_catalog: Catalog, strategy: str,
                                                                params: dict) -> None:
    allowed = _allowed(pool_catalog)
    out = select_batch(pool_catalog, Recipe.single(strategy, **params), 25, run=_run(pool_catalog),
                       set_name="emb", seed=1)
    assert len(out) == 25 and out["sample_id"].is_unique
    assert set(out["sample_id"]) <= allowed
    assert out["rank"].tolist() == list(range(1, 26)) and (out["strategy"] == strategy).all()


MIXED = """
[[part]]
strategy = "hybrid"
share = 0.5
[[part]]
strategy = "seeded"
share = 0.3
tag = "seed-me"
[[part]]
strategy = "random"
share = 0.2
"""


def test_a_mixed_recipe_fills_its_parts_in_order_reproducibly(pool_catalog: Catalog) -> None:
    recipe = Recipe.from_toml(MIXED, "mixed.toml")
    a = select_batch(pool_catalog, recipe, 41, run=_run(pool_catalog), set_name="emb", seed=7)
    b = select_batch(pool_catalog, recipe, 41, run=_run(pool_catalog), set_name="emb", seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby("part").size().tolist() == recipe.counts(41) == [21, 12, 8]
    assert a["part"].is_monotonic_increasing and a["sample_id"].is_unique
    assert set(a["sample_id"]) <= _allowed(pool_catalog)
    other = select_batch(pool_catalog, recipe, 41, run=_run(pool_catalog), set_name="emb", seed=8)
    assert set(other.loc[other["part"] == 3, "sample_id"]) != set(a.loc[a["part"] == 3, "sample_id"])


def test_near_duplicates_never_share_a_batch(pool_catalog: Catalog) -> None:
    emb = embeddings.get_set(pool_catalog, "emb")
    _, ids, vectors = embeddings.load_vectors(pool_catalog, emb)
    row = {s: i for i, s in enumerate(ids.tolist())}
    allowed = sorted(_allowed(pool_catalog))
    out = select_batch(pool_catalog, Recipe.single("random"), len(allowed), set_name="emb", seed=0)
    picked = vectors[[row[s] for s in out["sample_id"]]]
    sims = picked @ picked.T
    np.fill_diagonal(sims, 0)
    assert sims.max() < 0.97
    twins = {f"s{i:04d}" for i in range(0, N, 50)} | {f"s{i + 1:04d}" for i in range(0, N, 50)}
    assert len(out) < len(allowed)  # some twins were dropped, and the batch still took what was left
    assert len(set(out["sample_id"]) & twins) <= len(twins) // 2 + 1
    loose = Recipe.from_dict({"part": [{"strategy": "random", "share": 1.0}], "dedupe": False})
    assert len(select_batch(pool_catalog, loose, len(allowed), set_name="emb", seed=0)) == len(allowed)


def test_exported_batches_and_the_draft(pool_catalog: Catalog) -> None:
    run = _run(pool_catalog)
    first = select_batch(pool_catalog, Recipe.single("entropy"), 10, run=run, seed=0)
    with pool_catalog.transaction("an exported batch") as cur:  # as the export writes one
        cur.execute("INSERT INTO export_batches (batch_id, name, strategy, created_at, status) "
                    "VALUES (99, 'b', 'entropy', now()::TIMESTAMP, 'exported')")
        for rank, sid in enumerate(first["sample_id"], start=1):
            cur.execute("INSERT INTO export_items (batch_id, sample_id, rank) VALUES (99, ?, ?)", [sid, rank])
    again = select_batch(pool_catalog, Recipe.single("entropy"), 10, run=run, seed=0)
    assert not set(again["sample_id"]) & set(first["sample_id"])  # out with the provider: not offered
    hand = ["s0002", "s0004"]
    curation.add_to_batch(pool_catalog, curation.Selection.of_ids(hand))
    recipe = Recipe.from_toml('[[part]]\nstrategy = "draft"\ncount = 5\n[[part]]\nstrategy = "entropy"\nshare = 1.0\n')
    out = select_batch(pool_catalog, recipe, 6, run=run, seed=0)
    assert out["sample_id"].tolist()[:2] == hand and (out["strategy"][:2] == "draft").all()
    assert len(out) == 6 and out["sample_id"].is_unique


COUNTS = [  # (parts as (share, count), budget, expected)
    ([(0.5, None), (0.3, None), (0.2, None)], 11, [6, 3, 2]),
    ([(None, 5), (1.0, None)], 12, [5, 7]),
    ([(None, 5), (0.5, None)], 12, [5, 4]),
    ([(None, 8), (None, 8)], 10, [8, 2]),
    ([(1 / 3, None)] * 3, 10, [4, 3, 3]),
]


@pytest.mark.parametrize(("parts", "budget", "expected"), COUNTS)
def test_budget_split_into_parts(parts: list, budget: int, expected: list[int]) -> None:
    recipe = Recipe.from_dict({"part": [{"strategy": "random", **({"share": s} if s is not None else {"count": c})}
                                        for s, c in parts]})
    assert recipe.counts(budget) == expected


BAD_RECIPES = [
    ("part = 3", "needs at least one [[part]]"),
    ("[[part]]\nstrategy = \"magic\"\nshare = 1.0", "unknown strategy 'magic'"),
    ("[[part]]\nstrategy = \"random\"", "exactly one of share"),
    ("[[part]]\nstrategy = \"random\"\nshare = 1.5", "share must be in"),
    ("[[part]]\nstrategy = \"random\"\nshare = 0.7\n[[part]]\nstrategy = \"entropy\"\nshare = 0.6", "add up to 1.3"),
    ("[[part]]\nstrategy = \"entropy\"\nshare = 1.0\ntop_m = 5", "part 1 (entropy): unknown parameter 'top_m'"),
    ("dedupe = 2\n[[part]]\nstrategy = \"random\"\nshare = 1.0", "dedupe must be a cosine"),
    ("budgett = 2\n[[part]]\nstrategy = \"random\"\nshare = 1.0", "unknown key 'budgett'"),
    ("budget = 2\n[[part]]\nstrategy = \"random\"\nshare = 1.0", "unknown key 'budget'"),  # a flag, not a key
    ("[[part]\nstrategy", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RECIPES)
def test_bad_recipes_name_the_file_part_and_field(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")) as err:
        Recipe.from_toml(text, "next.toml")
    assert str(err.value).startswith("next.toml")


def test_strategies_say_what_they_lack(pool_catalog: Catalog) -> None:
    run = _run(pool_catalog)
    cases = [(Recipe.single("k-center"), {"run": run}, "needs an embedding set"),
             (Recipe.single("entropy"), {}, "needs a model run"),
             (Recipe.single("seeded", tag="nobody"), {"run": run, "set_name": "emb"}, "no sample with tag 'nobody'"),
             (Recipe.single("slice-balance", field="nope"), {"run": run}, "not 'nope'"),
             (Recipe.single("vote-entropy", runs=["run"]), {"run": run}, "at least two model runs")]
    for recipe, kwargs, message in cases:
        with pytest.raises(RecipeError, match=message):
            select_batch(pool_catalog, recipe, 5, **kwargs)
