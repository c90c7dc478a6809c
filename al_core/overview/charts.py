"""Plotly figures for the Overview; every mark carries its drill-down spec in ``customdata``."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from al_core.view.filters import Condition, drill_spec
from al_core.view.sql import NULL_VALUE

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, clickmode="event+select",
               legend=dict(orientation="h", y=1.12))


def _value_condition(column: str, value: object) -> Condition:
    return Condition(column, is_null=True) if value == NULL_VALUE else Condition(column, value)


def class_bars(frame: pd.DataFrame, log: bool) -> go.Figure:
    """Labeled count per class beside the run's predicted count in the unlabeled pool."""
    fig = go.Figure()
    fig.add_bar(name="labeled", x=frame["class"], y=frame["labeled"],
                customdata=[[drill_spec(f"labeled as {c}", Condition("label", c))] for c in frame["class"]])
    if frame["predicted_in_pool"].sum() > 0:
        fig.add_bar(name="predicted in unlabeled pool", x=frame["class"], y=frame["predicted_in_pool"],
                    customdata=[[drill_spec(f"unlabeled, predicted {c}", Condition("label", is_null=True),
                                            Condition("pred_label", c))] for c in frame["class"]])
    fig.update_layout(barmode="group", title="Classes", yaxis_type="log" if log else "linear", **_LAYOUT)
    return fig


def split_bars(frame: pd.DataFrame, log: bool) -> go.Figure:
    """Per split, labeled counts by class (grouped bars)."""
    fig = go.Figure()
    for split, part in frame.groupby("split", sort=True):
        fig.add_bar(name=str(split), x=part["label"], y=part["n"], customdata=[
            [drill_spec(f"split {split}, labeled as {c}", Condition("split", split), Condition("label", c))]
            for c in part["label"]])
    fig.update_layout(barmode="group", title="Classes per split", yaxis_type="log" if log else "linear",
                      **_LAYOUT)
    return fig


def field_chart(name: str, kind: str, frame: pd.DataFrame) -> go.Figure:
    """Bars for categories, a histogram for numbers, a timeline for timestamps."""
    fig = go.Figure()
    if kind == "categorical":
        fig.add_bar(x=frame["value"], y=frame["n"], customdata=[
            [drill_spec(f"{name} = {v}", _value_condition(name, v))] for v in frame["value"]])
    elif kind == "numeric":
        last = len(frame) - 1
        fig.add_bar(x=(frame["start"] + frame["end"]) / 2, y=frame["n"], width=frame["end"] - frame["start"],
                    customdata=[[drill_spec(f"{name} in [{lo:.4g}, {hi:.4g}{']' if i == last else ')'}",
                                            Condition(name, low=lo, high=None if i == last else hi))]
                                for i, (lo, hi) in enumerate(zip(frame["start"], frame["end"], strict=True))])
    else:
        unit = frame.attrs.get("unit", "day")
        periods = pd.to_datetime(frame["period"])
        ends = periods + pd.tseries.frequencies.to_offset({"hour": "h", "day": "D", "week": "7D",
                                                           "month": "MS", "year": "YS"}[unit])
        fig.add_bar(x=periods, y=frame["n"], customdata=[
            [drill_spec(f"{name} in the {unit} of {p:%Y-%m-%d}", Condition(name, low=str(p), high=str(e)))]
            for p, e in zip(periods, ends, strict=True)])
    fig.update_layout(title=name, **{**_LAYOUT, "height": 260})
    return fig


def heatmap(frame: pd.DataFrame, field: str, share: bool) -> go.Figure:
    """Class x value grid (square markers, so each cell is clickable) of counts or row shares."""
    color = frame["row_share"] if share else frame["n"]
    text = [f"{s:.0%}" if share else f"{n:,}" for s, n in zip(frame["row_share"], frame["n"], strict=True)]
    fig = go.Figure(go.Scatter(
        x=frame["value"], y=frame["label"], mode="markers+text", text=text, textfont=dict(size=10),
        marker=dict(symbol="square", size=34, color=color, colorscale="Blues", showscale=True),
        customdata=[[drill_spec(f"labeled as {c}, {field} = {v}", Condition("label", c),
                                _value_condition(field, v))] for c, v in zip(frame["label"], frame["value"], strict=True)],
        hovertemplate="%{y} / %{x}: %{text}<extra></extra>"))
    n_rows = frame["label"].nunique()
    fig.update_layout(title=f"Class × {field} ({'share of class' if share else 'count'})",
                      **{**_LAYOUT, "height": max(260, 40 * n_rows + 80)})
    return fig
