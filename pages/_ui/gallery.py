"""The paged gallery of samples shared by every page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from al_core import embeddings, view
from al_core.db.catalog import Catalog
from al_core.quality.sql import is_built_in
from al_core.thumbnails import cache_dir, thumbnail
from al_core.view.filters import Filter, field_kind
from pages._ui import selection, url
from pages._ui.detail import GalleryView, open_sample, show_open_detail
from pages._ui.text import plain

PAGE_SIZE = 24
GALLERY_COLUMNS = 6

#: Every card is this tall (px) and its thumbnail area this tall: a regular grid whatever the
#: image's shape or the caption's length (a long caption scrolls inside its card).
CARD_HEIGHT = 430  # room for a 160 px thumbnail, the select tick, the button, a four-line caption
LINK_ROW = 36  # the "Similar" link's row, on cards of a catalog with an embedding set
THUMB_AREA = 172
#: The URL key of the gallery's page number (one gallery is on screen at a time).
URL_PAGE = "page"
EMPTY = "No samples match this filter — clear a filter in the sidebar."


def _shown(name: str, value: Any) -> str:
    """A card's metadata value: numbers short and named (``q_sharpness 0.123``), text as is."""
    if isinstance(value, float):
        return f"{plain(name)} {value:.3g}"
    if isinstance(value, bool):
        return plain(name) if value else f"not {plain(name)}"
    return plain(value)


#: The Similarity page, for each card's "Similar" link (a query by this sample).
SIMILARITY_PAGE = "pages/similarity.py"


def _card(row: dict[str, Any], index: int, thumbs: Path, meta: list[str], key: str, flt: Filter,
          note: str | None = None, similar: bool = False) -> None:
    sample_id = str(row["sample_id"])
    with st.container(height=CARD_HEIGHT + (LINK_ROW if similar else 0), border=True):
        path = thumbnail(row["uri"], row.get("content_hash"), thumbs)
        with st.container(height=THUMB_AREA, border=False):
            if path:
                st.image(str(path), width="content")
            else:
                st.markdown("*(no preview)*")
        tick, enlarge = st.columns([1, 4], vertical_alignment="center", gap="small")
        with tick:
            selection.checkbox(key, sample_id, flt)
        enlarge.button("Enlarge", key=f"{key}_open:{sample_id}", on_click=open_sample,  # above the
                       args=(sample_id, index, key), width="stretch")  # caption: a long caption scrolls, the button stays
        if similar:
            st.page_link(SIMILARITY_PAGE, label="Similar", icon=":material/image_search:",
                         query_params={"like": sample_id}, help="Find samples that look like this one")
        label = row["label"] if not pd.isna(row["label"]) else None
        parts = [plain(row["sample_id"]), plain(label) if label is not None else "unlabeled"]
        if note:
            parts.insert(1, note)
        if not pd.isna(row.get("pred_label")):
            parts.append(f"pred **{plain(row['pred_label'])}** ({float(row['confidence']):.0%})")
        parts += [_shown(m, row[m]) for m in meta if not pd.isna(row.get(m))]
        st.caption(" · ".join(parts))


def clamp_page(value: Any, pages: int) -> int:
    """A page number from anywhere (the URL, session state) as one of ``1..pages``; junk is 1."""
    try:
        page = int(str(value).strip())
    except (TypeError, ValueError):
        return 1
    return min(max(page, 1), max(pages, 1))


def gallery(cat: Catalog, flt: Filter, run: view.RunRef | None, key: str,
            url_page: str = URL_PAGE, show: Sequence[str] = (), listed: str | None = None,
            notes: dict[str, str] | None = None) -> None:
    """Paged thumbnails (id, label, prediction, key metadata) of every sample matching ``flt``.

    ``url_page`` is the URL key that keeps its page (each gallery of a page needs its own);
    ``show`` names fields to print on each card before the default metadata; ``listed`` names
    the order of ``flt.ids`` (e.g. "similarity"), offered first; ``notes`` adds text per card.
    """
    fields = cat.metadata_fields()
    total = view.count_filtered(cat, flt, run)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    page_key, sort_key = f"{key}_page", f"{key}_sort"
    if page_key not in st.session_state:  # first render: the page the link names
        st.session_state[page_key] = clamp_page(url.get(url_page, "1"), pages)
    elif clamp_page(st.session_state[page_key], pages) != st.session_state[page_key]:
        st.session_state[page_key] = clamp_page(st.session_state[page_key], pages)
    sorts = view.sort_options(cat, run, listed if flt.ids else None)
    if st.session_state.get(sort_key) not in (None, *sorts):
        del st.session_state[sort_key]

    def _first_page() -> None:
        st.session_state[page_key] = 1

    count_col, sort_col, page_col, of_col = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    count_col.markdown(f"**{total:,} samples**")
    sort = sort_col.selectbox("Sort by", list(sorts), format_func=sorts.__getitem__, key=sort_key,
                              on_change=_first_page)
    if total == 0:
        st.info(EMPTY)
        url.put(url_page, None)
        show_open_detail(cat, None)
        return
    if pages > 1:
        page = clamp_page(page_col.number_input("Page", 1, pages, key=page_key), pages)
    else:
        page = 1
    of_col.markdown(f"page {page:,} of {pages:,}")
    url.put(url_page, str(page) if page > 1 else None)
    meta = [n for n in show if n in fields]
    meta += [n for n, t in fields.items() if field_kind(t) == "categorical"
             and not is_built_in(n) and n not in meta][:2]
    first = (page - 1) * PAGE_SIZE
    frame = view.gallery_page(cat, flt, run, meta, PAGE_SIZE, first, sort)
    selection.action_bar(cat, key, flt, total, frame["sample_id"].astype(str).tolist())
    thumbs = cache_dir(cat.path)
    similar = bool(embeddings.list_sets(cat))
    cols = st.columns(GALLERY_COLUMNS)
    for i, row in enumerate(frame.to_dict("records")):
        with cols[i % GALLERY_COLUMNS]:
            _card(row, first + i, thumbs, meta, key, flt, (notes or {}).get(str(row["sample_id"])),
                  similar)
    show_open_detail(cat, GalleryView(key, flt, run, sort, total))
