"""Embedding map page: a 2D map of one embedding set (UMAP, PCA at once while UMAP runs), colored
by label, prediction, correctness, confidence or a field; a box or lasso opens the gallery."""

from __future__ import annotations

import html
from dataclasses import replace

import numpy as np
import plotly.express as px
import streamlit as st

from al_core.embeddings import EmbeddingSet
from al_core.embeddings.maps import compute_map, map_points, map_status, warm_up_umap
from pages._ui import jobs, url
from pages._ui.embeddings import pick_set
from pages._ui.gallery import gallery
from pages._ui.shell import _open_catalog, catalog, empty_state
from pages._ui.sidebar import sidebar_filter

#: Points drawn at most; a larger view is drawn from a fixed random sample (selection maps to ids).
MAX_POINTS = 150_000
#: The pool (most points) in a quiet gray, right and wrong in green and red.
FIXED_COLORS = {"(unlabeled)": "#c9c9c9", "unlabeled": "#c9c9c9", "correct": "#2ca02c", "wrong": "#d62728"}
BUILT_IN_COLORS = {"label": "ground truth", "pred_label": "prediction", "correct": "correct / wrong",
                   "confidence": "confidence"}


def _umap_job(cat, emb: EmbeddingSet) -> None:
    path = str(cat.path.resolve())

    def work(job: jobs.Job) -> str:
        out = compute_map(_open_catalog(path), emb, "umap", progress=lambda m: setattr(job, "message", m))
        return f"UMAP of {out['n']:,} points in {out['seconds']:.1f} s, stored in the catalog."
    jobs.start(f"umap:{emb.set_id}", work)


def _method(cat, emb: EmbeddingSet) -> str:
    """UMAP when stored; otherwise PCA (computed now: about a second) until UMAP is computed, in
    the background. numba's one-time compile starts when the page is first opened, not on a click."""
    if jobs.get("umap-warmup") is None:  # once per server process
        jobs.start("umap-warmup", lambda job: warm_up_umap() or "numba compiled")
    umap_state = map_status(cat, emb, "umap")
    job = jobs.get(f"umap:{emb.set_id}")
    busy = job is not None and job.running
    jobs.show(f"umap:{emb.set_id}", "UMAP")
    if map_status(cat, emb, "pca") != "current":
        compute_map(cat, emb, "pca")
    options = ["UMAP", "PCA"] if umap_state != "missing" else ["PCA"]
    if len(options) > st.session_state.get("_map_options", len(options)):
        st.session_state["map_method"] = "UMAP"  # a UMAP just finished: show it
    st.session_state["_map_options"] = len(options)
    if st.session_state.get("map_method") not in options:
        wanted = (url.get("method") or "").upper()
        st.session_state["map_method"] = wanted if wanted in options else options[0]
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    method = left.segmented_control("Projection", options, key="map_method") or options[0]
    url.put("method", method.lower() if method != options[0] else None)
    if umap_state == "stale":
        right.warning("The set changed since this UMAP.")
    label = "Compute UMAP" if umap_state == "missing" else "Recompute UMAP"
    if right.button(label, key="map_umap", disabled=busy, help="Runs in the background; PCA meanwhile."):
        _umap_job(cat, emb)
        st.rerun()
    return method.lower()


def _color(cat) -> str:
    fields = [f for f in cat.metadata_fields() if not f.startswith("q_")]
    options = list(BUILT_IN_COLORS) + fields
    if st.session_state.get("map_color") not in options:
        wanted = url.get("color")
        st.session_state["map_color"] = wanted if wanted in options else "label"
    color = st.selectbox("Color by", options, key="map_color",
                         format_func=lambda c: BUILT_IN_COLORS.get(c, c))
    url.put("color", color if color != "label" else None)
    return color


def _figure(points, color: str):
    col = "color" if color not in BUILT_IN_COLORS else color
    frame = points.assign(label=points["label"].fillna("(unlabeled)"))
    frame["sample"] = frame["sample_id"]  # ids travel raw in customdata; what plotly draws is escaped
    for name in ("sample", "label", "pred_label", "color"):  # plotly renders a subset of HTML
        if name in frame:
            frame[name] = frame[name].map(lambda v: html.escape(v, quote=False) if isinstance(v, str) else v)
    if col == "correct":
        frame["correct"] = frame["correct"].map({True: "correct", False: "wrong"}).fillna("unlabeled")
    fig = px.scatter(frame, x="x", y="y", color=col, custom_data=["sample_id"], render_mode="webgl",
                     color_discrete_map=FIXED_COLORS, color_continuous_scale="Viridis",
                     color_discrete_sequence=px.colors.qualitative.Dark24,
                     hover_data={"sample": True, "label": True, "x": False, "y": False},
                     labels={col: BUILT_IN_COLORS.get(color, color)}, height=620)
    fig.update_traces(marker={"size": 4, "opacity": 0.75})
    fig.update_layout(dragmode="lasso", margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"visible": False}, yaxis={"visible": False}, legend={"itemsizing": "constant"})
    return fig


cat = catalog()
st.title("Embedding map")
if not empty_state(cat):
    flt = sidebar_filter(cat)
    emb = pick_set(cat, "map_set")
    if emb is not None:
        method = _method(cat, emb)
        color = _color(cat)
        points = map_points(cat, emb, method, flt, color if color not in BUILT_IN_COLORS else None, flt.run)
        if len(points) > MAX_POINTS:
            keep = np.sort(np.random.default_rng(0).choice(len(points), MAX_POINTS, replace=False))
            st.caption(f"Showing a fixed random {MAX_POINTS:,} of {len(points):,} points.")
            points = points.iloc[keep]
        if points.empty:
            st.info("No sample of this set passes the sidebar filter.")
        else:
            event = st.plotly_chart(_figure(points, color), key="map_chart", on_select="rerun",
                                    selection_mode=("box", "lasso"), width="stretch")
            picked = [p["customdata"][0] for p in event.selection.points] if event else []
            if picked:
                st.subheader(f"{len(picked):,} selected on the map")
                gallery(cat, replace(flt, ids=tuple(dict.fromkeys(picked))), flt.run, key="map_selection",
                        url_page="map_page")
            else:
                st.caption("Draw a box or a lasso around points to open their gallery (tag them, add "
                           f"them to the next batch). {len(points):,} points.")
