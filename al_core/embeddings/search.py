"""Similarity queries: by example samples (positives and negatives), by text, by an image; within
any sidebar filter; answers as sample ids with cosine scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from al_core.db.catalog import Catalog, new_connection
from al_core.embeddings import EmbeddingSet, normalize, sql, vectors_for
from al_core.embeddings.index import VectorIndex, open_index
from al_core.embeddings.models import LoadedModel
from al_core.errors import AlExplorerError
from al_core.view import sql as view_sql
from al_core.view.filters import Filter

#: ``--unlike`` examples pull the query away from them with this weight (Rocchio's gamma with
#: alpha 1): ``q = mean(like) - UNLIKE_WEIGHT * mean(unlike)``, each example L2-normalized first
#: and ``q`` normalized after.
UNLIKE_WEIGHT = 0.5


class QueryError(AlExplorerError):
    """A similarity query that cannot be answered as asked (unknown ids, no text tower, ...)."""


def example_query(like: np.ndarray, unlike: np.ndarray | None = None) -> np.ndarray:
    """Query vector ``(d,)`` from positive examples ``(a, d)`` and optional negatives ``(b, d)``."""
    like = normalize(np.atleast_2d(like))
    if not len(like):
        raise QueryError("a query by example needs at least one positive example")
    q = like.mean(axis=0)
    if unlike is not None and len(unlike):
        q = q - UNLIKE_WEIGHT * normalize(np.atleast_2d(unlike)).mean(axis=0)
    return normalize(q[None, :])[0]


def vectors_of(cat: Catalog, emb: EmbeddingSet, sample_ids: Sequence[str], role: str) -> np.ndarray:
    """``(len(sample_ids), d)`` vectors of examples; names the ids the set lacks."""
    found = vectors_for(cat, emb, sample_ids)
    missing = [sid for sid in sample_ids if sid not in found]
    if missing:
        shown = ", ".join(repr(s) for s in missing[:10])
        raise QueryError(f"{role} sample(s) {shown} have no vector in set {emb.name!r} (unknown id, "
                         "or not embedded yet: run `al-explorer embed` again)")
    return np.stack([found[s] for s in sample_ids]) if sample_ids else np.zeros((0, emb.dim), np.float32)


def keys_of(cat: Catalog, sample_ids: Sequence[str]) -> np.ndarray:
    if not sample_ids:
        return np.zeros(0, np.int64)
    rows = cat.query_rows(sql.keys_of_ids(list(sample_ids)))
    return np.array([r[0] for r in rows], dtype=np.int64)


def allowed_keys(cat: Catalog, flt: Filter | None) -> np.ndarray | None:
    """Sample keys passing ``flt`` (``None``: the filter restricts nothing)."""
    if flt is None:
        return None
    fields = cat.metadata_fields()
    where, _ = view_sql.filter_where(flt, fields, view_sql.view_run(flt, flt.run))
    if where == "TRUE" and not flt.on_model:
        return None
    text, params = view_sql.filtered_view(flt, fields, flt.run, "s.sample_key")
    return np.array([r[0] for r in cat.query_rows(text, params)], dtype=np.int64)


def ids_for_keys(cat: Catalog, keys: np.ndarray) -> list[str]:
    """Sample ids of ``keys``, in the same order."""
    if not len(keys):
        return []
    frame = pd.DataFrame({"sample_key": np.asarray(keys, np.int64), "pos": np.arange(len(keys))})
    cur = new_connection()
    try:
        cur.register("keys_frame", frame)
        with cat.read(cur):
            rows = cur.execute(*sql.ids_of_keys("keys_frame")).fetchall()
    finally:
        cur.close()
    return [r[0] for r in rows]


def image_query(model: LoadedModel, image: Image.Image) -> np.ndarray:
    """The image tower's normalized vector ``(d,)`` of one decoded image."""
    x = model.preprocess(image.convert("RGB")).unsqueeze(0)
    return model.encode_images(x)[0]


def text_query(model: LoadedModel, text: str) -> np.ndarray:
    """The text tower's normalized vector ``(d,)`` of a prompt."""
    text = (text or "").strip()
    if not text:
        raise QueryError("the text query is empty")
    return model.encode_text([text])[0]


def check_model_for_set(model: LoadedModel, emb: EmbeddingSet) -> None:
    """Refuse a model whose vectors would not be comparable with the set's."""
    from al_core.embeddings import comparable_identity
    from al_core.embeddings.job import DECODE

    if comparable_identity(dict(model.identity, decode=DECODE)) != comparable_identity(emb.identity):
        raise QueryError(f"the loaded model ({model.spec.describe()}) is not the model of set "
                         f"{emb.name!r}; its vectors could not be compared")


def similar(cat: Catalog, emb: EmbeddingSet, *, like: Sequence[str] = (), unlike: Sequence[str] = (),
            text: str | None = None, image: Image.Image | None = None, model: LoadedModel | None = None,
            k: int = 10, flt: Filter | None = None, index: VectorIndex | None = None) -> pd.DataFrame:
    """The ``k`` samples nearest the query, best first: columns ``sample_id``, ``score`` (cosine).

    Exactly one kind of query: examples (``like``, optional ``unlike``), ``text`` or ``image``
    (both need ``model``, the set's own). The example samples themselves are never returned.
    """
    kinds = [bool(like) or bool(unlike), text is not None, image is not None]
    if sum(kinds) != 1:
        raise QueryError("give exactly one query: example samples, a text, or an image")
    if unlike and not like:
        raise QueryError("negative examples need at least one positive example")
    if k < 1:
        raise QueryError(f"k must be at least 1, not {k}")
    exclude = keys_of(cat, [*like, *unlike])
    if like:
        q = example_query(vectors_of(cat, emb, list(like), "example"),
                          vectors_of(cat, emb, list(unlike), "negative example"))
    else:
        if model is None:
            raise QueryError("a text or image query needs the set's model loaded")
        check_model_for_set(model, emb)
        if text is not None:
            if not emb.has_text or not model.has_text:
                raise QueryError(f"set {emb.name!r} has no text tower: query it by example or by image")
            q = text_query(model, text)
        else:
            q = image_query(model, image)
    index = index or open_index(cat, emb)
    keys, scores = index.search(q, k, allowed_keys(cat, flt), exclude)
    return pd.DataFrame({"sample_id": ids_for_keys(cat, keys), "score": np.round(scores.astype(float), 6)})


def labels(cat: Catalog) -> pd.DataFrame:
    """``sample_id, label`` of every sample (label NULL in the pool)."""
    return cat.query_df(sql.LABELS)
