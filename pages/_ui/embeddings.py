"""Embedding sets in the app: the set picker, and cached indexes, models and neighbour tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from al_core import embeddings, view
from al_core.db.catalog import Catalog
from al_core.embeddings import EmbeddingSet
from al_core.embeddings import neighbors as nb
from al_core.embeddings.index import SetState, VectorIndex, open_index
from al_core.embeddings.job import embed_catalog
from al_core.embeddings.maps import fingerprint
from al_core.embeddings.models import (
    DEFAULT_ARCH,
    DEFAULT_PRETRAINED,
    LoadedModel,
    ModelSpec,
    load_model,
    spec_from_identity,
)
from al_core.embeddings.search import labels
from al_core.errors import AlExplorerError
from al_core.view.filters import Filter
from pages._ui import jobs, url
from pages._ui.gallery import gallery
from pages._ui.shell import _open_catalog
from pages._ui.text import plain

URL_SET = "set"
NO_SETS = ("This catalog has no embedding set yet. Make one with `al-explorer embed` (an open_clip "
           "model: a pretrained tag or a local weights file) or bring your own vectors with "
           "`al-explorer import-embeddings FILE --set NAME`; the demo builds two.")


def pick_set(cat: Catalog, key: str) -> EmbeddingSet | None:
    """The embedding set chosen in a select box (kept in the URL), or None when there is none."""
    sets = {s.name: s for s in embeddings.list_sets(cat)}
    if not sets:
        st.info(NO_SETS)
        return None
    names = list(sets)
    if st.session_state.get(key) not in names:
        wanted = url.get(URL_SET)
        # by default the newest set with a text tower (the demo's CLIP), else the newest set
        default = next((n for n in reversed(names) if sets[n].has_text), names[-1])
        st.session_state[key] = wanted if wanted in names else default
    name = st.selectbox("Embedding set", names, key=key,
                        help="Vectors of one model; sets of two models are never mixed.")
    url.put(URL_SET, name)
    return sets[name]


def state_key(cat: Catalog, emb: EmbeddingSet) -> str:
    return fingerprint(SetState.of(cat, emb))


@st.cache_resource(show_spinner="Opening the vector index…", max_entries=2)
def _index(path: str, set_id: int, state: str) -> VectorIndex:
    del state  # part of the cache key: a changed set gets a fresh (updated) index
    cat = _open_catalog(path)
    emb = next(s for s in embeddings.list_sets(cat) if s.set_id == set_id)
    return open_index(cat, emb)


def index_for(cat: Catalog, emb: EmbeddingSet) -> VectorIndex:
    return _index(str(cat.path.resolve()), emb.set_id, state_key(cat, emb))


@st.cache_resource(show_spinner="Loading the set's model…", max_entries=2)
def _model(identity: str) -> LoadedModel:
    return load_model(spec_from_identity(json.loads(identity)), device="auto")


def model_for(emb: EmbeddingSet) -> LoadedModel:
    """The set's own open_clip model (for text and image queries); raises if it cannot load."""
    return _model(json.dumps(emb.identity, sort_keys=True))


@st.cache_data(show_spinner="Scoring outliers…", max_entries=8)
def _outliers(path: str, set_id: int, state: str, k: int) -> pd.DataFrame:
    return nb.outlier_scores(_open_catalog(path), _index(path, set_id, state), k)


def outliers(cat: Catalog, emb: EmbeddingSet, k: int = nb.OUTLIER_K) -> pd.DataFrame:
    return _outliers(str(cat.path.resolve()), emb.set_id, state_key(cat, emb), k)


@st.cache_data(show_spinner="Finding near duplicates…", max_entries=8)
def _pairs(path: str, set_id: int, state: str, threshold: float) -> pd.DataFrame:
    cat = _open_catalog(path)
    return nb.near_duplicate_pairs(cat, _index(path, set_id, state), threshold)


def near_duplicates(cat: Catalog, emb: EmbeddingSet, threshold: float) -> pd.DataFrame:
    return _pairs(str(cat.path.resolve()), emb.set_id, state_key(cat, emb), threshold)


def missing_count(cat: Catalog, emb: EmbeddingSet) -> int:
    return int(cat.scalar(embeddings.sql.count_missing(emb.table)))


def _embed_work(path: str, spec: ModelSpec, set_name: str | None) -> Callable[[jobs.Job], str]:
    def work(job: jobs.Job) -> str:
        report = embed_catalog(_open_catalog(path), spec, set_name, progress=False,
                               on_progress=job.progress, stop=job.stop)
        return " ".join(report.lines())
    return work


def embed_panel(cat: Catalog, emb: EmbeddingSet | None) -> None:
    """Start an embedding job from the app: the set's new samples, or a new set of another model."""
    path = str(cat.path.resolve())
    jobs.show("embed", "Embedding")
    job = jobs.get("embed")
    busy = job is not None and job.running
    with st.expander("Embed images", expanded=emb is None):
        if emb is not None and emb.identity.get("kind") == "open_clip":
            todo = missing_count(cat, emb)
            st.caption(f"{todo:,} sample(s) have no vector in {plain(emb.name)}.")
            if st.button("Embed them with the set's model", key="emb_resume", disabled=busy or todo == 0):
                try:
                    spec = spec_from_identity(emb.identity)
                except AlExplorerError as err:
                    st.error(plain(str(err)))
                else:
                    jobs.start("embed", _embed_work(path, spec, emb.name))
                    st.rerun()
        st.markdown("**A new set from an open_clip model**")
        arch = st.text_input("Architecture", DEFAULT_ARCH, key="emb_arch")
        tag = st.text_input("Pretrained tag (or leave empty and give a weights file)", DEFAULT_PRETRAINED,
                            key="emb_tag")
        weights = st.text_input("Local weights file (optional)", "", key="emb_weights")
        config = st.text_input("Model-config JSON of a custom architecture (optional)", "", key="emb_config")
        name = st.text_input("Set name (optional)", "", key="emb_name")
        if st.button("Start embedding", key="emb_start", disabled=busy):
            try:
                spec = ModelSpec(arch=arch.strip(), pretrained=None if weights.strip() else (tag.strip() or None),
                                 weights=Path(weights.strip()) if weights.strip() else None,
                                 model_config=Path(config.strip()) if config.strip() else None)
            except ValueError as err:
                st.error(plain(str(err)))
            else:
                jobs.start("embed", _embed_work(path, spec, name.strip() or None))
                st.rerun()


def passing_ids(cat: Catalog, flt: Filter) -> set[str] | None:
    """Ids passing the sidebar filter (None: it restricts nothing)."""
    return None if flt == Filter(run=flt.run) else set(view.filtered_ids(cat, flt))


def outliers_view(cat: Catalog, emb: EmbeddingSet, flt: Filter, key: str) -> None:
    """kNN outlier scores of the set (computed once per set state, shared by the pages): a table
    per class and the gallery of the most unusual samples passing ``flt``."""
    scores = outliers(cat, emb)
    st.caption(f"Outlier score from {plain(emb.name)}: mean cosine distance to a sample's "
               f"{nb.OUTLIER_K} nearest neighbours in the whole set (higher = more unusual); the "
               "table counts, per labeled class in this view, samples in the set's top 5%.")
    passing = passing_ids(cat, flt)
    cut = float(scores["outlier_score"].quantile(0.95)) if len(scores) else 0.0
    if passing is not None:
        scores = scores[scores["sample_id"].isin(passing)]
    per = scores.merge(labels(cat), on="sample_id").dropna(subset=["label"])
    table = per.groupby("label")["outlier_score"].agg(
        samples="count", mean_score="mean", in_top_5pct=lambda s: int((s >= cut).sum())).reset_index()
    st.dataframe(table.sort_values("mean_score", ascending=False), hide_index=True, key=f"{key}_table")
    top = scores.head(2000)
    if top.empty:
        st.info("No sample of this view has a vector in the set.")
        return
    notes = {sid: f"outlier {v:.3f}" for sid, v in zip(top["sample_id"], top["outlier_score"], strict=True)}
    gallery(cat, replace(flt, ids=tuple(top["sample_id"])), flt.run, key=key, url_page=f"{key}_page",
            listed="outlier score, most unusual first", notes=notes)
