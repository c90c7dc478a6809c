"""A strip of thumbnails side by side (duplicate sets), each captioned with its id and label."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from al_core import view
from al_core.db.catalog import Catalog
from al_core.thumbnails import cache_dir, thumbnail
from pages._ui.text import plain

#: Thumbnails per strip; a larger set says how many more it has.
STRIP_SIZE = 6


def thumbnail_strip(cat: Catalog, sample_ids: Sequence[str]) -> None:
    """The first :data:`STRIP_SIZE` of ``sample_ids`` side by side in one bordered row."""
    rows = view.samples_brief(cat, list(sample_ids)[:STRIP_SIZE])
    folder = cache_dir(cat.path)
    with st.container(border=True):
        cols = st.columns(STRIP_SIZE)
        for i, row in enumerate(rows.to_dict("records")):
            with cols[i]:
                path = thumbnail(row["uri"], row.get("content_hash"), folder)
                if path:
                    st.image(str(path), width="content")
                label = row["label"] if not pd.isna(row["label"]) else "unlabeled"
                st.caption(f"{plain(row['sample_id'])} · {plain(label)}")
        if len(sample_ids) > STRIP_SIZE:
            st.caption(f"… and {len(sample_ids) - STRIP_SIZE:,} more in this set")
