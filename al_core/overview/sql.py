"""SQL of the Overview: counts, distributions, heatmaps and slice cells over the filtered view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from al_core.db.sql import Query, quote_ident
from al_core.view.sql import NULL_VALUE, RunRef, filtered_view, over


def overview_counts(flt: Any, fields: dict[str, str]) -> Query:
    view = filtered_view(flt, fields, None, "s.label, s.split")
    return over(view, "SELECT count(*) AS samples, count(label) AS labeled, "
                       "count(*) - count(label) AS unlabeled, count(DISTINCT label) AS classes, "
                       "count(DISTINCT split) AS splits, (SELECT count(*) FROM model_runs) AS model_runs, "
                       "(SELECT count(*) FROM embedding_sets) AS embedding_sets FROM v")


def class_counts(flt: Any, fields: dict[str, str]) -> Query:
    view = filtered_view(flt, fields, None, "s.label")
    return over(view, "SELECT label, count(*) AS n FROM v WHERE label IS NOT NULL "
                       "GROUP BY label ORDER BY n DESC, label")


def predicted_pool_counts(flt: Any, fields: dict[str, str], run: RunRef) -> Query:
    view = filtered_view(flt, fields, run, f"s.label, {run.label} AS pred_label")
    return over(view, "SELECT pred_label, count(*) AS n FROM v WHERE label IS NULL "
                       "AND pred_label IS NOT NULL GROUP BY pred_label ORDER BY n DESC, pred_label")


def split_class_counts(flt: Any, fields: dict[str, str]) -> Query:
    view = filtered_view(flt, fields, None, "s.split, s.label")
    return over(view, "SELECT split, label, count(*) AS n FROM v WHERE label IS NOT NULL "
                       "GROUP BY split, label ORDER BY split, label")


#: Shared tail of the labeled-vs-pool builders: each row is one (key, group) cell with its count
#: ``n`` and ``group_n``, the size of its group (labeled or pool) over every key of the chart.
_GROUP_COUNTS = "count(*) AS n, sum(count(*)) OVER (PARTITION BY pool) AS group_n"


def categorical_counts(flt: Any, fields: dict[str, str], name: str, limit: int = 40) -> Query:
    """Per value (missing as ``(missing)``) and group (``pool``: unlabeled), the count, in one
    GROUP BY; the ``limit`` values with the most samples overall, biggest first.

    Columns: ``value, pool, n, group_n`` (``group_n`` counts every value, those past the limit too).
    """
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.{col} AS raw, s.label IS NULL AS pool")
    return over(view, "SELECT value, pool, n, group_n FROM ("
                       "SELECT value, pool, n, sum(n) OVER (PARTITION BY pool) AS group_n, "
                       "sum(n) OVER (PARTITION BY value) AS value_n FROM ("
                       "SELECT coalesce(raw::VARCHAR, ?) AS value, pool, count(*) AS n FROM v GROUP BY 1, 2)) "
                       "QUALIFY dense_rank() OVER (ORDER BY value_n DESC, value) <= ? "
                       "ORDER BY value_n DESC, value, pool", [NULL_VALUE, limit])


def numeric_histogram(flt: Any, fields: dict[str, str], name: str, low: float, width: float,
                      bins: int) -> Query:
    """Per bin of ``width`` from ``low`` (values past the ends go in the end bins) and group.

    Columns: ``bin, pool, n, group_n``; missing values are left out.
    """
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.{col} AS x, s.label IS NULL AS pool")
    return over(view, "SELECT least(greatest(floor((x - ?) / ?), 0), ?)::INTEGER AS bin, pool, "
                       f"{_GROUP_COUNTS} FROM v WHERE x IS NOT NULL GROUP BY bin, pool ORDER BY bin, pool",
                 [low, width, bins - 1])


def timeline(flt: Any, fields: dict[str, str], name: str, unit: str) -> Query:
    """Per period (``date_trunc(unit)``) and group. Columns: ``period, pool, n, group_n``."""
    if unit not in ("hour", "day", "week", "month", "year"):
        raise ValueError(f"bad time unit {unit!r}")
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.{col} AS t, s.label IS NULL AS pool")
    return over(view, f"SELECT date_trunc('{unit}', t) AS period, pool, {_GROUP_COUNTS} FROM v "
                       "WHERE t IS NOT NULL GROUP BY period, pool ORDER BY period, pool")


def class_field_counts(flt: Any, fields: dict[str, str], name: str) -> Query:
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.label, s.{col} AS value")
    return over(view, "SELECT label, coalesce(value::VARCHAR, ?) AS value, count(*) AS n FROM v "
                       "WHERE label IS NOT NULL GROUP BY ALL ORDER BY label, value", [NULL_VALUE])


def slice_cells(flt: Any, fields: dict[str, str], names: Sequence[str], run: RunRef | None) -> Query:
    """Labeled and pool counts per finest cell of the given fields and the class (the label where
    labeled, the prediction of ``run`` in the pool); coarser slices are sums of these cells.

    Columns: ``g0..gk`` (fields in order, then the class), ``labeled_n``, ``pool_n``.
    """
    cols = [f"s.{quote_ident(n)}::VARCHAR AS g{i}" for i, n in enumerate(names)]
    klass = f"coalesce(s.label, {run.label})" if run is not None else "s.label"
    cols.append(f"{klass} AS g{len(names)}")
    view = filtered_view(flt, fields, run, ", ".join([*cols, "s.label IS NOT NULL AS is_labeled"]))
    keys = ", ".join(f"g{i}" for i in range(len(names) + 1))
    return over(view, f"SELECT {keys}, count(*) FILTER (WHERE is_labeled) AS labeled_n, "
                       f"count(*) FILTER (WHERE NOT is_labeled) AS pool_n FROM v GROUP BY {keys}")


def distinct_counts(names: Sequence[str]) -> Query:
    """Number of distinct values of each field, in one scan."""
    cols = ", ".join(f"count(DISTINCT {quote_ident(n)})" for n in names)
    return f"SELECT {cols} FROM samples", []
