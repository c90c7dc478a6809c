"""SQL of the importers: staging input files, validating them, and writing samples, labels and predictions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from al_core.db.sql import THIRD_PROB, Query, quote_ident
from al_core.quality import sql as quality_sql

STAGE_ROW = "__row__"


def stage_file(table: str, path: str, fmt: str, types: dict[str, str] | None = None,
               full_sniff: bool = False) -> list[Query]:
    """Load a CSV / Parquet / JSONL file into temp view ``table``, its rows numbered from 1.

    The rows go to the temp table ``<table>__data`` in file order; the view adds ``__row__``
    from the table's row ids (cheaper than numbering them while reading). ``types`` (CSV: some
    columns; JSONL: every column) fixes column types instead of detecting them, e.g. to read ids
    as the text they are written as. CSV types are detected from a sample of rows unless
    ``full_sniff`` (every row: for files whose later rows do not fit the sample's types).
    """
    sample = -1 if full_sniff else 100_000
    readers = {
        "csv": f"read_csv(?, header = true, auto_detect = true{'' if not full_sniff else ', sample_size = -1'}{{}})",
        "parquet": "read_parquet(?{})",
        "jsonl": f"read_json(?, format = 'newline_delimited', sample_size = {sample}{{}})",
    }
    if fmt not in readers:
        raise ValueError(f"unknown file format {fmt!r}")
    option = {"csv": ", types = ?", "jsonl": ", columns = ?"}.get(fmt, "") if types else ""
    if types and not option:
        raise ValueError(f"column types cannot be given for {fmt!r}")
    data = quote_ident(table + "__data")
    return [
        (f"CREATE OR REPLACE TEMP TABLE {data} AS SELECT * FROM {readers[fmt].format(option)}",
         [path, types] if option else [path]),
        _numbered_view(table, data),
    ]


def _numbered_view(table: str, data: str) -> Query:
    return (f"CREATE OR REPLACE TEMP VIEW {quote_ident(table)} AS "
            f"SELECT rowid + 1 AS {STAGE_ROW}, * FROM {data}", [])


def csv_dialect(path: str) -> Query:
    """Delimiter, quote, escape and rows skipped before the header, as DuckDB's reader sees them."""
    return ("SELECT Delimiter, Quote, Escape, SkipRows FROM sniff_csv(?, header = true)", [path])


def jsonl_keys(path: str) -> Query:
    """Every key of a JSONL file's records, raw (before the reader merges or renames any), in order."""
    return (
        "SELECT k FROM (SELECT rn, unnest(json_keys(json)) AS k, "
        "generate_subscripts(json_keys(json), 1) AS pos FROM "
        "(SELECT row_number() OVER () AS rn, json FROM read_ndjson_objects(?))) "
        "GROUP BY k ORDER BY min(rn), arg_min(pos, rn)",
        [path],
    )


def stage_view(table: str, view: str) -> list[Query]:
    """Copy a registered in-memory frame ``view`` into staging view ``table`` (rows numbered)."""
    data = quote_ident(table + "__data")
    return [(f"CREATE OR REPLACE TEMP TABLE {data} AS SELECT * FROM {quote_ident(view)}", []),
            _numbered_view(table, data)]


def rows_where_blank(table: str, column: str, limit: int = 20) -> Query:
    """Row numbers whose ``column`` is NULL or blank text."""
    col = quote_ident(column)
    return (
        f"SELECT {STAGE_ROW} FROM {quote_ident(table)} "
        f"WHERE {col} IS NULL OR trim({col}::VARCHAR) = '' ORDER BY {STAGE_ROW} LIMIT ?",
        [limit],
    )


def duplicate_values(table: str, column: str, limit: int = 20) -> Query:
    """Values of ``column`` that occur more than once, with the rows they occur in.

    The rows are listed only for the few duplicated values (a list per value of a big file
    would cost more than the check itself).
    """
    col = quote_ident(column)
    tbl = quote_ident(table)
    return (
        f"WITH dup AS (SELECT {col} AS v FROM {tbl} WHERE {col} IS NOT NULL "
        f"GROUP BY {col} HAVING count(*) > 1) "
        f"SELECT t.{col}::VARCHAR AS value, list(t.{STAGE_ROW} ORDER BY t.{STAGE_ROW}) AS rows "
        f"FROM {tbl} t SEMI JOIN dup ON t.{col} = dup.v "
        f"GROUP BY t.{col} ORDER BY min(t.{STAGE_ROW}) LIMIT ?",
        [limit],
    )


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


def _sample_id(column: str) -> str:
    """A sample id from a manifest or predictions column: its text, trimmed (both the same way)."""
    return f"trim({quote_ident(column)}::VARCHAR)"


def _given(expr: str) -> str:
    """``expr`` as text, NULL when blank: a blank cell says nothing, like an absent column."""
    return f"nullif(trim({expr}::VARCHAR), '')"


def bad_sizes(table: str, column: str, limit: int = 20) -> Query:
    """``(row, value, total)`` where ``column`` is given but is not a whole number from 1 to 2^31-1."""
    value = _given(quote_ident(column))
    number = f"TRY_CAST({value} AS DOUBLE)"
    return (
        f"SELECT {STAGE_ROW}, {value}, count(*) OVER () FROM {quote_ident(table)} "
        f"WHERE {value} IS NOT NULL AND NOT coalesce({number} BETWEEN 1 AND 2147483647 "
        f"AND {number} = floor({number}), false) ORDER BY {STAGE_ROW} LIMIT ?",
        [limit],
    )


def bad_hashes(table: str, column: str, limit: int = 20) -> Query:
    """``(row, value, total)`` where ``column`` is given but is not 32 lowercase hex characters."""
    value = _given(quote_ident(column))
    return (
        f"SELECT {STAGE_ROW}, {value}, count(*) OVER () FROM {quote_ident(table)} "
        f"WHERE {value} IS NOT NULL AND NOT regexp_full_match({value}, '[0-9a-f]{{32}}') "
        f"ORDER BY {STAGE_ROW} LIMIT ?",
        [limit],
    )


def _role_text(cols: dict[str, str | None], role: str) -> str:
    """A role's value as text; NULL when its column is absent or the cell blank."""
    col = cols.get(role)
    return _given(quote_ident(col)) if col else "NULL::VARCHAR"


def _metadata_value(column: str, dtype: str, is_text: bool) -> str:
    """A staged metadata value as its catalog type; blank text is NULL (it keeps what is stored)."""
    col = quote_ident(column)
    if dtype == "VARCHAR":
        return f"CASE WHEN trim({col}::VARCHAR) = '' THEN NULL ELSE {col}::VARCHAR END"
    if is_text:  # text feeding a typed field: checked by text_fits_type before
        return f"CAST(nullif(trim({col}), '') AS {dtype})"
    return f"{col}::{dtype}"


def text_fits_type(table: str, column: str, dtype: str) -> Query:
    """True when every non-blank value of a text column converts to ``dtype`` (a catalog type)."""
    if dtype not in ("BIGINT", "DOUBLE", "TIMESTAMP", "BOOLEAN", "VARCHAR"):
        raise ValueError(f"not a catalog type: {dtype!r}")
    col = quote_ident(column)
    return (f"SELECT count(nullif(trim({col}), '')) = count(TRY_CAST(nullif(trim({col}), '') "
            f"AS {dtype})) FROM {quote_ident(table)}", [])


def normalized_manifest(stage: str, cols: dict[str, str | None], base_dir: str,
                        metadata: Sequence[tuple[str, str, str]],
                        text_columns: Collection[str] = ()) -> Query:
    """Build the temp table ``norm`` from a staged manifest: resolved URI, id, label, split, metadata.

    ``cols`` maps the roles path/id/label/split/width/height/content_hash to staged column
    names (or ``None``). ``metadata`` is ``[(staged column, field name, duckdb type)]``.
    Relative paths are resolved against ``base_dir``; URIs with a scheme are kept as they are.
    A role or field that is absent or blank is NULL here: it keeps what the catalog holds
    (defaults for new samples are applied by :func:`insert_new_samples`).
    """
    q = quote_ident
    path = q(cols["path"])  # type: ignore[arg-type]
    raw_path = f"trim({path}::VARCHAR)"
    # cheap tests first: most paths are relative and have no scheme, so no regexp runs for them
    uri = (
        f"CASE WHEN starts_with({raw_path}, '/') THEN {raw_path} "
        f"WHEN contains({raw_path}, '://') "
        f"AND regexp_matches({raw_path}, '^[A-Za-z][A-Za-z0-9+.-]*://') THEN {raw_path} "
        f"WHEN starts_with({raw_path}, './') "
        f"THEN ? || regexp_replace({raw_path}, '^(\\./)+', '') "
        f"ELSE ? || {raw_path} END"
    )
    base = base_dir.rstrip("/") + "/"
    params: list[Any] = [base, base]
    if cols.get("id"):
        sample_id = _sample_id(cols["id"])  # type: ignore[arg-type]
    else:
        sample_id = f"regexp_replace({raw_path}, '^(\\./)+', '')"
    fields = [f"{_role_text(cols, 'label')} AS label", f"{_role_text(cols, 'split')} AS split",
              *(f"TRY_CAST(TRY_CAST({_role_text(cols, role)} AS DOUBLE) AS INTEGER) AS {role}"
                for role in ("width", "height")),
              f"{_role_text(cols, 'content_hash')} AS content_hash"]
    meta = [f"{_metadata_value(src, dtype, src in text_columns)} AS {q(name)}"
            for src, name, dtype in metadata]
    select = ", ".join([f"{STAGE_ROW}", f"{sample_id} AS sample_id", f"{uri} AS uri",
                        *fields, *meta])
    return f"CREATE OR REPLACE TEMP TABLE norm AS SELECT {select} FROM {q(stage)}", params


def uri_conflicts(limit: int = 20) -> Query:
    """Staged samples whose id is already in the catalog with another URI."""
    return (
        "SELECT n.__row__, n.sample_id, s.uri, n.uri FROM norm n JOIN samples s USING (sample_id) "
        "WHERE s.uri <> n.uri ORDER BY n.__row__ LIMIT ?",
        [limit],
    )


_LOCAL = "NOT regexp_matches(n.uri, '^[A-Za-z][A-Za-z0-9+.-]*://')"

#: A staged local sample needs probing unless the catalog holds it, at the same URI, with a
#: measured size and hash that what the manifest says (if anything) agrees with.
_NEEDS_PROBE = (
    "(s.sample_id IS NULL OR s.uri <> n.uri OR s.content_hash IS NULL "
    "OR s.width IS NULL OR s.height IS NULL "
    "OR (n.width IS NOT NULL AND s.width <> n.width) "
    "OR (n.height IS NOT NULL AND s.height <> n.height) "
    "OR (n.content_hash IS NOT NULL AND s.content_hash <> n.content_hash))"
)


def local_uris_to_probe(only_new: bool) -> Query:
    """Row, id and URI of staged samples with a local path (if ``only_new``: that need a probe)."""
    cond = _LOCAL + (f" AND {_NEEDS_PROBE}" if only_new else "")
    return (
        "SELECT n.__row__, n.sample_id, n.uri FROM norm n "
        f"LEFT JOIN samples s USING (sample_id) WHERE {cond} ORDER BY n.__row__",
        [],
    )


def stage_probe_table(frame_name: str) -> Query:
    """Temp table ``probe`` (row, width, height, content_hash, skip) from a registered frame."""
    return f"CREATE OR REPLACE TEMP TABLE probe AS SELECT * FROM {quote_ident(frame_name)}", []


#: A manifest may give an image's size as displayed or, for an EXIF-rotated image, as stored
#: (width and height swapped: what COCO exports and PIL's ``size`` say); the probe's is kept.
_SIZE_AS_MEASURED = ("((n.width IS NULL OR n.width = p.width) "
                     "AND (n.height IS NULL OR n.height = p.height))")
_SIZE_SWAPPED = ("((n.width IS NULL OR n.width = p.height) "
                 "AND (n.height IS NULL OR n.height = p.width))")


def probe_mismatches(limit: int = 20) -> Query:
    """Probed rows whose manifest width, height or hash differs from what the file says.

    ``(row, sample_id, width, probed width, height, probed height, hash, probed hash, total)``.
    """
    return (
        "SELECT n.__row__, n.sample_id, n.width, p.width, n.height, p.height, n.content_hash, "
        "p.content_hash, count(*) OVER () FROM norm n JOIN probe p ON p.row = n.__row__ "
        f"WHERE NOT p.skip AND (NOT ({_SIZE_AS_MEASURED} OR {_SIZE_SWAPPED}) "
        "OR n.content_hash <> p.content_hash) ORDER BY n.__row__ LIMIT ?",
        [limit],
    )


def stage_probe_results() -> Query:
    """Temp table ``norm_probed``: staged samples, measured values first, minus skipped rows."""
    return (
        "CREATE OR REPLACE TEMP TABLE norm_probed AS SELECT n.* REPLACE ("
        "coalesce(p.width, n.width) AS width, coalesce(p.height, n.height) AS height, "
        "coalesce(p.content_hash, n.content_hash) AS content_hash), "
        f"{', '.join(f'p.{c}' for c in quality_sql.MEASURED)}, "
        "p.row IS NOT NULL AS probed "
        "FROM norm n LEFT JOIN probe p ON p.row = n.__row__ WHERE p.skip IS NOT TRUE",
        [],
    )


def stage_probe_results_none() -> Query:
    """``norm_probed`` without probing (``--no-probe``): sizes and hashes stay as given."""
    nulls = ", ".join(f"CAST(NULL AS {_MEASURED_TYPES.get(c, 'DOUBLE')}) AS {c}"
                      for c in quality_sql.MEASURED)
    return f"CREATE OR REPLACE TEMP VIEW norm_probed AS SELECT *, {nulls}, false AS probed FROM norm", []


_MEASURED_TYPES = {"q_phash": "BIGINT", "q_pixel_digest": "VARCHAR"}


def unprobed_rows_gone_stale(limit: int = 20) -> Query:
    """Inside the write: rows left unprobed because the catalog held them measured, that no
    longer are (another write changed or removed them meanwhile)."""
    return (
        "SELECT n.__row__, n.sample_id FROM norm_probed n LEFT JOIN samples s USING (sample_id) "
        f"WHERE NOT n.probed AND {_LOCAL} AND {_NEEDS_PROBE} ORDER BY n.__row__ LIMIT ?",
        [limit],
    )


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


def insert_new_samples(import_id: int, metadata_names: Sequence[str], default_split_labeled: str,
                       default_split_unlabeled: str) -> Query:
    """Insert staged samples (from ``norm_probed``) whose id is not in the catalog yet.

    Only here do defaults apply: a new sample with no split gets ``default_split_labeled`` or
    ``default_split_unlabeled`` by whether it has a label.
    """
    names = [*metadata_names, *quality_sql.MEASURED]
    meta = "".join(f", {quote_ident(n)}" for n in names)
    return (
        "INSERT INTO samples (sample_id, uri, width, height, split, content_hash, ingested_at, "
        f"import_id, label{meta}) "
        "SELECT n.sample_id, n.uri, n.width, n.height, "
        "coalesce(n.split, CASE WHEN n.label IS NULL THEN ? ELSE ? END), n.content_hash, "
        f"current_timestamp::TIMESTAMP, ?, n.label{''.join(f', n.{quote_ident(m)}' for m in names)} "
        "FROM norm_probed n ANTI JOIN samples s USING (sample_id)",
        [default_split_unlabeled, default_split_labeled, import_id],
    )


def update_changed_samples(metadata_names: Sequence[str]) -> Query:
    """Update split, size, hash and metadata of existing samples where the manifest gives another value.

    A NULL in ``norm_probed`` (column absent, or cell blank) keeps the stored value. Size and
    hash come from the file: a probed row's replace what is stored; an unprobed row's
    (``--no-probe``) only fill in what is missing, never overwrite a measured value.
    """
    sets = ["split = coalesce(n.split, samples.split)"]
    diffs = ["(n.split IS NOT NULL AND samples.split IS DISTINCT FROM n.split)"]
    for col in ("width", "height", "content_hash"):  # measured values: see the docstring
        sets.append(f"{col} = CASE WHEN n.probed THEN coalesce(n.{col}, samples.{col}) "
                    f"ELSE coalesce(samples.{col}, n.{col}) END")
        diffs.append(f"(n.{col} IS NOT NULL AND samples.{col} IS DISTINCT FROM n.{col} "
                     f"AND (n.probed OR samples.{col} IS NULL))")
    for col in quality_sql.MEASURED:  # a probed row's signals are the file's; others kept
        sets.append(f"{col} = CASE WHEN n.probed THEN n.{col} ELSE samples.{col} END")
        diffs.append(f"(n.probed AND samples.{col} IS DISTINCT FROM n.{col})")
    for name in metadata_names:
        c = quote_ident(name)
        sets.append(f"{c} = coalesce(n.{c}, samples.{c})")
        diffs.append(f"(n.{c} IS NOT NULL AND samples.{c} IS DISTINCT FROM n.{c})")
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
        f"{_sample_id(id_column)} AS sample_id, ({prob_expr})::FLOAT[] AS probs "
        f"FROM {quote_ident(stage)}",
        [],
    )


def prob_list_expr(column: str) -> str:
    """A probability list column as ``DOUBLE[]``."""
    return f"{quote_ident(column)}::DOUBLE[]"


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
        "list_max(probs)::FLOAT AS confidence, probs::FLOAT[] AS probs, "
        f"({THIRD_PROB})::FLOAT AS third_prob FROM pred JOIN samples s USING (sample_id)",
        [list(classes)],
    )


def stage_top1_predictions(stage: str, id_column: str, label_column: str,
                           confidence_column: str | None) -> Query:
    conf = f"{quote_ident(confidence_column)}::DOUBLE" if confidence_column else "NULL::DOUBLE"
    return (
        f"CREATE OR REPLACE TEMP TABLE pred AS SELECT {STAGE_ROW}, "
        f"{_sample_id(id_column)} AS sample_id, "
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
    "coalesce(pred.confidence, 1.0)::FLOAT AS confidence, NULL::FLOAT[] AS probs, NULL::FLOAT AS third_prob "
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
        "INSERT INTO predictions (run_id, sample_key, pred_label, confidence, probs, third_prob) "
        "SELECT ?, sample_key, pred_label, confidence, probs, third_prob FROM pred_final "
        "ON CONFLICT (run_id, sample_key) DO UPDATE SET pred_label = excluded.pred_label, "
        "confidence = excluded.confidence, probs = excluded.probs, third_prob = excluded.third_prob",
        [run_id],
    )


def count_predictions(run_name: str) -> Query:
    return ("SELECT count(*) FROM predictions p JOIN model_runs r USING (run_id) WHERE r.name = ?",
            [run_name])


def predicted_labels(run_name: str) -> Query:
    return ("SELECT s.sample_id, p.pred_label FROM predictions p JOIN model_runs r USING (run_id) "
            "JOIN samples s USING (sample_key) "
            "WHERE r.name = ?", [run_name])


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
