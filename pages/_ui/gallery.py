"""The paged gallery of samples shared by every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from al_core import view
from al_core.db.catalog import Catalog
from al_core.thumbnails import cache_dir, thumbnail
from al_core.view.filters import Filter, field_kind
from pages._ui.text import plain

PAGE_SIZE = 24
GALLERY_COLUMNS = 6

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
    label = row["label"] if not pd.isna(row["label"]) else None
    parts = [plain(row["sample_id"]), plain(label) if label is not None else "unlabeled"]
    if not pd.isna(row.get("pred_label")):
        parts.append(f"pred **{plain(row['pred_label'])}** ({float(row['confidence']):.0%})")
    parts += [plain(row[m]) for m in meta if not pd.isna(row.get(m))]
    st.caption(" · ".join(parts))
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
