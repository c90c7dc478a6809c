"""SQL of embedding sets: one table of fixed-size vectors per set."""

from __future__ import annotations

from al_core.db.sql import Query, quote_ident


def create_embedding_set(name: str, model: str, dim: int) -> Query:
    return (
        "INSERT INTO embedding_sets VALUES (nextval('embedding_set_seq'), ?, ?, ?, '', "
        "current_timestamp::TIMESTAMP) RETURNING set_id",
        [name, model, dim],
    )


def vectors_table_name(set_id: int) -> str:
    """Name of the per-set table holding vectors as fixed-size ``FLOAT[dim]`` arrays."""
    return f"embedding_vectors_{int(set_id)}"


def create_vectors_table(set_id: int, dim: int) -> list[Query]:
    table = vectors_table_name(set_id)
    return [
        (f"CREATE TABLE {quote_ident(table)} (sample_id VARCHAR PRIMARY KEY, "
         f"vector FLOAT[{int(dim)}] NOT NULL)", []),
        ("UPDATE embedding_sets SET vectors_table = ? WHERE set_id = ?", [table, set_id]),
    ]


def find_embedding_set(name: str) -> Query:
    return "SELECT set_id, model, dim, vectors_table FROM embedding_sets WHERE name = ?", [name]


def insert_vectors(table: str, frame_name: str, dim: int) -> Query:
    """Upsert vectors from a registered frame ``(sample_id, vector)``."""
    return (
        f"INSERT INTO {quote_ident(table)} SELECT sample_id, vector::FLOAT[{int(dim)}] "
        f"FROM {quote_ident(frame_name)} ON CONFLICT (sample_id) DO UPDATE SET vector = excluded.vector",
        [],
    )
