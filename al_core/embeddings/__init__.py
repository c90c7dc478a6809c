"""Embedding sets: named vectors per sample, stored as fixed-size FLOAT[dim] arrays with the
identity of the model that made them, so vectors of two models are never mixed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from al_core.db.catalog import Catalog, new_connection
from al_core.embeddings import sql
from al_core.errors import CatalogError, IngestError
from al_core.ingest import sql as ingest_sql

#: Vectors stored in one transaction by an import: a long import commits as it goes.
IMPORT_CHUNK = 50_000


@dataclass(frozen=True)
class EmbeddingSet:
    """One stored set: ``identity`` says which model made the vectors (JSON object)."""

    set_id: int
    name: str
    model: str
    dim: int
    table: str
    identity: dict[str, Any]
    has_text: bool


def _identity_json(identity: dict[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, default=str)


def comparable_identity(identity: dict[str, Any]) -> str:
    """The identity without where its files were found (moving a weights file keeps the model)."""
    return _identity_json({k: v for k, v in identity.items() if k != "paths"})


def list_sets(cat: Catalog) -> list[EmbeddingSet]:
    """Every embedding set, oldest first."""
    return [EmbeddingSet(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]),
                         json.loads(r[5]) if r[5] else {}, bool(r[6]))
            for r in cat.query_rows(sql.LIST_SETS)]


def find_set(cat: Catalog, name: str) -> EmbeddingSet | None:
    return next((s for s in list_sets(cat) if s.name == name), None)


def get_set(cat: Catalog, name: str) -> EmbeddingSet:
    """The set called ``name``, or a :class:`CatalogError` listing the sets there are."""
    found = find_set(cat, name)
    if found is None:
        names = [s.name for s in list_sets(cat)]
        hint = (f"sets in this catalog: {', '.join(repr(n) for n in names)}" if names else
                "this catalog has no embedding set yet: run `al-explorer embed` or `import-embeddings`")
        raise CatalogError(f"no embedding set named {name!r} in {cat.path}; {hint}")
    return found


def _check_vectors(source: str, sample_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(sample_ids) or vectors.shape[1] == 0:
        raise IngestError(source, [f"expected vectors of shape (n={len(sample_ids)}, dim), "
                                   f"got {vectors.shape}"])
    if not np.issubdtype(vectors.dtype, np.number):
        raise IngestError(source, [f"vectors must be numbers, got {vectors.dtype}"])
    vectors = vectors.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise IngestError(source, [f"vector for sample {sample_ids[i]!r} (row {i}) has NaN or infinite "
                                   "values" for i in bad[:20]] + ([f"... {bad.size} rows in all"]
                                                                 if bad.size > 20 else []))
    dupes = pd.Series(list(sample_ids)).duplicated()
    if dupes.any():
        first = [sample_ids[i] for i in np.flatnonzero(dupes.to_numpy())[:20]]
        raise IngestError(source, [f"sample id {sid!r} appears more than once" for sid in first])
    return vectors


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (shape kept); a zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)
    # row norms without a squared copy of the matrix (np.linalg.norm makes one: 5 s at 1M x 512)
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)).astype(np.float32)[:, None]
    return vectors / np.where(norms > 0, norms, 1.0)


def ensure_set(cat: Catalog, name: str, model: str, dim: int, identity: dict[str, Any],
               has_text: bool = False, cur: Any = None) -> EmbeddingSet:
    """The set ``name``, created if new; refuses a set of another model identity or dimension."""
    source = f"embedding set {name!r}"
    existing = find_set(cat, name)
    if existing is not None:
        if existing.dim != dim or comparable_identity(existing.identity) != comparable_identity(identity):
            raise IngestError(source, [
                f"already holds {existing.dim}-d vectors of {existing.model!r}; these are {dim}-d "
                f"vectors of {model!r}" + ("" if existing.dim != dim else " (same size, another "
                                           "model identity: weights, config or preprocessing differ)")
                + ". Vectors of two models are never mixed in one set: choose another --set name"])
        return existing
    with cat.transaction(f"create embedding set {name!r}", con=cur) as c:
        set_id = int(c.execute(*sql.create_embedding_set(name, model, dim, _identity_json(identity),
                                                         has_text)).fetchone()[0])
        for q in sql.create_vectors_table(set_id, dim):
            c.execute(*q)
    return get_set(cat, name)


def write_vectors(cat: Catalog, emb: EmbeddingSet, sample_ids: Sequence[str], vectors: np.ndarray,
                  what: str | None = None) -> None:
    """Upsert checked ``(n, dim)`` vectors of known samples into ``emb`` in one transaction."""
    frame = pd.DataFrame({"sample_id": pd.array(list(sample_ids), dtype="string"),
                          "vector": list(np.asarray(vectors, dtype=np.float32))})
    cur = new_connection()
    try:
        cur.register("vectors_frame", frame)
        with cat.transaction(what or f"store vectors of {emb.name!r}", con=cur):
            cur.execute(*sql.insert_vectors(emb.table, "vectors_frame", emb.dim))
    finally:
        cur.close()


def _unknown_ids(cat: Catalog, sample_ids: Sequence[str]) -> list[str]:
    frame = pd.DataFrame({"sample_id": pd.array(list(sample_ids), dtype="string")})
    cur = new_connection()
    try:
        cur.register("ids_frame", frame)
        with cat.read(cur):
            rows = cur.execute(*ingest_sql.unknown_sample_ids("ids_frame", "sample_id",
                                                              row_column=None)).fetchall()
    finally:
        cur.close()
    return [sid for _, sid in rows]


def store_embeddings(cat: Catalog, name: str, model: str, sample_ids: Sequence[str],
                     vectors: np.ndarray, identity: dict[str, Any] | None = None,
                     has_text: bool = False, chunk: int = IMPORT_CHUNK, source: str | None = None) -> int:
    """Store ``vectors`` (shape ``(n, dim)``) for ``sample_ids`` in set ``name``; returns set_id.

    Everything is checked before anything is written: shape, NaN/inf, repeated and unknown ids,
    and that an existing set has the same model identity and dimension. Re-storing replaces the
    vectors of the same ids, so re-running an import is idempotent.
    """
    source = source or f"embedding set {name!r}"
    vectors = _check_vectors(source, sample_ids, vectors)
    unknown = _unknown_ids(cat, sample_ids)
    if unknown:
        raise IngestError(source, [f"sample id {sid!r} is not in the catalog" for sid in unknown])
    identity = identity or {"kind": "unknown", "model": model}
    emb = ensure_set(cat, name, model, int(vectors.shape[1]), identity, has_text)
    for start in range(0, len(sample_ids), chunk):
        write_vectors(cat, emb, sample_ids[start:start + chunk], vectors[start:start + chunk])
    return emb.set_id


def embedding_count(cat: Catalog, name: str) -> int:
    """Number of vectors stored in set ``name`` (0 if the set does not exist)."""
    found = find_set(cat, name)
    return int(cat.scalar(sql.count_vectors(found.table))) if found else 0


def load_vectors(cat: Catalog, emb: EmbeddingSet, after_generation: int = -1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys (n,), ids (n,), vectors (n, dim) float32)`` of a set, by sample key; rows
    L2-normalized (sets stored before normalization was the rule are normalized here)."""
    with cat.read() as cur:
        text, params = sql.vectors_with_keys(emb.table, after_generation)
        table = cur.sql(text, params=params).to_arrow_table()
    n = table.num_rows
    keys = table.column("sample_key").to_numpy().astype(np.int64)
    ids = np.asarray(table.column("sample_id").to_pylist(), dtype=object)
    vec_col = table.column("vector").combine_chunks()
    flat = vec_col.flatten().to_numpy(zero_copy_only=False) if n else np.zeros(0, np.float32)
    return keys, ids, normalize(np.asarray(flat, dtype=np.float32).reshape(n, emb.dim))


def vectors_for(cat: Catalog, emb: EmbeddingSet, sample_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Vectors of the given ids that the set has (ids without one are left out)."""
    frame = pd.DataFrame({"sample_id": pd.array(list(sample_ids), dtype="string")})
    cur = new_connection()
    try:
        cur.register("ids_frame", frame)
        with cat.read(cur):
            rows = cur.execute(*sql.vectors_for_ids(emb.table, "ids_frame")).fetchall()
    finally:
        cur.close()
    return {sid: np.asarray(vec, dtype=np.float32) for sid, vec in rows}


def vectors_matrix(cat: Catalog, emb: EmbeddingSet, sample_ids: Sequence[str]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(has (n,) bool, vectors (has.sum(), dim) float32)``: the normalized vectors of the given
    ids that the set holds, in the ids' order (read through Arrow: fast for 100k+ ids)."""
    frame = pd.DataFrame({"sample_id": pd.array(list(sample_ids), dtype="string"),
                          "pos": np.arange(len(sample_ids), dtype=np.int64)})
    cur = new_connection()
    try:
        cur.register("ids_frame", frame)
        with cat.read(cur):
            text, params = sql.vectors_for_positions(emb.table, "ids_frame")
            table = cur.sql(text, params=params).to_arrow_table()
    finally:
        cur.close()
    has = np.zeros(len(sample_ids), dtype=bool)
    pos = table.column("pos").to_numpy()
    has[pos] = True
    n = table.num_rows
    flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False) if n else \
        np.zeros(0, np.float32)
    return has, normalize(np.asarray(flat, dtype=np.float32).reshape(n, emb.dim))


def read_embeddings_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Ids and vectors from a Parquet file (``sample_id`` + list column ``vector``) or an ``.npz``
    (arrays ``ids`` and ``vectors``); a clear :class:`IngestError` names what is wrong."""
    source = str(path)
    if not path.exists():
        raise IngestError(source, ["file not found"])
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("ids", "vectors") if k not in data.files]
                if missing:
                    raise IngestError(source, [f"missing array {k!r} (found {data.files})" for k in missing])
                ids, vectors = data["ids"], data["vectors"]
        except (ValueError, OSError) as err:  # object arrays (pickles) are refused
            raise IngestError(source, [f"not a readable .npz of plain arrays: {err}"]) from err
        if ids.ndim != 1:
            raise IngestError(source, [f"'ids' must be 1-d, got shape {ids.shape}"])
        return [str(i) for i in ids.tolist()], np.asarray(vectors)
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds
            raise IngestError(source, [f"not a readable Parquet file: {err}"]) from err
        missing = [c for c in ("sample_id", "vector") if c not in frame.columns]
        if missing:
            raise IngestError(source, [f"missing column {c!r} (found {list(frame.columns)})" for c in missing])
        lengths = frame["vector"].map(lambda v: -1 if v is None else len(v)).to_numpy()
        if len(frame) and (lengths != lengths[0]).any():
            bad = np.flatnonzero(lengths != lengths[0])[:20]
            raise IngestError(source, [f"sample {frame['sample_id'].iloc[i]!r} (row {i}): vector has "
                                       f"{max(int(lengths[i]), 0)} values, expected {int(lengths[0])} "
                                       "(as the first row)" for i in bad])
        vectors = np.stack(frame["vector"].to_numpy()) if len(frame) else np.zeros((0, 0))
        return frame["sample_id"].astype(str).tolist(), vectors
    raise IngestError(source, ["expected a .parquet file (sample_id, vector) or an .npz (ids, vectors)"])


def import_embeddings(cat: Catalog, path: Path, name: str, model: str | None = None) -> int:
    """Import precomputed vectors (normalized on the way in) into set ``name``; returns the count."""
    ids, vectors = read_embeddings_file(path)
    if not ids:
        raise IngestError(str(path), ["no vectors in the file"])
    vectors = _check_vectors(str(path), ids, vectors)
    label = model or "imported vectors"
    identity = {"kind": "imported", "model": label}
    store_embeddings(cat, name, label, ids, normalize(vectors), identity=identity, source=str(path))
    return len(ids)
