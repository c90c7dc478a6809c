"""Streamlit pieces shared by every page: the catalog handle, the URL-bound sidebar filter, the gallery."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from al_core import overview, view
from al_core.db.catalog import Catalog, resolve_catalog_path
from al_core.errors import CatalogError
from al_core.thumbnails import cache_dir, thumbnail
from al_core.view.filters import Filter, field_kind

PAGE_SIZE = 24
GALLERY_COLUMNS = 6

_run = threading.local()


def mark_shell_run() -> None:
    """Called by app.py on every run, before the page: the page knows the shell ran."""
    _run.shell = True


def _ensure_shell() -> None:
    """Route a page that Streamlit ran directly back through app.py.

    With a ``pages/`` folder beside the entry script, Streamlit runs the requested page file
    itself (its older multipage mode) until app.py has called ``st.navigation`` once in this
    server. That would drop the shell's navigation, so switch the mode off and rerun.
    """
    if getattr(_run, "shell", False):
        _run.shell = False
        return
    try:  # an internal of Streamlit's; if it moves, pages still work, only without the shell
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    PagesManager.uses_pages_directory = False
    st.rerun()


@st.cache_resource(show_spinner=False)
def _open_catalog(path: str) -> Catalog:
    url = os.environ.get("AL_EXPLORER_URL")
    return Catalog.open(path, role="app", url=url)


def catalog() -> Catalog:
    """The app's catalog (owned read-write by this process), or a clear stop if unavailable."""
    _ensure_shell()
    path = str(resolve_catalog_path().resolve())
    try:
        return _open_catalog(path)
    except CatalogError as err:
        st.error(str(err))
        st.stop()
        raise


def empty_state(cat: Catalog) -> bool:
    """Show how to fill an empty catalog; True if it is empty."""
    if view.sample_count(cat):
        return False
    st.info(f"The catalog `{cat.path}` has no samples yet. Fill it with the demo "
            "(`al-explorer demo`) or your own data (`al-explorer ingest PATH`), then reload.")
    return True


@st.cache_data(show_spinner=False, max_entries=512)
def cached(func: str, path: str, version: int, flt: Filter, *args: Any) -> Any:
    """Run ``al_core.overview.<func>(cat, flt, *args)``, cached per (catalog, version, filter, args)."""
    del version  # part of the cache key only
    return getattr(overview, func)(_open_catalog(path), flt, *args)


def call(cat: Catalog, func: str, flt: Filter, *args: Any) -> Any:
    return cached(func, str(cat.path.resolve()), cat.data_version(), flt, *args)


# ---------------------------------------------------------------------------- sidebar filter

def _options(cat: Catalog, column: str) -> list[str]:
    return view.distinct_values(cat, column)


def _init_from_url(cat: Catalog, fields: dict[str, str]) -> None:
    """On a session's first run, seed the widgets from the URL so shared links reproduce the view."""
    if st.session_state.get("_filters_seeded"):
        return
    st.session_state["_filters_seeded"] = True
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    flt = Filter.from_query_params(params, fields)
    st.session_state["flt_split"] = list(flt.splits)
    st.session_state["flt_class"] = list(flt.classes)
    st.session_state["flt_labeled"] = flt.labeled
    st.session_state["flt_tag"] = list(flt.tags)
    for name, values in flt.categorical:
        st.session_state[f"flt_f_{name}"] = list(values)
    for name, rng in flt.numeric:
        st.session_state[f"flt_f_{name}"] = rng
    for name, rng in flt.dates:
        st.session_state[f"flt_f_{name}"] = rng


def _field_widget(cat: Catalog, name: str, dtype: str) -> tuple[str, Any] | None:
    key = f"flt_f_{name}"
    kind = field_kind(dtype)
    if kind == "categorical":
        values = st.multiselect(name, _options(cat, name) + [view.NULL_VALUE], key=key)
        return ("categorical", tuple(values)) if values else None
    low, high = view.field_range(cat, name)
    if low is None or low == high:
        return None
    if kind == "numeric":
        full = (float(low), float(high))
        value = {} if key in st.session_state else {"value": full}
        chosen = st.slider(name, full[0], full[1], key=key, **value)
        return ("numeric", tuple(map(float, chosen))) if tuple(chosen) != full else None
    if kind == "time":
        full_d = (pd.Timestamp(low).date(), pd.Timestamp(high).date())
        value = {} if key in st.session_state else {"value": full_d}
        chosen_d = st.date_input(name, min_value=full_d[0], max_value=full_d[1], key=key, **value)
        if isinstance(chosen_d, tuple) and len(chosen_d) == 2 and tuple(chosen_d) != full_d:
            return ("time", (chosen_d[0], chosen_d[1]))
    return None


def _clear_filters() -> None:
    for key in list(st.session_state):
        if isinstance(key, str) and key.startswith("flt_"):
            del st.session_state[key]
    st.query_params.clear()


def sidebar_filter(cat: Catalog) -> Filter:
    """Render the filter widgets, keep the URL in step, and return the current :class:`Filter`."""
    fields = cat.metadata_fields()
    _init_from_url(cat, fields)
    with st.sidebar:
        st.caption(f"Catalog: `{cat.path}`")
        st.subheader("Filter")
        splits = st.multiselect("Split", _options(cat, "split"), key="flt_split")
        classes = st.multiselect("Class (ground truth)", _options(cat, "label"), key="flt_class")
        labeled = st.segmented_control("Labels", ["all", "labeled", "unlabeled"], key="flt_labeled") or "all"
        tags = view.list_tags(cat)
        chosen_tags = st.multiselect("Tags", tags, key="flt_tag") if tags else []
        categorical, numeric, dates = [], [], []
        with st.expander("Metadata", expanded=True):
            for name, dtype in fields.items():
                picked = _field_widget(cat, name, dtype)
                if picked:
                    target = {"categorical": categorical, "numeric": numeric, "time": dates}[picked[0]]
                    target.append((name, picked[1]))
        st.button("Clear filters", on_click=_clear_filters, key="flt_clear")
    flt = Filter(tuple(splits), tuple(classes), labeled, tuple(chosen_tags), tuple(categorical),
                 tuple(numeric), tuple(dates))
    wanted = flt.to_query_params()
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    if wanted != current:
        st.query_params.from_dict(wanted)
    return flt


# ---------------------------------------------------------------------------- gallery

@st.dialog("Sample", width="large")
def _enlarge(row: dict[str, Any], image: str | None) -> None:
    if image:
        st.image(image, width="stretch")
    st.json({k: (str(v) if not isinstance(v, int | float | str | type(None)) else v) for k, v in row.items()})


def _card(row: dict[str, Any], thumbs: Path, meta: list[str], key: str) -> None:
    path = thumbnail(row["uri"], row.get("content_hash"), thumbs)
    if path:
        st.image(str(path), width="stretch")
    else:
        st.markdown("*(no preview)*")
    pred = ""
    if row.get("pred_label") is not None and not pd.isna(row.get("pred_label")):
        pred = f" · pred **{row['pred_label']}** ({float(row['confidence']):.0%})"
    st.caption(f"`{row['sample_id']}` · {row['label'] if row['label'] is not None and not pd.isna(row['label']) else 'unlabeled'}{pred}"
               + "".join(f" · {row[m]}" for m in meta if row.get(m) is not None))
    if st.button("Enlarge", key=f"{key}_open_{row['sample_id']}"):
        _enlarge(row, str(Path(row["uri"])) if path else None)


def gallery(cat: Catalog, flt: Filter, run: view.RunRef | None, key: str) -> None:
    """Paged thumbnails (id, label, prediction, key metadata) of every sample matching ``flt``."""
    fields = cat.metadata_fields()
    total = view.count_filtered(cat, flt, run)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    left, right = st.columns([3, 1])
    left.markdown(f"**{total:,} samples**")
    page = int(right.number_input("Page", 1, pages, 1, key=f"{key}_page")) if pages > 1 else 1
    meta = [n for n, t in fields.items() if field_kind(t) == "categorical"][:2]
    frame = view.gallery_page(cat, flt, run, meta, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    thumbs = cache_dir(cat.path)
    cols = st.columns(GALLERY_COLUMNS)
    for i, row in enumerate(frame.to_dict("records")):
        with cols[i % GALLERY_COLUMNS]:
            _card(row, thumbs, meta, key)


