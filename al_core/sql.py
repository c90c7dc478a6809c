"""Every SQL statement al-explorer runs: migrations, write statements and query builders.

Values are always bound parameters. Identifiers (metadata field names, which users choose)
go through :func:`quote_ident`; the rest come from the fixed names in this module.
Builders return ``(sql, params)`` so callers never format SQL themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Query = tuple[str, list[Any]]

# --------------------------------------------------------------------------- identifiers

MAX_IDENT_LEN = 128

#: Columns of ``samples`` that are not user metadata. A manifest column with one of these
#: names maps onto the built-in column (or is rejected), never onto a metadata field.
BUILTIN_SAMPLE_COLUMNS = (
    "sample_id",
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

#: ``samples.pred_label`` / ``pred_confidence`` mirror the top-1 prediction of the latest model
#: run (a derived cache refreshed by every predictions import), so the Overview's pool queries
#: need no join; other runs are joined from ``predictions``.


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


# --------------------------------------------------------------------------- migrations

#: Numbered migrations. Each one runs in a single transaction together with its row in
#: ``schema_version``. Never edit a released migration: append a new one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
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
]

LATEST_SCHEMA_VERSION = MIGRATIONS[-1][0]

CREATE_SCHEMA_VERSION = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    app_version VARCHAR NOT NULL)"""

HAS_SCHEMA_VERSION = (
    "SELECT count(*) FROM information_schema.tables "
    "WHERE table_name = 'schema_version' AND table_schema = 'main'"
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

# --------------------------------------------------------------------------- staging (reading input files)

STAGE_ROW = "__row__"


def stage_file(table: str, path: str, fmt: str) -> Query:
    """Load a CSV / Parquet / JSONL file into temp table ``table`` with a 1-based row number."""
    readers = {
        "csv": "read_csv(?, header = true, auto_detect = true, sample_size = 100000)",
        "parquet": "read_parquet(?)",
        "jsonl": "read_json(?, format = 'newline_delimited', sample_size = 100000)",
        "json": "read_json(?, format = 'auto')",
    }
    if fmt not in readers:
        raise ValueError(f"unknown file format {fmt!r}")
    return (
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS "
        f"SELECT row_number() OVER () AS {STAGE_ROW}, * FROM {readers[fmt]}",
        [path],
    )


def stage_view(table: str, view: str) -> Query:
    """Copy a registered in-memory frame ``view`` into temp table ``table`` with a row number."""
    return (
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS "
        f"SELECT row_number() OVER () AS {STAGE_ROW}, * FROM {quote_ident(view)}",
        [],
    )


def drop_temp(table: str) -> Query:
    return f"DROP TABLE IF EXISTS temp.{quote_ident(table)}", []


def describe(table: str) -> Query:
    return f"DESCRIBE {quote_ident(table)}", []


def count_rows(table: str) -> Query:
    return f"SELECT count(*) FROM {quote_ident(table)}", []


def rows_where_blank(table: str, column: str, limit: int = 20) -> Query:
    """Row numbers whose ``column`` is NULL or blank text."""
    col = quote_ident(column)
    return (
        f"SELECT {STAGE_ROW} FROM {quote_ident(table)} "
        f"WHERE {col} IS NULL OR trim({col}::VARCHAR) = '' ORDER BY {STAGE_ROW} LIMIT ?",
        [limit],
    )


def duplicate_values(table: str, column: str, limit: int = 20) -> Query:
    """Values of ``column`` that occur more than once, with the rows they occur in."""
    col = quote_ident(column)
    return (
        f"SELECT {col}::VARCHAR AS value, list(({STAGE_ROW}) ORDER BY {STAGE_ROW}) AS rows "
        f"FROM {quote_ident(table)} WHERE {col} IS NOT NULL "
        f"GROUP BY {col} HAVING count(*) > 1 ORDER BY min({STAGE_ROW}) LIMIT ?",
        [limit],
    )


# --------------------------------------------------------------------------- manifest ingest

def looks_like_timestamps(table: str, column: str, probe_rows: int = 1000) -> Query:
    """True when the first ``probe_rows`` non-empty values of a text column start like ISO dates."""
    col = quote_ident(column)
    return (
        f"SELECT coalesce(bool_and(regexp_matches({col}, '^\\d{{4}}-\\d{{2}}-\\d{{2}}')), false) "
        f"FROM (SELECT {col} FROM {quote_ident(table)} WHERE {col} IS NOT NULL LIMIT ?)",
        [probe_rows],
    )


def all_cast_to_timestamp(table: str, column: str) -> Query:
    """True when every non-NULL value of ``column`` converts to a timestamp."""
    col = quote_ident(column)
    return (f"SELECT count({col}) = count(TRY_CAST({col} AS TIMESTAMP)) FROM {quote_ident(table)}",
            [])


def normalized_manifest(stage: str, cols: dict[str, str | None], base_dir: str,
                        default_split_labeled: str, default_split_unlabeled: str,
                        metadata: Sequence[tuple[str, str, str]]) -> Query:
    """Build the temp table ``norm`` from a staged manifest: resolved URI, id, label, split, metadata.

    ``cols`` maps the roles path/id/label/split/width/height/content_hash to staged column
    names (or ``None``). ``metadata`` is ``[(staged column, field name, duckdb type)]``.
    Relative paths are resolved against ``base_dir``; URIs with a scheme are kept as they are.
    """
    q = quote_ident
    path = q(cols["path"])  # type: ignore[arg-type]
    raw_path = f"trim({path}::VARCHAR)"
    uri = (
        f"CASE WHEN regexp_matches({raw_path}, '^[A-Za-z][A-Za-z0-9+.-]*://') THEN {raw_path} "
        f"WHEN starts_with({raw_path}, '/') THEN {raw_path} "
        f"ELSE rtrim(?, '/') || '/' || regexp_replace({raw_path}, '^(\\./)+', '') END"
    )
    params: list[Any] = [base_dir]
    if cols.get("id"):
        sample_id = f"trim({q(cols['id'])}::VARCHAR)"  # type: ignore[arg-type]
    else:
        sample_id = f"regexp_replace({raw_path}, '^(\\./)+', '')"
    label = f"nullif(trim({q(cols['label'])}::VARCHAR), '')" if cols.get("label") else "NULL"
    if cols.get("split"):
        split = (f"coalesce(nullif(trim({q(cols['split'])}::VARCHAR), ''), "
                 f"CASE WHEN {label} IS NULL THEN ? ELSE ? END)")
    else:
        split = f"CASE WHEN {label} IS NULL THEN ? ELSE ? END"
    params += [default_split_unlabeled, default_split_labeled]
    extra = []
    for role in ("width", "height"):
        extra.append(f"TRY_CAST({q(cols[role])} AS INTEGER) AS {role}" if cols.get(role)
                     else f"NULL::INTEGER AS {role}")
    extra.append(f"{q(cols['content_hash'])}::VARCHAR AS content_hash" if cols.get("content_hash")
                 else "NULL::VARCHAR AS content_hash")
    meta = [f"{q(src)}::{dtype} AS {q(name)}" for src, name, dtype in metadata]
    select = ", ".join([f"{STAGE_ROW}", f"{sample_id} AS sample_id", f"{uri} AS uri",
                        f"{label} AS label", f"{split} AS split", *extra, *meta])
    return f"CREATE OR REPLACE TEMP TABLE norm AS SELECT {select} FROM {q(stage)}", params


def uri_conflicts(limit: int = 20) -> Query:
    """Staged samples whose id is already in the catalog with another URI."""
    return (
        "SELECT n.__row__, n.sample_id, s.uri, n.uri FROM norm n JOIN samples s USING (sample_id) "
        "WHERE s.uri <> n.uri ORDER BY n.__row__ LIMIT ?",
        [limit],
    )


def stage_probe_results(frame_name: str) -> Query:
    """Temp table ``norm_probed``: staged samples with probe results, minus skipped rows."""
    return (
        "CREATE OR REPLACE TEMP TABLE norm_probed AS SELECT n.* REPLACE ("
        "coalesce(n.width, p.width) AS width, coalesce(n.height, p.height) AS height, "
        "coalesce(n.content_hash, p.content_hash) AS content_hash) "
        f"FROM norm n LEFT JOIN {quote_ident(frame_name)} p ON p.row = n.__row__ "
        "WHERE p.skip IS NOT TRUE",
        [],
    )


def stage_probe_results_none() -> Query:
    """``norm_probed`` without probing (``--no-probe``): sizes and hashes stay as given."""
    return "CREATE OR REPLACE TEMP VIEW norm_probed AS SELECT * FROM norm", []


def local_uris_to_probe(only_new: bool) -> Query:
    """Row, id and URI of staged samples with a local path (and, if ``only_new``, no hash yet)."""
    cond = "NOT regexp_matches(n.uri, '^[A-Za-z][A-Za-z0-9+.-]*://')"
    if only_new:
        cond += " AND (s.sample_id IS NULL OR s.content_hash IS NULL OR s.uri <> n.uri)"
    return (
        "SELECT n.__row__, n.sample_id, n.uri FROM norm n "
        f"LEFT JOIN samples s USING (sample_id) WHERE {cond} ORDER BY n.__row__",
        [],
    )


def metadata_fields() -> Query:
    return "SELECT name, dtype FROM metadata_fields ORDER BY position", []


def add_metadata_field(name: str, dtype: str) -> list[Query]:
    """Add a typed metadata column to ``samples`` and register it."""
    return [
        (f"ALTER TABLE samples ADD COLUMN {quote_ident(name)} {dtype}", []),
        ("INSERT INTO metadata_fields SELECT ?, ?, coalesce(max(position), 0) + 1, "
         "current_timestamp::TIMESTAMP FROM metadata_fields", [name, dtype]),
    ]


NEXT_IMPORT_ID = "SELECT nextval('import_seq')"


def record_import(import_id: int, kind: str, source: str, summary_json: str) -> Query:
    return (
        "INSERT INTO imports VALUES (?, ?, ?, current_timestamp::TIMESTAMP, ?)",
        [import_id, kind, source, summary_json],
    )


def insert_new_samples(import_id: int, metadata_names: Sequence[str]) -> Query:
    """Insert staged samples (from ``norm_probed``) whose id is not in the catalog yet."""
    meta = "".join(f", {quote_ident(n)}" for n in metadata_names)
    return (
        "INSERT INTO samples (sample_id, uri, width, height, split, content_hash, ingested_at, "
        f"import_id, label{meta}) "
        "SELECT n.sample_id, n.uri, n.width, n.height, n.split, n.content_hash, "
        f"current_timestamp::TIMESTAMP, ?, n.label{''.join(f', n.{quote_ident(m)}' for m in metadata_names)} "
        "FROM norm_probed n ANTI JOIN samples s USING (sample_id)",
        [import_id],
    )


def update_changed_samples(metadata_names: Sequence[str]) -> Query:
    """Update split, size, hash and metadata of existing samples where the manifest differs."""
    sets = ["split = n.split",
            "width = coalesce(n.width, samples.width)",
            "height = coalesce(n.height, samples.height)",
            "content_hash = coalesce(n.content_hash, samples.content_hash)"]
    diffs = ["samples.split IS DISTINCT FROM n.split",
             "(n.width IS NOT NULL AND samples.width IS DISTINCT FROM n.width)",
             "(n.height IS NOT NULL AND samples.height IS DISTINCT FROM n.height)",
             "(n.content_hash IS NOT NULL AND samples.content_hash IS DISTINCT FROM n.content_hash)"]
    for name in metadata_names:
        c = quote_ident(name)
        sets.append(f"{c} = n.{c}")
        diffs.append(f"samples.{c} IS DISTINCT FROM n.{c}")
    return (
        f"UPDATE samples SET {', '.join(sets)} FROM norm_probed n "
        f"WHERE samples.sample_id = n.sample_id AND ({' OR '.join(diffs)})",
        [],
    )


def insert_changed_labels(source: str, import_id: int, batch_id: int | None) -> Query:
    """Append a label version for each staged sample whose label differs from its current one.

    Runs before :func:`apply_current_labels`, so ``samples.label`` still holds the old label
    (NULL for samples inserted by this import, whose first label is recorded here too).
    """
    return (
        "INSERT INTO labels (sample_id, label, source, batch_id, import_id, created_at) "
        "SELECT n.sample_id, n.label, ?, ?, ?, current_timestamp::TIMESTAMP FROM norm_probed n "
        "LEFT JOIN label_before b USING (sample_id) "
        "WHERE n.label IS NOT NULL AND b.label IS DISTINCT FROM n.label ORDER BY n.__row__",
        [source, batch_id, import_id],
    )


SNAPSHOT_LABELS_BEFORE = (
    "CREATE OR REPLACE TEMP TABLE label_before AS "
    "SELECT s.sample_id, s.label FROM samples s SEMI JOIN norm_probed n USING (sample_id)"
)

APPLY_CURRENT_LABELS = (
    "UPDATE samples SET label = n.label FROM norm_probed n "
    "WHERE samples.sample_id = n.sample_id AND n.label IS NOT NULL "
    "AND samples.label IS DISTINCT FROM n.label"
)

COUNT_EXISTING_SAMPLES = "SELECT count(*) FROM norm_probed n SEMI JOIN samples s USING (sample_id)"


# --------------------------------------------------------------------------- predictions

def find_run(name: str) -> Query:
    return "SELECT run_id, classes, has_probs FROM model_runs WHERE name = ?", [name]


def create_run(name: str, classes: Sequence[str], has_probs: bool, import_id: int) -> Query:
    return (
        "INSERT INTO model_runs VALUES (nextval('run_seq'), ?, ?, ?, current_timestamp::TIMESTAMP, ?, NULL) "
        "RETURNING run_id",
        [name, list(classes), has_probs, import_id],
    )


def unknown_sample_ids(stage: str, id_column: str, limit: int = 20, *,
                       row_column: str | None = STAGE_ROW) -> Query:
    """``(row, id)`` of ids in ``stage`` that are not in ``samples`` (row is NULL without one)."""
    col = quote_ident(id_column)
    row = quote_ident(row_column) if row_column else "NULL"
    return (
        f"SELECT {row}, {col}::VARCHAR FROM {quote_ident(stage)} p "
        f"WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.sample_id = p.{col}::VARCHAR) "
        f"ORDER BY {row if row_column else col} LIMIT ?",
        [limit],
    )


def count_unknown_sample_ids(stage: str, id_column: str) -> Query:
    col = quote_ident(id_column)
    return (
        f"SELECT count(*) FROM {quote_ident(stage)} p "
        f"WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.sample_id = p.{col}::VARCHAR)",
        [],
    )


def stage_prob_predictions(stage: str, id_column: str, prob_expr: str) -> Query:
    """Temp table ``pred`` with row, id and the probability vector built by ``prob_expr``."""
    return (
        f"CREATE OR REPLACE TEMP TABLE pred AS SELECT {STAGE_ROW}, "
        f"{quote_ident(id_column)}::VARCHAR AS sample_id, ({prob_expr})::FLOAT[] AS probs "
        f"FROM {quote_ident(stage)}",
        [],
    )


def prob_columns_expr(columns: Sequence[str]) -> str:
    """A list expression over quoted probability columns, in class order."""
    return "[" + ", ".join(f"{quote_ident(c)}::DOUBLE" for c in columns) + "]"


def bad_probability_rows(n_classes: int, tolerance: float, limit: int = 20) -> Query:
    """Rows of ``pred`` whose vector has the wrong length, NULL/NaN/negative entries, or a bad sum."""
    return (
        "SELECT __row__, sample_id, CASE "
        "WHEN probs IS NULL THEN 'no probabilities' "
        "WHEN len(probs) <> ? THEN 'has ' || len(probs) || ' probabilities, expected ' || ? "
        "WHEN list_count(probs) <> len(probs) THEN 'has an empty (NULL) probability' "
        "WHEN isnan(list_sum(probs)) THEN 'has a NaN probability' "
        "WHEN isinf(list_sum(probs)) THEN 'has an infinite probability' "
        "WHEN list_min(probs) < 0 THEN 'has a negative probability' "
        "WHEN list_min(probs) > 1 OR list_max(probs) > 1 THEN 'has a probability above 1' "
        "ELSE 'probabilities sum to ' || round(list_sum(probs), 6) || ', not 1' END AS problem "
        "FROM pred WHERE probs IS NULL OR len(probs) <> ? OR list_count(probs) <> len(probs) "
        "OR NOT isfinite(list_sum(probs)) "
        "OR list_min(probs) < 0 OR list_max(probs) > 1 OR abs(list_sum(probs) - 1) > ? "
        "ORDER BY __row__ LIMIT ?",
        [n_classes, n_classes, n_classes, tolerance, limit],
    )


def finalize_prob_predictions(classes: Sequence[str]) -> Query:
    """Temp table ``pred_final``: id, top-1 label, its probability and the vector."""
    return (
        "CREATE OR REPLACE TEMP TABLE pred_final AS SELECT s.sample_key, "
        "list_extract(?::VARCHAR[], list_position(probs, list_max(probs))) AS pred_label, "
        "list_max(probs)::FLOAT AS confidence, probs::FLOAT[] AS probs "
        "FROM pred JOIN samples s USING (sample_id)",
        [list(classes)],
    )


def stage_top1_predictions(stage: str, id_column: str, label_column: str,
                           confidence_column: str | None) -> Query:
    conf = f"{quote_ident(confidence_column)}::DOUBLE" if confidence_column else "NULL::DOUBLE"
    return (
        f"CREATE OR REPLACE TEMP TABLE pred AS SELECT {STAGE_ROW}, "
        f"{quote_ident(id_column)}::VARCHAR AS sample_id, "
        f"nullif(trim({quote_ident(label_column)}::VARCHAR), '') AS pred_label, {conf} AS confidence "
        f"FROM {quote_ident(stage)}",
        [],
    )


def bad_top1_rows(classes: Sequence[str], has_confidence: bool, limit: int = 20) -> Query:
    conf_problem = (
        "WHEN confidence IS NULL THEN 'has no confidence' "
        "WHEN isnan(confidence) THEN 'has a NaN confidence' "
        "WHEN confidence < 0 OR confidence > 1 THEN 'has confidence ' || confidence || ' outside [0, 1]' "
    ) if has_confidence else ""
    conf_cond = (
        " OR confidence IS NULL OR isnan(confidence) OR confidence < 0 OR confidence > 1"
        if has_confidence else ""
    )
    return (
        "SELECT __row__, sample_id, CASE "
        "WHEN pred_label IS NULL THEN 'has no predicted label' "
        "WHEN NOT list_contains(?::VARCHAR[], pred_label) THEN 'predicts unknown class ' || pred_label "
        f"{conf_problem}ELSE 'is malformed' END FROM pred "
        f"WHERE pred_label IS NULL OR NOT list_contains(?::VARCHAR[], pred_label){conf_cond} "
        "ORDER BY __row__ LIMIT ?",
        [list(classes), list(classes), limit],
    )


FINALIZE_TOP1 = (
    "CREATE OR REPLACE TEMP TABLE pred_final AS SELECT s.sample_key, pred.pred_label, "
    "coalesce(pred.confidence, 1.0)::FLOAT AS confidence, NULL::FLOAT[] AS probs "
    "FROM pred JOIN samples s USING (sample_id)"
)

DISTINCT_PRED_LABELS = "SELECT DISTINCT pred_label FROM pred WHERE pred_label IS NOT NULL ORDER BY 1"


def count_changed_predictions(run_id: int) -> Query:
    return (
        "SELECT count(*) FROM pred_final f LEFT JOIN predictions p "
        "ON p.run_id = ? AND p.sample_key = f.sample_key "
        "WHERE p.sample_key IS NULL OR p.pred_label <> f.pred_label "
        "OR p.confidence IS DISTINCT FROM f.confidence OR p.probs IS DISTINCT FROM f.probs",
        [run_id],
    )


def upsert_predictions(run_id: int) -> Query:
    return (
        "INSERT INTO predictions SELECT ?, sample_key, pred_label, confidence, probs FROM pred_final "
        "ON CONFLICT (run_id, sample_key) DO UPDATE SET pred_label = excluded.pred_label, "
        "confidence = excluded.confidence, probs = excluded.probs",
        [run_id],
    )


# --------------------------------------------------------------------------- embeddings

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


# --------------------------------------------------------------------------- simple reads

def table_names() -> Query:
    return (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_type = 'BASE TABLE' ORDER BY 1",
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

LIST_RUNS = "SELECT run_id, name, classes, has_probs, created_at FROM model_runs ORDER BY run_id"
LIST_EMBEDDING_SETS = "SELECT set_id, name, model, dim, created_at FROM embedding_sets ORDER BY set_id"

COUNT_SAMPLES = "SELECT count(*) FROM samples"


def get_info(key: str) -> Query:
    return "SELECT value FROM catalog_info WHERE key = ?", [key]


def set_info(key: str, value: str) -> Query:
    return ("INSERT INTO catalog_info VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value])


def count_predictions(run_name: str) -> Query:
    return ("SELECT count(*) FROM predictions p JOIN model_runs r USING (run_id) WHERE r.name = ?",
            [run_name])


def predicted_labels(run_name: str) -> Query:
    return ("SELECT s.sample_id, p.pred_label FROM predictions p JOIN model_runs r USING (run_id) "
            "JOIN samples s USING (sample_key) "
            "WHERE r.name = ?", [run_name])



# --------------------------------------------------------------------------- filtered view and Overview

NULL_VALUE = "(missing)"


def _in_list(expr: str, values: Sequence[Any], params: list[Any]) -> str:
    """``expr IN (?, ...)``; the value ``(missing)`` also matches NULL."""
    wanted = [v for v in values if v != NULL_VALUE]
    parts = []
    if wanted:
        parts.append(f"{expr} IN ({', '.join('?' for _ in wanted)})")
        params.extend(wanted)
    if len(wanted) < len(values):
        parts.append(f"{expr} IS NULL")
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


@dataclass(frozen=True)
class RunRef:
    """A model run as the view sees it: mirrored in ``samples`` (``cached``) or joined as ``p``."""

    run_id: int
    name: str
    cached: bool

    @property
    def label(self) -> str:
        return "s.pred_label" if self.cached else "p.pred_label"

    @property
    def confidence(self) -> str:
        return "s.pred_confidence" if self.cached else "p.confidence"


def column_expr(column: str, fields: dict[str, str], run: RunRef | None = None) -> str:
    """SQL for a filterable column of the view: a whitelisted name or a known metadata field."""
    pred = run.label if run else "p.pred_label"
    builtin = {"label": "s.label", "split": "s.split", "pred_label": pred,
               "class_or_pred": f"coalesce(s.label, {pred})", "sample_id": "s.sample_id"}
    if column in builtin:
        return builtin[column]
    if column in fields:
        return f"s.{quote_ident(column)}"
    raise ValueError(f"unknown column {column!r}")


def needs_predictions(flt: Any) -> bool:
    return any(c.column in ("pred_label", "class_or_pred") for c in flt.conditions)


def filter_where(flt: Any, fields: dict[str, str], run: RunRef | None = None) -> Query:
    """The WHERE clause (without the keyword) of a :class:`al_core.filters.Filter`."""
    from datetime import timedelta

    clauses: list[str] = []
    params: list[Any] = []
    if flt.splits:
        clauses.append(_in_list("s.split", flt.splits, params))
    if flt.classes:
        clauses.append(_in_list("s.label", flt.classes, params))
    if flt.labeled == "labeled":
        clauses.append("s.label IS NOT NULL")
    elif flt.labeled == "unlabeled":
        clauses.append("s.label IS NULL")
    if flt.tags:
        sub: list[Any] = []
        inner = _in_list("t.tag", flt.tags, sub)
        clauses.append(f"EXISTS (SELECT 1 FROM tags t WHERE t.sample_id = s.sample_id AND {inner})")
        params.extend(sub)
    for name, values in flt.categorical:
        clauses.append(_in_list(f"{column_expr(name, fields)}::VARCHAR", values, params))
    for name, (lo, hi) in flt.numeric:
        clauses.append(f"{column_expr(name, fields)} BETWEEN ? AND ?")
        params += [lo, hi]
    for name, (first, last) in flt.dates:
        col = column_expr(name, fields)
        clauses.append(f"{col} >= ?::TIMESTAMP AND {col} < ?::TIMESTAMP")
        params += [first, last + timedelta(days=1)]
    for cond in flt.conditions:
        col = column_expr(cond.column, fields, run)
        if cond.is_null:
            clauses.append(f"{col} IS NULL")
        elif cond.low is not None or cond.high is not None:
            if cond.low is not None:
                clauses.append(f"{col} >= ?")
                params.append(cond.low)
            if cond.high is not None:
                clauses.append(f"{col} < ?")
                params.append(cond.high)
        else:
            clauses.append(f"{col}::VARCHAR = ?")
            params.append(str(cond.value))
    return (" AND ".join(clauses) or "TRUE"), params


def filtered_view(flt: Any, fields: dict[str, str], run: RunRef | None,
                  columns: str = "s.*") -> Query:
    """``SELECT columns FROM samples s [LEFT JOIN predictions p] WHERE <filter>``.

    A run's predictions are joined (as ``p``) only for a run that ``samples`` does not mirror;
    write prediction columns as ``run.label`` / ``run.confidence``.
    """
    where, params = filter_where(flt, fields, run)
    if run is None or run.cached:
        if run is None and needs_predictions(flt):
            where = "FALSE"
        return f"SELECT {columns} FROM samples s WHERE {where}", params
    return (f"SELECT {columns} FROM samples s LEFT JOIN predictions p "
            f"ON p.sample_key = s.sample_key AND p.run_id = ? WHERE {where}", [run.run_id, *params])


def _over(view: Query, select: str, extra: list[Any] | None = None) -> Query:
    text, params = view
    return f"WITH v AS ({text}) {select}", [*params, *(extra or [])]


def overview_counts(flt: Any, fields: dict[str, str]) -> Query:
    view = filtered_view(flt, fields, None, "s.label, s.split")
    return _over(view, "SELECT count(*) AS samples, count(label) AS labeled, "
                       "count(*) - count(label) AS unlabeled, count(DISTINCT label) AS classes, "
                       "count(DISTINCT split) AS splits, (SELECT count(*) FROM model_runs) AS model_runs, "
                       "(SELECT count(*) FROM embedding_sets) AS embedding_sets FROM v")


def class_counts(flt: Any, fields: dict[str, str]) -> Query:
    view = filtered_view(flt, fields, None, "s.label")
    return _over(view, "SELECT label, count(*) AS n FROM v WHERE label IS NOT NULL "
                       "GROUP BY label ORDER BY n DESC, label")


def predicted_pool_counts(flt: Any, fields: dict[str, str], run: RunRef) -> Query:
    view = filtered_view(flt, fields, run, f"s.label, {run.label} AS pred_label")
    return _over(view, "SELECT pred_label, count(*) AS n FROM v WHERE label IS NULL "
                       "AND pred_label IS NOT NULL GROUP BY pred_label ORDER BY n DESC, pred_label")


def split_class_counts(flt: Any, fields: dict[str, str]) -> Query:
    view = filtered_view(flt, fields, None, "s.split, s.label")
    return _over(view, "SELECT split, label, count(*) AS n FROM v WHERE label IS NOT NULL "
                       "GROUP BY split, label ORDER BY split, label")


def categorical_counts(flt: Any, fields: dict[str, str], name: str, limit: int = 40) -> Query:
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.{col} AS value")
    return _over(view, "SELECT coalesce(value::VARCHAR, ?) AS value, count(*) AS n FROM v "
                       "GROUP BY 1 ORDER BY n DESC, value LIMIT ?", [NULL_VALUE, limit])


def field_range(name: str) -> Query:
    """Minimum and maximum of a field over the whole catalog (stable bins across filters)."""
    col = quote_ident(name)
    return f"SELECT min({col}), max({col}) FROM samples", []


def numeric_histogram(flt: Any, fields: dict[str, str], name: str, low: float, width: float,
                      bins: int) -> Query:
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.{col} AS x")
    return _over(view, "SELECT least(greatest(floor((x - ?) / ?), 0), ?)::INTEGER AS bin, count(*) AS n "
                       "FROM v WHERE x IS NOT NULL GROUP BY bin ORDER BY bin",
                 [low, width, bins - 1])


def timeline(flt: Any, fields: dict[str, str], name: str, unit: str) -> Query:
    if unit not in ("hour", "day", "week", "month", "year"):
        raise ValueError(f"bad time unit {unit!r}")
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.{col} AS t")
    return _over(view, f"SELECT date_trunc('{unit}', t) AS period, count(*) AS n FROM v "
                       "WHERE t IS NOT NULL GROUP BY period ORDER BY period")


def class_field_counts(flt: Any, fields: dict[str, str], name: str) -> Query:
    col = quote_ident(name)
    view = filtered_view(flt, fields, None, f"s.label, s.{col} AS value")
    return _over(view, "SELECT label, coalesce(value::VARCHAR, ?) AS value, count(*) AS n FROM v "
                       "WHERE label IS NOT NULL GROUP BY ALL ORDER BY label, value", [NULL_VALUE])


def slice_cells(flt: Any, fields: dict[str, str], names: Sequence[str], run: RunRef | None) -> Query:
    """Labeled and pool counts per finest cell of the given fields and the class (the label where
    labeled, the prediction of ``run`` in the pool); coarser slices are sums of these cells.

    Columns: ``g0..gk`` (fields in order, then the class), ``labeled_n``, ``pool_n``.
    """
    cols = [f"s.{quote_ident(n)}::VARCHAR AS g{i}" for i, n in enumerate(names)]
    klass = f"coalesce(s.label, {run.label})" if run is not None else "s.label"
    cols.append(f"{klass} AS g{len(names)}")
    view = filtered_view(flt, fields, run, ", ".join([*cols, "s.label IS NOT NULL AS is_labeled"]))
    keys = ", ".join(f"g{i}" for i in range(len(names) + 1))
    return _over(view, f"SELECT {keys}, count(*) FILTER (WHERE is_labeled) AS labeled_n, "
                       f"count(*) FILTER (WHERE NOT is_labeled) AS pool_n FROM v GROUP BY {keys}")


def distinct_counts(names: Sequence[str]) -> Query:
    """Number of distinct values of each field, in one scan."""
    cols = ", ".join(f"count(DISTINCT {quote_ident(n)})" for n in names)
    return f"SELECT {cols} FROM samples", []


def gallery_page(flt: Any, fields: dict[str, str], run: RunRef | None, show: Sequence[str],
                 limit: int, offset: int) -> Query:
    """One page of samples (id order) with label, prediction and a few metadata fields."""
    meta = "".join(f", s.{quote_ident(n)}" for n in show)
    pred = (f", {run.label} AS pred_label, {run.confidence} AS confidence" if run is not None
            else ", NULL AS pred_label, NULL AS confidence")
    view = filtered_view(flt, fields, run,
                         f"s.sample_id, s.uri, s.content_hash, s.split, s.label{pred}{meta}")
    text, params = view
    return f"{text} ORDER BY s.sample_id LIMIT ? OFFSET ?", [*params, limit, offset]


def count_filtered(flt: Any, fields: dict[str, str], run: RunRef | None) -> Query:
    text, params = filtered_view(flt, fields, run, "count(*)")
    return text, params


def filtered_ids(flt: Any, fields: dict[str, str], run: RunRef | None) -> Query:
    text, params = filtered_view(flt, fields, run, "s.sample_id")
    return f"{text} ORDER BY s.sample_id", params


def distinct_values(name: str, limit: int = 200) -> Query:
    col = column_expr(name, {name: ""})
    return (f"SELECT DISTINCT {col}::VARCHAR AS v FROM samples s WHERE {col} IS NOT NULL "
            "ORDER BY v LIMIT ?", [limit])


LIST_TAGS = "SELECT DISTINCT tag FROM tags ORDER BY tag"
LATEST_RUN = "SELECT run_id, name FROM model_runs ORDER BY run_id DESC LIMIT 1"
MAX_RUN_ID = "SELECT max(run_id) FROM model_runs"


def refresh_mirrored_predictions(run_id: int) -> list[Query]:
    """Make ``samples.pred_label`` / ``pred_confidence`` equal run ``run_id``'s top-1 (changed rows only)."""
    return [
        ("UPDATE samples SET pred_label = p.pred_label, pred_confidence = p.confidence "
         "FROM predictions p WHERE p.run_id = ? AND p.sample_key = samples.sample_key "
         "AND (samples.pred_label IS DISTINCT FROM p.pred_label "
         "OR samples.pred_confidence IS DISTINCT FROM p.confidence)", [run_id]),
        ("UPDATE samples SET pred_label = NULL, pred_confidence = NULL WHERE pred_label IS NOT NULL "
         "AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = ? "
         "AND p.sample_key = samples.sample_key)", [run_id]),
    ]
