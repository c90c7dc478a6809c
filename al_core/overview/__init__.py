"""Overview analytics on the filtered view: counts, class imbalance, field distributions, slices.

All aggregation runs in DuckDB; only small, aggregated frames come back to Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from al_core.db.catalog import Catalog
from al_core.overview import sql
from al_core.view import sql as view_sql
from al_core.view.filters import Condition, Filter, field_kind

SLICE_FIELD_MAX_VALUES = 30


@dataclass(frozen=True)
class Imbalance:
    """Class-imbalance measures of a count vector."""

    max_min_ratio: float
    normalized_entropy: float
    n_classes: int


def imbalance(counts: pd.Series | np.ndarray) -> Imbalance:
    """Largest/smallest class ratio and entropy / log(k) (1 = perfectly balanced)."""
    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if c.size == 0:
        return Imbalance(math.nan, math.nan, 0)
    p = c / c.sum()
    entropy = float(-(p * np.log(p)).sum())
    norm = entropy / math.log(c.size) if c.size > 1 else 1.0
    return Imbalance(float(c.max() / c.min()), norm, int(c.size))


def latest_run(cat: Catalog) -> view_sql.RunRef | None:
    """The newest model run; ``samples`` mirrors its top-1 predictions, so views need no join."""
    rows = cat.query_rows(view_sql.LATEST_RUN)
    return view_sql.RunRef(int(rows[0][0]), str(rows[0][1]), cached=True) if rows else None


def counts(cat: Catalog, flt: Filter) -> dict[str, int]:
    row = cat.query_df(sql.overview_counts(flt, cat.metadata_fields())).iloc[0]
    return {k: int(v) for k, v in row.items()}


def class_distribution(cat: Catalog, flt: Filter, run: view_sql.RunRef | None) -> pd.DataFrame:
    """Per class: labeled count and (with a run) predicted count in the unlabeled pool."""
    fields = cat.metadata_fields()
    labeled = cat.query_df(sql.class_counts(flt, fields)).rename(columns={"label": "class", "n": "labeled"})
    if run is None:
        labeled["predicted_in_pool"] = 0
        return labeled
    pool = cat.query_df(sql.predicted_pool_counts(flt, fields, run)).rename(
        columns={"pred_label": "class", "n": "predicted_in_pool"})
    out = labeled.merge(pool, on="class", how="outer").fillna(0)
    out[["labeled", "predicted_in_pool"]] = out[["labeled", "predicted_in_pool"]].astype(int)
    return out.sort_values(["labeled", "predicted_in_pool"], ascending=False, ignore_index=True)


def split_distribution(cat: Catalog, flt: Filter) -> pd.DataFrame:
    return cat.query_df(sql.split_class_counts(flt, cat.metadata_fields()))


def field_distribution(cat: Catalog, flt: Filter, name: str, bins: int = 30) -> tuple[str, pd.DataFrame]:
    """``(kind, frame)``: categorical -> value,n; numeric -> bin edges,n; time -> period,n."""
    fields = cat.metadata_fields()
    kind = field_kind(fields[name])
    if kind == "categorical":
        return kind, cat.query_df(sql.categorical_counts(flt, fields, name))
    low, high = cat.query_rows(view_sql.field_range(name))[0]
    if low is None:
        return kind, pd.DataFrame(columns=["start", "end", "n"] if kind == "numeric" else ["period", "n"])
    if kind == "numeric":
        low, high = float(low), float(high)
        width = (high - low) / bins if high > low else 1.0
        frame = cat.query_df(sql.numeric_histogram(flt, fields, name, low, width, bins))
        frame["start"] = low + frame["bin"] * width
        frame["end"] = frame["start"] + width
        frame.loc[frame["bin"] == bins - 1, "end"] = max(high, low + width)
        return kind, frame[["start", "end", "n"]]
    span_days = (pd.Timestamp(high) - pd.Timestamp(low)).days
    unit = "hour" if span_days <= 3 else "day" if span_days <= 120 else "week" if span_days <= 730 else "month"
    frame = cat.query_df(sql.timeline(flt, fields, name, unit))
    frame.attrs["unit"] = unit
    return kind, frame


def class_field_heatmap(cat: Catalog, flt: Filter, name: str) -> pd.DataFrame:
    """Labeled counts per (class, value) with each row's share of its class."""
    frame = cat.query_df(sql.class_field_counts(flt, cat.metadata_fields(), name))
    frame["row_share"] = frame["n"] / frame.groupby("label")["n"].transform("sum")
    return frame


SLICE_COLUMNS = ["slice", "labeled_n", "pool_n", "labeled_share", "pool_share", "ratio", "conditions"]


def slice_fields(cat: Catalog) -> list[str]:
    """Categorical fields with few enough values to form meaningful slices."""
    names = [n for n, t in cat.metadata_fields().items() if field_kind(t) == "categorical"]
    if not names:
        return []
    distinct = cat.query_rows(sql.distinct_counts(names))[0]
    return [n for n, k in zip(names, distinct, strict=True) if 1 < k <= SLICE_FIELD_MAX_VALUES]


def under_represented_slices(cat: Catalog, flt: Filter, run: view_sql.RunRef | None, *, min_pool: int = 10,
                             max_ratio: float = 0.67, max_arity: int = 2) -> pd.DataFrame:
    """Slices whose share of the labeled set is far below their share of the unlabeled pool.

    A slice is a combination of up to ``max_arity`` categorical values and the class (the label
    where labeled, the run's prediction in the pool). ``ratio`` = labeled share / pool share;
    rows are sorted by ratio, then pool size. ``conditions`` drills down to the slice's samples.
    One GROUP BY in DuckDB gives the finest cells; the slices are sums over them.
    """
    names = slice_fields(cat)
    cells = cat.query_df(sql.slice_cells(flt, cat.metadata_fields(), names, run))
    n_labeled, n_pool = int(cells["labeled_n"].sum()), int(cells["pool_n"].sum())
    if n_labeled == 0 or n_pool == 0:
        return pd.DataFrame(columns=SLICE_COLUMNS)
    labels = [*names, "class"]
    keys = [f"g{i}" for i in range(len(labels))]
    rows = []
    for arity in range(1, max_arity + 1):
        for combo in combinations(range(len(keys)), arity):
            cols = [keys[i] for i in combo]
            grouped = cells.dropna(subset=cols).groupby(cols, sort=False)[["labeled_n", "pool_n"]].sum()
            grouped = grouped[grouped["pool_n"] >= min_pool]
            ratio = (grouped["labeled_n"] / n_labeled) / (grouped["pool_n"] / n_pool)
            for values, rec_ratio, rec in zip(grouped.index, ratio, grouped.itertuples(), strict=True):
                if rec_ratio > max_ratio:
                    continue
                values = values if isinstance(values, tuple) else (values,)
                parts = [(labels[i], v) for i, v in zip(combo, values, strict=True)]
                rows.append({
                    "slice": " & ".join(f"{n}={v}" for n, v in parts),
                    "labeled_n": int(rec.labeled_n), "pool_n": int(rec.pool_n),
                    "labeled_share": rec.labeled_n / n_labeled, "pool_share": rec.pool_n / n_pool,
                    "ratio": float(rec_ratio),
                    "conditions": tuple(Condition("class_or_pred" if n == "class" else n, v) for n, v in parts),
                })
    out = pd.DataFrame(rows, columns=SLICE_COLUMNS)
    # equal ratios (1/7 and 3/21 of the pool) differ by float noise: tie-break on a rounded key
    out["_key"] = out["ratio"].round(12)
    out = out.sort_values(["_key", "pool_n", "slice"], ascending=[True, False, True], ignore_index=True)
    return out.drop(columns="_key")


def drill_ids(cat: Catalog, flt: Filter, run: view_sql.RunRef | None) -> list[str]:
    """Sample ids matching ``flt`` (with its drill-down conditions), in id order."""
    return [r[0] for r in cat.query_rows(view_sql.filtered_ids(flt, cat.metadata_fields(), run))]
