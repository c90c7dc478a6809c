"""Filters on the model's view (run, predicted class, confidence, outcome, tags to leave out),
checked against pandas on the raw rows of the chosen run, for a mirrored run and a joined one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_core import overview, view
from al_core.db.catalog import Catalog
from al_core.ingest.predictions import import_predictions_frame
from al_core.view.filters import Filter

Select = Callable[[pd.DataFrame], pd.Series]


@pytest.fixture(scope="module")
def two_runs(demo_build: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The demo plus an older-looking second run: it becomes the newest (mirrored) one, and the
    demo's baseline is then a run that views must join."""
    path = tmp_path_factory.mktemp("model") / "catalog.duckdb"
    shutil.copy(demo_build[0], path)
    cat = Catalog.open(path)
    classes = list(cat.scalar("SELECT classes FROM model_runs ORDER BY run_id LIMIT 1"))
    ids = [r[0] for r in cat.query_rows("SELECT sample_id FROM samples ORDER BY sample_id")]
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(len(classes)) * 0.3, len(ids))
    import_predictions_frame(cat, pd.DataFrame({"sample_id": ids, "probs": list(probs)}),
                             "noisy-run", source="test", classes=classes)
    with cat.transaction("test tags") as cur:
        cur.execute("INSERT INTO tags SELECT sample_id, 'done', now()::TIMESTAMP FROM samples "
                    "WHERE sample_key % 4 = 0")
    return cat


def _raw(cat: Catalog, run_name: str) -> pd.DataFrame:
    """Each sample with the given run's top-1 and confidence, and its tags, by plain SQL."""
    frame = cat.query_df(
        "SELECT s.sample_id, s.label, p.pred_label AS pred, p.confidence AS conf FROM samples s "
        "LEFT JOIN predictions p ON p.sample_key = s.sample_key AND p.run_id = "
        "(SELECT run_id FROM model_runs WHERE name = ?)", [run_name])
    tagged = {r[0] for r in cat.query_rows("SELECT sample_id FROM tags WHERE tag = 'done'")}
    frame["done"] = frame["sample_id"].isin(tagged)
    return frame


CASES: dict[str, tuple[dict, Select]] = {
    "predicted bus": ({"pred_classes": ("bus",)}, lambda d: d["pred"] == "bus"),
    "confidence below 0.6": ({"confidence": (0.0, 0.6)}, lambda d: d["conf"] <= 0.6),
    "confidence 0.5 to 0.9": ({"confidence": (0.5, 0.9)}, lambda d: (d["conf"] >= 0.5) & (d["conf"] <= 0.9)),
    "correct": ({"outcome": "correct"}, lambda d: d["label"].notna() & (d["label"] == d["pred"])),
    "wrong": ({"outcome": "wrong"}, lambda d: d["label"].notna() & d["pred"].notna() & (d["label"] != d["pred"])),
    "pool with a prediction": ({"outcome": "unlabeled"}, lambda d: d["label"].isna() & d["pred"].notna()),
    "wrong, not done": ({"outcome": "wrong", "tags_exclude": ("done",)},
                        lambda d: d["label"].notna() & (d["label"] != d["pred"]) & ~d["done"]),
    "pool below 0.6 predicted car or bus": (
        {"outcome": "unlabeled", "confidence": (0.0, 0.6), "pred_classes": ("car", "bus")},
        lambda d: d["label"].isna() & (d["conf"] <= 0.6) & d["pred"].isin(["car", "bus"])),
}


@pytest.mark.parametrize("run_name", ["noisy-run", "baseline-cnn"], ids=["mirrored", "joined"])
@pytest.mark.parametrize("case", list(CASES))
def test_model_filters_select_what_the_run_says(two_runs: Catalog, run_name: str, case: str) -> None:
    runs = view.list_runs(two_runs)
    run = runs[run_name][0]
    assert run.cached == (run_name == "noisy-run")  # the newest run is the mirrored one
    options, select = CASES[case]
    flt = Filter(run=run, **options)
    raw = _raw(two_runs, run_name)
    expected = sorted(raw.loc[select(raw).fillna(False).astype(bool), "sample_id"])
    assert 0 < len(expected) < len(raw), "a case that selects nothing or everything proves little"
    assert view.count_filtered(two_runs, flt, run) == len(expected)
    assert overview.drill_ids(two_runs, flt, None) == expected  # the filter's own run is used
    assert overview.counts(two_runs, flt)["samples"] == len(expected)


def test_a_question_to_the_model_without_a_run_selects_nothing(two_runs: Catalog) -> None:
    assert view.count_filtered(two_runs, Filter(outcome="wrong"), None) == 0


@pytest.mark.parametrize("flt", [
    Filter(pred_classes=("car",), confidence=(0.25, 0.75), outcome="wrong", tags_exclude=("done",)),
    Filter(outcome="unlabeled"),
])
def test_model_filters_round_trip_through_the_url(two_runs: Catalog, flt: Filter) -> None:
    runs = {name: ref for name, (ref, _) in view.list_runs(two_runs).items()}
    for run in runs.values():
        with_run = Filter(**{**flt.__dict__, "run": run})
        assert Filter.from_query_params(with_run.to_query_params(), {}, runs) == with_run


@pytest.mark.parametrize("bad", ["nan..0.5", "0.2..1.5", "0.8..0.2", "x", "-1..0.5"])
def test_bad_confidence_ranges_in_links_are_ignored(bad: str) -> None:
    assert Filter.from_query_params({"conf": [bad]}, {}).confidence is None
