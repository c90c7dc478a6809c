"""The demo: deterministic data, a long tail, a held-out pool and a baseline that struggles on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_EPOCHS, DEMO_SIZE, assert_same_content, content

from al_core.db.catalog import Catalog
from al_core.demo import build_demo, dataset
from al_core.demo.scenes import RARE_CLASSES, SceneSpec, render


def test_plan_is_deterministic_per_seed() -> None:
    a, b = dataset.plan_dataset(800, 7), dataset.plan_dataset(800, 7)
    pd.testing.assert_frame_equal(a, b)
    assert not a["true_label"].equals(dataset.plan_dataset(800, 8)["true_label"])
    spec = SceneSpec("traffic_cone_green", "night", "rain", 1234)
    assert np.array_equal(np.asarray(render(spec)), np.asarray(render(spec)))


@pytest.mark.parametrize("size", [200, 5000, 100_000])
def test_long_tail_and_pool_share(size: int) -> None:
    plan = dataset.plan_dataset(size, 0)
    counts = plan["true_label"].value_counts()
    assert len(plan) == size and counts.max() / counts.min() >= 20
    assert (~plan["labeled"]).mean() >= 0.5
    assert set(plan["split"]) == {"train", "val", "test", "unlabeled"}
    labeled = plan[plan["labeled"]]
    # night is rarer among labeled samples than in the pool: an under-represented slice
    assert (labeled["time_of_day"] == "night").mean() < (plan.loc[~plan["labeled"], "time_of_day"] == "night").mean()


def test_demo_catalog_keeps_pool_truth_out(demo_build: tuple[Path, object]) -> None:
    path, report = demo_build
    truth = pd.read_csv(report.root / "pool_truth.csv")
    with Catalog.open(path, read_only=True) as cat:
        assert cat.scalar("SELECT count(*) FROM samples") == DEMO_SIZE
        pool = cat.query_df("SELECT sample_id, label FROM samples WHERE split = 'unlabeled'")
        assert pool["label"].isna().all()
        assert set(pool["sample_id"]) == set(truth["sample_id"])
        assert len(pool) >= DEMO_SIZE / 2
        assert cat.scalar("SELECT count(*) FROM predictions_by_id") == DEMO_SIZE
        assert cat.scalar("SELECT count(*) FROM embedding_vectors_1") == DEMO_SIZE
        assert cat.scalar("SELECT typeof(vector) FROM embedding_vectors_1 LIMIT 1") == "FLOAT[64]"
        assert set(cat.metadata_fields().values()) >= {"VARCHAR", "DOUBLE", "TIMESTAMP"}
        assert len(cat.metadata_fields()) >= 4
        files = cat.query_df("SELECT uri FROM samples LIMIT 5")["uri"]
        assert all(Path(u).exists() for u in files)


def test_baseline_is_worse_on_the_long_tail(demo_build: tuple[Path, object]) -> None:
    _, report = demo_build
    acc = report.accuracy
    rare = next(k for k in acc if k.startswith("rare classes"))
    assert acc[rare] < acc["overall"]
    assert acc["time_of_day = night"] < acc["overall"]
    assert 0.5 < acc["overall"] < 1.0  # it learned something, and it is not perfect
    assert set(RARE_CLASSES) <= {k.removeprefix("class ") for k in acc}


def test_second_build_reuses_everything(demo_build: tuple[Path, object]) -> None:
    path, report = demo_build
    with Catalog.open(path) as cat:
        before = content(cat)
    again = build_demo(path, size=DEMO_SIZE, seed=3, epochs=DEMO_EPOCHS, progress=False, echo=False)
    assert {"images", "the trained baseline", "predictions and embeddings"} <= set(again.reused)
    assert again.accuracy == report.accuracy
    with Catalog.open(path) as cat:
        assert_same_content(before, content(cat))


def test_demo_refuses_a_catalog_with_other_data(tmp_path: Path, image_dir: Path) -> None:
    from al_core.errors import CatalogError
    from al_core.ingest import ingest_folder

    with Catalog.open(tmp_path / "mine.duckdb") as cat:
        ingest_folder(cat, image_dir, progress=False)
    with pytest.raises(CatalogError, match="already holds other data"):
        build_demo(tmp_path / "mine.duckdb", size=100, seed=0, epochs=1, progress=False, echo=False)
