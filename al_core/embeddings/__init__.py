"""Embedding sets: named vectors per sample, stored as fixed-size FLOAT[dim] arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog, new_connection
from al_core.embeddings import sql
from al_core.errors import IngestError
from al_core.ingest import sql as ingest_sql


def store_embeddings(cat: Catalog, name: str, model: str, sample_ids: Sequence[str],
                     vectors: np.ndarray) -> int:
    """Store ``vectors`` (shape ``(n, dim)``) for ``sample_ids`` in set ``name``; returns set_id.

    Re-storing the same set replaces its vectors; the model identity and dimension of an
    existing set must match. Unknown ids, NaN/inf values and wrong shapes are refused.
    """
    source = f"embedding set {name!r}"
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(sample_ids) or vectors.shape[1] == 0:
        raise IngestError(source, [f"expected vectors of shape (n={len(sample_ids)}, dim), "
                                   f"got {vectors.shape}"])
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise IngestError(source, [f"vector for sample {sample_ids[i]!r} has NaN or infinite "
                                   "values" for i in bad[:20]])
    dim = int(vectors.shape[1])
    frame = pd.DataFrame({"sample_id": pd.array(list(sample_ids), dtype="string"),
                          "vector": list(vectors)})
    cur = new_connection()
    try:
        cur.register("vectors_frame", frame)
        with cat.read(cur):
            unknown = cur.execute(*ingest_sql.unknown_sample_ids(
                "vectors_frame", "sample_id", row_column=None)).fetchall()
        if unknown:
            raise IngestError(source, [f"sample id {sid!r} is not in the catalog" for _, sid in unknown])
        with cat.transaction(f"store embedding set {name!r}", con=cur):
            existing = cur.execute(*sql.find_embedding_set(name)).fetchone()
            if existing and (existing[1] != model or existing[2] != dim):
                raise IngestError(source, [f"already exists for model {existing[1]!r} with dim "
                                           f"{existing[2]}; got model {model!r} with dim {dim}"])
            if existing:
                set_id, table = existing[0], existing[3]
            else:
                set_id = int(cur.execute(*sql.create_embedding_set(name, model, dim)).fetchone()[0])
                for q in sql.create_vectors_table(set_id, dim):
                    cur.execute(*q)
                table = sql.vectors_table_name(set_id)
            cur.execute(*sql.insert_vectors(table, "vectors_frame", dim))
    finally:
        cur.close()
    return set_id


def embedding_count(cat: Catalog, name: str) -> int:
    """Number of vectors stored in set ``name`` (0 if the set does not exist)."""
    found = cat.query_rows(sql.find_embedding_set(name))
    return int(cat.scalar(db_sql.count_rows(found[0][3]))) if found else 0
