"""Filters (URL round trip, SQL) and Overview analytics checked against independently computed values.

Every number the Overview shows is recomputed here with pandas from the catalog's raw rows
(``SELECT * FROM samples`` and ``SELECT * FROM tags``), selected per filter by a pandas
expression written by hand beside the filter, and compared exactly.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from datetime import date
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_core import overview, quality
from al_core.db.catalog import Catalog
from al_core.view import sql as view_sql
from al_core.view.filters import Condition, Filter, drill_spec, parse_drill

FIELDS = {"weather": "VARCHAR", "brightness": "DOUBLE", "captured_at": "TIMESTAMP", 'we"ird': "VARCHAR"}
MISSING = "(missing)"


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


def test_imbalance_matches_hand_computed_values() -> None:
    balanced = overview.imbalance([10, 10, 10])
    assert balanced.max_min_ratio == 1 and balanced.normalized_entropy == pytest.approx(1)
    # p = (1/2, 1/4, 1/4): H = 1.5 ln 2, normalized by ln 3
    assert overview.imbalance([2, 1, 1]).normalized_entropy == pytest.approx(1.5 * math.log(2) / math.log(3))
    skewed = overview.imbalance([100, 5, 0])  # empty classes do not count
    assert skewed.max_min_ratio == 20 and skewed.n_classes == 2
    assert skewed.normalized_entropy == pytest.approx(-(100 / 105 * math.log(100 / 105) + 5 / 105 * math.log(5 / 105))
                                                      / math.log(2))
    assert overview.imbalance([7]).normalized_entropy == 1.0
    nothing = overview.imbalance([0, 0])
    assert nothing.n_classes == 0 and math.isnan(nothing.max_min_ratio)


# --------------------------------------------------------------------------- the demo catalog

#: The demo's metadata fields and how the Overview charts them (its schema is known).
DEMO_KINDS = {"time_of_day": "categorical", "weather": "categorical", "camera": "categorical",
              "captured_at": "time", "brightness": "numeric"}


@pytest.fixture(scope="module")
def demo(demo_build: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """A copy of the demo catalog with tags and some missing metadata, so those paths run too."""
    path = tmp_path_factory.mktemp("overview") / "catalog.duckdb"
    shutil.copy(demo_build[0], path)
    cat = Catalog.open(path)
    with cat.transaction("test setup") as cur:
        cur.execute("INSERT INTO tags SELECT sample_id, 'hard', now()::TIMESTAMP FROM samples WHERE sample_key % 5 = 0")
        cur.execute("INSERT INTO tags SELECT sample_id, 'review', now()::TIMESTAMP FROM samples WHERE sample_key % 3 = 0")
        # values right on the bounds of the cases below: inclusive and exclusive ends must hold
        cur.execute("UPDATE samples SET brightness = 0.2 WHERE sample_key % 31 = 1")
        cur.execute("UPDATE samples SET brightness = 0.45 WHERE sample_key % 37 = 1")
        cur.execute("UPDATE samples SET brightness = 0.5 WHERE sample_key % 41 = 1")
        cur.execute("UPDATE samples SET captured_at = '2025-04-01 00:00:00' WHERE sample_key % 43 = 1")
        cur.execute("UPDATE samples SET captured_at = '2025-04-30 23:59:59' WHERE sample_key % 47 = 1")
        cur.execute("UPDATE samples SET captured_at = '2025-05-01 00:00:00' WHERE sample_key % 53 = 1")
        cur.execute("UPDATE samples SET weather = NULL WHERE sample_key % 17 = 0")
        cur.execute("UPDATE samples SET brightness = NULL WHERE sample_key % 23 = 0")
        cur.execute("UPDATE samples SET captured_at = NULL WHERE sample_key % 29 = 0")
    return cat


@pytest.fixture(scope="module")
def raw(demo: Catalog) -> pd.DataFrame:
    """Every sample as stored, plus its set of tags and its class (label, else the top-1 prediction)."""
    frame = demo.query_df("SELECT * FROM samples")
    tags = demo.query_df("SELECT sample_id, tag FROM tags").groupby("sample_id")["tag"].agg(frozenset)
    frame["tags"] = [tags.get(s, frozenset()) for s in frame["sample_id"]]
    frame["class_or_pred"] = frame["label"].where(frame["label"].notna(), frame["pred_label"])
    return frame


Select = Callable[[pd.DataFrame], pd.Series]


def _has_tag(d: pd.DataFrame, *wanted: str) -> pd.Series:
    return d["tags"].map(lambda t: bool(t & set(wanted)))


#: Filters beside a pandas selection, written by hand, of the rows each must select.
CASES: dict[str, tuple[Filter, Select]] = {
    "everything": (Filter(), lambda d: pd.Series(True, index=d.index)),
    "one split": (Filter(splits=("train",)), lambda d: d["split"] == "train"),
    "splits, classes, labeled": (
        Filter(splits=("train", "val"), classes=("car", "bus"), labeled="labeled"),
        lambda d: d["split"].isin(["train", "val"]) & d["label"].isin(["car", "bus"])),
    "unlabeled in rain or fog": (
        Filter(labeled="unlabeled", categorical=(("weather", ("rain", "fog")),)),
        lambda d: d["label"].isna() & d["weather"].isin(["rain", "fog"])),
    "weather missing or fog": (
        Filter(categorical=(("weather", (MISSING, "fog")),)),
        lambda d: d["weather"].isna() | (d["weather"] == "fog")),
    "one tag": (Filter(tags=("hard",)), lambda d: _has_tag(d, "hard")),
    "two tags and two cameras": (
        Filter(tags=("hard", "review"), categorical=(("camera", ("rear", "side_left")),)),
        lambda d: _has_tag(d, "hard", "review") & d["camera"].isin(["rear", "side_left"])),
    "brightness range": (
        Filter(numeric=(("brightness", (0.2, 0.45)),)),
        lambda d: (d["brightness"] >= 0.2) & (d["brightness"] <= 0.45)),
    "April": (
        Filter(dates=(("captured_at", (date(2025, 4, 1), date(2025, 4, 30))),)),
        lambda d: (d["captured_at"] >= pd.Timestamp("2025-04-01")) & (d["captured_at"] < pd.Timestamp("2025-05-01"))),
    "classes and a drill-down": (
        Filter(classes=("car", "bus")).narrowed(Condition("time_of_day", "night")),
        lambda d: d["label"].isin(["car", "bus"]) & (d["time_of_day"] == "night")),
    "drill-down ranges and missing": (
        Filter(splits=("unlabeled", "train")).narrowed(
            Condition("brightness", low=0.3, high=0.5), Condition("weather", is_null=True)),
        lambda d: d["split"].isin(["unlabeled", "train"]) & (d["brightness"] >= 0.3) & (d["brightness"] < 0.5)
        & d["weather"].isna()),
    "drill-down range": (
        Filter().narrowed(Condition("brightness", low=0.2, high=0.5)),
        lambda d: (d["brightness"] >= 0.2) & (d["brightness"] < 0.5)),
    "no match": (Filter(splits=("nope",)), lambda d: pd.Series(False, index=d.index)),
}
CASE_IDS = list(CASES)


@pytest.fixture(params=CASE_IDS)
def case(request: pytest.FixtureRequest, raw: pd.DataFrame) -> tuple[Filter, pd.DataFrame]:
    """``(filter, the raw rows it must select)``."""
    flt, select = CASES[request.param]
    return flt, raw[select(raw).to_numpy(dtype=bool)]


def test_the_cases_select_something_and_not_everything(raw: pd.DataFrame) -> None:
    """Guard against vacuous comparisons: each case is a proper, non-empty subset (but the two ends)."""
    sizes = {name: int(select(raw).sum()) for name, (_, select) in CASES.items()}
    assert sizes["everything"] == len(raw) == 1000 and sizes["no match"] == 0
    for name, n in sizes.items():
        if name not in ("everything", "no match"):
            assert 0 < n < len(raw), name
    assert raw["weather"].isna().any() and raw["brightness"].isna().any() and raw["captured_at"].isna().any()
    assert {0.2, 0.45, 0.5} <= set(raw["brightness"])
    assert {pd.Timestamp("2025-04-01"), pd.Timestamp("2025-04-30 23:59:59"), pd.Timestamp("2025-05-01")} <= set(raw["captured_at"])


def test_latest_run_is_the_newest_model_run(demo: Catalog) -> None:
    run = overview.latest_run(demo)
    assert (run.run_id, run.name) == demo.query_rows("SELECT run_id, name FROM model_runs ORDER BY created_at DESC LIMIT 1")[0]
    assert run.cached


def test_counts_and_ids(demo: Catalog, case: tuple[Filter, pd.DataFrame]) -> None:
    flt, sel = case
    labeled = sel["label"].notna()
    assert overview.counts(demo, flt) == {
        "samples": len(sel), "labeled": int(labeled.sum()), "unlabeled": int((~labeled).sum()),
        "classes": sel["label"].nunique(), "splits": sel["split"].nunique(),
        "model_runs": demo.scalar("SELECT count(*) FROM model_runs"),
        "embedding_sets": demo.scalar("SELECT count(*) FROM embedding_sets"),
    }
    assert overview.drill_ids(demo, flt, overview.latest_run(demo)) == sorted(sel["sample_id"])
    assert overview.drill_ids(demo, flt, None) == sorted(sel["sample_id"])


@pytest.mark.parametrize("with_run", [True, False], ids=["run", "no run"])
def test_class_distribution(demo: Catalog, case: tuple[Filter, pd.DataFrame], with_run: bool) -> None:
    flt, sel = case
    run = overview.latest_run(demo) if with_run else None
    frame = overview.class_distribution(demo, flt, run)
    labeled = sel["label"].value_counts()
    pool = sel.loc[sel["label"].isna(), "pred_label"].value_counts() if with_run else pd.Series(dtype=int)
    expected = {c: (int(labeled.get(c, 0)), int(pool.get(c, 0))) for c in {*labeled.index, *pool.index}}
    got = list(zip(frame["class"], frame["labeled"], frame["predicted_in_pool"], strict=True))
    assert {c: (lab, p) for c, lab, p in got} == expected
    assert len(got) == len(expected)  # no class twice
    order = [(lab, p) for _, lab, p in got]
    assert order == sorted(order, reverse=True)  # biggest classes first


def test_split_distribution(demo: Catalog, case: tuple[Filter, pd.DataFrame]) -> None:
    flt, sel = case
    frame = overview.split_distribution(demo, flt)
    expected = sel[sel["label"].notna()].groupby(["split", "label"]).size()
    assert dict(zip(zip(frame["split"], frame["label"], strict=True), frame["n"], strict=True)) == expected.to_dict()
    assert len(frame) == len(expected)


def test_categorical_distributions(demo: Catalog, raw: pd.DataFrame, case: tuple[Filter, pd.DataFrame]) -> None:
    flt, sel = case
    for name in [n for n, k in DEMO_KINDS.items() if k == "categorical"]:
        kind, frame = overview.field_distribution(demo, flt, name)
        assert kind == "categorical"
        expected = sel[name].fillna(MISSING).value_counts()
        assert dict(zip(frame["value"], frame["n"], strict=True)) == expected.to_dict(), name
        assert len(frame) == len(expected)
        assert list(frame["n"]) == sorted(frame["n"], reverse=True)


def test_numeric_histogram(demo: Catalog, raw: pd.DataFrame, case: tuple[Filter, pd.DataFrame]) -> None:
    """30 equal bins over the whole catalog's range (stable across filters); each bin's count is the
    number of selected values in [start, end) (the last bin includes its end); empty bins are left out."""
    flt, sel = case
    kind, frame = overview.field_distribution(demo, flt, "brightness")
    assert kind == "numeric"
    low, high = raw["brightness"].min(), raw["brightness"].max()
    width = (high - low) / 30
    x = sel["brightness"].dropna().to_numpy()
    assert frame["n"].sum() == len(x)
    assert (frame["n"] > 0).all() and (np.diff(frame["start"]) > 0).all()
    k = (frame["start"] - low) / width
    assert np.allclose(k, np.round(k)) and ((np.round(k) >= 0) & (np.round(k) < 30)).all()
    assert np.allclose(frame["end"] - frame["start"], width)
    for i, (start, end, n) in enumerate(zip(frame["start"], frame["end"], frame["n"], strict=True)):
        last = i == len(frame) - 1 and math.isclose(end, high)
        assert n == ((x >= start) & ((x <= end) if last else (x < end))).sum(), (start, end)
    if flt == Filter():
        assert frame["start"].iloc[0] == low and frame["end"].iloc[-1] == pytest.approx(high)


def test_timeline(demo: Catalog, raw: pd.DataFrame, case: tuple[Filter, pd.DataFrame]) -> None:
    """Half a year of captures is charted per week (weeks start on Monday)."""
    flt, sel = case
    kind, frame = overview.field_distribution(demo, flt, "captured_at")
    assert kind == "time"
    span = raw["captured_at"].max() - raw["captured_at"].min()
    assert pd.Timedelta(days=150) < span < pd.Timedelta(days=200)
    t = sel["captured_at"].dropna()
    monday = t.dt.normalize() - pd.to_timedelta(t.dt.day_of_week, unit="D")
    expected = monday.value_counts().sort_index()
    if expected.empty:
        assert frame.empty
        return
    assert frame.attrs["unit"] == "week"
    assert list(pd.to_datetime(frame["period"])) == list(expected.index)
    assert list(frame["n"]) == list(expected)


def test_class_field_heatmap(demo: Catalog, case: tuple[Filter, pd.DataFrame]) -> None:
    flt, sel = case
    labeled = sel[sel["label"].notna()]
    for name in [n for n, k in DEMO_KINDS.items() if k == "categorical"]:
        frame = overview.class_field_heatmap(demo, flt, name)
        n = labeled.assign(value=labeled[name].fillna(MISSING)).groupby(["label", "value"]).size()
        share = n / n.groupby(level="label").transform("sum")
        got = {(lab, v): (c, s) for lab, v, c, s in zip(frame["label"], frame["value"], frame["n"], frame["row_share"], strict=True)}
        assert got.keys() == n.to_dict().keys() and len(frame) == len(n), name
        for key, (count, row_share) in got.items():
            assert count == n[key] and row_share == pytest.approx(share[key]), (name, key)


# --------------------------------------------------------------------------- under-represented slices

def _slice_fields(raw: pd.DataFrame) -> list[str]:
    """Categorical fields with 2..30 distinct values over the whole catalog, in field order: the
    quality flags (BOOLEAN, registered first) that are true somewhere and false elsewhere, then
    the demo's text fields."""
    flags = [f"q_{flag}" for flag in quality.FLAGS]
    return [n for n in flags if raw[n].nunique() == 2] + \
        [n for n, k in DEMO_KINDS.items() if k == "categorical" and 1 < raw[n].nunique() <= 30]


def _expected_slices(sel: pd.DataFrame, fields: list[str], with_run: bool, min_pool: int,
                     max_ratio: float, max_arity: int) -> dict[str, tuple[int, int, float]]:
    """``{slice: (labeled_n, pool_n, ratio)}`` recomputed from the raw rows with pandas groupby."""
    is_labeled = sel["label"].notna()
    n_labeled, n_pool = int(is_labeled.sum()), int((~is_labeled).sum())
    if n_labeled == 0 or n_pool == 0:
        return {}
    data = sel[fields].assign(**{"class": sel["class_or_pred"] if with_run else sel["label"]},
                               _labeled=is_labeled, _pool=~is_labeled)
    for name in fields:  # a flag's slice is where it is true
        if name.startswith("q_"):
            data[name] = data[name].map({True: "true"})
    out = {}
    for arity in range(1, max_arity + 1):
        for combo in combinations([*fields, "class"], arity):
            grouped = data.dropna(subset=list(combo)).groupby(list(combo))[["_labeled", "_pool"]].sum()
            for key, lab, pool in zip(grouped.index, grouped["_labeled"], grouped["_pool"], strict=True):
                key = key if isinstance(key, tuple) else (key,)
                if pool < min_pool:
                    continue
                ratio = (lab / n_labeled) / (pool / n_pool)
                if ratio <= max_ratio:
                    out[" & ".join(f"{c}={v}" for c, v in zip(combo, key, strict=True))] = (int(lab), int(pool), ratio)
    return out


def _condition_mask(raw: pd.DataFrame, cond: Condition) -> pd.Series:
    column = raw[cond.column]
    assert cond.low is None and cond.high is None and not cond.is_null  # slices are equalities
    as_text = column.astype(object).map(lambda v: str(v).lower() if isinstance(v, bool) else str(v))
    return column.notna() & (as_text == str(cond.value))


@pytest.mark.parametrize("with_run", [True, False], ids=["run", "no run"])
@pytest.mark.parametrize("params", [
    {}, {"min_pool": 25, "max_ratio": 0.9, "max_arity": 1}, {"min_pool": 4, "max_ratio": 0.5, "max_arity": 3},
], ids=["defaults", "coarse", "fine"])
def test_under_represented_slices(demo: Catalog, raw: pd.DataFrame, case: tuple[Filter, pd.DataFrame],
                                  with_run: bool, params: dict) -> None:
    flt, sel = case
    run = overview.latest_run(demo) if with_run else None
    slices = overview.under_represented_slices(demo, flt, run, **params)
    min_pool, max_ratio = params.get("min_pool", 10), params.get("max_ratio", 0.67)
    expected = _expected_slices(sel, _slice_fields(raw), with_run, min_pool, max_ratio, params.get("max_arity", 2))
    assert list(slices.columns) == overview.SLICE_COLUMNS
    got = {rec.slice: (rec.labeled_n, rec.pool_n, rec.ratio) for rec in slices.itertuples()}
    assert got.keys() == expected.keys() and len(slices) == len(expected)
    for name, (lab, pool, ratio) in expected.items():
        assert got[name][:2] == (lab, pool) and got[name][2] == pytest.approx(ratio), name
    if slices.empty:
        return
    # invariants: under-represented, big enough pool, most under-represented first
    assert (slices["ratio"] <= max_ratio).all() and (slices["pool_n"] >= min_pool).all()
    assert (np.diff(slices["ratio"]) >= -1e-12).all()
    n_labeled, n_pool = int(sel["label"].notna().sum()), int(sel["label"].isna().sum())
    assert np.allclose(slices["labeled_share"], slices["labeled_n"] / n_labeled)
    assert np.allclose(slices["pool_share"], slices["pool_n"] / n_pool)
    assert np.allclose(slices["ratio"], slices["labeled_share"] / slices["pool_share"])
    # each row's conditions drill down to exactly its samples, as pandas selects them
    for rec in slices.itertuples():
        mask = raw["sample_id"].isin(sel["sample_id"])
        for cond in rec.conditions:
            mask &= _condition_mask(raw, cond)
        ids = sorted(raw.loc[mask, "sample_id"])
        assert len(ids) == rec.labeled_n + rec.pool_n, rec.slice
        assert int(raw.loc[mask, "label"].notna().sum()) == rec.labeled_n, rec.slice
        assert overview.drill_ids(demo, flt.narrowed(*rec.conditions), run) == ids, rec.slice


def _exact_ratio(labeled_n: int, pool_n: int, n_labeled: int, n_pool: int) -> Fraction:
    return Fraction(labeled_n * n_pool, pool_n * n_labeled)


def test_slices_with_equal_ratios_are_ordered_by_pool_size_then_name(demo: Catalog, raw: pd.DataFrame) -> None:
    run = overview.latest_run(demo)
    slices = overview.under_represented_slices(demo, Filter(), run, min_pool=4, max_ratio=0.5, max_arity=3)
    n_labeled, n_pool = int(raw["label"].notna().sum()), int(raw["label"].isna().sum())
    keys = [(_exact_ratio(lab, pool, n_labeled, n_pool), -pool, name)
            for name, lab, pool in zip(slices["slice"], slices["labeled_n"], slices["pool_n"], strict=True)]
    ties = {k[0] for k in keys if sum(1 for j in keys if j[0] == k[0] and j[1] != k[1]) > 0}
    assert ties  # slices with equal ratios but different pools exist, so the tie-break matters
    assert keys == sorted(keys)


def test_the_demo_under_labels_night_scenes(demo: Catalog, raw: pd.DataFrame) -> None:
    """Not vacuous: on the whole demo, night (by itself) is among the under-represented slices."""
    slices = overview.under_represented_slices(demo, Filter(), overview.latest_run(demo))
    assert len(slices) >= 10
    night = slices[slices["slice"] == "time_of_day=night"]
    assert len(night) == 1
    is_night, is_labeled = raw["time_of_day"] == "night", raw["label"].notna()
    share_labeled = (is_night & is_labeled).sum() / is_labeled.sum()
    share_pool = (is_night & ~is_labeled).sum() / (~is_labeled).sum()
    assert night["ratio"].iloc[0] == pytest.approx(share_labeled / share_pool) and share_labeled / share_pool < 0.67


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
    direct = demo.query_rows("SELECT s.sample_id FROM samples s JOIN predictions p USING (sample_key) "
                             "WHERE p.run_id = ? AND s.label IS NULL AND p.pred_label = 'car' "
                             "AND s.weather IN ('rain', 'fog', 'cloudy') ORDER BY 1", [cached.run_id])
    assert overview.drill_ids(demo, drill, joined) == [r[0] for r in direct]
    assert len(direct) > 0


# --------------------------------------------------------------------------- labeled vs pool, per field

def _group_keys(raw: pd.DataFrame, sel: pd.DataFrame, name: str, frame: pd.DataFrame) -> pd.Series:
    """Each selected row's chart key, recomputed by hand: its value, its bin's start, its week."""
    kind = DEMO_KINDS[name]
    if kind == "categorical":
        return sel[name].fillna(MISSING)
    if kind == "time":
        t = sel[name]
        return t.dt.normalize() - pd.to_timedelta(t.dt.day_of_week, unit="D")
    low, high = raw[name].min(), raw[name].max()
    width = (high - low) / 30
    k = np.clip(np.floor((sel[name] - low) / width), 0, 29)
    return pd.Series(np.where(sel[name].notna(), low + k * width, np.nan), index=sel.index)


@pytest.mark.parametrize("name", list(DEMO_KINDS))
def test_field_distribution_splits_labeled_and_pool(demo: Catalog, raw: pd.DataFrame,
                                                    case: tuple[Filter, pd.DataFrame], name: str) -> None:
    """Per key, the labeled and the unlabeled counts and each one's share of its group."""
    flt, sel = case
    kind, frame = overview.field_distribution(demo, flt, name)
    assert list(frame.columns[-5:]) == overview.GROUP_COLUMNS
    keys = _group_keys(raw, sel, name, frame)
    has = keys.notna()
    is_labeled = sel["label"].notna()
    expected = pd.DataFrame({"key": keys[has], "labeled": is_labeled[has], "pool": ~is_labeled[has]}) \
        .groupby("key")[["labeled", "pool"]].sum()
    key_col = {"categorical": "value", "numeric": "start", "time": "period"}[kind]
    got = frame.set_index(frame[key_col] if kind != "time" else pd.to_datetime(frame[key_col]))
    if kind == "numeric":  # float keys: match by position (both ascending)
        assert np.allclose(got.index.to_numpy(dtype=float), expected.index.to_numpy(dtype=float))
        got.index = expected.index
    assert sorted(got.index) == sorted(expected.index), name
    for key, rec in expected.iterrows():
        assert (got.loc[key, "labeled"], got.loc[key, "pool"]) == (rec["labeled"], rec["pool"]), (name, key)
    assert (frame["n"] == frame["labeled"] + frame["pool"]).all()
    n_lab, n_pool = int(expected["labeled"].sum()), int(expected["pool"].sum())
    assert frame.attrs["labeled_total"] == n_lab and frame.attrs["pool_total"] == n_pool
    assert np.allclose(frame["labeled_share"], frame["labeled"] / n_lab if n_lab else 0.0)
    assert np.allclose(frame["pool_share"], frame["pool"] / n_pool if n_pool else 0.0)


@pytest.mark.parametrize("name, limit", [("camera", 2), ("weather", 1), ("time_of_day", 40)])
def test_categorical_counts_keeps_the_biggest_values_and_whole_group_sizes(
        demo: Catalog, raw: pd.DataFrame, name: str, limit: int) -> None:
    """One GROUP BY (value, label IS NULL): the ``limit`` biggest values, but group sizes of all."""
    from al_core.overview import sql

    long = demo.query_df(sql.categorical_counts(Filter(), demo.metadata_fields(), name, limit))
    totals = raw[name].fillna(MISSING).value_counts()
    kept = sorted(totals.index, key=lambda v: (-totals[v], v))[:limit]
    assert list(dict.fromkeys(long["value"])) == kept
    is_pool = raw["label"].isna()
    for rec in long.itertuples():
        mask = (raw[name].fillna(MISSING) == rec.value) & (is_pool == rec.pool)
        assert rec.n == mask.sum() and rec.group_n == (is_pool == rec.pool).sum(), rec


def _marks(fig: object) -> list[tuple[str, str, float, str | None]]:
    """``(trace name, x, y, drill spec)`` of every bar of a figure, hit areas included."""
    return [(t.name, str(x), y, (d[0] if d is not None else None))
            for t in fig.data for x, y, d in zip(t.x, t.y, t.customdata, strict=True)]


@pytest.mark.parametrize("case_name", ["everything", "one split", "unlabeled in rain or fog", "drill-down range"])
@pytest.mark.parametrize("name", list(DEMO_KINDS))
def test_field_chart_marks_drill_to_their_group(demo: Catalog, name: str, case_name: str) -> None:
    """Labeled marks open exactly their labeled samples, pool marks only unlabeled ones; the hit
    area of each mark carries the same drill-down; counts mode shows the counts."""
    from al_core.overview import charts

    flt = CASES[case_name][0]
    kind, frame = overview.field_distribution(demo, flt, name)
    fig = charts.field_chart(name, kind, frame, share=False)
    visible = [m for m in _marks(fig) if not m[0].startswith(charts.HIT)]
    hits = {(m[0].removeprefix(f"{charts.HIT}: "), m[1]): m[3] for m in _marks(fig) if m[0].startswith(charts.HIT)}
    assert {m[0] for m in visible} <= {"labeled", "unlabeled pool"}
    checked = 0
    for trace, x, y, spec in visible:
        assert hits[(trace, x)] == spec
        if spec is None:
            assert y == 0
            continue
        conditions = parse_drill(spec)[1]
        ids = overview.drill_ids(demo, flt.narrowed(*conditions), None)
        assert len(ids) == y, (trace, x)
        labels = demo.query_rows("SELECT count(label), count(*) FROM samples WHERE list_contains(?, sample_id)", [ids])[0]
        assert labels == ((y, y) if trace == "labeled" else (0, y)), (trace, x)
        checked += 1
    assert checked or frame.empty
    assert fig.layout.xaxis.title.text == name and fig.layout.yaxis.title.text == "samples"
    shares = charts.field_chart(name, kind, frame, share=True)
    assert shares.layout.yaxis.title.text == "share of its group"
    assert "log scale" in charts.field_chart(name, kind, frame, share=False, log=True).layout.yaxis.title.text


def test_class_and_split_charts_drill_and_name_their_axes(demo: Catalog) -> None:
    from al_core.overview import charts

    run = overview.latest_run(demo)
    classes = overview.class_distribution(demo, Filter(), run)
    for log in (False, True):
        for fig in (charts.class_bars(classes, log), charts.split_bars(overview.split_distribution(demo, Filter()), log)):
            assert fig.layout.xaxis.title.text == "class"
            assert fig.layout.yaxis.title.text.endswith("samples (log scale)" if log else "samples")
            assert fig.layout.yaxis.type == ("log" if log else "linear")
    fig = charts.class_bars(classes, False)
    top = fig.layout.yaxis.range[1]
    for trace in fig.data:
        if trace.name.startswith(charts.HIT):  # hit areas reach the top of the axis wherever they drill
            assert all((y == top) == (d[0] is not None) for y, d in zip(trace.y, trace.customdata, strict=True))
    rare = classes.iloc[classes["labeled"].replace(0, np.nan).idxmin()]
    spec = next(d[0] for t in fig.data if t.name == f"{charts.HIT}: labeled"
                for x, d in zip(t.x, t.customdata, strict=True) if x == rare["class"])
    assert len(overview.drill_ids(demo, Filter().narrowed(*parse_drill(spec)[1]), run)) == rare["labeled"]


@pytest.mark.parametrize("row, column, expected", [
    (0, None, ("labeled as a", (Condition("label", "a"),))),
    (0, "predicted in pool", ("unlabeled, predicted a", (Condition("label", is_null=True), Condition("pred_label", "a")))),
    (0, "labeled", ("labeled as a", (Condition("label", "a"),))),
    (1, None, ("unlabeled, predicted b", (Condition("label", is_null=True), Condition("pred_label", "b")))),
])
def test_class_table_selection_drills(row: int, column: str | None, expected: tuple) -> None:
    from al_core.overview import charts

    frame = pd.DataFrame({"class": ["a", "b"], "labeled": [3, 0], "predicted_in_pool": [5, 7]})
    assert parse_drill(charts.class_table_drill(frame, row, column)) == expected


@pytest.mark.parametrize("labeled, pool, has_run, base, ratio, caption", [
    ([30, 3, 0], [0, 5, 9], True, "labeled", "10.0 : 1", "Largest a (30), smallest b (3)"),
    ([0, 0, 0], [4, 100, 0], True, "predicted", "25.0 : 1", "predictions over the unlabeled pool"),
    ([0, 0, 0], [0, 0, 0], True, "", "–", "the model predicts none of the pool"),
    ([0, 0, 0], [0, 0, 0], False, "", "–", "no model run"),
    ([7, 7, 7], [1, 2, 3], True, "labeled", "1.0 : 1", "Largest a (7), smallest c (7)"),
])
def test_class_balance_names_its_base(labeled: list[int], pool: list[int], has_run: bool, base: str,
                                      ratio: str, caption: str) -> None:
    frame = pd.DataFrame({"class": ["a", "b", "c"], "labeled": labeled, "predicted_in_pool": pool})
    bal = overview.class_balance(frame, has_run)
    assert (bal.base, bal.ratio_text) == (base, ratio)
    assert caption in bal.caption
    if base:
        assert bal.caption.startswith("Base: ") and bal.entropy_text != "–"
    else:
        assert bal.entropy_text == "–"


@pytest.mark.parametrize("n, text", [(0, "0"), (999, "999"), (999_999, "999,999"), (1_234_567, "1.23M"),
                                     (12_345_678, "12.3M"), (123_456_789, "123M"), (2_500_000_000, "2.50B")])
def test_format_count(n: int, text: str) -> None:
    assert overview.format_count(n) == text


@pytest.mark.parametrize("ratio, text", [(23.0625, "23.1 : 1"), (1.0, "1.0 : 1"), (1234.4, "1,234 : 1"),
                                         (math.nan, "–")])
def test_format_ratio(ratio: float, text: str) -> None:
    assert overview.format_ratio(ratio) == text


def _contrast(a: float, b: float) -> float:
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


@pytest.mark.parametrize("share", [True, False])
def test_heatmap_text_contrasts_with_its_cell(demo: Catalog, share: bool) -> None:
    """Every cell's text is black or white, whichever reads better on the cell (WCAG contrast >= 4.5)."""
    from plotly.colors import sample_colorscale

    from al_core.overview import charts

    frame = overview.class_field_heatmap(demo, Filter(), "time_of_day")
    fig = charts.heatmap(frame, "time_of_day", share)
    marker = fig.data[0].marker
    colors = sample_colorscale(charts.HEATMAP_SCALE, [v / marker.cmax for v in marker.color])
    text = fig.data[0].textfont.color
    assert {"#ffffff", "#000000"} == set(text)  # both used: the scale runs from light to dark
    for cell, ink in zip(colors, text, strict=True):
        lum = charts._luminance(cell)
        ink_lum = 1.0 if ink == "#ffffff" else 0.0
        assert _contrast(lum, ink_lum) >= 4.5, (cell, ink)
    assert fig.layout.xaxis.title.text == "time_of_day" and fig.layout.yaxis.title.text == "class (labeled)"
