"""Reading tabular input files into a staging table, with errors that name the file and line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from al_core.db import sql as db_sql
from al_core.errors import IngestError
from al_core.ingest import sql

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def detect_format(path: Path) -> str:
    """The reader for ``path`` from its extension; a clear error for anything else."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(str(path), [f"unknown file type {path.suffix!r}; expected one of "
                                      f"{', '.join(sorted(FORMATS))}"])
    return fmt


def check_readable(path: Path) -> None:
    """Fail early for a missing, non-regular or empty file."""
    if not path.exists():
        raise IngestError(str(path), ["file does not exist"])
    if not path.is_file():
        raise IngestError(str(path), ["is not a regular file"])
    if path.stat().st_size == 0:
        raise IngestError(str(path), ["the file is empty"])


#: Most columns an input file may have. Each new metadata column is one ``ALTER TABLE`` in the
#: import's transaction, and DuckDB keeps every table version until commit: memory grows with
#: columns squared (CLI ingest of 1,000 rows: peak 0.6 GB at 1,000 columns, 0.76 GB at 1,200,
#: 1.5 GB at 2,000, killed at ~24 GB at 10,000). See docs/BENCHMARKS.md, "Memory".
MAX_COLUMNS = 1_200
_HEAD_BYTES = 1 << 22  # what is read of a CSV / JSONL file to find its header or first record


def _csv_width(head: str) -> int | None:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(head[:65536], ",\t;|")
    except csv.Error:
        dialect = csv.excel
    try:
        return len(next(csv.reader(io.StringIO(head), dialect)))
    except (csv.Error, StopIteration):
        return None


def _jsonl_width(head: str) -> int | None:
    first = next((line for line in head.splitlines() if line.strip()), "")
    try:
        record = json.loads(first)
    except ValueError:
        return None
    return len(record) if isinstance(record, dict) else None


def count_columns(path: Path, fmt: str) -> int | None:
    """Columns of ``path`` from its CSV header, Parquet schema or first JSONL record only.

    None when that cannot be read: the reader then reports the file's problem itself.
    """
    try:
        if fmt == "parquet":
            return len(pq.read_schema(path).names)
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
            head = fh.read(_HEAD_BYTES)
    except (OSError, ValueError):
        return None
    return {"csv": _csv_width, "jsonl": _jsonl_width}.get(fmt, lambda _: None)(head)


def check_column_count(path: Path, fmt: str) -> None:
    """Refuse a file with more than :data:`MAX_COLUMNS` columns before reading its data."""
    n = count_columns(path, fmt)
    if n is not None and n > MAX_COLUMNS:
        raise IngestError(str(path), [
            f"has {n:,} columns, more than the {MAX_COLUMNS:,} an import may have "
            "(al_core.ingest.files.MAX_COLUMNS); keep only the columns you need (predictions "
            "over many classes: one list column 'probs' instead of prob_<class> columns)"])


def first_invalid_utf8_line(path: Path) -> tuple[int, int, int] | None:
    """``(line, column, byte)`` of the first byte sequence that is not UTF-8, or None."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return lineno, err.start + 1, raw[err.start]
    return None


def stage(cur: duckdb.DuckDBPyConnection, table: str, path: Path, fmt: str | None = None) -> int:
    """Load ``path`` into temp table ``table`` (with ``__row__``) and return its row count."""
    check_readable(path)
    fmt = fmt or detect_format(path)
    check_column_count(path, fmt)
    if fmt in ("csv", "jsonl"):
        bad = first_invalid_utf8_line(path)
        if bad:
            line, col, byte = bad
            raise IngestError(str(path), [
                f"line {line}, column {col}: byte 0x{byte:02x} is not valid UTF-8; "
                "save the file as UTF-8 and import it again"])
    try:
        cur.execute(*sql.stage_file(table, str(path), fmt))
    except duckdb.Error as err:
        message = str(err).split("\n\n")[0].strip()
        raise IngestError(str(path), [f"cannot be read as {fmt}: {message}"]) from None
    n = int(cur.execute(*db_sql.count_rows(table)).fetchone()[0])
    if n == 0:
        raise IngestError(str(path), ["has no data rows"])
    return n


def stage_frame(cur: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Load an in-memory frame into temp table ``table`` (with ``__row__``)."""
    view = f"{table}_frame"
    cur.register(view, frame)
    try:
        cur.execute(*sql.stage_view(table, view))
    finally:
        cur.unregister(view)
    return len(frame)


def staged_columns(cur: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """``{column: duckdb type}`` of a staged table, without the row number."""
    rows = cur.execute(*db_sql.describe(table)).fetchall()
    return {r[0]: r[1] for r in rows if r[0] != sql.STAGE_ROW}
