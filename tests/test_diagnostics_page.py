"""AppTest: the Diagnostics page on the demo: its numbers follow the run, split and filter, a
confusion cell opens exactly its samples, and run comparison counts match direct queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core.db.catalog import Catalog
from al_core.ingest.predictions import import_predictions_frame
from al_core.view.filters import Condition, drill_spec


def _page(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page("pages/diagnostics.py").run()
    assert not at.exception, at.exception
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _accuracy(path: Path, where: str) -> tuple[int, float]:
    n, right = direct(path, "SELECT count(*), count(*) FILTER (WHERE label = pred_label) FROM samples "
                            f"WHERE label IS NOT NULL AND pred_label IS NOT NULL AND {where}")[0]
    return n, right / n


def test_numbers_follow_the_split_and_the_filter(app_catalog: Path) -> None:
    for params, where in (({}, "TRUE"), ({"split": "test"}, "split = 'test'"),
                          ({"f.time_of_day": "night"}, "time_of_day = 'night'")):
        at = _page(**params)
        n, acc = _accuracy(app_catalog, where)
        assert _metric(at, "Evaluated") == f"{n:,}"
        assert _metric(at, "Accuracy") == f"{acc:.1%}"


def test_a_confusion_cell_lists_exactly_its_samples(app_catalog: Path) -> None:
    truth, pred, n = direct(app_catalog, "SELECT label, pred_label, count(*) FROM samples WHERE label IS NOT NULL "
                                         "AND label <> pred_label GROUP BY ALL ORDER BY 3 DESC, 1, 2 LIMIT 1")[0]
    at = _page(view="Confusion")
    fig = json.loads(next(c for c in at.get("plotly_chart")).proto.spec)
    cells = {c for row in fig["data"][0]["customdata"] for c in row if c}
    spec = drill_spec(f"labeled {truth}, predicted {pred}", Condition("label", truth), Condition("pred_label", pred))
    assert spec in cells
    at.session_state["diagnostics_drill"] = spec
    at.run()
    assert f"**{n:,} samples**" in [m.value for m in at.markdown]
    ids = [re.sub(r"\\(.)", r"\1", c.value).split(" · ")[0] for c in at.caption if " · " in c.value]
    expected = [r[0] for r in direct(app_catalog, "SELECT sample_id FROM samples WHERE label = "
                                     f"'{truth}' AND pred_label = '{pred}' ORDER BY 1 LIMIT 24")]
    assert sorted(ids) == expected


def test_run_comparison_counts_match_a_direct_query(app_catalog: Path) -> None:
    cat = Catalog(app_catalog)
    rows = cat.query_df("SELECT sample_id, label, pred_label FROM samples WHERE label IS NOT NULL")
    classes = cat.scalar("SELECT classes FROM model_runs ORDER BY run_id LIMIT 1")
    flipped = rows["pred_label"].where(rows.index % 3 != 0, rows["label"])  # fixes every third
    flipped = flipped.where(rows.index % 7 != 1, classes[0])  # and predicts class 0 on some
    import_predictions_frame(cat, pd.DataFrame({"sample_id": rows["sample_id"], "pred_label": flipped}),
                             run="second", classes=list(classes), source="test")
    at = _page(run="baseline-cnn", view="Compare runs")
    base = dict(zip(rows["sample_id"], rows["pred_label"], strict=True))
    new = dict(zip(rows["sample_id"], flipped, strict=True))
    truth = dict(zip(rows["sample_id"], rows["label"], strict=True))
    fixed = sum(base[s] == truth[s] and new[s] != truth[s] for s in truth)  # right in baseline, wrong in second
    broken = sum(base[s] != truth[s] and new[s] == truth[s] for s in truth)
    assert _metric(at, "Fixed (wrong in second)") == f"{fixed:,}"
    assert _metric(at, "Broken (right in second)") == f"{broken:,}"
    # the gallery holds exactly those samples, fixed first, then broken
    assert any(m.value == f"**{fixed:,} samples**" for m in at.markdown)
    shown = {c.value.split(" · ")[0].replace("\\", "") for c in at.caption if " · " in c.value}
    assert shown and all(base[s] == truth[s] and new[s] != truth[s] for s in shown)
    at.segmented_control(key="dx_cmp_what").set_value("broken").run()
    assert any(m.value == f"**{broken:,} samples**" for m in at.markdown)


def test_outliers_per_class_from_the_embedding_set(app_catalog: Path) -> None:
    at = _page(view="Outliers", set="demo CLIP", split="test")
    table = at.dataframe[0].value
    test_labels = dict(direct(app_catalog, "SELECT label, count(*) FROM samples WHERE split = 'test' GROUP BY 1"))
    assert dict(zip(table["label"], table["samples"], strict=True)) == test_labels
    cards = [c.value.split(" · ")[0].replace("\\", "") for c in at.caption if " · " in c.value]
    assert len(cards) == 24
    quoted = ", ".join(f"'{c}'" for c in cards)
    assert direct(app_catalog, f"SELECT count(*) FROM samples WHERE sample_id IN ({quoted}) AND split = 'test'")[0][0] == 24


def test_label_errors_are_tagged_for_review_and_batched_in_one_click(app_catalog: Path) -> None:
    from al_core import curation, diagnostics, view
    from al_core.view.filters import Filter

    at = _page(view="Label errors")
    cat = Catalog(app_catalog)
    run = next(iter(view.list_runs(cat).values()))[0]
    issues = diagnostics.label_issues(cat, run, Filter(run=run))
    assert len(issues) > 0, "the demo has likely label errors"
    top = issues["sample_id"].head(50).tolist()
    at.button(key="dx_issue_tag").click().run()
    assert not at.exception
    assert sorted(r[0] for r in direct(app_catalog, "SELECT sample_id FROM tags WHERE tag = 'review-label'")) == sorted(top)
    assert sorted(curation.batch_items(cat)["sample_id"]) == sorted(top)


def test_the_run_picked_in_the_sidebar_is_the_one_evaluated(app_catalog: Path) -> None:
    cat = Catalog(app_catalog)
    rows = cat.query_df("SELECT sample_id, label FROM samples WHERE label IS NOT NULL ORDER BY sample_id")
    classes = list(cat.scalar("SELECT classes FROM model_runs ORDER BY run_id LIMIT 1"))
    guess = [lab if i % 4 else classes[0] for i, lab in enumerate(rows["label"])]  # right 3 in 4, roughly
    import_predictions_frame(cat, pd.DataFrame({"sample_id": rows["sample_id"], "pred_label": guess}),
                             run="guesser", classes=classes, source="test")
    expected = sum(g == t for g, t in zip(guess, rows["label"], strict=True)) / len(guess)
    at = _page(run="guesser")
    assert _metric(at, "Accuracy") == f"{expected:.1%}"
    at = _page(run="baseline-cnn")
    assert _metric(at, "Accuracy") != f"{expected:.1%}"


def test_slices_worst_first_without_the_slice_the_filter_already_is(app_catalog: Path) -> None:
    at = _page(split="test", view="Slices")
    table = at.dataframe[0].value
    assert "split" not in set(table["field"])  # every evaluated sample is in split test: no news
    ranked = table[table["enough"]]
    assert list(ranked["gap"]) == sorted(ranked["gap"])
    n_test = direct(app_catalog, "SELECT count(*) FROM samples WHERE split = 'test' AND label IS NOT NULL")[0][0]
    assert (table["n"] < n_test).all()


def test_a_rerun_for_a_click_does_not_evaluate_again(app_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's diagnostics are computed once per catalog data version, not on every rerun."""
    import streamlit as st

    from al_core import diagnostics

    st.cache_data.clear()
    calls: list[int] = []
    real = diagnostics.evaluate
    monkeypatch.setattr(diagnostics, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = _page(view="Confusion")
    assert len(calls) == 1
    at.segmented_control(key="dx_norm").set_value("row share").run()
    assert not at.exception and len(calls) == 1
    with Catalog(app_catalog).transaction("test: a write bumps the data version"):
        pass
    at.run()
    assert len(calls) == 2


def test_scoring_training_data_is_flagged(app_catalog: Path) -> None:
    assert any("training data included" in w.value for w in _page().warning)
    assert not _page(split="test").warning
