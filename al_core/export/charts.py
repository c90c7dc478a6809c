"""Figures of the Export page's preview: each part's score distribution."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def score_histograms(picked: pd.DataFrame) -> go.Figure:
    """One histogram of ``score`` per part (``part: strategy``); random picks have no score."""
    fig = go.Figure()
    for part, rows in picked.dropna(subset=["score"]).groupby("part", sort=True):
        fig.add_histogram(x=rows["score"], name=f"part {part}: {rows['strategy'].iloc[0]}", opacity=0.75,
                          nbinsx=30, customdata=rows[["sample_id"]].to_numpy(),
                          hovertemplate="score %{x}<br>%{y} samples<extra>%{fullData.name}</extra>")
    fig.update_layout(barmode="overlay", height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": "Scores of the picks, by part (each strategy's own scale)", "font": {"size": 14}},
                      xaxis_title="score", yaxis_title="samples", legend={"orientation": "h", "y": -0.3})
    return fig
