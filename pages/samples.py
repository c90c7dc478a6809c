"""Samples page: the gallery of everything the sidebar filter selects."""

from __future__ import annotations

import streamlit as st

from pages._ui.gallery import gallery
from pages._ui.shell import catalog, empty_state
from pages._ui.sidebar import sidebar_filter

cat = catalog()
st.title("Samples")
if not empty_state(cat):
    flt = sidebar_filter(cat)
    run = flt.run
    gallery(cat, flt, run, key="samples")
