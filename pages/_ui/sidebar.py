"""The sidebar filter shared by every page, bound to the URL so a view can be shared as a link."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from al_core import view
from al_core.db.catalog import Catalog
from al_core.view.filters import Filter, field_kind
from pages._ui.text import plain


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
        values = st.multiselect(plain(name), _options(cat, name) + [view.NULL_VALUE], key=key)
        return ("categorical", tuple(values)) if values else None
    low, high = view.field_range(cat, name)
    if low is None or low == high:
        return None
    if kind == "numeric":
        full = (float(low), float(high))
        value = {} if key in st.session_state else {"value": full}
        chosen = st.slider(plain(name), full[0], full[1], key=key, **value)
        return ("numeric", tuple(map(float, chosen))) if tuple(chosen) != full else None
    if kind == "time":
        full_d = (pd.Timestamp(low).date(), pd.Timestamp(high).date())
        value = {} if key in st.session_state else {"value": full_d}
        chosen_d = st.date_input(plain(name), min_value=full_d[0], max_value=full_d[1], key=key, **value)
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
        st.caption(f"Catalog: {plain(cat.path)}")
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
