"""Plotly figures for Diagnostics; every mark that has samples behind it carries its drill-down."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from al_core.overview.charts import escape_text, text_colors
from al_core.view.filters import Condition, drill_spec

#: Classes shown by name in a confusion matrix; the rest are summed into one row and column.
TOP_CLASSES = 30
OTHER = "(other classes)"


def confusion_order(confusion: np.ndarray, classes: list[str], top: int = TOP_CLASSES) -> list[int]:
    """Indices of the classes to show, most confused first (off-diagonal row + column mass),
    at most ``top``; with no confusion at all, by support. ``confusion``: (K, K)."""
    k = len(classes)
    off = confusion.sum(axis=0) + confusion.sum(axis=1) - 2 * np.diag(confusion)
    order = sorted(range(k), key=lambda i: (-off[i], -confusion[i].sum(), classes[i]))
    return order[:top] if k > top else sorted(order, key=lambda i: i)


def confusion_matrix_figure(confusion: np.ndarray, classes: list[str], normalize: bool,
                            top: int = TOP_CLASSES) -> go.Figure:
    """Rows ground truth, columns prediction: counts, or shares of each true class (row-normalized).

    With more than ``top`` classes, the most confused ``top`` are shown and the rest summed into
    :data:`OTHER` (its cells open no gallery: they are many cells). Each named cell drills down
    to exactly its samples: ``label = row`` and the run's ``pred_label = column``.
    """
    keep = confusion_order(confusion, classes, top)
    rest = [i for i in range(len(classes)) if i not in keep]
    names = [classes[i] for i in keep]
    rows = [confusion[i] for i in keep]
    if rest:
        rows.append(confusion[rest].sum(axis=0))
        names_rows = [*names, OTHER]
    else:
        names_rows = names
    grid = np.array(rows)
    cols = [grid[:, i] for i in keep] + ([grid[:, rest].sum(axis=1)] if rest else [])
    matrix = np.stack(cols, axis=1).astype(float)
    names_cols = [*names, OTHER] if rest else names
    totals = matrix.sum(axis=1, keepdims=True)
    shown = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0) if normalize else matrix
    cells = [(r, c) for r in range(len(names_rows)) for c in range(len(names_cols)) if matrix[r, c] > 0]
    custom = [[drill_spec(f"labeled {names_rows[r]}, predicted {names_cols[c]}", Condition("label", names_rows[r]),
                          Condition("pred_label", names_cols[c]))
               if OTHER not in (names_rows[r], names_cols[c]) else ""] for r, c in cells]
    value = [float(shown[r, c]) for r, c in cells]
    high = 1.0 if normalize else max(float(matrix.max()), 1.0)
    text = [f"{v:.0%}" if normalize else f"{int(v):,}" for v in value]
    cell = max(14, min(40, int(900 / max(len(names_cols), 1))))  # px: square markers tile the grid
    fig = go.Figure(go.Scatter(  # square markers, not a heatmap: each cell is a clickable point
        x=[names_cols[c] for _, c in cells], y=[names_rows[r] for r, _ in cells], mode="markers+text",
        text=text, customdata=custom, textfont=dict(size=10 if cell < 30 else 11,
                                                    color=text_colors(value, 0.0, high, "Blues")),
        marker=dict(symbol="square", size=cell, color=value, colorscale="Blues", cmin=0, cmax=high,
                    showscale=True, line=dict(width=0),
                    colorbar=dict(title="share of true class" if normalize else "samples")),
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    # every class gets its row and column, also one never predicted (a column with no cell)
    fig.add_scatter(x=names_cols, y=names_rows, mode="markers", marker=dict(opacity=0), hoverinfo="skip",
                    showlegend=False)
    side = (cell + 4) * len(names_rows) + 200
    fig.update_layout(height=min(max(side, 360), 1600), margin=dict(l=10, r=10, t=40, b=10),
                      title="Confusion matrix" + (" (row-normalized)" if normalize else ""),
                      xaxis_title="predicted", yaxis_title="ground truth", clickmode="event+select",
                      showlegend=False)
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", categoryarray=names_rows)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names_cols, tickangle=-45)
    return escape_text(fig)


def reliability_figure(bins: pd.DataFrame) -> go.Figure:
    """Accuracy against mean confidence per bin (``bins`` from :func:`calibration`), with the
    diagonal of perfect calibration; marker size follows the bin's count."""
    used = bins[bins["n"] > 0]
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                    line=dict(dash="dash", color="grey"), hoverinfo="skip")
    size = 8 + 22 * np.sqrt(used["n"] / max(int(used["n"].max()), 1)) if len(used) else []
    fig.add_scatter(x=used["confidence"], y=used["accuracy"], mode="lines+markers", name="model",
                    marker=dict(size=size), customdata=np.stack([used["low"], used["high"], used["n"]], axis=1)
                    if len(used) else None,
                    hovertemplate="confidence [%{customdata[0]:.2f}, %{customdata[1]:.2f}): "
                                  "mean %{x:.2f}, accuracy %{y:.1%}, %{customdata[2]:,} samples<extra></extra>")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title="Reliability",
                      xaxis=dict(title="mean confidence in bin", range=[0, 1]),
                      yaxis=dict(title="accuracy in bin", range=[0, 1], tickformat=".0%"),
                      legend=dict(orientation="h", y=1.12))
    return fig


def confidence_histogram(bins: pd.DataFrame) -> go.Figure:
    """Right and wrong predictions per confidence bin (``bins`` from :func:`calibration`, equal width)."""
    right = (bins["n"] * bins["accuracy"].fillna(0)).round().astype(int)
    wrong = bins["n"] - right
    mid, width = (bins["low"] + bins["high"]) / 2, bins["high"] - bins["low"]
    fig = go.Figure()
    fig.add_bar(x=mid, y=right, width=width, name=f"correct ({int(right.sum()):,})", marker_color="#2b8a3e")
    fig.add_bar(x=mid, y=wrong, width=width, name=f"wrong ({int(wrong.sum()):,})", marker_color="#c92a2a")
    fig.update_layout(barmode="stack", height=360, margin=dict(l=10, r=10, t=40, b=10),
                      title="Confidence of right and wrong predictions",
                      xaxis=dict(title="top-1 confidence", range=[0, 1]), yaxis_title="samples",
                      legend=dict(orientation="h", y=1.12))
    return fig
