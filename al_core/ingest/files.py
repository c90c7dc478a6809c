"""Reading tabular input files into a staging table, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

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
