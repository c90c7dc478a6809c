"""The sidebar filter shared by every page, bound to the URL so a view can be shared as a link."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from al_core import view
from al_core.db.catalog import Catalog
from al_core.quality.sql import is_built_in
from al_core.view.filters import BATCH_CHOICES, OUTCOME_CHOICES, Filter, field_kind
from pages._ui import url
from pages._ui.shell import current_page
from pages._ui.text import plain


def _options(cat: Catalog, column: str) -> list[str]:
    return view.distinct_values(cat, column)


BATCH_LABELS = {"all": "all", "in": "in it", "out": "not in it"}
_QUALITY_OPEN = "_flt_quality_open"  # whether this page's Image quality expander starts open
_STATE = "_flt_state"  # the filter's widget values, kept across pages (widgets are per page)


def _seed_widgets(fields: dict[str, str], runs: dict[str, view.RunRef]) -> None:
    """Give this page's filter widgets the session's filter: from the URL on the first run (a
    shared link reproduces the view), from the last page's widgets after a page switch."""
    if _STATE not in st.session_state:
        flt = _from_url(fields, runs)
        state: dict[str, Any] = {"flt_split": list(flt.splits), "flt_class": list(flt.classes),
                                 "flt_labeled": flt.labeled, "flt_tag": list(flt.tags),
                                 "flt_pred": list(flt.pred_classes), "flt_outcome": flt.outcome,
                                 "flt_notag": list(flt.tags_exclude), "flt_batch": flt.batch}
        if flt.run is not None:
            state["flt_run"] = flt.run.name
        if flt.confidence is not None:
            state["flt_conf"] = flt.confidence
        for name, values in flt.categorical:
            state[f"flt_f_{name}"] = list(values)
        for name, rng in (*flt.numeric, *flt.dates):
            state[f"flt_f_{name}"] = rng
        st.session_state[_STATE] = state
    page_switched = st.session_state.get("_flt_page") != current_page()
    st.session_state["_flt_page"] = current_page()
    for key, value in st.session_state[_STATE].items():
        if page_switched or key not in st.session_state:  # a new page's widgets start empty
            st.session_state[key] = value


def _keep_known(key: str, options: list[Any]) -> None:
    """Drop values a link or an older catalog named that are not options (Streamlit refuses them)."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]


def _clamp(key: str, low: Any, high: Any) -> None:
    """Keep a seeded range inside the field's range (Streamlit refuses values outside it)."""
    value = st.session_state.get(key)
    if isinstance(value, list | tuple) and len(value) == 2:
        first, last = (min(max(v, low), high) for v in value)
        st.session_state[key] = (min(first, last), max(first, last))
    elif key in st.session_state:
        del st.session_state[key]


def _field_widget(cat: Catalog, name: str, dtype: str) -> tuple[str, Any] | None:
    key = f"flt_f_{name}"
    kind = field_kind(dtype)
    if kind == "categorical":
        options = _options(cat, name) + [view.NULL_VALUE]
        _keep_known(key, options)
        values = st.multiselect(plain(name), options, key=key)
        return ("categorical", tuple(values)) if values else None
    low, high = view.field_range(cat, name)
    if low is None or low == high:
        return None
    if kind == "numeric":
        full = (float(low), float(high))
        _clamp(key, *full)
        value = {} if key in st.session_state else {"value": full}
        chosen = st.slider(plain(name), full[0], full[1], key=key, **value)
        return ("numeric", tuple(map(float, chosen))) if tuple(chosen) != full else None
    if kind == "time":
        full_d = (pd.Timestamp(low).date(), pd.Timestamp(high).date())
        _clamp(key, *full_d)
        value = {} if key in st.session_state else {"value": full_d}
        chosen_d = st.date_input(plain(name), min_value=full_d[0], max_value=full_d[1], key=key, **value)
        if isinstance(chosen_d, tuple) and len(chosen_d) == 2 and tuple(chosen_d) != full_d:
            return ("time", (chosen_d[0], chosen_d[1]))
    return None


def _any_set(fields: dict[str, str]) -> bool:
    """Whether a filter on one of ``fields`` is set (its expander then opens by itself)."""
    return any(st.session_state.get(f"flt_f_{name}") for name in fields
               if field_kind(fields[name]) == "categorical")


def _multiselect(label: str, options: list[str], key: str) -> list[str]:
    _keep_known(key, options)
    return st.multiselect(label, options, key=key)


_ALL_KEYS = ("flt_labeled", "flt_outcome", "flt_batch")


def _cleared(cat: Catalog, key: str, value: Any) -> Any:
    """A filter widget's "no restriction" value, or None where it is best dropped."""
    if isinstance(value, list):
        return []
    if key in _ALL_KEYS:
        return "all"
    if key == "flt_conf":
        return (0.0, 1.0)
    if key.startswith("flt_f_") and isinstance(value, tuple):
        low, high = view.field_range(cat, key.removeprefix("flt_f_"))
        if low is None:
            return None
        if isinstance(value[0], float | int):
            return (float(low), float(high))
        return (pd.Timestamp(low).date(), pd.Timestamp(high).date())
    return None


def _clear_filters(cat: Catalog) -> None:
    """Every filter widget back to "no restriction". Each is given that value rather than
    deleted: a widget deleted from the session keeps, in the browser, the value a page switch
    seeded, and sends it back on the next click (the filter would come back)."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith("flt_")]:
        value = _cleared(cat, key, st.session_state[key])
        if value is None:
            del st.session_state[key]
        else:
            st.session_state[key] = value
    st.session_state[_STATE] = {}
    url.put_filter({})


def _model_widgets(runs: dict[str, tuple[view.RunRef, list[str]]]) -> dict[str, Any]:
    """Run, predicted class, confidence range and outcome: the filter on the model's view."""
    if not runs:
        return {}
    names = list(runs)
    if st.session_state.get("flt_run") not in names:
        st.session_state["flt_run"] = names[0]  # the newest run
    run, classes = runs[st.selectbox("Model run", names, key="flt_run")]
    pred = _multiselect("Predicted class", classes, "flt_pred")
    _clamp("flt_conf", 0.0, 1.0)
    default = {} if "flt_conf" in st.session_state else {"value": (0.0, 1.0)}
    conf = tuple(st.slider("Confidence", 0.0, 1.0, step=0.01, key="flt_conf", **default))
    outcome = st.segmented_control("Outcome", OUTCOME_CHOICES, key="flt_outcome",
                                   help="correct / wrong: labeled samples the run gets right or "
                                        "wrong; unlabeled: pool samples it predicts") or "all"
    return {"run": run, "pred_classes": tuple(pred), "outcome": outcome,
            "confidence": None if conf == (0.0, 1.0) else (float(conf[0]), float(conf[1]))}


def link_filter(cat: Catalog) -> Filter:
    """The filter the URL describes, without drawing the sidebar (a first paint's quick look)."""
    runs = {name: ref for name, (ref, _) in view.list_runs(cat).items()}
    return _from_url(cat.metadata_fields(), runs)


def _from_url(fields: dict[str, str], runs: dict[str, view.RunRef]) -> Filter:
    return Filter.from_query_params({k: st.query_params.get_all(k) for k in st.query_params}, fields, runs)


def sidebar_filter(cat: Catalog) -> Filter:
    """Render the filter widgets, keep the URL in step, and return the current :class:`Filter`."""
    fields = cat.metadata_fields()
    runs = view.list_runs(cat)
    switched = st.session_state.get("_flt_page") != current_page()
    _seed_widgets(fields, {name: ref for name, (ref, _) in runs.items()})
    built_in = {n: t for n, t in fields.items() if is_built_in(n)}
    if switched or _QUALITY_OPEN not in st.session_state:  # fixed for the page's life: an
        st.session_state[_QUALITY_OPEN] = _any_set(built_in)  # expander whose `expanded` changes
        # is a new element, and a collapsed new one would keep stale widget values in the browser
    with st.sidebar:
        st.caption(f"Catalog: {plain(cat.path)}")
        st.subheader("Filter")
        splits = _multiselect("Split", _options(cat, "split"), "flt_split")
        classes = _multiselect("Class (ground truth)", _options(cat, "label"), "flt_class")
        labeled = st.segmented_control("Labels", ["all", "labeled", "unlabeled"], key="flt_labeled") or "all"
        # a chosen tag no sample has any more (just untagged, undone) stays chosen: the view
        # empties rather than silently widening to every sample
        chosen = [t for key in ("flt_tag", "flt_notag") for t in st.session_state.get(key) or []
                  if isinstance(t, str)]
        tags = sorted(set(view.list_tags(cat)) | set(chosen))
        chosen_tags = _multiselect("Tags", tags, "flt_tag") if tags else []
        without_tags = _multiselect("Without tags", tags, "flt_notag") if tags else []
        batch = st.segmented_control("Next batch", BATCH_CHOICES, key="flt_batch",
                                     format_func=BATCH_LABELS.__getitem__) or "all"
        with st.expander("Model", expanded=True):
            model = _model_widgets(runs)
        categorical, numeric, dates = [], [], []
        user = {n: t for n, t in fields.items() if not is_built_in(n)}
        for title, group, expanded in (("Metadata", user, True),
                                       ("Image quality", built_in, st.session_state[_QUALITY_OPEN])):
            if not group:
                continue
            with st.expander(title, expanded=expanded):
                for name, dtype in group.items():
                    picked = _field_widget(cat, name, dtype)
                    if picked:
                        target = {"categorical": categorical, "numeric": numeric, "time": dates}[picked[0]]
                        target.append((name, picked[1]))
        st.button("Clear filters", on_click=_clear_filters, args=(cat,), key="flt_clear")
    flt = Filter(tuple(splits), tuple(classes), labeled, tuple(chosen_tags), tuple(categorical),
                 tuple(numeric), tuple(dates), tags_exclude=tuple(without_tags), batch=batch, **model)
    st.session_state[_STATE] = {k: v for k, v in st.session_state.items()
                                if isinstance(k, str) and k.startswith("flt_") and k != "flt_clear"}
    url.put_filter(flt.to_query_params())
    return flt
