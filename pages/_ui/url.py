"""Page state in the URL beside the filter: each owner reads and writes only its own keys."""

from __future__ import annotations

import streamlit as st

from al_core import view

#: Keys the sidebar filter owns (``f.<field>`` too); pages use others (``drill``, ``page``, …).
FILTER_KEYS = view.FILTER_KEYS


def is_filter_key(key: str) -> bool:
    return key in FILTER_KEYS or key.startswith("f.")


def get(key: str, default: str | None = None) -> str | None:
    """The URL's value for ``key`` (the first, if repeated)."""
    values = st.query_params.get_all(key)
    return values[0] if values else default


def put(key: str, value: str | None) -> None:
    """Set (or, with None, remove) one key of the URL, leaving every other key as it is."""
    if value is None:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get_all(key) != [value]:
        st.query_params[key] = value


def put_filter(params: dict[str, list[str]]) -> None:
    """Make the URL's filter keys exactly ``params``; page keys stay."""
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: v for k, v in current.items() if not is_filter_key(k)} | params
    if wanted != current:
        st.query_params.from_dict(wanted)
