"""Diagnostics (a model run against the ground truth) on small synthetic catalogs built with the
real importers, checked against scikit-learn and pandas on the raw rows, and by hand."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from al_core import diagnostics as dg
from al_core import view
from al_core.db.catalog import Catalog
from al_core.diagnostics.metrics import confident_issues, equal_width_bins, reliability, wilson
from al_core.ingest import ingest_manifest
from al_core.ingest.predictions import import_predictions_frame
from al_core.view.filters import Condition, Filter

WEATHER = ["sun", "rain", "fog", None]


@dataclass
class Spec:
    """A synthetic catalog: ground-truth classes, the run's classes and what kind of run."""

    truth: list[str]
    run_classes: list[str]
    kind: str = "probs"  # probs | top1 | top1-noconf
    predicted: list[str] | None = None  # classes the run actually predicts (default: all its)
    n: int = 600
    labeled: float = 0.8
    seed: int = 0
    extra: dict = field(default_factory=dict)


def build(tmp_path: Path, spec: Spec, name: str = "run") -> tuple[Catalog, pd.DataFrame]:
    """Samples with metadata, some unlabeled, and one run of ``spec.kind`` (the newest)."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n
    ids = [f"s{i:05d}" for i in range(n)]
    truth = rng.choice(spec.truth, n).astype(object)
    truth[rng.random(n) > spec.labeled] = None
    manifest = pd.DataFrame({
        "sample_id": ids, "path": [f"images/{i}.png" for i in ids], "label": truth,
        "split": rng.choice(["train", "val", "test"], n),
        "weather": rng.choice(np.array(WEATHER, dtype=object), n),
        "brightness": rng.random(n),
        "captured_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s"),
    })
    path = tmp_path / "manifest.parquet"
    manifest.to_parquet(path, index=False)
    cat = Catalog.open(tmp_path / "catalog.duckdb")
    ingest_manifest(cat, path, probe=False, progress=False)
    import_run(cat, spec, ids, truth, rng, name)
    return cat, manifest


def import_run(cat: Catalog, spec: Spec, ids: list[str], truth: np.ndarray, rng: np.random.Generator,
               name: str) -> None:
    k = len(spec.run_classes)
    predicted = spec.predicted or spec.run_classes
    # informative but imperfect: the true class gets a boost where the run knows it
    logits = rng.normal(size=(len(ids), k)) * 1.5
    for i, t in enumerate(truth):
        if t in spec.run_classes:
            logits[i, spec.run_classes.index(t)] += 1.5
    for j, c in enumerate(spec.run_classes):
        if c not in predicted:
            logits[:, j] = -30.0  # never the top-1 (and a tiny probability: log loss clips)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    if spec.kind == "probs":
        frame = pd.DataFrame({"sample_id": ids, "probs": list(probs)})
        import_predictions_frame(cat, frame, name, source="test", classes=spec.run_classes)
        return
    top = np.array(spec.run_classes, dtype=object)[probs.argmax(1)]
    frame = pd.DataFrame({"sample_id": ids, "pred_label": top})
    if spec.kind == "top1":
        frame["confidence"] = probs.max(1).astype(float)
    import_predictions_frame(cat, frame, name, source="test", classes=spec.run_classes)


def raw(cat: Catalog, run: str) -> pd.DataFrame:
    """The run's rows joined with the samples by plain SQL (the test's own oracle)."""
    return cat.query_df(
        "SELECT s.sample_id, s.label, s.split, s.weather, s.brightness, s.captured_at, "
        "p.pred_label, p.confidence::DOUBLE AS confidence, p.probs FROM samples s "
        "JOIN predictions p ON p.sample_key = s.sample_key JOIN model_runs r USING (run_id) "
        "WHERE r.name = ? AND s.label IS NOT NULL ORDER BY s.sample_id", [run])


def hand_ece(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE written out bin by bin: bin i holds [i/bins, (i+1)/bins), the last also 1.0."""
    total = 0.0
    for i in range(bins):
        inside = (conf >= i / bins) & (conf < (i + 1) / bins)
        if i == bins - 1:
            inside |= conf == 1.0
        if inside.any():
            total += inside.sum() / len(conf) * abs(correct[inside].mean() - conf[inside].mean())
    return total


# ------------------------------------------------------------------ equality with scikit-learn
ABC = ["ant", "bee", "cat", "dog"]
SPECS: dict[str, Spec] = {
    "probabilities": Spec(ABC, ABC),
    "probabilities, 7 classes, other seed": Spec([f"c{i}" for i in range(7)], [f"c{i}" for i in range(7)],
                                                 seed=3, n=900),
    "truth has a class the run lacks": Spec([*ABC, "eel"], ABC, seed=1),
    "run has a class never labeled": Spec(ABC, [*ABC, "fox"], seed=2),
    "a class only predicted, one never predicted": Spec(["ant", "bee", "cat"], ["ant", "bee", "cat", "dog"],
                                                        predicted=["ant", "bee", "dog"], seed=4),
    "top-1 with confidence": Spec(ABC, ABC, kind="top1", seed=5),
    "top-1 without confidence": Spec(ABC, ABC, kind="top1-noconf", seed=6),
    "top-1, truth has a class the run lacks": Spec([*ABC, "eel"], ABC, kind="top1", seed=7),
}

Select = Callable[[pd.DataFrame], pd.Series]
FILTERS: dict[str, tuple[Filter, Select]] = {
    "everything": (Filter(), lambda d: pd.Series(True, index=d.index)),
    "split val": (Filter(splits=("val",)), lambda d: d["split"] == "val"),
    "weather rain or fog": (Filter(categorical=(("weather", ("rain", "fog")),)),
                            lambda d: d["weather"].isin(["rain", "fog"])),
    "brightness 0.2..0.7, test": (Filter(splits=("test",), numeric=(("brightness", (0.2, 0.7)),)),
                                  lambda d: (d["split"] == "test") & d["brightness"].between(0.2, 0.7)),
    "weather missing (drill-down)": (Filter(conditions=(Condition("weather", is_null=True),)),
                                     lambda d: d["weather"].isna()),
}


def sklearn_expected(rows: pd.DataFrame, run_classes: list[str], classes: list[str],
                     has_probs: bool) -> dict:
    y, yp = rows["label"].to_numpy(object), rows["pred_label"].to_numpy(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # y_pred has classes not in y_true: sklearn warns, we agree
        out = {
            "accuracy": skm.accuracy_score(y, yp),
            "balanced_accuracy": skm.balanced_accuracy_score(y, yp),
            "per_class": skm.precision_recall_fscore_support(y, yp, labels=classes, zero_division=0),
            "macro": skm.precision_recall_fscore_support(y, yp, average="macro", zero_division=0)[:3],
            "weighted": skm.precision_recall_fscore_support(y, yp, labels=classes, average="weighted",
                                                            zero_division=0)[:3],
            "confusion": skm.confusion_matrix(y, yp, labels=classes),
        }
    if has_probs and set(y) <= set(run_classes):
        order = np.argsort(run_classes)  # sklearn reads probability columns in sorted class order
        probs = np.stack(rows["probs"].to_numpy()).astype(np.float32)[:, order]
        labels = sorted(run_classes)
        out["log_loss"] = skm.log_loss(y, probs, labels=labels)
        out["top2"] = skm.top_k_accuracy_score(y, probs, k=2, labels=labels)
    return out


@pytest.mark.parametrize("flt_name", list(FILTERS))
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_evaluate_equals_sklearn(tmp_path: Path, spec_name: str, flt_name: str) -> None:
    spec = SPECS[spec_name]
    cat, _ = build(tmp_path, spec)
    run = dg.find_run(cat, "run")
    flt, select = FILTERS[flt_name]
    rows = raw(cat, "run")
    rows = rows[select(rows).fillna(False).astype(bool)].reset_index(drop=True)
    assert 10 < len(rows) < spec.n, "a filter that keeps everything or nothing proves little"
    ev = dg.evaluate(cat, run, flt)

    extra = sorted(set(rows["label"]) - set(spec.run_classes))
    assert ev.classes == [*spec.run_classes, *extra]
    assert ev.n == len(rows)
    exp = sklearn_expected(rows, spec.run_classes, ev.classes, spec.kind == "probs")
    np.testing.assert_array_equal(ev.confusion, exp["confusion"])
    assert ev.accuracy == pytest.approx(exp["accuracy"], abs=1e-9)
    assert ev.balanced_accuracy == pytest.approx(exp["balanced_accuracy"], abs=1e-9)
    for i, name in enumerate(["precision", "recall", "f1", "support"]):
        np.testing.assert_allclose(ev.per_class[name].to_numpy(float), exp["per_class"][i], atol=1e-9)
    for avg in ("macro", "weighted"):
        got = getattr(ev, avg)
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(list(exp[avg]), abs=1e-9)
    if "log_loss" in exp:
        assert ev.log_loss == pytest.approx(exp["log_loss"], rel=1e-6, abs=1e-6)
        assert ev.top2_accuracy == pytest.approx(exp["top2"], abs=1e-9)
    else:
        assert ev.log_loss is None and ev.top2_accuracy is None and ev.notes
    if spec.kind == "top1-noconf":
        assert ev.ece is None
    else:
        conf = rows["confidence"].to_numpy(float)
        assert ev.ece == pytest.approx(hand_ece(conf, (rows["label"] == rows["pred_label"]).to_numpy()),
                                       abs=1e-9)
    # per class: the most frequent wrong prediction, from the confusion matrix
    for _, rec in ev.per_class.iterrows():
        wrong = rows[(rows["label"] == rec["class"]) & (rows["pred_label"] != rec["class"])]
        if wrong.empty:
            assert rec["confused_with"] is None and rec["confused_n"] == 0
        else:
            counts = wrong["pred_label"].value_counts()
            assert rec["confused_n"] == counts.max()
            assert counts[rec["confused_with"]] == counts.max()


def test_mirrored_and_joined_runs_agree_with_their_own_rows(tmp_path: Path) -> None:
    """Two runs: the newest is read from ``samples`` (mirrored), the older one joined."""
    spec = Spec(ABC, ABC, seed=11)
    cat, manifest = build(tmp_path, spec, name="old")
    rng = np.random.default_rng(12)
    import_run(cat, Spec(ABC, ABC, kind="top1"), list(manifest["sample_id"]),
               manifest["label"].to_numpy(object), rng, "new")
    old, new = dg.find_run(cat, "old"), dg.find_run(cat, "new")
    assert new.cached and not old.cached
    for run, has_probs in ((old, True), (new, False)):
        rows = raw(cat, run.name)
        ev = dg.evaluate(cat, run, Filter())
        exp = sklearn_expected(rows, ABC, ev.classes, has_probs)
        np.testing.assert_array_equal(ev.confusion, exp["confusion"])
        assert ev.accuracy == pytest.approx(exp["accuracy"], abs=1e-9)
        assert (ev.log_loss is not None) == has_probs


def test_a_run_missing_some_samples_evaluates_only_what_it_predicted(tmp_path: Path) -> None:
    cat, manifest = build(tmp_path, Spec(ABC, ABC, seed=13))
    some = manifest[manifest["label"].notna()].iloc[:50]
    import_predictions_frame(cat, pd.DataFrame({"sample_id": some["sample_id"], "pred_label": some["label"]}),
                             "partial", source="test", classes=ABC)
    ev = dg.evaluate(cat, dg.find_run(cat, "partial"), Filter())
    assert ev.n == 50 and ev.accuracy == 1.0
    ev_old = dg.evaluate(cat, dg.find_run(cat, "run"), Filter())
    assert ev_old.n == int(manifest["label"].notna().sum())


#: Probability vectors over ABC with ties, at the top and at the top-2 boundary.
TIED = [[0.25, 0.25, 0.25, 0.25], [0.4, 0.3, 0.3, 0.0], [0.4, 0.4, 0.2, 0.0], [0.3, 0.3, 0.3, 0.1],
        [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]]


def test_top2_ties_count_against(tmp_path: Path) -> None:
    """Top-2 is a hit when at most two probabilities are >= the truth's (itself included): a
    tie at the boundary is a miss, even for the predicted class ([0.3, 0.3, 0.3, 0.1], truth ant)."""
    cat, manifest = build(tmp_path, Spec(ABC, ABC, n=300, seed=21))
    ids = list(manifest["sample_id"])
    frame = pd.DataFrame({"sample_id": ids,
                          "probs": [np.array(TIED[i % len(TIED)], dtype=np.float32) for i in range(len(ids))]})
    import_predictions_frame(cat, frame, "ties", source="test", classes=ABC)
    rows = raw(cat, "ties")
    probs = np.stack(rows["probs"].to_numpy()).astype(np.float32)
    truth = np.array([ABC.index(t) for t in rows["label"]])
    own = probs[np.arange(len(truth)), truth]
    hits = (probs >= own[:, None]).sum(axis=1) <= 2
    by_hand = {(0, "ant"): False, (1, "ant"): True, (1, "bee"): False, (2, "bee"): True,
               (2, "cat"): False, (3, "ant"): False, (4, "bee"): False, (5, "bee"): True, (6, "cat"): True}
    for (v, label), hit in by_hand.items():  # the oracle agrees with the rule, case by case
        row = np.flatnonzero(np.all(probs == np.array(TIED[v], dtype=np.float32), axis=1)
                             & (rows["label"] == label).to_numpy())
        assert row.size and bool(hits[row[0]]) is hit, (TIED[v], label)
    for flt, keep in ((Filter(), np.ones(len(rows), bool)),
                      (Filter(splits=("test",)), (rows["split"] == "test").to_numpy())):
        ev = dg.evaluate(cat, dg.find_run(cat, "ties"), flt)
        assert ev.n == keep.sum()
        assert ev.top2_accuracy == pytest.approx(hits[keep].mean(), abs=1e-12)


def test_migration_7_fills_the_third_probability_of_stored_predictions(tmp_path: Path) -> None:
    """A v6 catalog's predictions get their third-highest probability; top-2 then agrees with
    the rule (ties against) as for a run imported after the upgrade."""
    path = tmp_path / "v6.duckdb"
    old = Catalog(path)
    old.migrate(target=6)
    vectors = [*TIED, [0.7, 0.3]]
    with old.transaction("v6 predictions") as cur:
        cur.execute("INSERT INTO model_runs VALUES (1, 'old', ?, true, now()::TIMESTAMP, NULL, NULL)", [ABC])
        for i, probs in enumerate(vectors):
            cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at, label) VALUES "
                        "(?, ?, 'test', now()::TIMESTAMP, ?)", [f"s{i}", f"/x/{i}.png", ABC[i % 3]])
            cur.execute("INSERT INTO predictions SELECT 1, sample_key, ?, ?, ? FROM samples WHERE sample_id = ?",
                        [ABC[int(np.argmax(probs))], max(probs), probs, f"s{i}"])
    old.close()
    with Catalog.open(path) as cat:
        got = dict(cat.query_rows("SELECT s.sample_id, p.third_prob FROM predictions p JOIN samples s "
                                  "USING (sample_key)"))
    for i, probs in enumerate(vectors):
        expected = sorted(probs, reverse=True)[2] if len(probs) >= 3 else None
        assert got[f"s{i}"] == (None if expected is None else pytest.approx(expected)), probs


# ------------------------------------------------------------------------- calibration by hand
def test_reliability_by_hand() -> None:
    conf = np.array([0.0, 1 / 15, 0.1, 2 / 15 - 1e-12, 2 / 15, 0.5, 14 / 15, 1.0])
    correct = np.array([0, 1, 1, 0, 1, 1, 0, 1], dtype=bool)
    np.testing.assert_array_equal(equal_width_bins(conf, 15), [0, 1, 1, 1, 2, 7, 14, 14])
    table, ece = reliability(conf, correct, 15)
    assert list(table.columns) == ["bin", "low", "high", "n", "confidence", "accuracy"]
    assert table["n"].tolist() == [1, 3, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2]
    assert table.loc[1, "low"] == 1 / 15 and table.loc[14, "high"] == 1.0
    b1_conf = (1 / 15 + 0.1 + 2 / 15 - 1e-12) / 3
    assert table.loc[1, "confidence"] == pytest.approx(b1_conf)
    assert table.loc[1, "accuracy"] == pytest.approx(2 / 3)
    assert np.isnan(table.loc[3, "confidence"])
    expected = (1 / 8 * 0.0 + 3 / 8 * abs(2 / 3 - b1_conf) + 1 / 8 * abs(1 - 2 / 15)
                + 1 / 8 * abs(1 - 0.5) + 2 / 8 * abs(0.5 - (14 / 15 + 1) / 2))
    assert ece == pytest.approx(expected, abs=1e-12)
    assert ece == pytest.approx(hand_ece(conf, correct.astype(float)), abs=1e-12)


def test_reliability_equal_mass_by_hand() -> None:
    conf = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    correct = np.array([1, 0, 1, 0, 1, 1], dtype=bool)
    table, ece = reliability(conf, correct, 3, equal_mass=True)
    assert table["n"].tolist() == [2, 2, 2]
    assert table["low"].tolist() == [0.1, 0.3, 0.7] and table["high"].tolist() == [0.2, 0.5, 0.9]
    assert table["accuracy"].tolist() == [0.5, 0.5, 1.0]
    assert ece == pytest.approx((abs(0.5 - 0.15) + abs(0.5 - 0.4) + abs(1 - 0.8)) / 3)
    small, _ = reliability(conf[:2], correct[:2], 5, equal_mass=True)  # fewer samples than bins
    assert small["n"].tolist() == [1, 1]


@pytest.mark.parametrize("conf, correct, bins, message", [
    ([0.5, np.nan], [1, 0], 15, "no NaN"),
    ([0.5, 1.2], [1, 0], 15, r"\[0, 1\]"),
    ([0.5], [1, 0], 15, "one length"),
    ([], [], 15, "no samples"),
    ([0.5], [1], 0, "bins"),
])
def test_reliability_rejects_bad_input(conf: list, correct: list, bins: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reliability(np.array(conf, dtype=float), np.array(correct, dtype=float), bins)


@pytest.mark.parametrize("equal_mass", [False, True])
def test_calibration_in_duckdb_equals_reliability_on_the_rows(tmp_path: Path, equal_mass: bool) -> None:
    cat, manifest = build(tmp_path, Spec(ABC, ABC, kind="top1", seed=21))
    # confidences on the bin edges too (as stored: float32)
    labeled = manifest[manifest["label"].notna()]
    edges = np.array([i / 15 for i in range(16)] + [0.0, 1.0])
    conf = np.where(np.arange(len(labeled)) % 3 == 0, edges[np.arange(len(labeled)) % len(edges)],
                    np.random.default_rng(1).random(len(labeled)))
    import_predictions_frame(cat, pd.DataFrame({"sample_id": labeled["sample_id"], "pred_label": labeled["label"].where(
        np.arange(len(labeled)) % 4 > 0, "ant"), "confidence": conf}), "edgy", source="test", classes=ABC)
    run = dg.find_run(cat, "edgy")
    rows = raw(cat, "edgy")
    for flt, select in (FILTERS["everything"], FILTERS["split val"]):
        part = rows[select(rows)]
        correct = (part["label"] == part["pred_label"]).to_numpy()
        table, ece = dg.calibration(cat, run, flt, bins=15, equal_mass=equal_mass)
        want, want_ece = reliability(part["confidence"].to_numpy(float), correct, 15, equal_mass)
        pd.testing.assert_frame_equal(table.reset_index(drop=True), want, check_dtype=False)
        assert ece == pytest.approx(want_ece, abs=1e-12)
        if not equal_mass:
            assert ece == pytest.approx(hand_ece(part["confidence"].to_numpy(float), correct), abs=1e-12)
            assert ece == pytest.approx(dg.evaluate(cat, run, flt).ece, abs=1e-12)


# --------------------------------------------------------------------------------- Wilson, slices
@pytest.mark.parametrize("k, n, low, high", [
    (8, 10, 0.4901568, 0.9433191),  # the textbook example at z = 1.96
    (0, 10, 0.0, 1.96**2 / (10 + 1.96**2)),  # closed forms at the ends
    (10, 10, 10 / (10 + 1.96**2), 1.0),
    (0, 0, 0.0, 1.0),
])
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=1e-6)


@pytest.mark.parametrize("k, n", [(8, 10), (81, 263), (1, 3), (499, 1000)])
def test_wilson_bounds_solve_the_score_equation(k: int, n: int) -> None:
    """Each bound p satisfies (k/n - p)^2 = z^2 p (1 - p) / n."""
    for p in wilson(k, n):
        assert (k / n - p) ** 2 == pytest.approx(1.96**2 * p * (1 - p) / n, rel=1e-9)


def test_wilson_arrays_and_bad_input() -> None:
    low, high = wilson(np.array([8, 0]), np.array([10, 10]))
    assert low == pytest.approx([0.4901568, 0.0], abs=1e-6) and high[1] == pytest.approx(0.2775402, abs=1e-6)
    with pytest.raises(ValueError):
        wilson(11, 10)


def _slice_catalog(tmp_path: Path) -> tuple[Catalog, pd.DataFrame]:
    """Known accuracies: rain 50%, fog 25% (but only 8 samples), sun 100%; class bee 60%."""
    rows = []
    for i in range(200):
        weather = "sun" if i < 120 else "rain" if i < 192 else "fog"
        label = ABC[i % 4]
        if weather == "rain":
            right = i % 2 == 0
        elif weather == "fog":
            right = i % 4 == 0
        else:
            right = True
        rows.append((f"s{i:04d}", label, weather, i / 200, right))
    frame = pd.DataFrame(rows, columns=["sample_id", "label", "weather", "brightness", "right"])
    frame["path"] = "images/" + frame["sample_id"] + ".png"
    frame["split"] = "train"
    frame.drop(columns="right").to_parquet(tmp_path / "m.parquet", index=False)
    cat = Catalog.open(tmp_path / "catalog.duckdb")
    ingest_manifest(cat, tmp_path / "m.parquet", probe=False, progress=False)
    wrong = {"ant": "bee", "bee": "cat", "cat": "dog", "dog": "ant"}
    pred = [lab if ok else wrong[lab] for lab, ok in zip(frame["label"], frame["right"], strict=True)]
    import_predictions_frame(cat, pd.DataFrame({"sample_id": frame["sample_id"], "pred_label": pred,
                                                "confidence": 0.9}), "run", source="test", classes=ABC)
    return cat, frame


def test_slices_rank_known_accuracies(tmp_path: Path) -> None:
    cat, frame = _slice_catalog(tmp_path)
    run = dg.find_run(cat, "run")
    out = dg.slices(cat, run, Filter(), min_n=30)
    assert list(out.columns) == dg.SLICE_COLUMNS
    overall = frame["right"].mean()
    weather = out[out["field"] == "weather"].set_index("value")
    assert weather.loc["rain", "n"] == 72 and weather.loc["rain", "accuracy"] == 0.5
    assert weather.loc["fog", "n"] == 8 and not weather.loc["fog", "enough"]
    assert weather.loc["sun", "gap"] == pytest.approx(1 - overall)
    assert (weather.loc["rain", "ci_low"], weather.loc["rain", "ci_high"]) == pytest.approx(wilson(36, 72))
    # ranked: enough first, then by gap ascending
    enough = out[out["enough"]]
    assert enough["gap"].is_monotonic_increasing
    assert not out.loc[len(enough):, "enough"].any()
    # brightness follows the sample number, so its top quarter (from the 0.75 quantile, 0.745,
    # of sample 149) is rain (149..191, every other right: 21) and fog (192..199: 2): 23 of 51
    assert (out.iloc[0]["field"], out.iloc[0]["value"]) == ("brightness", "[0.745, 0.995]")
    assert (out.iloc[0]["n"], out.iloc[0]["correct"]) == (51, 23)
    assert (out.iloc[1]["field"], out.iloc[1]["value"], out.iloc[1]["accuracy"]) == ("weather", "rain", 0.5)
    # the class alone, and numbers cut at quantiles
    klass = out[out["field"] == "class"].set_index("value")
    assert klass["n"].sum() == 200
    bright = out[out["field"] == "brightness"]
    assert bright["n"].tolist() and bright["n"].sum() == 200 and bright["n"].min() >= 45
    # every slice's drill-down selects exactly its samples, with exactly its accuracy
    for rec in out.itertuples():
        flt = Filter(labeled="labeled").narrowed(*rec.conditions)
        assert view.count_filtered(cat, flt, run) == rec.n, rec
        right = view.count_filtered(cat, Filter(labeled="labeled", outcome="correct").narrowed(*rec.conditions), run)
        assert right == rec.correct, rec


def test_slices_on_random_data_match_pandas(tmp_path: Path) -> None:
    cat, _ = build(tmp_path, Spec(ABC, ABC, seed=31, n=800))
    run = dg.find_run(cat, "run")
    flt, select = FILTERS["split val"]
    rows = raw(cat, "run")
    rows = rows[select(rows)]
    out = dg.slices(cat, run, flt, min_n=20, quantile_bins=3)
    fields = {"weather", "brightness", "captured_at", "split", "class"}
    built_in = out["field"].str.startswith("q_")
    if cat.scalar("SELECT count(q_brightness) FROM samples"):  # measured quality fields are sliced too
        assert {"q_brightness", "q_contrast × class"} <= set(out.loc[built_in, "field"])
    else:  # never measured: no slice (it would be the whole set, "missing")
        assert not built_in.any()
    out = out[~built_in]
    assert set(out["field"]) == fields | {f"{f} × class" for f in fields - {"split", "class"}}
    overall = (rows["label"] == rows["pred_label"]).mean()
    assert out.attrs["overall"] == pytest.approx(overall)
    for rec in out.itertuples():
        mask = pd.Series(True, index=rows.index)
        for c in rec.conditions:
            col = rows["label" if c.column == "label" else c.column]
            if c.is_null:
                mask &= col.isna()
            elif c.low is not None or c.high is not None:
                if c.low is not None:
                    mask &= col >= c.low
                if c.high is not None:
                    mask &= col < c.high
            else:
                mask &= col.astype(str) == c.value
        part = rows[mask.fillna(False).astype(bool)]
        assert rec.n == len(part), rec
        assert rec.accuracy == pytest.approx((part["label"] == part["pred_label"]).mean())
        assert rec.gap == pytest.approx(rec.accuracy - overall)
    assert out[out["field"] == "brightness"]["n"].sum() == len(rows)


# ---------------------------------------------------------------------------------- label issues
def test_confident_issues_by_hand() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.8, 0.1],
                      [0.2, 0.7, 0.1], [0.7, 0.3, 0.0], [0.3, 0.3, 0.4]])
    labels = np.array([0, 0, 1, 1, 1, 2])
    out = confident_issues(probs, labels)
    # thresholds: ant mean(0.9, 0.8)=0.85, bee mean(0.8, 0.7, 0.3)=0.6, cat 0.4
    np.testing.assert_allclose(out["thresholds"], [0.85, 0.6, 0.4])
    # sample 4 is labeled bee with p_ant 0.7 < 0.85: not confident enough to flag
    assert out["issue"].tolist() == [False, False, False, False, False, False]
    probs[4] = [0.9, 0.1, 0.0]  # now p_ant 0.9 >= the (new) ant threshold; bee falls below its own
    out = confident_issues(probs, labels)
    assert out["issue"].tolist() == [False, False, False, False, True, False]
    assert out["suggested"][4] == 0 and out["self_confidence"][4] == pytest.approx(0.1)
    assert out["score"][4] == pytest.approx((0.1 - 0.9 + 1) / 2)


def test_label_issues_find_flipped_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(41)
    n, classes = 1500, ["ant", "bee", "cat", "dog", "eel"]
    true = rng.integers(0, 5, n)
    logits = rng.normal(size=(n, 5)) + 3.0 * np.eye(5)[true]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = true.copy()
    flipped = rng.random(n) < 0.10
    given[flipped] = (true[flipped] + rng.integers(1, 5, flipped.sum())) % 5
    ids = [f"s{i:05d}" for i in range(n)]
    pd.DataFrame({"sample_id": ids, "path": [f"images/{i}.png" for i in ids],
                  "label": np.array(classes)[given], "split": "train"}).to_parquet(tmp_path / "m.parquet")
    cat = Catalog.open(tmp_path / "catalog.duckdb")
    ingest_manifest(cat, tmp_path / "m.parquet", probe=False, progress=False)
    import_predictions_frame(cat, pd.DataFrame({"sample_id": ids, "probs": list(probs.astype(np.float32))}),
                             "run", source="test", classes=classes)
    run = dg.find_run(cat, "run")
    issues = dg.label_issues(cat, run, Filter())
    assert list(issues.columns) == ["sample_id", "label", "suggested", "self_confidence", "score"]
    assert issues["score"].is_monotonic_increasing
    assert (issues["label"] != issues["suggested"]).all()
    k = int(flipped.sum())
    top = set(issues["sample_id"].head(k))
    truly = {ids[i] for i in np.flatnonzero(flipped)}
    precision = len(top & truly) / k
    assert precision >= 0.6, precision
    # suggestions of the true errors are mostly the true class
    by_id = issues.set_index("sample_id")
    hits = [i for i in np.flatnonzero(flipped) if ids[i] in by_id.index]
    assert np.mean([by_id.loc[ids[i], "suggested"] == classes[true[i]] for i in hits]) > 0.8
    assert by_id.loc[ids[hits[0]], "self_confidence"] == pytest.approx(probs[hits[0], given[hits[0]]], abs=1e-6)
    assert len(dg.label_issues(cat, run, Filter(), limit=7)) == 7
    assert dg.label_issues(cat, run, Filter(), limit=7)["sample_id"].tolist() == issues["sample_id"].head(7).tolist()


def test_label_issues_need_probabilities(tmp_path: Path) -> None:
    cat, _ = build(tmp_path, Spec(ABC, ABC, kind="top1"))
    out = dg.label_issues(cat, dg.find_run(cat, "run"), Filter())
    assert out.empty and "probabilities" in out.attrs["reason"]


# --------------------------------------------------------------------------------------- compare
def test_compare_counts_fixed_and_broken(tmp_path: Path) -> None:
    cat, manifest = build(tmp_path, Spec(ABC, ABC, seed=51))
    import_run(cat, Spec(ABC, ABC, kind="top1"), list(manifest["sample_id"]),
               manifest["label"].to_numpy(object), np.random.default_rng(52), "other")
    run, other = dg.find_run(cat, "run"), dg.find_run(cat, "other")
    for flt, select in (FILTERS["everything"], FILTERS["weather rain or fog"]):
        a, b = raw(cat, "run"), raw(cat, "other")
        a, b = a[select(a).fillna(False).astype(bool)], b[select(b).fillna(False).astype(bool)]
        both = a.merge(b[["sample_id", "pred_label"]], on="sample_id", suffixes=("", "_o"))
        ra, rb = both["pred_label"] == both["label"], both["pred_label_o"] == both["label"]
        out = dg.compare(cat, run, other, flt)
        assert out["fixed"] == int((ra & ~rb).sum()) and out["broken"] == int((~ra & rb).sum())
        assert out["accuracy_delta"] == pytest.approx(ra.mean() - rb.mean(), abs=1e-12)
        fixed_ids = [r[0] for r in cat.query_rows(*out["fixed_query"])]
        assert fixed_ids == sorted(both.loc[ra & ~rb, "sample_id"])
        broken_ids = [r[0] for r in cat.query_rows(*out["broken_query"])]
        assert broken_ids == sorted(both.loc[~ra & rb, "sample_id"])
        recall = skm.recall_score(both["label"], both["pred_label"], labels=ABC, average=None, zero_division=0)
        recall_o = skm.recall_score(both["label"], both["pred_label_o"], labels=ABC, average=None, zero_division=0)
        np.testing.assert_allclose(out["per_class"]["recall_delta"], recall - recall_o, atol=1e-12)
    with pytest.raises(ValueError, match="two different runs"):
        dg.compare(cat, run, run, Filter())


# ------------------------------------------------------------------------------------- bad input
def _nan_confidence(cat: Catalog) -> None:
    with cat.transaction("test: corrupt") as cur:
        cur.execute("UPDATE predictions SET confidence = 'NaN'::FLOAT WHERE sample_key IN "
                    "(SELECT sample_key FROM samples WHERE label IS NOT NULL ORDER BY sample_id LIMIT 2)")
        cur.execute("UPDATE samples SET pred_confidence = 'NaN'::FLOAT WHERE sample_id IN "
                    "(SELECT sample_id FROM samples WHERE label IS NOT NULL ORDER BY sample_id LIMIT 2)")


def _nan_probs(cat: Catalog) -> None:
    with cat.transaction("test: corrupt") as cur:
        cur.execute("UPDATE predictions SET probs = [0.5, 'NaN'::FLOAT, 0.5, 0.0] WHERE sample_key IN "
                    "(SELECT sample_key FROM samples WHERE label IS NOT NULL ORDER BY sample_id LIMIT 1)")


def _infinite_probs(cat: Catalog) -> None:
    """+inf and -inf in one vector: its sum is NaN, which makes it unusable (as a NaN does)."""
    with cat.transaction("test: corrupt") as cur:
        cur.execute("UPDATE predictions SET probs = ['inf'::FLOAT, '-inf'::FLOAT, 0.5, 0.5] WHERE sample_key IN "
                    "(SELECT sample_key FROM samples WHERE label IS NOT NULL ORDER BY sample_id LIMIT 1)")


BAD: dict[str, tuple[Callable[[Catalog], None] | None, Callable[[Catalog], object], type, str]] = {
    "unknown run": (None, lambda c: dg.report(c, "nope"), dg.DiagnosticsError, "known runs: 'run'"),
    "unknown split": (None, lambda c: dg.report(c, "run", split="holdout"), dg.DiagnosticsError,
                      "known splits: 'test'"),
    "empty evaluation set": (None, lambda c: dg.evaluate(c, dg.find_run(c, "run"), Filter(splits=("none",))),
                             dg.DiagnosticsError, "nothing to evaluate"),
    "only unlabeled": (None, lambda c: dg.evaluate(c, dg.find_run(c, "run"), Filter(labeled="unlabeled")),
                       dg.DiagnosticsError, "nothing to evaluate"),
    "empty slices": (None, lambda c: dg.slices(c, dg.find_run(c, "run"), Filter(splits=("none",))),
                     dg.DiagnosticsError, "nothing to evaluate"),
    "empty calibration": (None, lambda c: dg.calibration(c, dg.find_run(c, "run"), Filter(splits=("none",))),
                          dg.DiagnosticsError, "nothing to evaluate"),
    "NaN confidence stored": (_nan_confidence, lambda c: dg.evaluate(c, dg.find_run(c, "run"), Filter()),
                              dg.DiagnosticsError, "NaN or out-of-range confidence; e.g. 's0"),
    "NaN confidence, calibration": (_nan_confidence,
                                    lambda c: dg.calibration(c, dg.find_run(c, "run"), Filter()),
                                    dg.DiagnosticsError, "confidence"),
    "NaN probability stored": (_nan_probs, lambda c: dg.evaluate(c, dg.find_run(c, "run"), Filter()),
                               dg.DiagnosticsError, "NaN probability vector"),
    "infinities summing to NaN stored": (_infinite_probs, lambda c: dg.evaluate(c, dg.find_run(c, "run"), Filter()),
                                         dg.DiagnosticsError, "NaN probability vector; e.g. 's0"),
    "NaN probability, label issues": (_nan_probs, lambda c: dg.label_issues(c, dg.find_run(c, "run"), Filter()),
                                      dg.DiagnosticsError, "NaN probability vectors"),
    "zero bins": (None, lambda c: dg.calibration(c, dg.find_run(c, "run"), Filter(), bins=0), ValueError, "bins"),
    "min_n 0": (None, lambda c: dg.slices(c, dg.find_run(c, "run"), Filter(), min_n=0), ValueError, "min_n"),
    "negative limit": (None, lambda c: dg.label_issues(c, dg.find_run(c, "run"), Filter(), limit=-1),
                       ValueError, "limit"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_clear_messages(tmp_path: Path, case: str) -> None:
    corrupt, call, error, message = BAD[case]
    cat, _ = build(tmp_path, Spec(ABC, ABC, n=200))
    if corrupt:
        corrupt(cat)
    with pytest.raises(error, match=message):
        call(cat)


def test_report_keys_and_numbers(tmp_path: Path) -> None:
    cat, manifest = build(tmp_path, Spec(ABC, ABC, seed=61))
    import_run(cat, Spec(ABC, ABC, kind="top1"), list(manifest["sample_id"]),
               manifest["label"].to_numpy(object), np.random.default_rng(62), "other")
    rep = dg.report(cat, "run", split="val", compare="other", min_n=10)
    assert set(rep) == {"run", "n", "accuracy", "balanced_accuracy", "log_loss", "top2_accuracy", "ece",
                        "macro", "weighted", "classes", "confusion", "per_class", "worst_slices",
                        "label_issues", "compare"}
    rows = raw(cat, "run")
    rows = rows[rows["split"] == "val"]
    assert rep["n"] == len(rows)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(rows["label"], rows["pred_label"]), abs=1e-9)
    assert all(s["n"] >= 10 for s in rep["worst_slices"])
    assert set(rep["compare"]) == {"run", "fixed", "broken", "accuracy_delta"}
    assert rep["compare"]["run"] == "other"
    assert math.isfinite(rep["log_loss"])


def test_a_confusion_matrix_of_many_classes_shows_the_most_confused_and_groups_the_rest() -> None:
    import json

    from al_core.diagnostics import charts
    from al_core.view.filters import parse_drill

    k = 120
    rng = np.random.default_rng(7)
    cm = np.diag(rng.integers(5, 50, k))
    cm[3, 7], cm[50, 2], cm[119, 118] = 40, 30, 20  # the confused ones
    classes = [f"c{i}" for i in range(k)]
    order = charts.confusion_order(cm, classes, top=30)
    assert len(order) == 30 and {3, 7, 50, 2, 119, 118} <= set(order)
    fig = json.loads(charts.confusion_matrix_figure(cm, classes, normalize=False, top=30).to_json())
    cells = fig["data"][0]
    assert charts.OTHER in cells["y"] and charts.OTHER in cells["x"]
    assert set(fig["layout"]["yaxis"]["categoryarray"]) == {*(classes[i] for i in order), charts.OTHER}
    for x, y, (spec,), text in zip(cells["x"], cells["y"], cells["customdata"], cells["text"], strict=True):
        if charts.OTHER in (x, y):
            assert spec == ""  # a grouped cell opens no gallery
            continue
        title, conds = parse_drill(spec)
        assert [(c.column, c.value) for c in conds] == [("label", y), ("pred_label", x)]
        assert int(text.replace(",", "")) == cm[classes.index(y), classes.index(x)]
    other_total = sum(int(t.replace(",", "")) for x, y, t in zip(cells["x"], cells["y"], cells["text"], strict=True)
                      if charts.OTHER in (x, y))
    assert other_total + sum(cm[i, j] for i in order for j in order) == cm.sum()


def test_a_label_the_model_itself_predicts_is_not_an_issue() -> None:
    """An underfit class gets a low threshold; a sample whose label is the model's own top class
    is still not flagged just because it reaches that low threshold (cleanlab's "both")."""
    from al_core.diagnostics.metrics import confident_issues

    probs = np.array([[0.9, 0.1]] * 5 + [[0.6, 0.4]] + [[0.7, 0.3]] * 3 + [[0.2, 0.8]])
    labels = np.array([0] * 6 + [1] * 3 + [0])
    out = confident_issues(probs, labels)
    assert out["thresholds"][1] == pytest.approx(0.3)
    assert not out["issue"][5]  # labeled 0, predicted 0, reaches class 1's low threshold: kept
    assert out["issue"].tolist() == [False] * 9 + [True]  # labeled 0, the model is sure of 1
    assert out["suggested"][9] == 1


def test_slices_beyond_duckdbs_grouping_key_limit(tmp_path: Path) -> None:
    """More fields than GROUPING_ID takes at once (63) are counted in several queries."""
    cat, _ = build(tmp_path, Spec(ABC, ABC, seed=5, n=300))
    run = dg.find_run(cat, "run")
    with cat.transaction("test: many fields") as cur:
        for i in range(70):
            cur.execute(f'ALTER TABLE samples ADD COLUMN "f{i:02d}" VARCHAR')
            cur.execute("INSERT INTO metadata_fields VALUES (?, 'VARCHAR', 1000 + ?, now()::TIMESTAMP)", [f"f{i:02d}", i])
            cur.execute(f'UPDATE samples SET "f{i:02d}" = CASE WHEN sample_key % 2 = 0 THEN \'a\' ELSE \'b\' END')
    out = dg.slices(cat, run, Filter(labeled="labeled"), min_n=1)
    assert {f"f{i:02d}" for i in range(70)} <= set(out["field"])
    assert {"split", "class", "f69 × class"} <= set(out["field"])
    assert (out["field"] == "class").sum() == len(set(out.loc[out["field"] == "class", "value"]))  # once each
    evens = out[(out["field"] == "f00") & (out["value"] == "a")].iloc[0]
    assert evens["n"] == view.count_filtered(cat, Filter(labeled="labeled").narrowed(*evens["conditions"]), run)
