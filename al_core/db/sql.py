"""Catalog-wide SQL: quoting, migrations, transactions, the data version and simple reads."""

from __future__ import annotations

from typing import Any

Query = tuple[str, list[Any]]


MAX_IDENT_LEN = 128


#: Columns of ``samples`` that are not user metadata. A manifest column with one of these
#: names maps onto the built-in column (or is rejected), never onto a metadata field.
BUILTIN_SAMPLE_COLUMNS = (
    "sample_id",
    "sample_key",
    "uri",
    "width",
    "height",
    "split",
    "content_hash",
    "ingested_at",
    "import_id",
    "label",
    "pred_label",
    "pred_confidence",
)


def quote_ident(name: str) -> str:
    """Quote ``name`` as a DuckDB identifier, safe for any text (quotes, semicolons, unicode).

    Raises ``ValueError`` for names that are empty, too long or hold control characters,
    since those cannot be shown to a user unambiguously.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("an identifier must be a non-empty string")
    if len(name) > MAX_IDENT_LEN:
        raise ValueError(f"identifier {name[:40]!r}... is longer than {MAX_IDENT_LEN} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError(f"identifier {name!r} contains control characters")
    return '"' + name.replace('"', '""') + '"'


def quote_literal_path(path: str) -> str:
    """Quote a file path as a SQL string literal (for the few DDL places that take no parameters)."""
    return "'" + path.replace("'", "''") + "'"


def attach(path: str, alias: str, read_only: bool) -> str:
    """ATTACH the catalog file (a literal: ATTACH takes no parameters) under ``alias``."""
    mode = " (READ_ONLY)" if read_only else ""
    return f"ATTACH {quote_literal_path(path)} AS {quote_ident(alias)}{mode}"


def use(alias: str) -> str:
    return f"USE {quote_ident(alias)}"


def detach(alias: str) -> str:
    return f"DETACH {quote_ident(alias)}"


def set_temp_directory(path: str) -> str:
    return f"SET temp_directory = {quote_literal_path(path)}"


#: Numbered migrations. Each one runs in a single transaction together with its row in
#: ``schema_version``. Never edit a released migration: append a new one.
#: Columns migration 5 adds to ``samples`` (frozen with it: a later change is a new migration).
#: Signals (DOUBLE) and flags (BOOLEAN) are registered as fields; the hashes and set ids are not.
_V5_QUALITY_FIELDS = (
    ("q_brightness", "DOUBLE"), ("q_brightness_p99", "DOUBLE"), ("q_brightness_p05", "DOUBLE"),
    ("q_contrast", "DOUBLE"), ("q_sharpness", "DOUBLE"), ("q_entropy", "DOUBLE"),
    ("q_chroma", "DOUBLE"), ("q_aspect_ratio", "DOUBLE"), ("q_pixels", "DOUBLE"),
    ("q_dark", "BOOLEAN"), ("q_light", "BOOLEAN"), ("q_blurry", "BOOLEAN"),
    ("q_low_information", "BOOLEAN"), ("q_odd_aspect_ratio", "BOOLEAN"), ("q_odd_size", "BOOLEAN"),
    ("q_grayscale", "BOOLEAN"), ("q_exact_duplicate", "BOOLEAN"), ("q_near_duplicate", "BOOLEAN"),
)
_V5_QUALITY_INTERNAL = (("q_phash", "BIGINT"), ("q_pixel_digest", "VARCHAR"),
                        ("q_exact_set", "INTEGER"), ("q_near_set", "INTEGER"))

def _v5_rename_clashing_fields(cur: Any) -> None:
    """Rename user fields named like a v5 built-in (``q_dark``...) to ``user_<name>``."""
    built_in = {n.lower() for n, _ in _V5_QUALITY_FIELDS + _V5_QUALITY_INTERNAL}
    columns = [r[0] for r in cur.execute(*describe("samples")).fetchall()]
    taken = {c.lower() for c in columns}
    renamed = {}
    for name in columns:
        if name.lower() in built_in:
            new = f"user_{name}"
            while new.lower() in taken:
                new = f"user_{new}"
            taken.add(new.lower())
            cur.execute(f"ALTER TABLE samples RENAME COLUMN {quote_ident(name)} TO {quote_ident(new)}")
            cur.execute("UPDATE metadata_fields SET name = ? WHERE name = ?", [new, name])
            renamed[name] = new
    if renamed:
        import json

        cur.execute(*set_info("v5_renamed_fields", json.dumps(renamed)))


def _v5_first_flags(cur: Any) -> None:
    """Flags from what a v4 catalog already knows (sizes, file hashes), default thresholds."""
    from al_core import quality  # the quality package needs this module: import it late

    quality.reflag(cur, quality.DEFAULTS)


def _v6_vector_generations(cur: Any) -> None:
    for (table,) in cur.execute("SELECT vectors_table FROM embedding_sets").fetchall():
        cur.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN generation BIGINT DEFAULT 0")


#: The third-highest element of ``probs`` (ties counted: [0.4, 0.4, 0.2] gives 0.2; NULL for a
#: vector shorter than three). A prediction's truth is among its two most probable classes (a tie
#: counting against) exactly when the truth's probability is above it.
THIRD_PROB = "list_sort(probs, 'DESC', 'NULLS LAST')[3]"


MIGRATIONS: list[tuple[int, str, list[Any]]] = [
    (
        1,
        "core catalog: samples, labels with history, model runs, predictions, embeddings",
        [
            """CREATE TABLE catalog_info (
                key VARCHAR PRIMARY KEY,
                value VARCHAR NOT NULL)""",
            "INSERT INTO catalog_info VALUES ('data_version', '0')",
            "CREATE SEQUENCE import_seq START 1",
            """CREATE TABLE imports (
                import_id INTEGER PRIMARY KEY,
                kind VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                summary JSON)""",
            "CREATE SEQUENCE sample_key_seq START 1",
            # sample_key: a dense integer surrogate for fast joins (predictions join on it);
            # unique by construction (only the sequence assigns it), sample_id is the public id.
            """CREATE TABLE samples (
                sample_id VARCHAR PRIMARY KEY,
                sample_key INTEGER NOT NULL DEFAULT nextval('sample_key_seq'),
                uri VARCHAR NOT NULL,
                width INTEGER,
                height INTEGER,
                split VARCHAR NOT NULL,
                content_hash VARCHAR,
                ingested_at TIMESTAMP NOT NULL,
                import_id INTEGER,
                label VARCHAR,
                pred_label VARCHAR,
                pred_confidence FLOAT)""",
            """CREATE TABLE metadata_fields (
                name VARCHAR PRIMARY KEY,
                dtype VARCHAR NOT NULL,
                position INTEGER NOT NULL,
                added_at TIMESTAMP NOT NULL)""",
            "CREATE SEQUENCE label_seq START 1",
            """CREATE TABLE labels (
                label_seq BIGINT NOT NULL DEFAULT nextval('label_seq'),
                sample_id VARCHAR NOT NULL,
                label VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                batch_id INTEGER,
                import_id INTEGER,
                created_at TIMESTAMP NOT NULL)""",
            "CREATE SEQUENCE run_seq START 1",
            """CREATE TABLE model_runs (
                run_id INTEGER PRIMARY KEY,
                name VARCHAR NOT NULL UNIQUE,
                classes VARCHAR[] NOT NULL,
                has_probs BOOLEAN NOT NULL,
                created_at TIMESTAMP NOT NULL,
                import_id INTEGER,
                notes VARCHAR)""",
            """CREATE TABLE predictions (
                run_id INTEGER NOT NULL,
                sample_key INTEGER NOT NULL,
                pred_label VARCHAR NOT NULL,
                confidence FLOAT NOT NULL,
                probs FLOAT[],
                PRIMARY KEY (run_id, sample_key))""",
            # for people querying the file directly: predictions with the public sample id
            """CREATE VIEW predictions_by_id AS SELECT s.sample_id, p.*
                FROM predictions p JOIN samples s USING (sample_key)""",
            "CREATE SEQUENCE embedding_set_seq START 1",
            """CREATE TABLE embedding_sets (
                set_id INTEGER PRIMARY KEY,
                name VARCHAR NOT NULL UNIQUE,
                model VARCHAR NOT NULL,
                dim INTEGER NOT NULL CHECK (dim > 0),
                vectors_table VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL)""",
        ],
    ),
    (
        2,
        "curation: tags, export batches and their items",
        [
            """CREATE TABLE tags (
                sample_id VARCHAR NOT NULL,
                tag VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (sample_id, tag))""",
            "CREATE SEQUENCE batch_seq START 1",
            """CREATE TABLE export_batches (
                batch_id INTEGER PRIMARY KEY,
                name VARCHAR NOT NULL,
                strategy VARCHAR NOT NULL,
                params JSON,
                format VARCHAR,
                path VARCHAR,
                budget INTEGER,
                created_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE export_items (
                batch_id INTEGER NOT NULL,
                sample_id VARCHAR NOT NULL,
                rank INTEGER NOT NULL,
                score DOUBLE,
                PRIMARY KEY (batch_id, sample_id))""",
        ],
    ),
    (
        3,
        "curation: batch status (an open 'draft' is the next-batch cart), undoable tag actions",
        [
            # batches written before v3 were exports; a draft is the one open next batch
            "ALTER TABLE export_batches ADD COLUMN status VARCHAR DEFAULT 'exported'",
            "UPDATE export_batches SET status = 'exported' WHERE status IS NULL",
            "ALTER TABLE export_items ADD COLUMN added_at TIMESTAMP",
            "CREATE SEQUENCE tag_action_seq START 1",
            """CREATE TABLE tag_actions (
                action_id INTEGER PRIMARY KEY,
                op VARCHAR NOT NULL CHECK (op IN ('add', 'remove')),
                tag VARCHAR NOT NULL,
                n INTEGER NOT NULL,
                created_at TIMESTAMP NOT NULL,
                undone_at TIMESTAMP)""",
            # the samples an action changed (for 'remove', with the tag's original time)
            """CREATE TABLE tag_action_items (
                action_id INTEGER NOT NULL,
                sample_id VARCHAR NOT NULL,
                tagged_at TIMESTAMP,
                PRIMARY KEY (action_id, sample_id))""",
        ],
    ),
    (
        4,
        "curation: who did a tag action (the app, the CLI), shown beside its undo",
        ["ALTER TABLE tag_actions ADD COLUMN IF NOT EXISTS origin VARCHAR"],
    ),
    (
        5,
        "image quality: q_ signals and flags on samples (registered as fields), hashes, duplicate sets",
        [
            # a user field of a built-in's name (possible before v5) is kept as user_<name>
            lambda cur: _v5_rename_clashing_fields(cur),
            *(f"ALTER TABLE samples ADD COLUMN {name} {dtype}"
              for name, dtype in _V5_QUALITY_FIELDS + _V5_QUALITY_INTERNAL),
            # signals and flags are fields like any other (filters, charts, slices read them);
            # the hashes and set ids are internal
            *(f"INSERT INTO metadata_fields VALUES ('{name}', '{dtype}', "
              "(SELECT coalesce(max(position), 0) + 1 FROM metadata_fields), current_timestamp::TIMESTAMP)"
              for name, dtype in _V5_QUALITY_FIELDS),
            # sizes and hashes known before this version: aspect ratio, pixel count, odd sizes
            # and exact duplicates need no image
            lambda cur: _v5_first_flags(cur),
        ],
    ),
    (
        6,
        "similarity: model identity per embedding set, write order of vectors, stored 2D maps",
        [
            # the full identity (architecture, tag or weights hash, preprocessing) as JSON; two
            # sets' vectors are comparable only when their identities are equal
            "ALTER TABLE embedding_sets ADD COLUMN identity VARCHAR",
            "UPDATE embedding_sets SET identity = json_object('kind', 'unknown', 'model', model)::VARCHAR",
            "ALTER TABLE embedding_sets ADD COLUMN has_text BOOLEAN DEFAULT false",
            # names this catalog file: an index left by another catalog at the same path is stale
            "INSERT INTO catalog_info VALUES ('catalog_uuid', uuid()::VARCHAR)",
            # a vector's write generation: an index knows what was added after it was built
            lambda cur: _v6_vector_generations(cur),
            """CREATE TABLE embedding_maps (
                set_id INTEGER NOT NULL,
                method VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                x FLOAT NOT NULL,
                y FLOAT NOT NULL,
                PRIMARY KEY (set_id, method, sample_id))""",
            """CREATE TABLE embedding_map_runs (
                set_id INTEGER NOT NULL,
                method VARCHAR NOT NULL,
                n INTEGER NOT NULL,
                fingerprint VARCHAR NOT NULL,
                params VARCHAR,
                seconds DOUBLE,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (set_id, method))""",
        ],
    ),
    (
        7,
        "diagnostics: each prediction's third-highest probability (top-2 accuracy without a pass over the vector)",
        [
            # a run's truth is among its two most probable classes exactly when its probability
            # is above the third highest; kept beside the vector by the one write path
            "ALTER TABLE predictions ADD COLUMN third_prob FLOAT",
            f"UPDATE predictions SET third_prob = {THIRD_PROB}",
        ],
    ),
    (
        8,
        "export: each batch item's part, strategy and a snapshot of what the export writes",
        [
            # what picked the item (a recipe's part and its strategy), and what the export file
            # says about it (sent_*), frozen at export so a re-download is byte-identical; named
            # apart from samples' own columns so a join of the two stays unambiguous
            "ALTER TABLE export_items ADD COLUMN part INTEGER",
            "ALTER TABLE export_items ADD COLUMN strategy VARCHAR",
            "ALTER TABLE export_items ADD COLUMN sent_uri VARCHAR",
            # the path below the folder it was imported from: a bucket prefix replaces that folder
            "ALTER TABLE export_items ADD COLUMN rel_path VARCHAR",
            "ALTER TABLE export_items ADD COLUMN sent_width INTEGER",
            "ALTER TABLE export_items ADD COLUMN sent_height INTEGER",
            "ALTER TABLE export_items ADD COLUMN sent_pred_label VARCHAR",
            "ALTER TABLE export_items ADD COLUMN sent_confidence FLOAT",
            "ALTER TABLE export_batches ADD COLUMN status_at TIMESTAMP",
        ],
    ),
    (
        9,
        "labels back: who labeled, and returned labels that disagree kept as conflicts until accepted",
        [
            "ALTER TABLE labels ADD COLUMN annotator VARCHAR",
            # 'current' (applied to samples.label when recorded), 'conflict' (a returned label that
            # disagrees with the current one, waiting for review), 'accepted' / 'rejected' after it
            "ALTER TABLE labels ADD COLUMN status VARCHAR DEFAULT 'current'",
            "UPDATE labels SET status = 'current' WHERE status IS NULL",
        ],
    ),
]


LATEST_SCHEMA_VERSION = MIGRATIONS[-1][0]


CREATE_SCHEMA_VERSION = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    app_version VARCHAR NOT NULL)"""


HAS_SCHEMA_VERSION = (
    "SELECT count(*) FROM information_schema.tables "
    "WHERE table_name = 'schema_version' AND table_schema = 'main' "
    "AND table_catalog = current_database()"
)


CURRENT_SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_version"


RECORD_MIGRATION = "INSERT INTO schema_version VALUES (?, ?, current_timestamp::TIMESTAMP, ?)"


BEGIN = "BEGIN TRANSACTION"


COMMIT = "COMMIT"


ROLLBACK = "ROLLBACK"


DATA_VERSION = "SELECT value::BIGINT FROM catalog_info WHERE key = 'data_version'"


BUMP_DATA_VERSION = (
    "UPDATE catalog_info SET value = (value::BIGINT + 1)::VARCHAR WHERE key = 'data_version'"
)


def describe(table: str) -> Query:
    return f"DESCRIBE {quote_ident(table)}", []


def count_rows(table: str) -> Query:
    return f"SELECT count(*) FROM {quote_ident(table)}", []


def metadata_fields() -> Query:
    return "SELECT name, dtype FROM metadata_fields ORDER BY position", []


def table_names() -> Query:
    return (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database() AND table_type = 'BASE TABLE' ORDER BY 1",
        [],
    )


def select_all_ordered(table: str) -> Query:
    """Every row of ``table`` in a stable order (for snapshots in tests and exports)."""
    return f"SELECT * FROM {quote_ident(table)} ORDER BY ALL", []


def label_history(sample_id: str) -> Query:
    return (
        "SELECT label_seq, label, source, batch_id, import_id, created_at FROM labels "
        "WHERE sample_id = ? ORDER BY label_seq",
        [sample_id],
    )


CATALOG_COUNTS = """SELECT
    (SELECT count(*) FROM samples) AS samples,
    (SELECT count(*) FROM samples WHERE label IS NOT NULL) AS labeled,
    (SELECT count(DISTINCT label) FROM samples WHERE label IS NOT NULL) AS classes,
    (SELECT count(DISTINCT split) FROM samples) AS splits,
    (SELECT count(*) FROM model_runs) AS model_runs,
    (SELECT count(*) FROM embedding_sets) AS embedding_sets"""


COUNT_SAMPLES = "SELECT count(*) FROM samples"


def get_info(key: str) -> Query:
    return "SELECT value FROM catalog_info WHERE key = ?", [key]


def set_info(key: str, value: str) -> Query:
    return ("INSERT INTO catalog_info VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value])
