"""Diagnostics: a model run against the ground truth, on the samples a filter selects.

The **evaluation set** of a run under a :class:`~al_core.view.filters.Filter` is every labeled
sample the filter matches that has a prediction from the run (the filter's model conditions are
asked of that run). Everything that is a sum is summed in DuckDB (confusion counts grouped by
truth and prediction, log loss and top-2 hits, calibration bins, slice counts); per-sample arrays
are fetched only for label issues. Metrics equal scikit-learn's (see
:func:`al_core.diagnostics.metrics.confusion_metrics` for how classes absent from the truth or
the predictions count).

Classes: the run's classes in its order, then every ground-truth class the run does not know
(sorted). Log loss and top-2 accuracy need probabilities and every true class among the run's
classes (else None, with a note); ECE needs confidences (None for a top-1 run imported without
them: the importer stores 1.0 for each, so a top-1 run whose confidences are all 1.0 has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from al_core.db.catalog import Catalog
from al_core.diagnostics import sql
from al_core.diagnostics.metrics import (
    calibration_table,
    confident_issues,
    confusion_metrics,
    per_class_frame,
    reliability,
    wilson,
)
from al_core.errors import AlExplorerError
from al_core.view.filters import Condition, Filter, field_kind
from al_core.view.sql import NULL_VALUE, RunRef

__all__ = ["ECE_BINS", "SLICE_COLUMNS", "DiagnosticsError", "Evaluation", "calibration", "compare", "informative",
           "evaluate", "find_run", "label_issues", "reliability", "report", "slices", "wilson"]

ECE_BINS = 15
#: A text field with more distinct values than this (in the evaluation set) is not sliced.
SLICE_MAX_VALUES = 50
SLICE_COLUMNS = ["field", "value", "n", "correct", "accuracy", "ci_low", "ci_high", "gap",
                 "enough", "conditions"]
ISSUE_COLUMNS = ["sample_id", "label", "suggested", "self_confidence", "score"]
#: How many worst slices and label issues :func:`report` lists.
REPORT_SLICES = 20
REPORT_ISSUES = 100


class DiagnosticsError(AlExplorerError):
    """A diagnostic cannot be computed as asked (unknown run or split, nothing to evaluate,
    unusable stored predictions); the message says why."""


@dataclass(frozen=True)
class Evaluation:
    """A run against the ground truth on one evaluation set (see :func:`evaluate`)."""

    run: RunRef
    n: int
    classes: list[str]
    confusion: np.ndarray
    accuracy: float
    balanced_accuracy: float
    macro: dict[str, float]
    weighted: dict[str, float]
    per_class: pd.DataFrame
    log_loss: float | None
    top2_accuracy: float | None
    ece: float | None
    has_probs: bool = False
    #: why a metric is None, in words
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Run:
    ref: RunRef
    classes: list[str]
    has_probs: bool

    @property
    def joined(self) -> RunRef:
        """The run joined as ``p`` (its probability vectors live only in ``predictions``)."""
        return replace(self.ref, cached=False)


def _run_info(cur: Any, run: RunRef) -> _Run:
    rows = cur.execute(sql.RUN_BY_NAME, [run.name]).fetchall()
    row = rows[0] if rows else None
    if row is None or int(row[0]) != run.run_id:
        raise DiagnosticsError(f"no model run {run.name!r} (id {run.run_id}) in the catalog")
    return _Run(run, list(row[2]), bool(row[3]))


def find_run(cat: Catalog, name: str) -> RunRef:
    """The run called ``name`` (mirrored if it is the newest); DiagnosticsError lists the known
    names when there is none."""
    rows = cat.query_rows(sql.RUNS)
    for i, (run_id, run_name, _, _) in enumerate(rows):
        if run_name == name:
            return RunRef(int(run_id), str(run_name), cached=i == 0)
    known = ", ".join(repr(r[1]) for r in rows) or "none: import predictions first"
    raise DiagnosticsError(f"no model run {name!r} in the catalog; known runs: {known}")


def _check_usable(cur: Any, flt: Filter, fields: dict[str, str], info: _Run, bad_conf: int,
                  bad_probs: int) -> None:
    if bad_conf or bad_probs:
        ids = [r[0] for r in cur.execute(*sql.bad_rows(flt, fields, info.joined, len(info.classes),
                                                       info.has_probs)).fetchall()]
        what = []
        if bad_conf:
            what.append(f"{bad_conf:,} with a missing, NaN or out-of-range confidence")
        if bad_probs:
            what.append(f"{bad_probs:,} with a missing, mis-sized or NaN probability vector")
        raise DiagnosticsError(
            f"run {info.ref.name!r} has unusable stored predictions ({'; '.join(what)}; e.g. "
            f"{', '.join(repr(i) for i in ids)}); re-import the run's predictions")


def _empty(info: _Run, flt: Filter) -> DiagnosticsError:
    return DiagnosticsError(
        f"nothing to evaluate: no labeled sample matching the filter has a prediction from run "
        f"{info.ref.name!r}")


def _class_order(run_classes: list[str], truths: list[str]) -> list[str]:
    known = set(run_classes)
    extra = sorted({t for t in truths if t not in known})
    return [*run_classes, *extra]


def evaluate(cat: Catalog, run: RunRef, flt: Filter) -> Evaluation:
    """The run against the ground truth on its evaluation set under ``flt``.

    One GROUP BY (truth, prediction) in DuckDB gives the confusion counts and, for a run with
    probabilities, the log-loss and top-2 sums; one more gives the 15 calibration bins.
    Raises DiagnosticsError when the evaluation set is empty or the stored predictions are
    unusable (NaN confidences or probabilities).
    """
    with cat.read() as cur:
        fields = cat.metadata_fields(cur)
        info = _run_info(cur, run)
        ref = info.joined if info.has_probs else info.ref
        cells = cur.execute(*sql.confusion_cells(flt, fields, ref, info.classes, info.has_probs)).df()
        if cells.empty:
            raise _empty(info, flt)
        _check_usable(cur, flt, fields, info, int(cells["bad_conf"].sum()),
                      int(cells["bad_probs"].sum()) if info.has_probs else 0)
        # the bins read the run's confidences where they are cheapest (mirrored, if it is)
        bins = cur.execute(*sql.calibration_bins(flt, fields, info.ref, ECE_BINS)).df()
    classes = _class_order(info.classes, cells["truth"].tolist())
    pos = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (cells["truth"].map(pos).to_numpy(), cells["pred"].map(pos).to_numpy()),
              cells["n"].to_numpy(dtype=np.int64))
    n = int(cm.sum())
    m = confusion_metrics(cm)
    notes = []
    log_loss = top2 = None
    unknown = sorted(set(cells["truth"]) - set(info.classes))
    if not info.has_probs:
        notes.append(f"run {run.name!r} has top-1 predictions only: no log loss or top-2 accuracy")
    elif unknown:
        notes.append(f"the ground truth has classes the run does not know ({', '.join(map(repr, unknown))}): "
                     "no log loss or top-2 accuracy")
    else:
        log_loss = float(cells["ll_sum"].sum() / n)
        top2 = float(cells["top2"].sum() / n)
    ece = None
    if not info.has_probs and int(cells["conf_one"].sum()) == n:
        notes.append(f"run {run.name!r} has no confidences (all 1.0, the importer's default): no ECE")
    else:
        ece = _bins_frame(bins, ECE_BINS)[1]
    return Evaluation(run=run, n=n, classes=classes, confusion=cm, accuracy=m["accuracy"],
                      balanced_accuracy=m["balanced_accuracy"], macro=m["macro"],
                      weighted=m["weighted"], per_class=per_class_frame(classes, cm, m),
                      log_loss=log_loss, top2_accuracy=top2, ece=ece, has_probs=info.has_probs,
                      notes=tuple(notes))


def _bins_frame(bins: pd.DataFrame, count: int) -> tuple[pd.DataFrame, float]:
    full = np.zeros(count, dtype=np.int64)
    conf_sum = np.zeros(count)
    correct_sum = np.zeros(count)
    idx = bins["bin"].to_numpy(dtype=np.int64)
    full[idx] = bins["n"].to_numpy(dtype=np.int64)
    conf_sum[idx] = bins["conf_sum"].to_numpy(dtype=float)
    correct_sum[idx] = bins["correct_sum"].to_numpy(dtype=float)
    edges = np.arange(count + 1) / count
    return calibration_table(full, conf_sum, correct_sum, edges[:-1], edges[1:])


def calibration(cat: Catalog, run: RunRef, flt: Filter, bins: int = ECE_BINS,
                equal_mass: bool = False) -> tuple[pd.DataFrame, float]:
    """Reliability table ``[bin, low, high, n, confidence, accuracy]`` of the run's top-1
    confidence on its evaluation set, and the expected calibration error.

    Equal-width bins are summed in DuckDB (every bin listed, empty ones with n 0); equal-mass
    bins need the order of the confidences, so they fetch (confidence, correct) and use
    :func:`~al_core.diagnostics.metrics.reliability`, as the equal-width sums do by construction.
    """
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1, not {bins!r}")
    bins = int(bins)
    with cat.read() as cur:
        fields = cat.metadata_fields(cur)
        info = _run_info(cur, run)
        stats = cur.execute(*sql.confidence_stats(flt, fields, info.ref)).fetchall()[0]
        if not stats[0]:
            raise _empty(info, flt)
        _check_usable(cur, flt, fields, replace(info, has_probs=False), int(stats[2]), 0)
        if equal_mass:
            frame = cur.execute(*sql.confidence_correct(flt, fields, info.ref)).df()
        else:
            frame = cur.execute(*sql.calibration_bins(flt, fields, info.ref, bins)).df()
    if equal_mass:
        return reliability(frame["conf"].to_numpy(float), frame["correct"].to_numpy(bool), bins, True)
    return _bins_frame(frame, bins)


# ------------------------------------------------------------------------------------ slices
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    """A numpy / pandas scalar as a plain Python value (bindable, JSON-able)."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class _Key:
    """One grouping key of the slice query: a field (categorical or binned) or the class."""

    field: str
    column: str  # the Condition column
    expr: str
    params: list[Any]
    edges: list[Any] | None = None  # binned fields: the cut points
    span: tuple[Any, Any] | None = None  # binned fields: min and max (for the labels)

    def describe(self, value: Any) -> tuple[str, tuple[Condition, ...]]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return NULL_VALUE, (Condition(self.column, is_null=True),)
        if self.edges is None:
            return str(value), (Condition(self.column, value=str(value)),)
        i = int(value)
        lows = [None, *self.edges]
        highs = [*self.edges, None]
        lo, hi = lows[i], highs[i]
        shown_lo = lo if lo is not None else self.span[0]  # type: ignore[index]
        shown_hi = hi if hi is not None else self.span[1]  # type: ignore[index]
        close = "]" if hi is None else ")"
        return f"[{_fmt(shown_lo)}, {_fmt(shown_hi)}{close}", (Condition(self.column, low=lo, high=hi),)


def _slice_keys(cur: Any, flt: Filter, fields: dict[str, str], ref: RunRef,
                quantile_bins: int) -> tuple[list[_Key], list[str]]:
    kinds = {name: field_kind(t) for name, t in fields.items()}
    binned = [n for n, k in kinds.items() if k in ("numeric", "time")]
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    qs = [i / quantile_bins for i in range(quantile_bins + 1)]
    profile = cur.execute(*sql.field_profile(flt, fields, ref, binned, categorical, qs)).fetchall()[0]
    n_fields, total = len(binned) + len(categorical), profile[-1]
    complete = [profile[n_fields + i] == total for i in range(n_fields)]  # no missing value
    keys: list[_Key] = []
    skipped = []
    for i, name in enumerate(binned):
        values = profile[i]
        if not values or values[0] is None or (values[0] == values[-1] and complete[i]):
            continue  # no value, or one for every sample: its one slice is the whole set
        values = [_plain(v) for v in values]
        edges = sorted(set(values[1:-1]) - {values[0]})  # inner cuts above the minimum
        span = (values[0], values[-1])
        expr, params = sql.numeric_bin_expr(name, edges)
        keys.append(_Key(name, name, expr, params, edges, span))
    for j, name in enumerate(categorical):
        distinct = int(profile[len(binned) + j])
        if distinct == 0 or (distinct == 1 and complete[len(binned) + j]):
            continue  # no value (e.g. quality signals never measured), or the same one for all
        if distinct > SLICE_MAX_VALUES:
            skipped.append(name)
            continue
        keys.append(_Key(name, name, f"s.{sql.quote_ident(name)}::VARCHAR", []))
    keys.append(_Key("split", "split", "s.split", []))
    keys.append(_Key("class", "label", "s.label", []))
    return keys, skipped


#: Fields counted per slice query: with the split and the class, DuckDB's GROUPING_ID limit (63).
MAX_GROUPING_FIELDS = 60


def slices(cat: Catalog, run: RunRef, flt: Filter, min_n: int = 30,
           quantile_bins: int = 4) -> pd.DataFrame:
    """Accuracy of the run on every slice of its evaluation set, worst first.

    A slice is one value of a metadata field (numbers and times cut at their quantiles over the
    evaluation set into ``quantile_bins`` bins; missing values a slice of their own), of the
    split, of the class (the ground truth), or a field value together with a class. Columns
    :data:`SLICE_COLUMNS`: ``accuracy`` with its Wilson 95% interval, ``gap`` = accuracy minus
    the overall accuracy, ``enough`` = n >= ``min_n``, ``conditions`` (Condition tuple) drills
    down to the slice. Ranked: slices with enough samples first, by gap (ascending), then by
    size. One GROUP BY GROUPING SETS in DuckDB counts every slice. Text fields with more than
    :data:`SLICE_MAX_VALUES` distinct values are left out (named in ``attrs["skipped"]``).
    """
    if int(min_n) != min_n or min_n < 1:
        raise ValueError(f"min_n must be a whole number >= 1, not {min_n!r}")
    if int(quantile_bins) != quantile_bins or quantile_bins < 1:
        raise ValueError(f"quantile_bins must be a whole number >= 1, not {quantile_bins!r}")
    rows: list[dict[str, Any]] = []
    total_n = total_correct = 0
    with cat.read() as cur:
        fields = cat.metadata_fields(cur)
        info = _run_info(cur, run)
        all_keys, skipped = _slice_keys(cur, flt, fields, info.ref, int(quantile_bins))
        field_keys, tail = all_keys[:-2], all_keys[-2:]  # tail: split, class
        # DuckDB's GROUPING_ID takes at most 63 keys: many fields are counted in several queries
        for start in range(0, max(len(field_keys), 1), MAX_GROUPING_FIELDS):
            chunk = field_keys[start:start + MAX_GROUPING_FIELDS]
            keys = [*chunk, *(tail if start == 0 else tail[1:])]  # the split and the class alone: once
            klass = len(keys) - 1
            sets = [[i] for i in range(len(chunk))] + [[i, klass] for i in range(len(chunk))]
            if start == 0:
                sets += [[klass - 1], [klass]]
            counts = cur.execute(*sql.slice_counts(flt, fields, info.ref,
                                                   [(k.expr, k.params) for k in keys], sets)).fetchall()
            if not counts:
                raise _empty(info, flt)
            n_keys = len(keys)
            full = (1 << n_keys) - 1
            by_gid = {full ^ sum(1 << (n_keys - 1 - i) for i in s): s for s in sets}
            for row in counts:
                gid, values, n, correct = row[0], row[1:1 + n_keys], int(row[-2]), int(row[-1])
                members = by_gid[gid]
                if members == [klass]:
                    total_n += n
                    total_correct += correct
                parts = [keys[i].describe(values[i]) for i in members]
                rows.append({"field": " × ".join(keys[i].field for i in members),
                             "value": " × ".join(p[0] for p in parts), "n": n, "correct": correct,
                             "conditions": tuple(c for p in parts for c in p[1])})
    frame = pd.DataFrame(rows, columns=["field", "value", "n", "correct", "conditions"])
    overall = total_correct / total_n
    frame["accuracy"] = frame["correct"] / frame["n"]
    frame["ci_low"], frame["ci_high"] = wilson(frame["correct"].to_numpy(), frame["n"].to_numpy())
    frame["gap"] = frame["accuracy"] - overall
    frame["enough"] = frame["n"] >= min_n
    frame["_gap"] = frame["gap"].round(12)  # equal accuracies computed apart differ by float noise
    frame = frame.sort_values(["enough", "_gap", "n", "field", "value"],
                              ascending=[False, True, False, True, True], ignore_index=True)
    frame = frame[SLICE_COLUMNS]
    frame.attrs.update(overall=overall, n=total_n, skipped=skipped)
    return frame


# ------------------------------------------------------------------------------ label issues
def informative(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`slices` less those that hold the whole evaluation set (``split = test`` when the
    filter is that split): their accuracy is the overall one, so they say nothing."""
    return frame[frame["n"] < frame.attrs.get("n", np.inf)].reset_index(drop=True)


def label_issues(cat: Catalog, run: RunRef, flt: Filter, limit: int | None = None) -> pd.DataFrame:
    """Samples whose label is likely wrong, most likely first (confident learning).

    Columns :data:`ISSUE_COLUMNS`: the given ``label``, the ``suggested`` class,
    ``self_confidence`` (the run's probability of the given label) and ``score`` (normalized
    margin in [0, 1], ascending: the likeliest errors first; see
    :func:`~al_core.diagnostics.metrics.confident_issues`). Only samples whose label is one of the
    run's classes take part. A run without probabilities gives an empty frame with the reason in
    ``attrs["reason"]``.
    """
    if limit is not None and (int(limit) != limit or limit < 0):
        raise ValueError(f"limit must be a whole number >= 0, not {limit!r}")
    with cat.read() as cur:
        fields = cat.metadata_fields(cur)
        info = _run_info(cur, run)
        if not info.has_probs:
            out = pd.DataFrame(columns=ISSUE_COLUMNS)
            out.attrs["reason"] = (f"run {run.name!r} has top-1 predictions only; label issues "
                                   "need class probabilities")
            return out
        text, params = sql.issue_inputs(flt, fields, info.joined, info.classes)
        table = cur.sql(text, params=params).to_arrow_table()
    k = len(info.classes)
    n = table.num_rows
    if n == 0:
        out = pd.DataFrame(columns=ISSUE_COLUMNS)
        out.attrs["reason"] = "no labeled sample with one of the run's classes matches the filter"
        return out
    column = table.column("probs").combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    if values.size != n * k or (lengths != k).any() or np.isnan(values).any():
        raise DiagnosticsError(f"run {run.name!r} has mis-sized or NaN probability vectors; "
                               "re-import the run's predictions")
    probs = values.reshape(n, k)
    labels = table.column("li").to_numpy().astype(np.int64)
    found = confident_issues(probs, labels)
    hits = np.flatnonzero(found["issue"])
    order = hits[np.lexsort((hits, found["score"][hits]))]  # score, then id order (input order)
    if limit is not None:
        order = order[:int(limit)]
    ids = table.column("sample_id").take(order).to_pylist()
    classes = np.array(info.classes, dtype=object)
    out = pd.DataFrame({"sample_id": ids, "label": classes[labels[order]],
                        "suggested": classes[found["suggested"][order]],
                        "self_confidence": found["self_confidence"][order],
                        "score": found["score"][order]}, columns=ISSUE_COLUMNS)
    out.attrs.update(n_issues=int(hits.size), n_checked=n)
    return out


# ----------------------------------------------------------------------------------- compare
def compare(cat: Catalog, run: RunRef, other: RunRef, flt: Filter) -> dict[str, Any]:
    """``run`` against ``other`` on the labeled samples ``flt`` matches that both predicted.

    ``fixed``: samples wrong in ``other`` and right in ``run``; ``broken``: the reverse.
    ``accuracy_delta`` = accuracy of ``run`` minus that of ``other``; ``per_class``: per true
    class ``support``, ``recall`` / ``other_recall`` / ``recall_delta`` and ``f1`` /
    ``other_f1`` / ``f1_delta``; ``fixed_query`` / ``broken_query``: ``(sql, params)`` of the
    ids of those samples for :meth:`Catalog.query_rows`. The filter's model conditions are
    asked of ``run``.
    """
    if run.run_id == other.run_id:
        raise ValueError("compare needs two different runs")
    with cat.read() as cur:
        fields = cat.metadata_fields(cur)
        info = _run_info(cur, run)
        other_info = _run_info(cur, other)
        cells = cur.execute(*sql.compare_cells(flt, fields, info.ref, other.run_id)).df()
    if cells.empty:
        raise DiagnosticsError(f"nothing to compare: no labeled sample matching the filter has "
                               f"predictions from both {run.name!r} and {other.name!r}")
    classes = _class_order(info.classes, [*cells["truth"], *other_info.classes, *cells["b"]])
    pos = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    t, a, b, n = (cells["truth"].map(pos).to_numpy(), cells["a"].map(pos).to_numpy(),
                  cells["b"].map(pos).to_numpy(), cells["n"].to_numpy(dtype=np.int64))
    cm_a = np.zeros((k, k), dtype=np.int64)
    cm_b = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm_a, (t, a), n)
    np.add.at(cm_b, (t, b), n)
    ma, mb = confusion_metrics(cm_a), confusion_metrics(cm_b)
    fixed = int(n[(a == t) & (b != t)].sum())
    broken = int(n[(a != t) & (b == t)].sum())
    per_class = pd.DataFrame({"class": classes, "support": ma["support"], "recall": ma["recall"],
                              "other_recall": mb["recall"], "recall_delta": ma["recall"] - mb["recall"],
                              "f1": ma["f1"], "other_f1": mb["f1"], "f1_delta": ma["f1"] - mb["f1"]})
    return {"run": run.name, "other": other.name, "n": int(n.sum()), "fixed": fixed, "broken": broken,
            "accuracy": ma["accuracy"], "other_accuracy": mb["accuracy"],
            "accuracy_delta": ma["accuracy"] - mb["accuracy"], "per_class": per_class,
            "fixed_query": sql.compare_ids(flt, fields, info.ref, other.run_id, "fixed"),
            "broken_query": sql.compare_ids(flt, fields, info.ref, other.run_id, "broken")}


# ------------------------------------------------------------------------------------ report
def _split_filter(cat: Catalog, split: str | None) -> Filter:
    if split is None:
        return Filter()
    splits = dict(cat.query_rows(sql.SPLITS))
    if split not in splits:
        known = ", ".join(f"{s!r} ({n:,} labeled)" for s, n in splits.items()) or "none"
        raise DiagnosticsError(f"no split {split!r} in the catalog; known splits: {known}")
    return Filter(splits=(split,))


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def report(cat: Catalog, run_name: str, split: str | None = None, compare: str | None = None,
           min_n: int = 30, *, top_slices: int = REPORT_SLICES,
           top_issues: int = REPORT_ISSUES) -> dict[str, Any]:
    """The run's diagnostics as a JSON-able dict (what ``al-explorer report --json`` prints).

    Keys: ``run``, ``n``, ``accuracy``, ``balanced_accuracy``, ``log_loss``, ``top2_accuracy``,
    ``ece``, ``macro``, ``weighted``, ``classes``, ``confusion`` (rows truth, columns
    prediction), ``per_class`` (class -> precision, recall, f1, support), ``worst_slices`` (at
    most ``top_slices`` with n >= ``min_n``, worst gap first), ``label_issues`` (at most
    ``top_issues`` ids, likeliest first) and, with ``compare``, ``compare`` (run, fixed, broken,
    accuracy_delta). Without ``split``, every labeled sample. Unknown run or split names raise
    DiagnosticsError listing the known ones.
    """
    ref = find_run(cat, run_name)
    other = find_run(cat, compare) if compare is not None else None
    if other is not None and other.run_id == ref.run_id:
        raise DiagnosticsError(f"--compare names the run itself ({compare!r}); name another run")
    flt = _split_filter(cat, split)
    ev = evaluate(cat, ref, flt)
    worst = informative(slices(cat, ref, flt, min_n=min_n))
    worst = worst[worst["enough"]].head(top_slices)
    issues = label_issues(cat, ref, flt, limit=top_issues)
    out: dict[str, Any] = {
        "run": ref.name, "n": ev.n, "accuracy": ev.accuracy,
        "balanced_accuracy": ev.balanced_accuracy, "log_loss": _num(ev.log_loss),
        "top2_accuracy": _num(ev.top2_accuracy), "ece": _num(ev.ece),
        "macro": dict(ev.macro), "weighted": dict(ev.weighted), "classes": list(ev.classes),
        "confusion": ev.confusion.tolist(),
        "per_class": {r["class"]: {"precision": float(r["precision"]), "recall": float(r["recall"]),
                                   "f1": float(r["f1"]), "support": int(r["support"])}
                      for r in ev.per_class.to_dict("records")},
        "worst_slices": [{"field": r["field"], "value": r["value"], "n": int(r["n"]),
                          "accuracy": float(r["accuracy"]), "ci_low": float(r["ci_low"]),
                          "ci_high": float(r["ci_high"])} for r in worst.to_dict("records")],
        "label_issues": [str(i) for i in issues["sample_id"]],
    }
    if other is not None:
        diff = compare_runs(cat, ref, other, flt)
        out["compare"] = {"run": other.name, "fixed": diff["fixed"], "broken": diff["broken"],
                          "accuracy_delta": diff["accuracy_delta"]}
    return out


compare_runs = compare  # :func:`report` takes a parameter named ``compare``
