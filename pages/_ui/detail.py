"""One sample in full: its image, every field, label history, each run's predictions, tags."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from al_core import view
from al_core.db.catalog import Catalog
from al_core.ingest.images import ImageTooLarge, open_capped
from al_core.thumbnails import is_local, render
from al_core.view.filters import Filter
from pages._ui import url
from pages._ui.text import plain

#: The longest side a detail image is shown at; small images are enlarged at most MAX_UPSCALE×.
DETAIL_SIZE = 640
MAX_UPSCALE = 4
MISSING = "—"


def display_size(width: int | None, height: int | None) -> int | None:
    """Longest side to show an image of ``width`` × ``height`` at: readable, never above
    :data:`DETAIL_SIZE`, never more than :data:`MAX_UPSCALE` times its own size."""
    if not width or not height:
        return None
    side = max(int(width), int(height))
    return max(1, min(DETAIL_SIZE, MAX_UPSCALE * side))


def text_value(value: Any) -> str:
    """A field's value as plain text; missing (None, NaN, NaT) is an em dash."""
    if value is None:
        return MISSING
    try:
        if pd.isna(value):
            return MISSING
    except (TypeError, ValueError):
        pass
    return str(value)


def _image(uri: str, width: Any, height: Any) -> None:
    if not is_local(uri):
        st.caption("(no preview: not a local file)")
        return
    try:
        if not width or not height or pd.isna(width) or pd.isna(height):
            with open_capped(uri) as img:
                width, height = img.size
        size = display_size(width, height)
        img = render(uri, size or DETAIL_SIZE)  # reduced in bounded memory, enlarged with NEAREST
    except (ImageTooLarge, OSError, ValueError, SyntaxError, EOFError):
        st.caption("(no preview: the image cannot be read)")
        return
    st.image(img, width=img.width)
    st.caption(f"{int(width)} × {int(height)} px, shown at {img.width} × {img.height}")


def _predictions(detail: dict[str, Any]) -> None:
    preds: pd.DataFrame = detail["predictions"]
    if preds.empty:
        st.caption("No model run has predicted this sample.")
        return
    top: pd.DataFrame = detail["top"]
    for p in preds.itertuples(index=False):
        st.markdown(f"**{plain(p.run)}** · pred **{plain(p.pred_label)}** ({float(p.confidence):.0%})")
        mine = top[top["run_id"] == p.run_id]
        if mine.empty:
            st.dataframe(pd.DataFrame({"class": [p.pred_label], "confidence": [float(p.confidence)]}),
                         hide_index=True)
            continue
        # plotly renders some HTML in tick labels: class names are escaped
        fig = go.Figure(go.Bar(x=mine["probability"][::-1], y=[html.escape(str(c)) for c in mine["class"][::-1]],
                               orientation="h", hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
        fig.update_layout(height=40 + 28 * len(mine), margin=dict(l=0, r=0, t=0, b=0),
                          xaxis=dict(range=[0, 1], tickformat=".0%"))
        st.plotly_chart(fig, key=f"detail_top_{detail['sample_id']}_{p.run_id}")


def sample_detail(cat: Catalog, sample_id: str) -> bool:
    """Render :func:`al_core.view.sample_detail` (every user text shown literally); False when
    there is no such sample."""
    detail = view.sample_detail(cat, sample_id)
    if detail is None:
        st.warning(f"No sample {plain(sample_id)} in this catalog.")
        return False
    fields = detail["fields"]
    st.markdown(f"### {plain(sample_id)}")
    label = fields.get("label")
    st.markdown(f"label **{plain(label) if label is not None else 'none (unlabeled)'}** · "
                f"split {plain(fields.get('split'))}")
    left, right = st.columns([3, 2])
    with left:
        _image(str(fields["uri"]), fields.get("width"), fields.get("height"))
    with right:
        table = pd.DataFrame({"field": list(fields),
                              "value": [text_value(v) for v in fields.values()]})
        st.dataframe(table, hide_index=True, width="stretch")
    _table("Label history", detail["history"], "Never labeled.")
    st.markdown("**Predictions**")
    _predictions(detail)
    _table("Tags", detail["tags"], "No tags.")
    return True


def _table(title: str, frame: pd.DataFrame, empty: str) -> None:
    """A titled table of user text shown literally ("—" for missing), or a note when empty."""
    st.markdown(f"**{title}**")
    if frame.empty:
        st.caption(empty)
    else:
        st.dataframe(frame.astype(object).map(text_value), hide_index=True, width="stretch")


# ---------------------------------------------------------------- the dialog, its link, prev/next

_shown = threading.local()


def new_run() -> None:
    """Forget whether a detail was shown (a new script run starts)."""
    _shown.flag = False


def shown_this_run() -> bool:
    return getattr(_shown, "flag", False)


#: Session key of the open detail: ``{"id", "index" (in the gallery's order, or None), "gallery"}``.
OPEN = "_detail"
URL_SAMPLE = "sample"


@dataclass(frozen=True)
class GalleryView:
    """What a detail steps through with previous/next: a gallery's filter, run, sort and size."""

    key: str
    flt: Filter
    run: view.RunRef | None
    sort: str
    total: int


def open_sample(sample_id: str, index: int | None, gallery_key: str | None) -> None:
    """Open the detail of ``sample_id`` (at ``index`` of the gallery ``gallery_key``)."""
    st.session_state[OPEN] = {"id": sample_id, "index": index, "gallery": gallery_key}
    url.put(URL_SAMPLE, sample_id)


def _close() -> None:
    st.session_state.pop(OPEN, None)
    url.put(URL_SAMPLE, None)


def _step(cat: Catalog, gv: GalleryView, index: int) -> None:
    sample_id = view.sample_at(cat, gv.flt, gv.run, gv.sort, index)
    if sample_id is not None:
        open_sample(sample_id, index, gv.key)


def link_to(sample_id: str) -> str:
    """A URL that reopens this page's view with this sample's detail open."""
    params = [(k, v) for k in st.query_params if k != URL_SAMPLE for v in st.query_params.get_all(k)]
    base = str(st.context.url or "").split("?")[0]
    return f"{base}?{urlencode([*params, (URL_SAMPLE, sample_id)])}"


def _navigator(cat: Catalog, gv: GalleryView, state: dict[str, Any]) -> None:
    index = state.get("index")
    if index is None:  # opened from a link: find it in the gallery's order
        index = view.sample_position(cat, gv.flt, gv.run, gv.sort, state["id"])
        state["index"] = index
    prev, where, nxt = st.columns([1, 3, 1], vertical_alignment="center")
    prev.button("Previous", key="detail_prev", icon=":material/chevron_left:", width="stretch",
                disabled=index is None or index <= 0, on_click=_step,
                args=(cat, gv, (index or 0) - 1))
    where.caption(f"{index + 1:,} of {gv.total:,} in this gallery" if index is not None
                  else "not in this gallery's view")
    nxt.button("Next", key="detail_next", icon=":material/chevron_right:", width="stretch",
               disabled=index is None or index >= gv.total - 1, on_click=_step,
               args=(cat, gv, (index or 0) + 1))


@st.dialog("Sample", width="large", on_dismiss=_close)
def _dialog(cat: Catalog, gv: GalleryView | None) -> None:
    state = st.session_state.get(OPEN)
    if not state:
        return
    if gv is not None:
        _navigator(cat, gv, state)
    if sample_detail(cat, state["id"]):
        st.markdown("**Link to this sample**")
        st.code(link_to(state["id"]), language=None)


def show_open_detail(cat: Catalog, gv: GalleryView | None) -> bool:
    """Open the dialog if a detail is open for this gallery (or named by the URL); True if shown."""
    state = st.session_state.get(OPEN)
    if state is None and url.get(URL_SAMPLE):  # a link that names a sample
        state = {"id": url.get(URL_SAMPLE), "index": None, "gallery": gv.key if gv else None}
        st.session_state[OPEN] = state
    if state is None or (gv is not None and state.get("gallery") not in (None, gv.key)):
        return False
    _shown.flag = True
    _dialog(cat, gv)
    return True
