"""al-explorer's Streamlit entry point: page setup, the shared sidebar, and navigation."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages._ui.shell import run_page

#: Bundled, so no page load asks a font CDN for the icon (offline by default).
FAVICON = Path(__file__).resolve().parent / "pages" / "_ui" / "favicon.png"

st.set_page_config(page_title="al-explorer", page_icon=str(FAVICON), layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/insights:", default=True,
            url_path="overview"),
    st.Page("pages/samples.py", title="Samples", icon=":material/photo_library:", url_path="samples"),
    st.Page("pages/diagnostics.py", title="Diagnostics", icon=":material/troubleshoot:", url_path="diagnostics"),
    st.Page("pages/quality.py", title="Image quality", icon=":material/high_quality:", url_path="quality"),
    st.Page("pages/similarity.py", title="Similarity", icon=":material/image_search:", url_path="similarity"),
    st.Page("pages/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:", url_path="map"),
    st.Page("pages/export.py", title="Export", icon=":material/outbox:", url_path="export"),
]
BATCH = st.Page("pages/batch.py", title="Next batch", icon=":material/shopping_cart:", url_path="batch")

navigation = st.navigation([*PAGES, BATCH])
run_page(navigation, batch_page=BATCH)
