"""Reading tabular input files into a staging table, with errors that name the file and line."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from al_core.db import sql as db_sql
from al_core.errors import IngestError
from al_core.ingest import sql

if TYPE_CHECKING:
    import pandas as pd

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

#: Names the importers use for their own columns of a staged file.
#: ``rowid`` is DuckDB's own row id, which numbers the staged rows: a column must not hide it.
RESERVED = frozenset({sql.STAGE_ROW, "rowid"})


def _csv_header(cur: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The header record of a CSV file, split with the dialect DuckDB's reader detected."""
    delimiter, quote, escape, skip = cur.execute(*sql.csv_dialect(str(path))).fetchone()
    quote = quote if quote and quote != "(empty)" else '"'
    escape = escape if escape and escape not in ("(empty)", quote) else None
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for _ in range(int(skip or 0)):
            fh.readline()
        return next(csv.reader(fh, delimiter=delimiter, quotechar=quote, escapechar=escape), [])


def raw_column_names(cur: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> list[str]:
    """Column names as written: the CSV header, the Parquet schema, or every JSONL record's keys."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if fmt == "jsonl":
        return [r[0] for r in cur.execute(*sql.jsonl_keys(str(path))).fetchall()]
    return _csv_header(cur, path)


def _at(idx: list[int], positional: bool) -> str:
    return f" (column {', '.join(str(i + 1) for i in idx)})" if positional else ""


def name_problems(names: list[str], *, positional: bool = True) -> list[str]:
    """Empty, duplicate, case-duplicate and reserved names; ``positional``: name column numbers."""
    problems: list[str] = []
    by_lower: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if not name.strip():
            problems.append(f"a column has an empty name{_at([i], positional)}; "
                            "give every column a name")
        elif name.lower() in RESERVED:
            problems.append(f"column {name!r}{_at([i], positional)} has a name al-explorer uses "
                            "itself; rename it")
        else:
            by_lower.setdefault(name.lower(), []).append(i)
    for idx in by_lower.values():
        spelled = list(dict.fromkeys(names[i] for i in idx))
        if len(idx) > 1 and len(spelled) == 1:
            problems.append(f"column {spelled[0]!r} appears {len(idx)} times"
                            f"{_at(idx, positional)}; column names must be unique")
        elif len(idx) > 1:
            problems.append(f"columns {', '.join(map(repr, spelled))}{_at(idx, positional)} "
                            "differ only by case; column names must differ in more than case")
    return problems


def _too_wide(path: Path, n: int) -> IngestError:
    return IngestError(str(path), [
        f"has {n:,} columns, more than the {MAX_COLUMNS:,} an import may have "
        "(al_core.ingest.files.MAX_COLUMNS); keep only the columns you need (predictions "
        "over many classes: one list column 'probs' instead of prob_<class> columns)"])


def _first_line_width(path: Path) -> int:
    """Fields in a CSV's first line by Python's own sniffer: a cheap guard before DuckDB's sniffer,
    which is slow and memory-hungry on thousands of columns."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        line = fh.readline(1 << 22)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(line, ",\t;|")
    except csv.Error:
        dialect = csv.excel
    return len(next(csv.reader([line], dialect), []))


def check_header(cur: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> None:
    """Refuse, before reading any data, a file with too many columns or names that are empty,
    repeated or differ only by case (DuckDB's readers would rename those silently)."""
    if fmt == "csv" and (n := _first_line_width(path)) > MAX_COLUMNS:
        raise _too_wide(path, n)
    try:
        names = raw_column_names(cur, path, fmt)
    except UnicodeDecodeError:
        raise  # stage() says where the bytes that are not UTF-8 are
    except (duckdb.Error, OSError, ValueError, csv.Error) as err:
        message = str(err).split("\n\n")[0].strip()
        raise IngestError(str(path), [f"cannot be read as {fmt}: {message}"]) from None
    if len(names) > MAX_COLUMNS:
        raise _too_wide(path, len(names))
    problems = name_problems(names, positional=fmt != "jsonl")
    if problems:
        raise IngestError(str(path), problems)


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
    try:
        check_header(cur, path, fmt)
        _stage_file(cur, table, path, fmt)
    except (duckdb.Error, IngestError, UnicodeDecodeError) as err:
        # DuckDB's readers refuse bytes that are not UTF-8; only then look for where they are
        bad = first_invalid_utf8_line(path) if fmt in ("csv", "jsonl") else None
        if bad:
            line, col, byte = bad
            raise IngestError(str(path), [
                f"line {line}, column {col}: byte 0x{byte:02x} is not valid UTF-8; "
                "save the file as UTF-8 and import it again"]) from None
        if isinstance(err, IngestError):
            raise
        message = str(err).split("\n\n")[0].strip()
        raise IngestError(str(path), [f"cannot be read as {fmt}: {message}"]) from None
    n = int(cur.execute(*db_sql.count_rows(table)).fetchone()[0])
    if n == 0:
        raise IngestError(str(path), ["has no data rows"])
    return n


def _stage_file(cur: duckdb.DuckDBPyConnection, table: str, path: Path, fmt: str,
                types: dict[str, str] | None = None) -> None:
    """Stage ``path``; a CSV whose later rows do not fit the types sniffed from a sample is
    read again with types sniffed from every row."""
    try:
        for query in sql.stage_file(table, str(path), fmt, types):
            cur.execute(*query)
    except duckdb.ConversionException:
        if fmt != "csv":
            raise
        for query in sql.stage_file(table, str(path), fmt, types, full_sniff=True):
            cur.execute(*query)


def stage_frame(cur: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                source: str) -> int:
    """Load an in-memory frame into temp table ``table`` (with ``__row__``)."""
    problems = name_problems([str(c) for c in frame.columns])
    if problems:
        raise IngestError(source, problems)
    view = f"{table}_frame"
    cur.register(view, frame)
    try:
        for query in sql.stage_view(table, view):
            cur.execute(*query)
    finally:
        cur.unregister(view)
    return len(frame)


def staged_columns(cur: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """``{column: duckdb type}`` of a staged table, without the row number."""
    rows = cur.execute(*db_sql.describe(table)).fetchall()
    return {r[0]: r[1] for r in rows if r[0] != sql.STAGE_ROW}


def read_as_text(cur: duckdb.DuckDBPyConnection, table: str, path: Path,
                 columns: Iterable[str | None]) -> None:
    """Re-stage ``table`` from ``path`` so that ``columns`` hold the text the file wrote.

    CSV and JSONL readers guess types: ``007`` would read as 7, JSON ``1`` next to ``2.5`` as
    ``1.0``, and values of mixed JSON types keep their quotes. Ids, labels and splits are text.
    A JSONL column of mixed JSON types is read as text too. Parquet types are the file's own.
    """
    fmt = detect_format(path)
    if fmt not in ("csv", "jsonl"):
        return
    staged = staged_columns(cur, table)
    wanted = {c for c in columns if c} | ({c for c, t in staged.items() if t == "JSON"}
                                          if fmt == "jsonl" else set())
    retype = {c for c in wanted if c in staged and staged[c] != "VARCHAR"}
    if not retype:
        return
    types = ({c: "VARCHAR" for c in retype} if fmt == "csv" else
             {c: ("VARCHAR" if c in retype else t) for c, t in staged.items()})
    try:
        _stage_file(cur, table, path, fmt, types)
    except duckdb.Error as err:
        message = str(err).split("\n\n")[0].strip()
        raise IngestError(str(path), [f"cannot be read as {fmt}: {message}"]) from None
