"""SQL of embedding sets: one table of fixed-size vectors per set, and their stored 2D maps."""

from __future__ import annotations

from al_core.db.sql import Query, quote_ident

LIST_SETS = """SELECT e.set_id, e.name, e.model, e.dim, e.vectors_table, e.identity, e.has_text,
    e.created_at FROM embedding_sets e ORDER BY e.set_id"""


def create_embedding_set(name: str, model: str, dim: int, identity: str, has_text: bool) -> Query:
    return (
        "INSERT INTO embedding_sets (set_id, name, model, dim, vectors_table, created_at, identity, "
        "has_text) VALUES (nextval('embedding_set_seq'), ?, ?, ?, '', current_timestamp::TIMESTAMP, "
        "?, ?) RETURNING set_id",
        [name, model, dim, identity, has_text],
    )


def vectors_table_name(set_id: int) -> str:
    """Name of the per-set table holding vectors as fixed-size ``FLOAT[dim]`` arrays."""
    return f"embedding_vectors_{int(set_id)}"


def create_vectors_table(set_id: int, dim: int) -> list[Query]:
    table = vectors_table_name(set_id)
    return [
        (f"CREATE TABLE {quote_ident(table)} (sample_id VARCHAR PRIMARY KEY, "
         f"vector FLOAT[{int(dim)}] NOT NULL, generation BIGINT DEFAULT 0)", []),
        ("UPDATE embedding_sets SET vectors_table = ? WHERE set_id = ?", [table, set_id]),
    ]


def find_embedding_set(name: str) -> Query:
    return ("SELECT set_id, model, dim, vectors_table, identity, has_text FROM embedding_sets "
            "WHERE name = ?", [name])


def insert_vectors(table: str, frame_name: str, dim: int) -> Query:
    """Upsert vectors from a registered frame ``(sample_id, vector)`` as one new generation."""
    t = quote_ident(table)
    return (
        f"INSERT INTO {t} SELECT sample_id, vector::FLOAT[{int(dim)}], "
        f"(SELECT coalesce(max(generation), 0) + 1 FROM {t}) FROM {quote_ident(frame_name)} "
        "ON CONFLICT (sample_id) DO UPDATE SET vector = excluded.vector, generation = excluded.generation",
        [],
    )


def vectors_with_keys(table: str, after_generation: int = -1) -> Query:
    """``(sample_key, sample_id, vector)`` of a set's vectors newer than a generation, by key."""
    return (f"SELECT s.sample_key, v.sample_id, v.vector FROM {quote_ident(table)} v "
            "JOIN samples s USING (sample_id) WHERE v.generation > ? ORDER BY s.sample_key",
            [int(after_generation)])


def vectors_for_ids(table: str, frame_name: str) -> Query:
    """Vectors of the ids in a registered frame ``(sample_id)``; ids without one are left out."""
    return (f"SELECT v.sample_id, v.vector FROM {quote_ident(table)} v "
            f"JOIN {quote_ident(frame_name)} f USING (sample_id)", [])


def vectors_for_positions(table: str, frame_name: str) -> Query:
    """``pos, vector`` for the ids of a registered frame ``(sample_id, pos)`` that have one, by
    ``pos``."""
    return (f"SELECT f.pos, v.vector FROM {quote_ident(frame_name)} f JOIN {quote_ident(table)} v "
            "USING (sample_id) ORDER BY f.pos", [])


def state(table: str) -> Query:
    """What an index records to tell whether it is stale: count, an order-free fingerprint of
    the (sample id, sample key) pairs (xor of their hashes), and the newest write generation."""
    return (f"SELECT count(*), coalesce(bit_xor(hash(v.sample_id, s.sample_key)), 0)::UBIGINT, "
            f"coalesce(max(v.generation), 0) FROM {quote_ident(table)} v JOIN samples s USING (sample_id)", [])


def state_up_to(table: str, generation: int) -> Query:
    return (f"SELECT count(*), coalesce(bit_xor(hash(v.sample_id, s.sample_key)), 0)::UBIGINT "
            f"FROM {quote_ident(table)} v JOIN samples s USING (sample_id) WHERE v.generation <= ?",
            [int(generation)])


CATALOG_UUID = "SELECT value FROM catalog_info WHERE key = 'catalog_uuid'"


def missing_ids(table: str) -> Query:
    """Local samples without a vector in the set, by key: what an embedding job still has to do."""
    return (f"SELECT s.sample_id, s.uri FROM samples s ANTI JOIN {quote_ident(table)} v "
            "USING (sample_id) ORDER BY s.sample_key", [])


def count_missing(table: str) -> Query:
    return (f"SELECT count(*) FROM samples s ANTI JOIN {quote_ident(table)} v USING (sample_id)", [])


def count_vectors(table: str) -> Query:
    return f"SELECT count(*) FROM {quote_ident(table)}", []


def delete_map(set_id: int, method: str) -> list[Query]:
    return [("DELETE FROM embedding_maps WHERE set_id = ? AND method = ?", [set_id, method]),
            ("DELETE FROM embedding_map_runs WHERE set_id = ? AND method = ?", [set_id, method])]


def insert_map(set_id: int, method: str, frame_name: str) -> Query:
    return (f"INSERT INTO embedding_maps SELECT ?, ?, sample_id, x, y FROM {quote_ident(frame_name)}",
            [set_id, method])


def record_map(set_id: int, method: str, n: int, fingerprint: str, params: str, seconds: float) -> Query:
    return ("INSERT INTO embedding_map_runs VALUES (?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
            [set_id, method, n, fingerprint, params, seconds])


def map_run(set_id: int, method: str) -> Query:
    return ("SELECT n, fingerprint, params, seconds, created_at FROM embedding_map_runs "
            "WHERE set_id = ? AND method = ?", [set_id, method])


def map_points(set_id: int, method: str) -> Query:
    return ("SELECT sample_id, x, y FROM embedding_maps WHERE set_id = ? AND method = ? "
            "ORDER BY sample_id", [set_id, method])


def keys_of_ids(sample_ids: list[str]) -> Query:
    return "SELECT sample_key FROM samples WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))", [sample_ids]


def ids_of_keys(frame_name: str) -> Query:
    """Sample ids of a registered frame ``(sample_key, pos)``, in ``pos`` order."""
    return (f"SELECT s.sample_id FROM {quote_ident(frame_name)} k JOIN samples s USING (sample_key) "
            "ORDER BY k.pos", [])


LABELS = "SELECT sample_id, label FROM samples"
