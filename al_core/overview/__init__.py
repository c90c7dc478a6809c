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


@dataclass(frozen=True)
class ClassBalance:
    """The imbalance of a class distribution and the base it was measured on.

    ``base`` says which counts: ``"labeled"`` (the labels in the view), ``"predicted"`` (the
    run's top-1 predictions over the unlabeled pool, when the view has no labels) or ``""``
    (nothing to measure: ``reason`` says why). ``largest`` / ``smallest``: ``(class, count)``.
    """

    base: str
    imbalance: Imbalance
    largest: tuple[str, int] | None = None
    smallest: tuple[str, int] | None = None
    reason: str = ""

    @property
    def base_text(self) -> str:
        return {"labeled": "labeled samples in this view",
                "predicted": "the model's predictions over the unlabeled pool (no labeled samples in this view)",
                }.get(self.base, "")

    @property
    def ratio_text(self) -> str:
        return format_ratio(self.imbalance.max_min_ratio) if self.base else "–"

    @property
    def entropy_text(self) -> str:
        return f"{self.imbalance.normalized_entropy:.2f}" if self.base else "–"

    @property
    def caption(self) -> str:
        """One line naming the base and the classes the ratio divides."""
        if not self.base:
            return self.reason
        (big, n_big), (small, n_small) = self.largest, self.smallest
        return (f"Base: {self.base_text}, {self.imbalance.n_classes} classes. "
                f"Largest {big} ({format_count(n_big)}), smallest {small} ({format_count(n_small)}).")


def class_balance(classes: pd.DataFrame, has_run: bool) -> ClassBalance:
    """Imbalance of the labeled classes; without labels, of the run's predictions over the pool.

    ``classes`` is :func:`class_distribution`'s frame (``class, labeled, predicted_in_pool``).
    """
    for base, column in (("labeled", "labeled"), ("predicted", "predicted_in_pool")):
        counts = classes.loc[classes[column] > 0, ["class", column]] if column in classes else classes.iloc[:0]
        if counts.empty:
            continue
        order = counts.sort_values([column, "class"], ascending=[False, True], kind="stable")
        big, small = order.iloc[0], order.iloc[-1]
        return ClassBalance(base, imbalance(order[column]), (str(big["class"]), int(big[column])),
                            (str(small["class"]), int(small[column])))
    reason = ("No labeled samples in this view, and the model predicts none of the pool."
              if has_run else "No labeled samples in this view, and no model run to predict the pool.")
    return ClassBalance("", imbalance([]), reason=reason)


def format_count(n: int | float) -> str:
    """A count as people read it: ``12,345``; from a million on ``1.23M`` (``B`` for billions)."""
    n = int(n)
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M")):
        if abs(n) >= size:
            v = n / size
            return f"{v:.2f}{suffix}" if abs(v) < 10 else f"{v:.1f}{suffix}" if abs(v) < 100 else f"{v:,.0f}{suffix}"
    return f"{n:,}"


def format_ratio(ratio: float) -> str:
    """``23.1 : 1``; large ratios without decimals (``1,234 : 1``); ``–`` for none."""
    if ratio is None or math.isnan(ratio):
        return "–"
    return f"{ratio:.1f} : 1" if ratio < 100 else f"{ratio:,.0f} : 1"


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


#: The columns every field distribution carries beside its key columns.
GROUP_COLUMNS = ["labeled", "pool", "n", "labeled_share", "pool_share"]


def _by_group(long: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per key from the (key, pool, n, group_n) cells of a labeled-vs-pool query.

    ``labeled`` / ``pool``: counts in each group, ``n`` their sum, ``*_share``: the count over
    its group's size in the chart (0 where the group is empty). The groups' sizes go in
    ``attrs`` (``labeled_total``, ``pool_total``). Keys keep the query's order.
    """
    totals = long.groupby("pool")["group_n"].max()
    if long.empty:  # the key columns keep their types
        frame = long[keys].copy()
        frame["labeled"] = frame["pool"] = pd.Series(dtype=int)
    else:
        wide = long.pivot_table(index=keys, columns="pool", values="n", aggfunc="sum", fill_value=0, sort=False)
        frame = pd.DataFrame({k: wide.index.get_level_values(k) for k in keys})
        frame["labeled"] = wide[False].to_numpy(dtype=int) if False in wide else 0
        frame["pool"] = wide[True].to_numpy(dtype=int) if True in wide else 0
    frame["n"] = frame["labeled"] + frame["pool"]
    labeled_total, pool_total = int(totals.get(False, 0)), int(totals.get(True, 0))
    frame["labeled_share"] = frame["labeled"] / labeled_total if labeled_total else 0.0
    frame["pool_share"] = frame["pool"] / pool_total if pool_total else 0.0
    frame.attrs.update(labeled_total=labeled_total, pool_total=pool_total)
    return frame


def field_distribution(cat: Catalog, flt: Filter, name: str, bins: int = 30) -> tuple[str, pd.DataFrame]:
    """``(kind, frame)`` of a metadata field, labeled beside the unlabeled pool, one query each.

    Categorical -> ``value``; numeric -> bin ``start``, ``end``; time -> ``period`` (its unit in
    ``attrs["unit"]``); then :data:`GROUP_COLUMNS`. Empty keys are left out.
    """
    fields = cat.metadata_fields()
    kind = field_kind(fields[name])
    if kind == "categorical":
        return kind, _by_group(cat.query_df(sql.categorical_counts(flt, fields, name)), ["value"])
    low, high = cat.query_rows(view_sql.field_range(name))[0]
    if low is None:
        keys = ["start", "end"] if kind == "numeric" else ["period"]
        return kind, pd.DataFrame(columns=[*keys, *GROUP_COLUMNS])
    if kind == "numeric":
        low, high = float(low), float(high)
        width = (high - low) / bins
        if high == low:  # one value (every image 64x64): one narrow bar centred on it
            width = max(abs(low) * 0.02, 1e-9)
            low -= width / 2
        frame = _by_group(cat.query_df(sql.numeric_histogram(flt, fields, name, low, width, bins)), ["bin"])
        frame.insert(0, "start", low + frame["bin"] * width)
        frame.insert(1, "end", frame["start"] + width)
        frame.loc[frame["bin"] == bins - 1, "end"] = max(high, low + width)
        return kind, frame.drop(columns="bin")
    span_days = (pd.Timestamp(high) - pd.Timestamp(low)).days
    unit = "hour" if span_days <= 3 else "day" if span_days <= 120 else "week" if span_days <= 730 else "month"
    frame = _by_group(cat.query_df(sql.timeline(flt, fields, name, unit)), ["period"])
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
    where labeled, the run's prediction in the pool); a BOOLEAN field (a quality flag) gives
    one slice, its ``true`` (``false`` is merely everything else). ``ratio`` = labeled share / pool share;
    rows are sorted by ratio, then pool size. ``conditions`` drills down to the slice's samples.
    One GROUP BY in DuckDB gives the finest cells; the slices are sums over them.
    """
    names = slice_fields(cat)
    fields = cat.metadata_fields()
    cells = cat.query_df(sql.slice_cells(flt, fields, names, run))
    for i, name in enumerate(names):  # a yes/no field's slice is its "yes": "no" is the rest
        if fields[name] == "BOOLEAN":
            cells[f"g{i}"] = cells[f"g{i}"].where(cells[f"g{i}"] == "true")
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
