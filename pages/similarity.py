"""Similarity page: samples like an example (or several, with negatives), a text or an uploaded
image, within the sidebar filter; near duplicates and outliers of the same embedding set."""

from __future__ import annotations

import re
from dataclasses import replace

import streamlit as st

from al_core.embeddings import EmbeddingSet
from al_core.embeddings.search import UNLIKE_WEIGHT, labels, similar
from al_core.embeddings.uploads import MAX_UPLOAD_BYTES, decode_upload
from al_core.errors import AlExplorerError
from al_core.view.filters import Filter
from pages._ui import url
from pages._ui.embeddings import (
    embed_panel,
    index_for,
    model_for,
    near_duplicates,
    outliers_view,
    passing_ids,
    pick_set,
)
from pages._ui.gallery import gallery
from pages._ui.shell import catalog, empty_state
from pages._ui.sidebar import sidebar_filter
from pages._ui.text import plain

VIEWS = ("Search", "Near duplicates", "Outliers")
KINDS = ("Example samples", "Text", "Image")
DEFAULT_K = 24


def _ids(text: str) -> list[str]:
    """Ids typed or pasted: separated by commas, spaces or new lines; repeats dropped."""
    return list(dict.fromkeys(t for t in re.split(r"[\s,]+", text or "") if t))


def _query_in_url() -> tuple:
    return (tuple(st.query_params.get_all("like")), tuple(st.query_params.get_all("unlike")),
            url.get("text", ""))


WIDGETS = ("sim_kind", "sim_like", "sim_unlike", "sim_text", "sim_k")


def _seed_from_url() -> None:
    """Before the widgets are drawn: the query a new link describes (a "Similar" link, a shared
    URL), else what the widgets held when last drawn. Streamlit drops a widget's key while the
    widget is not drawn (another view, another page, another query kind), so the page keeps a
    copy of its own (``_sim_shadow``) and puts back what was dropped."""
    shadow = st.session_state.setdefault("_sim_shadow", {})
    if st.session_state.get("_sim_seen") != _query_in_url():
        shadow["sim_like"] = "\n".join(st.query_params.get_all("like"))
        shadow["sim_unlike"] = "\n".join(st.query_params.get_all("unlike"))
        shadow["sim_text"] = url.get("text", "")
        shadow["sim_kind"] = KINDS[1] if url.get("text") and not url.get("like") else KINDS[0]
        try:
            shadow["sim_k"] = min(max(int(url.get("k", str(DEFAULT_K))), 1), 500)
        except ValueError:
            shadow["sim_k"] = DEFAULT_K
        for key in WIDGETS:
            st.session_state[key] = shadow[key]
        st.session_state["_sim_seen"] = _query_in_url()
    for key in WIDGETS:
        if key not in st.session_state and key in shadow:
            st.session_state[key] = shadow[key]


def _remember() -> None:
    """After the widgets are drawn: keep their values, and the URL this run wrote (not a new link)."""
    shadow = st.session_state.setdefault("_sim_shadow", {})
    for key in WIDGETS:
        if key in st.session_state:
            shadow[key] = st.session_state[key]
    st.session_state["_sim_seen"] = _query_in_url()


def _put_list(key: str, values: list[str]) -> None:
    """A repeated URL key (``like=a&like=b``); an empty list removes it."""
    if values:
        if st.query_params.get_all(key) != values:
            st.query_params[key] = values
    elif key in st.query_params:
        del st.query_params[key]


def _query_widgets(emb: EmbeddingSet) -> dict | None:
    """The query the widgets describe (kept in the URL), or None while it is incomplete."""
    kinds = [k for k in KINDS if k != "Text" or emb.has_text]
    if emb.identity.get("kind") != "open_clip":
        kinds = [KINDS[0]]
    if st.session_state.get("sim_kind") not in kinds:
        st.session_state["sim_kind"] = kinds[0]
    kind = st.radio("Query by", kinds, key="sim_kind", horizontal=True)
    k = int(st.number_input("How many results (k)", 1, 500, key="sim_k"))
    url.put("k", str(k) if k != DEFAULT_K else None)
    if kind == KINDS[0]:
        left, right = st.columns(2)
        like = _ids(left.text_area("Like these sample ids", key="sim_like", height=80,
                                   help="One or more: their vectors are averaged."))
        unlike = _ids(right.text_area("…and unlike these (optional)", key="sim_unlike", height=80,
                                      help=f"Subtracts {UNLIKE_WEIGHT} × the mean of their vectors."))
        _put_list("like", like)
        _put_list("unlike", unlike)
        url.put("text", None)
        return {"like": like, "unlike": unlike} if like else None
    _put_list("like", [])
    _put_list("unlike", [])
    if kind == "Text":
        text = st.text_input("Describe what you look for", key="sim_text",
                             placeholder="a green traffic cone at night").strip()
        url.put("text", text or None)
        return {"text": text} if text else None
    url.put("text", None)
    upload = st.file_uploader(f"An image (at most {MAX_UPLOAD_BYTES // 2**20} MB)", key="sim_upload")
    if upload is None:
        return None
    try:
        size = emb.identity.get("preprocess", {}).get("size", [224])
        return {"image": decode_upload(upload.getvalue(), upload.name,
                                       draft_size=int(size[0] if isinstance(size, list) else size))}
    except AlExplorerError as err:
        st.error(plain(str(err)))
        return None


def _search(cat, emb: EmbeddingSet, flt: Filter) -> None:
    query = _query_widgets(emb)
    _remember()
    if query is None:
        st.info("Give a query: example sample ids (or **Similar** on any gallery card), a text, or an image.")
        return
    try:
        model = model_for(emb) if "like" not in query else None
        found = similar(cat, emb, k=st.session_state["sim_k"], flt=flt, model=model,
                        index=index_for(cat, emb), **query)
    except AlExplorerError as err:
        st.error(plain(str(err)))
        return
    if found.empty:
        st.info("No sample passes the sidebar filter (besides the examples themselves).")
        return
    scores = dict(zip(found["sample_id"], found["score"], strict=True))
    st.caption(f"{len(found):,} nearest within the sidebar filter, by cosine similarity "
               f"(best {found['score'].max():.3f}, worst {found['score'].min():.3f}).")
    gallery(cat, replace(flt, ids=tuple(found["sample_id"])), flt.run, key="sim_results",
            url_page="sim_page", listed="similarity, most similar first",
            notes={sid: f"similarity {s:.3f}" for sid, s in scores.items()})


def _pairs_view(cat, emb: EmbeddingSet, flt: Filter) -> None:
    threshold = st.slider("Near duplicates from cosine similarity", 0.80, 1.0, 0.99, 0.001, key="sim_dup_t",
                          format="%.3f")
    pairs = near_duplicates(cat, emb, threshold)
    passing = passing_ids(cat, flt)
    if passing is not None:  # a pair shows when either side passes the filter
        pairs = pairs[pairs["sample_a"].isin(passing) | pairs["sample_b"].isin(passing)]
    st.caption(f"{len(pairs):,} pairs at or above {threshold:.3f} (each sample's 10 nearest); the "
               "gallery holds the samples of the 1,000 most similar, within the sidebar filter.")
    if pairs.empty:
        return
    label_of = labels(cat).set_index("sample_id")["label"]
    table = pairs.head(1000).assign(label_a=lambda f: f["sample_a"].map(label_of),
                                    label_b=lambda f: f["sample_b"].map(label_of))
    st.dataframe(table[["sample_a", "label_a", "sample_b", "label_b", "similarity"]], hide_index=True,
                 key="sim_pairs_table", height=240)
    ids = tuple(dict.fromkeys(pairs[["sample_a", "sample_b"]].head(1000).to_numpy().ravel()))
    gallery(cat, replace(flt, ids=ids), flt.run, key="sim_dups", url_page="sim_page",
            listed="pairs, most similar first")


cat = catalog()
st.title("Similarity")
if not empty_state(cat):
    flt = sidebar_filter(cat)
    _seed_from_url()
    emb = pick_set(cat, "sim_set")
    if emb is not None:
        if st.session_state.get("sim_view") not in VIEWS:
            st.session_state["sim_view"] = {"duplicates": VIEWS[1], "outliers": VIEWS[2]}.get(
                url.get("sim", ""), VIEWS[0])
        shown = st.segmented_control("View", VIEWS, key="sim_view") or VIEWS[0]
        url.put("sim", {VIEWS[1]: "duplicates", VIEWS[2]: "outliers"}.get(shown))
        if shown == VIEWS[2]:
            outliers_view(cat, emb, flt, "sim_outliers")
        else:
            {VIEWS[0]: _search, VIEWS[1]: _pairs_view}[shown](cat, emb, flt)
    embed_panel(cat, emb)
