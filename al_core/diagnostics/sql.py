"""SQL of the Diagnostics feature: the evaluation set of a run and the sums metrics are made of.

The evaluation set of a run under a filter is every *labeled* sample the filter matches that has
a prediction from the run. Every builder returns ``(sql, params)``: values are bound, identifiers
go through :func:`~al_core.db.sql.quote_ident`, and the filter's own SQL comes from
:func:`al_core.view.sql.filtered_view`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from al_core.db.sql import Query, quote_ident
from al_core.view.sql import RunRef, filtered_view

#: float32 machine epsilon: scikit-learn clips float32 probabilities to [eps, 1 - eps] for log loss.
EPS32 = float(np.finfo(np.float32).eps)

#: Whether a probability vector sums to NaN (``isnan(list_sum(p.probs))``: the sum is a DOUBLE
#: and cannot overflow from FLOATs, so it is NaN exactly when an element is NaN or both infinities
#: are there), as three searches, which DuckDB runs far faster than the sum. It is false where the
#: sum is NULL (no element, or only NULL ones): the same in every WHERE / FILTER that uses it.
NAN_SUM = ("(list_contains(p.probs, 'nan'::FLOAT) OR (list_contains(p.probs, 'inf'::FLOAT) "
           "AND list_contains(p.probs, '-inf'::FLOAT)))")

RUN_BY_NAME = "SELECT run_id, name, classes, has_probs FROM model_runs WHERE name = ?"
#: Every run, newest first (the newest one is mirrored in ``samples``).
RUNS = "SELECT run_id, name, classes, has_probs FROM model_runs ORDER BY run_id DESC"
#: Splits that hold at least one labeled sample, and every split.
SPLITS = ("SELECT split, count(*) FILTER (WHERE label IS NOT NULL) AS labeled FROM samples "
          "GROUP BY split ORDER BY split")


def eval_set(flt: Any, fields: dict[str, str], run: RunRef, columns: str) -> Query:
    """``SELECT columns`` over the evaluation set of ``run`` under ``flt`` (aliases ``s``, ``p``).

    The filter's model conditions (predicted class, confidence, outcome) are asked of ``run``.
    """
    text, params = filtered_view(flt, fields, run, columns)
    return f"{text} AND s.label IS NOT NULL AND {run.label} IS NOT NULL", params


def confusion_cells(flt: Any, fields: dict[str, str], run: RunRef, classes: Sequence[str],
                    with_probs: bool) -> Query:
    """Counts per (truth, prediction): ``truth, pred, n`` and, for a run with probabilities,
    ``ll_sum`` (sum of -ln p_truth clipped to [eps, 1 - eps], NULL where the truth is not one
    of the run's classes), ``top2`` (samples whose truth is among the two most probable classes;
    a tie counts against), ``bad_probs`` (vectors that are missing, of the wrong length or NaN);
    always ``bad_conf`` (confidences missing, NaN or outside [0, 1]) and ``conf_one`` (confidences
    of exactly 1.0: a top-1 run imported without confidences has 1.0 everywhere)."""
    conf = f"{run.confidence}"
    cols = [f"s.label AS truth, {run.label} AS pred",
            f"({conf} IS NULL OR isnan({conf}) OR {conf} < 0 OR {conf} > 1) AS bad_conf",
            f"{conf} AS conf"]
    params: list[Any] = []
    if with_probs:
        cols.append(f"(p.probs IS NULL OR len(p.probs) <> ? OR {NAN_SUM}) AS bad_probs")
        cols.append("p.probs AS probs, p.third_prob AS third")
        params += [len(classes)]
    text, view_params = eval_set(flt, fields, run, ", ".join(cols))
    aggs = ["count(*) AS n", "count(*) FILTER (WHERE bad_conf) AS bad_conf",
            "count(*) FILTER (WHERE conf = 1.0) AS conf_one"]
    extra: list[Any] = []
    source, source_params = "v", []
    if with_probs:
        aggs += ["sum(-ln(greatest(least(pt, ?), ?))) AS ll_sum",
                 "count(pt) AS ll_n",
                 "count(*) FILTER (WHERE third IS NULL OR pt > third) AS top2",
                 "count(*) FILTER (WHERE bad_probs) AS bad_probs"]
        extra += [1.0 - EPS32, EPS32]
        source, source_params = _with_truth_prob(classes)
    # the view's own columns come first in the text, then the aggregates', then the source's
    sql = f"WITH v AS ({text}) SELECT truth, pred, {', '.join(aggs)} FROM {source} GROUP BY truth, pred"
    return sql, [*params, *view_params, *extra, *source_params]


def _with_truth_prob(classes: Sequence[str]) -> Query:
    """``v`` (with ``truth`` and ``probs``) plus ``pt``, the truth's probability (NULL where the
    truth is not one of ``classes``).

    Top-2 is ``third IS NULL OR pt > third`` with ``third`` the vector's third-highest element,
    stored at import (:data:`~al_core.db.sql.THIRD_PROB`): the truth is among the two most
    probable classes, a tie counting against, exactly when fewer than three probabilities are at
    or above its own. No pass over the vector: at 100 classes a per-row comparison list took
    half the query. The truth's index comes from a join with the run's classes (the first of a
    repeated name, as list_position), cheaper than searching the list per row.
    """
    return ("(SELECT v.*, list_extract(v.probs, ci.i)::DOUBLE AS pt FROM v LEFT JOIN "
            "(SELECT c, min(i) AS i FROM (SELECT unnest(?::VARCHAR[]) AS c, "
            "generate_subscripts(?::VARCHAR[], 1) AS i) GROUP BY c) ci ON ci.c = v.truth)",
            [list(classes), list(classes)])


def bad_rows(flt: Any, fields: dict[str, str], run: RunRef, n_classes: int, with_probs: bool,
             limit: int = 5) -> Query:
    """A few sample ids whose stored confidence (or probability vector) is unusable."""
    conf = run.confidence
    cond = f"{conf} IS NULL OR isnan({conf}) OR {conf} < 0 OR {conf} > 1"
    params: list[Any] = []
    if with_probs:
        cond += f" OR p.probs IS NULL OR len(p.probs) <> ? OR {NAN_SUM}"
    text, view_params = eval_set(flt, fields, run, "s.sample_id")
    if with_probs:
        params.append(n_classes)
    return f"{text} AND ({cond}) ORDER BY s.sample_id LIMIT ?", [*view_params, *params, limit]


def calibration_bins(flt: Any, fields: dict[str, str], run: RunRef, bins: int) -> Query:
    """Per equal-width confidence bin: ``bin, n, conf_sum, correct_sum`` (empty bins absent)."""
    text, view_params = eval_set(
        flt, fields, run, f"{run.confidence}::DOUBLE AS conf, (s.label = {run.label})::INTEGER AS correct")
    edges = [i / bins for i in range(bins + 1)]
    # floor(conf * bins) is at most one off at an edge: correct it against the exact edges
    # (the doubles i / bins, bound), so a value exactly at an edge opens its bin, as in numpy
    key = "least(greatest(floor(conf * ?)::INTEGER, 0), ?)"
    return (f"WITH v AS ({text}), g AS (SELECT conf, correct, {key} AS g FROM v), "
            "b AS (SELECT conf, correct, g - (conf < list_extract(?::DOUBLE[], g + 1))::INTEGER "
            "+ (g < ? AND conf >= list_extract(?::DOUBLE[], g + 2))::INTEGER AS bin FROM g) "
            "SELECT bin, count(*) AS n, sum(conf) AS conf_sum, sum(correct) AS correct_sum "
            "FROM b GROUP BY bin ORDER BY bin",
            [*view_params, bins, bins - 1, edges, bins - 1, edges])


def confidence_correct(flt: Any, fields: dict[str, str], run: RunRef) -> Query:
    """Each evaluated sample's top-1 confidence and whether it is right (for equal-mass bins)."""
    return eval_set(flt, fields, run,
                    f"{run.confidence}::DOUBLE AS conf, (s.label = {run.label}) AS correct")


def confidence_stats(flt: Any, fields: dict[str, str], run: RunRef) -> Query:
    """``n``, how many confidences are exactly 1.0 and how many are unusable (NULL, NaN, out of
    [0, 1]): a top-1 run imported without confidences stores 1.0 everywhere."""
    conf = run.confidence
    return eval_set(flt, fields, run,
                    f"count(*), count(*) FILTER (WHERE {conf} = 1.0), count(*) FILTER (WHERE "
                    f"{conf} IS NULL OR isnan({conf}) OR {conf} < 0 OR {conf} > 1)")


def field_profile(flt: Any, fields: dict[str, str], run: RunRef, numeric: Sequence[str],
                  categorical: Sequence[str], quantiles: Sequence[float]) -> Query:
    """Over the evaluation set, in one scan: for each numeric/time field its quantiles
    (``quantile_disc``), for each categorical field its number of distinct values, then each
    field's number of values (numeric ones first), then the number of samples."""
    cols = []
    params: list[Any] = []
    for name in numeric:
        cols.append(f"quantile_disc(s.{quote_ident(name)}, ?::DOUBLE[])")
        params.append(list(quantiles))
    for name in categorical:
        cols.append(f"count(DISTINCT s.{quote_ident(name)})")
    cols += [f"count(s.{quote_ident(name)})" for name in [*numeric, *categorical]]
    cols.append("count(*)")
    text, view_params = eval_set(flt, fields, run, ", ".join(cols))
    return text, [*params, *view_params]


def numeric_bin_expr(name: str, edges: Sequence[Any]) -> tuple[str, list[Any]]:
    """Bin index of a numeric/time field: 0 below ``edges[0]``, i in [edges[i-1], edges[i]),
    ``len(edges)`` at or above the last edge; NULL stays NULL."""
    col = f"s.{quote_ident(name)}"
    if not edges:
        return f"CASE WHEN {col} IS NULL THEN NULL ELSE 0 END", []
    whens = " ".join(f"WHEN {col} < ? THEN {i}" for i in range(len(edges)))
    return f"CASE WHEN {col} IS NULL THEN NULL {whens} ELSE {len(edges)} END", list(edges)


def slice_counts(flt: Any, fields: dict[str, str], run: RunRef,
                 keys: Sequence[tuple[str, list[Any]]], sets: Sequence[Sequence[int]]) -> Query:
    """``n`` and ``correct`` per group of each grouping set over the evaluation set.

    ``keys`` are SQL expressions (with their parameters) named ``k0..``; ``sets`` lists, per
    grouping set, the indices of the keys it groups by. ``gid`` (DuckDB's ``GROUPING_ID`` over
    every key, bit set = not grouped) tells the sets apart, so a NULL value (missing) is a group
    of its own and never confused with "not grouped by this key".
    """
    cols, params = [], []
    for i, (expr, p) in enumerate(keys):
        cols.append(f"{expr} AS k{i}")
        params += p
    cols.append(f"(s.label = {run.label})::INTEGER AS correct")
    text, view_params = eval_set(flt, fields, run, ", ".join(cols))
    names = [f"k{i}" for i in range(len(keys))]
    grouping = ", ".join("(" + ", ".join(names[i] for i in s) + ")" for s in sets)
    return (f"WITH v AS ({text}) SELECT GROUPING_ID({', '.join(names)}) AS gid, {', '.join(names)}, "
            f"count(*) AS n, sum(correct) AS correct FROM v GROUP BY GROUPING SETS ({grouping})",
            [*params, *view_params])


def issue_inputs(flt: Any, fields: dict[str, str], run: RunRef, classes: Sequence[str]) -> Query:
    """Evaluated samples whose label is one of the run's classes: id, 0-based label index, probs."""
    text, params = eval_set(flt, fields, run,
                            "s.sample_id, list_position(?::VARCHAR[], s.label) - 1 AS li, p.probs")
    return (f"WITH v AS ({text}) SELECT sample_id, li, probs FROM v WHERE li >= 0 AND probs IS NOT NULL "
            "ORDER BY sample_id", [list(classes), *params])


def compare_cells(flt: Any, fields: dict[str, str], run: RunRef, other_id: int) -> Query:
    """Counts per (truth, run's prediction, other run's prediction) over the evaluation set of
    ``run`` restricted to samples the other run predicted too."""
    text, params = eval_set(flt, fields, run,
                            f"s.sample_key, s.label AS truth, {run.label} AS a")
    return (f"WITH v AS ({text}) SELECT v.truth, v.a, o.pred_label AS b, count(*) AS n FROM v "
            "JOIN predictions o ON o.sample_key = v.sample_key AND o.run_id = ? "
            "GROUP BY v.truth, v.a, o.pred_label", [*params, other_id])


def compare_ids(flt: Any, fields: dict[str, str], run: RunRef, other_id: int, which: str) -> Query:
    """Ids, in order, of the samples ``fixed`` (wrong in the other run, right in ``run``) or
    ``broken`` (right in the other run, wrong in ``run``)."""
    cond = {"fixed": "v.a = v.truth AND o.pred_label <> v.truth",
            "broken": "v.a <> v.truth AND o.pred_label = v.truth"}[which]
    text, params = eval_set(flt, fields, run, f"s.sample_id, s.sample_key, s.label AS truth, {run.label} AS a")
    return (f"WITH v AS ({text}) SELECT v.sample_id FROM v JOIN predictions o "
            f"ON o.sample_key = v.sample_key AND o.run_id = ? WHERE {cond} ORDER BY v.sample_id",
            [*params, other_id])
