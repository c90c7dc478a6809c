"""The Export page's "Labels back" tab: a provider's export uploaded and imported, and the
returned labels that disagree with the current ones reviewed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from al_core.db.catalog import Catalog
from al_core.errors import AlExplorerError
from al_core.export import labels as labels_back
from pages._ui.text import plain


def _import_upload(cat: Catalog) -> None:
    """The import button's callback: the uploaded export, written to a temporary file under its
    own name (its extension tells the format), imported in one transaction."""
    upload = st.session_state.get("ex_labels_file")
    if upload is None:
        st.session_state["_ex_back"] = ("error", "Choose a file first.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        try:
            result = labels_back.import_labels(cat, path, st.session_state["ex_labels_format"],
                                               st.session_state["ex_labels_conflict"])
        except AlExplorerError as err:
            st.session_state["_ex_back"] = ("error", str(err).replace(str(path), upload.name))
            return
    st.session_state["_ex_back"] = ("success", result.describe())


def _resolve(cat: Catalog, accept: bool) -> None:
    labels_back.resolve_conflict(cat, int(st.session_state["ex_conflict"]), accept)


def labels_back_view(cat: Catalog) -> None:
    st.caption("A Label Studio JSON export, a Labelbox NDJSON export, a CVAT for images 1.1 XML, or a CSV "
               "of sample_id, label (and annotator). New labels are applied with their batch and annotator; "
               "one that disagrees with the current label waits below for review.")
    st.file_uploader("Labels file", type=["json", "ndjson", "xml", "csv"], key="ex_labels_file")
    left, right = st.columns(2)
    left.selectbox("Format", labels_back.FORMATS, key="ex_labels_format")
    right.segmented_control("When a returned label disagrees", labels_back.ON_CONFLICT, default="keep",
                            key="ex_labels_conflict", format_func={"keep": "keep it for review",
                                                                   "replace": "replace the current one"}.get)
    st.button("Import the labels", key="ex_labels_import", on_click=_import_upload, args=(cat,),
              icon=":material/download_done:")
    if "_ex_back" in st.session_state:
        kind, text = st.session_state["_ex_back"]
        (st.success if kind == "success" else st.error)(plain(text))
    pending = labels_back.conflicts(cat)
    if pending.empty:
        st.caption("No label conflicts.")
        return
    st.subheader(f"{len(pending):,} label conflicts")
    st.dataframe(pending, hide_index=True, width="stretch", key="ex_conflicts")
    st.selectbox("Conflict", pending["label_seq"].tolist(), key="ex_conflict", format_func=lambda seq: (
        "{sample_id}: {current} → {proposed}".format(**pending.set_index("label_seq").loc[seq].to_dict())))
    a, b = st.columns(2)
    a.button("Accept the returned label", key="ex_accept", on_click=_resolve, args=(cat, True))
    b.button("Keep the current label", key="ex_reject", on_click=_resolve, args=(cat, False))
