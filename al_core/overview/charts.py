"""Plotly figures for the Overview; every mark carries its drill-down spec in ``customdata``.

Bars are laid out by hand (``barmode="overlay"`` with explicit offsets), one slot per series in
each column, so that every slot can get a transparent, full-height *hit area*: a bar trace
carrying the same drill-down as the visible bar. A class with 3 samples beside one with 3,000 is
a 1-pixel bar, but its whole column is still a target for the mouse. Hit areas are invisible
(transparent fill), show the column's counts on hover, and are left out of the legend.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale, unlabel_rgb

from al_core.view.filters import Condition, drill_spec
from al_core.view.sql import NULL_VALUE

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, clickmode="event+select", hovermode="closest",
               legend=dict(orientation="h", y=1.12))
LABELED_COLOR, POOL_COLOR = "#1f5fa8", "#e8871e"
#: A hit area's trace name starts with this (tests and browser checks tell them apart by it).
HIT = "hit area"
#: Labeled samples as a drill-down condition. ``Condition`` has no "is not null", so this uses
#: its range form: ``label >= ''`` holds for every label (text) and is unknown for a missing one.
LABELED = Condition("label", low="")
POOL = Condition("label", is_null=True)
HEATMAP_SCALE = "Blues"


def _escaped(value: object) -> object:
    return html.escape(value, quote=False) if isinstance(value, str) else value


def _text(value: object) -> str:
    return html.escape(str(value), quote=False)


def escape_text(fig: go.Figure) -> go.Figure:
    """Escape every text plotly draws: it renders a subset of HTML (``<a href>``, ``<b>``,
    ``<br>``) in labels, legends and titles, and class names, field names and values are user
    text, shown as the characters they are (plotly decodes the entities back for display)."""
    for trace in fig.data:
        for prop in ("x", "y", "name"):  # hover ``text`` is built here, its user parts escaped
            value = getattr(trace, prop, None)
            if isinstance(value, str):
                setattr(trace, prop, _escaped(value))
            elif value is not None and prop != "name":
                setattr(trace, prop, [_escaped(v) for v in value])
    layout = fig.layout
    if layout.title.text:
        layout.title.text = _escaped(layout.title.text)
    for axis in (layout.xaxis, layout.yaxis):
        if axis.title.text:
            axis.title.text = _escaped(axis.title.text)
        if axis.categoryarray is not None:
            axis.categoryarray = [_escaped(v) for v in axis.categoryarray]
    return fig


def _value_condition(column: str, value: object) -> Condition:
    return Condition(column, is_null=True) if value == NULL_VALUE else Condition(column, value)


def _y_title(what: str, log: bool) -> str:
    return f"{what} (log scale)" if log else what


@dataclass(frozen=True)
class Series:
    """One slot per column: a visible bar of height ``y`` that drills down to ``drills``."""

    name: str
    y: Sequence[float]
    drills: Sequence[str | None]  # None: nothing to drill to (an empty slot)
    color: str | None = None


def _columns(fig: go.Figure, x: Sequence, series: Sequence[Series], *, left: object, span: object,
             top: float, hover: Sequence[str]) -> None:
    """Series side by side in columns ``[x + left, x + left + span)``, each slot with a hit area.

    ``left`` / ``span`` are in axis units (categories: -0.5 and 1; dates: milliseconds) and may be
    per column. ``top`` is the y the hit areas reach (the axis' top); ``hover``: per column text.
    """
    k = len(series)
    sp = pd.Series(span, index=range(len(x)), dtype=float) if len(x) else pd.Series(dtype=float)
    lf = pd.Series(left, index=range(len(x)), dtype=float) if len(x) else pd.Series(dtype=float)
    for i, s in enumerate(series):
        fig.add_bar(name=f"{HIT}: {s.name}", x=list(x), y=[top if d else None for d in s.drills],
                    offset=list(lf + sp * i / k), width=list(sp / k),
                    marker=dict(color="rgba(0,0,0,0)", line=dict(width=0)), showlegend=False,
                    customdata=[[d] for d in s.drills], text=list(hover), textposition="none",
                    hovertemplate="%{text}<extra></extra>")
    for i, s in enumerate(series):
        fig.add_bar(name=s.name, x=list(x), y=list(s.y), offset=list(lf + sp * (i / k + 0.04)),
                    width=list(sp * (1 / k - 0.08)), marker=dict(color=s.color),
                    customdata=[[d] for d in s.drills], text=list(hover), textposition="none",
                    hovertemplate="%{text}<extra></extra>")


def _y_axis(fig: go.Figure, high: float, log: bool, share: bool = False) -> float:
    """Fix the y range (hit areas reach its top); returns that top in data units."""
    high = max(float(high), 1e-9 if share else 1.0)
    if log:
        top = high * 2
        fig.update_yaxes(type="log", range=[math.log10(0.5 if not share else high / 1e4), math.log10(top)])
    else:
        top = high * 1.08
        fig.update_yaxes(type="linear", range=[0, top])
    if share:
        fig.update_yaxes(tickformat=".0%")
    return top


def class_drill(klass: str, pool: bool) -> str:
    """A class' labeled samples, or the unlabeled samples the run predicts as that class."""
    if pool:
        return drill_spec(f"unlabeled, predicted {klass}", POOL, Condition("pred_label", klass))
    return drill_spec(f"labeled as {klass}", Condition("label", klass))


#: The class table's columns as shown (``class_distribution``'s, renamed).
CLASS_TABLE = {"class": "class", "labeled": "labeled", "predicted_in_pool": "predicted in pool"}


def class_table_drill(frame: pd.DataFrame, row: int, column: str | None = None) -> str | None:
    """The drill-down of a class table selection: a row opens its labeled samples (its pool
    predictions when it has no labels); a ``predicted in pool`` cell opens those."""
    rec = frame.iloc[row]
    pool = column == CLASS_TABLE["predicted_in_pool"] or (column is None and not rec["labeled"])
    return class_drill(str(rec["class"]), pool)


def class_bars(frame: pd.DataFrame, log: bool) -> go.Figure:
    """Labeled count per class beside the run's predicted count in the unlabeled pool."""
    fig = go.Figure()
    classes = [str(c) for c in frame["class"]]
    series = [Series("labeled", frame["labeled"], [class_drill(c, False) if n else None
                                                   for c, n in zip(classes, frame["labeled"], strict=True)],
                     LABELED_COLOR)]
    has_pool = frame["predicted_in_pool"].sum() > 0
    if has_pool:
        series.append(Series("predicted in unlabeled pool", frame["predicted_in_pool"],
                             [class_drill(c, True) if n else None
                              for c, n in zip(classes, frame["predicted_in_pool"], strict=True)], POOL_COLOR))
    hover = [f"<b>{_text(c)}</b><br>labeled: {lab:,}" + (f"<br>predicted in pool: {p:,}" if has_pool else "")
             for c, lab, p in zip(classes, frame["labeled"], frame["predicted_in_pool"], strict=True)]
    top = _y_axis(fig, frame[["labeled", "predicted_in_pool"]].to_numpy().max(initial=0), log)
    _columns(fig, classes, series, left=-0.5, span=1.0, top=top, hover=hover)
    fig.update_layout(barmode="overlay", title="Classes", xaxis_title="class",
                      yaxis_title=_y_title("samples", log), **_LAYOUT)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=classes)
    return escape_text(fig)


def split_bars(frame: pd.DataFrame, log: bool) -> go.Figure:
    """Per split, labeled counts by class (a slot per split in each class' column)."""
    fig = go.Figure()
    table = frame.pivot_table(index="label", columns="split", values="n", aggfunc="sum", fill_value=0)
    table = table.loc[sorted(table.index, key=lambda c: (-table.loc[c].sum(), str(c)))]  # biggest first
    classes = [str(c) for c in table.index]
    series = [Series(str(split), table[split],
                     [drill_spec(f"split {split}, labeled as {c}", Condition("split", split),
                                 Condition("label", c)) if n else None for c, n in zip(classes, table[split], strict=True)])
              for split in sorted(table.columns, key=str)]
    hover = [f"<b>{_text(c)}</b><br>" + "<br>".join(f"{_text(s)}: {int(n):,}" for s, n in row.items())
             for c, row in table.iterrows()]
    top = _y_axis(fig, table.to_numpy().max(initial=0), log)
    _columns(fig, classes, series, left=-0.5, span=1.0, top=top, hover=hover)
    fig.update_layout(barmode="overlay", title="Classes per split (labeled)", xaxis_title="class",
                      yaxis_title=_y_title("labeled samples", log), **_LAYOUT)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=classes)
    return escape_text(fig)


def _group_series(frame: pd.DataFrame, share: bool, titles: Sequence[str],
                  conditions: Sequence[Condition]) -> list[Series]:
    """The labeled and the pool series of a field chart; each mark drills to its group's samples."""
    out = []
    for group, cond, color in (("labeled", LABELED, LABELED_COLOR), ("pool", POOL, POOL_COLOR)):
        name = "labeled" if group == "labeled" else "unlabeled pool"
        counts = frame[group]
        out.append(Series(name, frame[f"{group}_share"] if share else counts,
                          [drill_spec(f"{name}, {t}", cond, c) if n else None
                           for t, c, n in zip(titles, conditions, counts, strict=True)], color))
    return out


def _group_hover(frame: pd.DataFrame, titles: Sequence[str]) -> list[str]:
    return [f"<b>{_text(t)}</b><br>labeled: {lab:,} ({ls:.1%} of labeled)<br>pool: {p:,} ({ps:.1%} of pool)"
            for t, lab, ls, p, ps in zip(titles, frame["labeled"], frame["labeled_share"], frame["pool"],
                                         frame["pool_share"], strict=True)]


def field_chart(name: str, kind: str, frame: pd.DataFrame, share: bool = True, log: bool = False) -> go.Figure:
    """Labeled beside the unlabeled pool, as counts or as each group's share: bars for
    categories, a histogram for numbers, a timeline for timestamps."""
    fig = go.Figure()
    if kind == "categorical":
        values = [str(v) for v in frame["value"]]
        titles = [f"{name} = {v}" for v in values]
        conds = [_value_condition(name, v) for v in frame["value"]]
        x, left, span = values, -0.5, 1.0
    elif kind == "numeric":
        last = len(frame) - 1
        titles = [f"{name} in [{lo:.4g}, {hi:.4g}{']' if i == last else ')'}"
                  for i, (lo, hi) in enumerate(zip(frame["start"], frame["end"], strict=True))]
        conds = [Condition(name, low=lo, high=None if i == last else hi)
                 for i, (lo, hi) in enumerate(zip(frame["start"], frame["end"], strict=True))]
        x, left, span = list(frame["start"]), 0.0, list(frame["end"] - frame["start"])
    else:
        unit = frame.attrs.get("unit", "day")
        periods = pd.to_datetime(frame["period"])
        ends = periods + pd.tseries.frequencies.to_offset({"hour": "h", "day": "D", "week": "7D",
                                                           "month": "MS", "year": "YS"}[unit])
        titles = [f"{name} in the {unit} of {p:%Y-%m-%d}" for p in periods]
        conds = [Condition(name, low=str(p), high=str(e)) for p, e in zip(periods, ends, strict=True)]
        x, left, span = list(periods), 0.0, list((ends - periods).dt.total_seconds() * 1000)
    series = _group_series(frame, share, titles, conds)
    what = "share of its group" if share else "samples"
    top = _y_axis(fig, max((max(s.y, default=0) for s in series), default=0), log, share)
    _columns(fig, x, series, left=left, span=span, top=top, hover=_group_hover(frame, titles))
    fig.update_layout(barmode="overlay", title=name, xaxis_title=name, yaxis_title=_y_title(what, log),
                      **{**_LAYOUT, "height": 280})
    if kind == "categorical":
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=x)
    return escape_text(fig)


def text_colors(values: Sequence[float], low: float, high: float, scale: str = HEATMAP_SCALE) -> list[str]:
    """Black or white text per cell, whichever contrasts more with the cell's colour."""
    span = (high - low) or 1.0
    cells = sample_colorscale(scale, [min(max((v - low) / span, 0.0), 1.0) for v in values]) if len(values) else []
    # whichever contrasts more; with pure black and white that is at least 4.58 : 1 on any colour
    return ["#ffffff" if 1.05 / (lum + 0.05) > (lum + 0.05) / 0.05 else "#000000"
            for lum in map(_luminance, cells)]


def _luminance(color: str) -> float:
    """WCAG relative luminance of an ``rgb(r, g, b)`` colour."""
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(float(v)) for v in unlabel_rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def heatmap(frame: pd.DataFrame, field: str, share: bool) -> go.Figure:
    """Class x value grid (square markers, so each cell is clickable) of counts or row shares."""
    color = frame["row_share"] if share else frame["n"]
    high = 1.0 if share else float(color.max()) if len(color) else 1.0
    text = [f"{s:.0%}" if share else f"{n:,}" for s, n in zip(frame["row_share"], frame["n"], strict=True)]
    fig = go.Figure(go.Scatter(
        x=frame["value"].astype(str), y=frame["label"].astype(str), mode="markers+text", text=text,
        textfont=dict(size=11, color=text_colors(list(color), 0.0, high)),
        marker=dict(symbol="square", size=34, color=color, colorscale=HEATMAP_SCALE, cmin=0, cmax=high,
                    showscale=True, line=dict(width=0),
                    colorbar=dict(title="share of class" if share else "labeled", tickformat=".0%" if share else ",")),
        customdata=[[drill_spec(f"labeled as {c}, {field} = {v}", Condition("label", c),
                                _value_condition(field, v))] for c, v in zip(frame["label"], frame["value"], strict=True)],
        hovertemplate="%{y} / %{x}: %{text}<extra></extra>"))
    n_rows = frame["label"].nunique()
    fig.update_layout(title=f"Class × {field} ({'share of class' if share else 'count'}, labeled)",
                      xaxis_title=field, yaxis_title="class (labeled)",
                      **{**_LAYOUT, "height": max(260, 40 * n_rows + 100)})
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return escape_text(fig)


def no_data(what: str) -> str:
    """The message shown instead of an empty chart."""
    return f"No samples for this filter — {what}. Widen the sidebar filter to see it."
