"""Filters (URL round trip, SQL) and Overview analytics checked against direct queries."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_core import overview
from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog
from al_core.view import sql as view_sql
from al_core.view.filters import Condition, Filter, drill_spec, parse_drill

FIELDS = {"weather": "VARCHAR", "brightness": "DOUBLE", "captured_at": "TIMESTAMP", 'we"ird': "VARCHAR"}


@pytest.mark.parametrize("flt", [
    Filter(),
    Filter(splits=("train", "val"), classes=("car",), labeled="labeled"),
    Filter(tags=("hard",), categorical=(("weather", ("rain", "fog")),)),
    Filter(numeric=(("brightness", (0.25, 0.75)),), dates=(("captured_at", (date(2025, 3, 1), date(2025, 4, 2))),)),
    Filter(categorical=(('we"ird', ("a,b", "(missing)")),), labeled="unlabeled"),
])
def test_url_round_trip(flt: Filter) -> None:
    assert Filter.from_query_params(flt.to_query_params(), FIELDS) == flt


def test_url_junk_is_ignored() -> None:
    params = {"labeled": ["bogus"], "f.brightness": ["x..y"], "f.nope": ["1"], "f.captured_at": ["2025-13-01..2025-01-01"]}
    assert Filter.from_query_params(params, FIELDS) == Filter()


def test_drill_spec_round_trip() -> None:
    conds = (Condition("label", "car"), Condition("brightness", low=0.1, high=0.2), Condition("weather", is_null=True))
    assert parse_drill(drill_spec("t", *conds)) == ("t", conds)


def test_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column"):
        view_sql.filter_where(Filter().narrowed(Condition("nope; DROP TABLE samples", "x")), FIELDS)


def test_imbalance_invariants() -> None:
    balanced = overview.imbalance([10, 10, 10])
    assert balanced.max_min_ratio == 1 and balanced.normalized_entropy == pytest.approx(1)
    skewed = overview.imbalance([100, 5, 0])
    assert skewed.max_min_ratio == 20 and 0 < skewed.normalized_entropy < 1 and skewed.n_classes == 2


@pytest.fixture(scope="module")
def demo(demo_build: tuple[Path, object]) -> Catalog:
    return Catalog.open(demo_build[0], read_only=True)


CASES = [
    (Filter(), "TRUE"),
    (Filter(splits=("train",)), "split = 'train'"),
    (Filter(labeled="unlabeled", categorical=(("weather", ("rain", "fog")),)), "label IS NULL AND weather IN ('rain', 'fog')"),
    (Filter(numeric=(("brightness", (0.2, 0.5)),)), "brightness BETWEEN 0.2 AND 0.5"),
    (Filter(dates=(("captured_at", (date(2025, 4, 1), date(2025, 4, 30))),)),
     "captured_at >= '2025-04-01' AND captured_at < '2025-05-01'"),
    (Filter(classes=("car", "bus")).narrowed(Condition("time_of_day", "night")), "label IN ('car', 'bus') AND time_of_day = 'night'"),
]


@pytest.mark.parametrize("flt, where", CASES)
def test_filtered_counts_match_direct_sql(demo: Catalog, flt: Filter, where: str) -> None:
    expected = demo.scalar(f"SELECT count(*) FROM samples WHERE {where}")
    got = overview.counts(demo, flt)
    assert got["samples"] == expected
    assert got["labeled"] + got["unlabeled"] == expected
    assert len(overview.drill_ids(demo, flt, None)) == expected


def test_class_distribution_matches_catalog(demo: Catalog) -> None:
    run = overview.latest_run(demo)
    frame = overview.class_distribution(demo, Filter(), run)
    direct = dict(demo.query_rows("SELECT label, count(*) FROM samples WHERE label IS NOT NULL GROUP BY 1"))
    assert dict(zip(frame["class"], frame["labeled"], strict=True)) == {k: v for k, v in direct.items()}
    pool = demo.scalar("SELECT count(*) FROM samples WHERE label IS NULL")
    assert frame["predicted_in_pool"].sum() == pool


def test_field_distributions_cover_every_sample(demo: Catalog) -> None:
    for name in demo.metadata_fields():
        kind, frame = overview.field_distribution(demo, Filter(), name)
        assert kind in ("categorical", "numeric", "time")
        assert frame["n"].sum() == demo.scalar(f"SELECT count({db_sql.quote_ident(name)}) FROM samples")
    _, hist = overview.field_distribution(demo, Filter(), "brightness")
    assert (np.diff(hist["start"]) > 0).all()


def test_heatmap_rows_sum_to_one(demo: Catalog) -> None:
    frame = overview.class_field_heatmap(demo, Filter(), "weather")
    assert np.allclose(frame.groupby("label")["row_share"].sum(), 1.0)


def test_under_represented_slices_are_real_and_drill_exactly(demo: Catalog) -> None:
    run = overview.latest_run(demo)
    slices = overview.under_represented_slices(demo, Filter(), run)
    assert not slices.empty
    assert (slices["ratio"] <= 0.67).all() and slices["ratio"].is_monotonic_increasing
    assert any("night" in s for s in slices["slice"])  # the demo under-labels night scenes
    for rec in slices.head(5).itertuples():
        ids = overview.drill_ids(demo, Filter().narrowed(*rec.conditions), run)
        assert len(ids) == rec.labeled_n + rec.pool_n
    c = overview.counts(demo, Filter())
    top = slices.iloc[0]
    assert top["labeled_share"] == pytest.approx(top["labeled_n"] / c["labeled"])
    assert top["pool_share"] == pytest.approx(top["pool_n"] / c["unlabeled"])
    assert isinstance(slices, pd.DataFrame)


def test_mirrored_run_gives_the_same_answers_as_the_join(demo: Catalog) -> None:
    cached = overview.latest_run(demo)
    joined = view_sql.RunRef(cached.run_id, cached.name, cached=False)
    flt = Filter(categorical=(("weather", ("rain", "fog", "cloudy")),))
    pd.testing.assert_frame_equal(overview.class_distribution(demo, flt, cached),
                                  overview.class_distribution(demo, flt, joined))
    pd.testing.assert_frame_equal(overview.under_represented_slices(demo, flt, cached),
                                  overview.under_represented_slices(demo, flt, joined))
    drill = flt.narrowed(Condition("label", is_null=True), Condition("pred_label", "car"))
    assert overview.drill_ids(demo, drill, cached) == overview.drill_ids(demo, drill, joined)
