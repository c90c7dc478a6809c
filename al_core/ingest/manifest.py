"""Manifest ingest (CSV / Parquet / JSONL, or an in-memory frame): validate all, then write once."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog, new_connection
from al_core.errors import IngestError
from al_core.ingest import files, sql
from al_core.ingest.images import ProbeResult, probe_images
from al_core.quality import sql as quality_sql

if TYPE_CHECKING:
    import pandas as pd

#: Column names recognised for each role, case-insensitively, first match wins.
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("path", "uri", "filepath", "file_path", "file", "filename", "file_name", "image",
             "image_path", "url"),
    "id": ("sample_id", "id", "image_id"),
    "label": ("label", "class", "class_name", "category", "ground_truth"),
    "split": ("split", "subset"),
    "width": ("width",),
    "height": ("height",),
    "content_hash": ("content_hash", "hash"),
}

#: Roles whose values are text as written (ids, labels, splits): never read as numbers.
TEXT_ROLES = ("path", "id", "label", "split", "content_hash")


_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
              "UINTEGER", "UBIGINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_TIME_TYPES = {"DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S",
               "TIMESTAMP WITH TIME ZONE", "DATETIME"}


#: The split of a new sample that has no label and no split.
UNLABELED_SPLIT = "unlabeled"


class NothingChanged(Exception):
    """Raised inside the write transaction to roll back an import that changes nothing."""


@dataclass
class ImportResult:
    """What an import did. ``import_id`` is None when it changed nothing (a re-run)."""

    kind: str
    source: str
    rows: int
    new_samples: int = 0
    updated_samples: int = 0
    new_label_versions: int = 0
    fields_added: list[str] = field(default_factory=list)
    #: ``{column: field}`` for columns stored in an existing field spelled differently (case)
    fields_matched: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    import_id: int | None = None

    @property
    def changed(self) -> bool:
        return self.import_id is not None

    def summary(self) -> str:
        if self.changed:
            head = (f"{self.source}: {self.rows} rows -> {self.new_samples} new samples, "
                    f"{self.updated_samples} updated, {self.new_label_versions} new label versions")
            if self.fields_added:
                head += f", new metadata fields: {', '.join(self.fields_added)}"
            head += "".join(f"\ncolumn {c!r} went into the existing field {f!r}"
                            for c, f in self.fields_matched.items())
        elif self.skipped:
            rest = self.rows - len(self.skipped)
            head = (f"{self.source}: {self.rows} rows, nothing imported: {len(self.skipped)} "
                    "skipped as bad images (listed below)"
                    + (f"; the other {rest} are already in the catalog as given" if rest else ""))
        else:
            head = f"{self.source}: {self.rows} rows, nothing changed (already imported)"
        if self.skipped:
            head += f"\nskipped {len(self.skipped)} bad image(s):\n  " + "\n  ".join(self.skipped)
        return head


def catalog_type(duck_type: str) -> str:
    """The catalog column type for a staged column type: numbers, times and text stay themselves."""
    t = duck_type.upper()
    if t == "BOOLEAN":
        return "BOOLEAN"
    if t in _INT_TYPES:
        return "BIGINT"
    if t in _FLOAT_TYPES or t.startswith("DECIMAL"):
        return "DOUBLE"
    if t in _TIME_TYPES:
        return "TIMESTAMP"
    return "VARCHAR"


def _compatible(existing: str, incoming: str) -> bool:
    return existing == incoming or existing == "VARCHAR" or (
        existing == "DOUBLE" and incoming == "BIGINT")


def _detect_text_timestamps(cur: duckdb.DuckDBPyConnection, columns: dict[str, str],
                            skip: set[str]) -> dict[str, str]:
    """Text columns whose every value is an ISO date/time are typed as timestamps (JSON has no dates)."""
    typed = dict(columns)
    for col, duck_type in columns.items():
        if (col not in skip and duck_type == "VARCHAR"
                and cur.execute(*sql.looks_like_timestamps("stage", col)).fetchone()[0]
                and cur.execute(*sql.all_cast_to_timestamp("stage", col)).fetchone()[0]):
            typed[col] = "TIMESTAMP"
    return typed


def resolve_roles(columns: list[str], overrides: dict[str, str | None]) -> dict[str, str | None]:
    """Map each role to a staged column: explicit overrides first, then the known aliases."""
    lower = {c.lower(): c for c in reversed(columns)}
    roles: dict[str, str | None] = {}
    for role, aliases in ROLE_ALIASES.items():
        chosen = overrides.get(role)
        if chosen is None:
            chosen = next((lower[a] for a in aliases if a in lower), None)
        roles[role] = chosen
    return roles


def _plan_metadata(columns: dict[str, str], roles: dict[str, str | None],
                   existing: dict[str, str], text_fits: Callable[[str, str], bool] | None = None,
                   ) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Decide each metadata column's catalog type; returns ``([(col, name, type)], problems)``.

    A text column may feed a typed field when ``text_fits(column, type)``: every non-blank
    value converts (a reader types a number column with a blank-but-spaces cell as text).
    """
    used = {c for c in roles.values() if c}
    existing_lower = {k.lower(): (k, v) for k, v in existing.items()}
    plan: list[tuple[str, str, str]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for col, duck_type in columns.items():
        if col in used:
            continue
        try:
            db_sql.quote_ident(col)
        except ValueError as err:
            problems.append(f"column {col!r}: {err}")
            continue
        low = col.lower()
        if low in db_sql.BUILTIN_SAMPLE_COLUMNS:
            problems.append(f"column {col!r} has the name of a built-in sample column; rename it")
            continue
        if low in quality_sql.BUILT_IN or (low.startswith(quality_sql.PREFIX) and low not in existing_lower):
            problems.append(f"column {col!r}: names starting with {quality_sql.PREFIX!r} are reserved "
                            "for the image-quality signals al-explorer measures; rename it")
            continue  # (a q_ field the catalog has from before the prefix was reserved still imports)
        if low in seen:
            problems.append(f"column {col!r} differs from another column only by case; rename it")
            continue
        seen.add(low)
        incoming = catalog_type(duck_type)
        if low in existing_lower:
            name, current = existing_lower[low]
            fits = incoming == "VARCHAR" and text_fits is not None and text_fits(col, current)
            if not _compatible(current, incoming) and not fits:
                problems.append(f"column {col!r} holds {incoming} values but metadata field "
                                f"{name!r} is {current} in the catalog")
                continue
            plan.append((col, name, current))
        else:
            plan.append((col, col, incoming))
    return plan, problems


def _validate(cur: duckdb.DuckDBPyConnection, roles: dict[str, str | None],
              columns: list[str]) -> list[str]:
    problems: list[str] = []
    if roles["path"] is None:
        problems.append("no path column: expected one of "
                        f"{', '.join(ROLE_ALIASES['path'])}; found columns {', '.join(columns)}")
        return problems
    for role in ("path", "id"):
        col = roles[role]
        if col is None:
            continue
        rows = [r[0] for r in cur.execute(*sql.rows_where_blank("stage", col)).fetchall()]
        if rows:
            problems.append(f"column {col!r} is empty in row(s) {', '.join(map(str, rows))}")
    return problems + _value_problems(cur, roles)


_NOT_A_SIZE = "not a whole number of pixels from 1 up"
_NOT_A_HASH = ("not a content hash (32 lowercase hexadecimal characters: the BLAKE2b-128 of the "
               "file's bytes)")


def _value_problems(cur: duckdb.DuckDBPyConnection, roles: dict[str, str | None]) -> list[str]:
    """Width/height that are not positive whole numbers, hashes that are not hashes: always refused."""
    checks = [(roles["width"], sql.bad_sizes, _NOT_A_SIZE),
              (roles["height"], sql.bad_sizes, _NOT_A_SIZE),
              (roles["content_hash"], sql.bad_hashes, _NOT_A_HASH)]
    problems: list[str] = []
    for col, query, what in checks:
        if col is None:
            continue
        rows = cur.execute(*query("stage", col)).fetchall()
        problems += [f"row {row}: column {col!r} is {value!r}, {what}" for row, value, _ in rows]
        if rows and rows[0][2] > len(rows):
            problems.append(f"column {col!r}: {rows[0][2] - len(rows)} more row(s) like these")
    return problems


def _duplicates(cur: duckdb.DuckDBPyConnection) -> list[str]:
    rows = cur.execute(*sql.duplicate_values("norm", "sample_id")).fetchall()
    return [f"sample_id {value!r} appears in rows {', '.join(map(str, rws))}" for value, rws in rows]


def _uri_conflicts(cur: duckdb.DuckDBPyConnection) -> list[str]:
    return [f"row {row}: sample_id {sid!r} is already in the catalog with path {old!r}, "
            f"not {new!r}" for row, sid, old, new in
            cur.execute(*sql.uri_conflicts()).fetchall()]


def _probe(cur: duckdb.DuckDBPyConnection, source: str, todo: list[tuple],
           roles: dict[str, str | None], *, skip_bad: bool, progress: bool) -> list[str]:
    """Probe ``todo`` (row, id, path) images of ``norm``; builds ``norm_probed``; returns skipped problems.

    What the file says is the truth: a width, height or hash in the manifest that disagrees
    with it is refused, and so are bad images unless ``skip_bad``.
    """
    results, problems = [], []
    for res in probe_images(todo, total=len(todo), progress=progress):
        results.append(res)
        if res.problem:
            problems.append(f"row {res.row}: {res.problem}")
    frame = _probe_frame(results)
    cur.register("probe_results", frame)
    try:
        cur.execute(*sql.stage_probe_table("probe_results"))
    finally:
        cur.unregister("probe_results")
    refused = _mismatches(cur, roles)
    if problems and not skip_bad:
        refused = [f"{len(problems)} image(s) missing or unreadable; fix them, or pass "
                   "--skip-bad-images to import the rest and list these:", *problems, *refused]
    if refused:
        raise IngestError(source, refused)
    cur.execute(*sql.stage_probe_results())
    return problems


def _probe_frame(results: list[ProbeResult]) -> pd.DataFrame:
    """The probe's findings as a typed frame: size, hash, skip and the quality signals."""
    import pandas as pd

    columns = {"row": pd.array([r.row for r in results], dtype="Int64"),
               "width": pd.array([r.width for r in results], dtype="Int32"),
               "height": pd.array([r.height for r in results], dtype="Int32"),
               "content_hash": pd.array([r.content_hash for r in results], dtype="string"),
               "skip": pd.array([r.problem is not None for r in results], dtype="boolean")}
    for name in quality_sql.MEASURED:
        attr = name.removeprefix("q_")
        values = [getattr(r.signals, attr) if r.signals else None for r in results]
        dtype = {"q_phash": "Int64", "q_pixel_digest": "string"}.get(name, "Float64")
        columns[name] = pd.array(values, dtype=dtype)
    return pd.DataFrame(columns)


def _mismatches(cur: duckdb.DuckDBPyConnection, roles: dict[str, str | None]) -> list[str]:
    """Rows whose manifest width, height or content hash differs from what probing measured."""
    rows = cur.execute(*sql.probe_mismatches()).fetchall()
    problems: list[str] = []
    for row, sid, width, p_width, height, p_height, digest, p_digest, _ in rows:
        where = f"row {row} (sample {sid!r})"
        if width in (None, p_height) and height in (None, p_width):
            width = height = None  # the stored size of an EXIF-rotated image: fine
        if width is not None and width != p_width:
            problems.append(f"{where}: column {roles['width']!r} says {width} but the image is "
                            f"{p_width} pixels wide")
        if height is not None and height != p_height:
            problems.append(f"{where}: column {roles['height']!r} says {height} but the image is "
                            f"{p_height} pixels high")
        if digest is not None and digest != p_digest:
            problems.append(f"{where}: column {roles['content_hash']!r} says {digest} but the "
                            f"file's bytes hash to {p_digest}")
    if rows and rows[0][-1] > len(rows):
        problems.append(f"{rows[0][-1] - len(rows)} more row(s) disagree with their image files")
    return problems


def _recheck(cur: duckdb.DuckDBPyConnection, source: str, plan: list[tuple[str, str, str]],
             probed: bool) -> None:
    """Inside the write: what validation read from the catalog must still hold (it may have changed)."""
    now = dict(cur.execute(*db_sql.metadata_fields()).fetchall())
    changed = [f"metadata field {name!r} became {now[name]} in the catalog meanwhile"
               for _, name, dtype in plan if name in now and not _compatible(now[name], dtype)]
    by_lower = {k.lower(): k for k in now}
    changed += [f"metadata field {by_lower[name.lower()]!r} was added meanwhile; this file's "
                f"{name!r} differs from it only by case" for _, name, _ in plan
                if name not in now and name.lower() in by_lower]
    problems = changed + _uri_conflicts(cur)
    if probed:  # rows left unprobed because the catalog held them measured must still be so
        problems += [f"row {row}: sample {sid!r} was changed in the catalog meanwhile" for row, sid
                     in cur.execute(*sql.unprobed_rows_gone_stale()).fetchall()]
    if problems:
        raise IngestError(source, [*problems, "the catalog changed during this import; run it again"])


def _write(cat: Catalog, stage: duckdb.DuckDBPyConnection, result: ImportResult,
           plan: list[tuple[str, str, str]], label_source: str, batch_id: int | None,
           default_split: str, probed: bool) -> None:
    meta_names = [name for _, name, _ in plan]
    try:
        with cat.transaction(f"{result.kind} import of {result.source}", con=stage) as cur:
            _recheck(cur, result.source, plan, probed)
            now = cat.metadata_fields(cur)
            import_id = int(cur.execute(sql.NEXT_IMPORT_ID).fetchone()[0])
            for _, name, dtype in plan:
                if name not in now:
                    for q in sql.add_metadata_field(name, dtype):
                        cur.execute(*q)
                    result.fields_added.append(name)
            existing_rows = cur.execute(sql.COUNT_EXISTING_SAMPLES).fetchone()[0]
            cur.execute(sql.SNAPSHOT_LABELS_BEFORE)
            result.new_samples = cur.execute(*sql.insert_new_samples(
                import_id, meta_names, default_split, UNLABELED_SPLIT)).fetchone()[0]
            if existing_rows:
                result.updated_samples = cur.execute(
                    *sql.update_changed_samples(meta_names)).fetchone()[0]
            result.new_label_versions = cur.execute(
                *sql.insert_changed_labels(label_source, import_id, batch_id)).fetchone()[0]
            if existing_rows:  # new samples were inserted with their label already
                cur.execute(sql.APPLY_CURRENT_LABELS)
            if not (result.new_samples or result.updated_samples or result.new_label_versions
                    or result.fields_added):
                raise NothingChanged
            from al_core import quality

            quality.reflag(cur, quality.thresholds(cat, cur))
            summary = {k: v for k, v in result.__dict__.items() if k not in ("import_id", "skipped")}
            summary["skipped"] = len(result.skipped)
            cur.execute(*sql.record_import(import_id, result.kind, result.source, json.dumps(summary)))
            result.import_id = import_id
    except NothingChanged:
        result.fields_added.clear()


def ingest_staged(cat: Catalog, cur: duckdb.DuckDBPyConnection, *, kind: str, source: str,
                  base_dir: Path, rows: int,
                  overrides: dict[str, str | None] | None = None, probe: bool = True,
                  reprobe: bool = False, skip_bad_images: bool = False,
                  label_source: str | None = None, batch_id: int | None = None,
                  default_split: str = "train", progress: bool = True) -> ImportResult:
    """Validate the temp table ``stage`` of the private connection ``cur``; write it in one transaction.

    Staging, validation and the image probe run without holding the catalog; it is attached
    read-only for the checks that need it and for writing only during the final transaction.
    A column that is absent, or a blank cell, keeps what the catalog holds; ``default_split``
    (labeled) or ``unlabeled`` apply only to new samples that have no split.
    """
    columns = files.staged_columns(cur, "stage")
    roles = resolve_roles(list(columns), overrides or {})
    columns = _detect_text_timestamps(cur, columns, skip={c for c in roles.values() if c})
    for role, col in roles.items():
        if col is not None and col not in columns:
            raise IngestError(source, [f"column {col!r} (given for {role}) is not in the file; "
                                       f"found {', '.join(columns)}"])
    problems = _validate(cur, roles, list(columns))
    plan, meta_problems = _plan_metadata(
        columns, roles, cat.metadata_fields(),
        lambda col, dtype: bool(cur.execute(*sql.text_fits_type("stage", col, dtype)).fetchone()[0]))
    problems += meta_problems
    if problems:
        raise IngestError(source, problems)
    base = str(base_dir.resolve())
    try:
        text = {c for c, t in columns.items() if catalog_type(t) == "VARCHAR"}
        cur.execute(*sql.normalized_manifest("stage", roles, base, plan, text))
    except duckdb.Error as err:
        raise IngestError(source, [f"cannot convert values: {str(err).splitlines()[0]}"]) from None
    problems = _duplicates(cur)
    with cat.read(cur):  # the catalog attached read-only, only for these checks
        problems += _uri_conflicts(cur)
        todo = cur.execute(*sql.local_uris_to_probe(only_new=not reprobe)).fetchall() if probe else []
    if problems:
        raise IngestError(source, problems)
    result = ImportResult(kind=kind, source=source, rows=rows,
                          fields_matched={c: n for c, n, _ in plan if c != n})
    if probe:  # the long part runs with the catalog free for everyone
        result.skipped = _probe(cur, source, todo, roles, skip_bad=skip_bad_images,
                                progress=progress)
    else:
        cur.execute(*sql.stage_probe_results_none())
    _write(cat, cur, result, plan, label_source or f"{kind}:{Path(source).name}", batch_id,
           default_split, probe)
    return result


def ingest_manifest(cat: Catalog, path: str | Path, *, path_column: str | None = None,
                    id_column: str | None = None, label_column: str | None = None,
                    split_column: str | None = None, probe: bool = True, reprobe: bool = False,
                    skip_bad_images: bool = False, label_source: str | None = None,
                    batch_id: int | None = None, default_split: str = "train",
                    progress: bool = True) -> ImportResult:
    """Import a CSV / Parquet / JSONL manifest: a path column, optional id/label/split, metadata.

    Relative paths resolve against the manifest's folder. Validation covers the whole file
    before anything is written; the write is one transaction; re-running changes nothing.
    """
    path = Path(path)
    cur = new_connection()
    try:
        n = files.stage(cur, "stage", path)
        overrides = {"path": path_column, "id": id_column, "label": label_column,
                     "split": split_column}
        roles = resolve_roles(list(files.staged_columns(cur, "stage")), overrides)
        files.read_as_text(cur, "stage", path, [roles[r] for r in TEXT_ROLES])
        return ingest_staged(cat, cur, kind="manifest", source=str(path), base_dir=path.parent,
                             rows=n, overrides=overrides, probe=probe, reprobe=reprobe,
                             skip_bad_images=skip_bad_images, label_source=label_source,
                             batch_id=batch_id, default_split=default_split, progress=progress)
    finally:
        cur.close()


def ingest_frame(cat: Catalog, frame: pd.DataFrame, *, kind: str, source: str, base_dir: Path,
                 **options: object) -> ImportResult:
    """Import an in-memory manifest frame (used by the folder and COCO importers and the demo)."""
    if frame.empty:
        raise IngestError(source, ["contains no images"])
    cur = new_connection()
    try:
        files.stage_frame(cur, "stage", frame, source)
        return ingest_staged(cat, cur, kind=kind, source=source, base_dir=base_dir,
                             rows=len(frame), **options)  # type: ignore[arg-type]
    finally:
        cur.close()
