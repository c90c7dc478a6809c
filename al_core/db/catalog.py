"""The catalog: one DuckDB file, opened with migrations, a write lock policy and one write path.

Concurrency policy (see README): DuckDB lets one process open a file read-write, or many
processes open it read-only. The process that opens it read-write (the app, or a CLI
command) records itself in a sidecar ``<catalog>.owner.json``; any other process that tries
to open it gets a :class:`CatalogBusyError` naming that owner instead of a stack trace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from al_core import __version__
from al_core.db import sql
from al_core.errors import CatalogBusyError, CatalogError, SchemaVersionError

ENV_CATALOG = "AL_EXPLORER_CATALOG"
DEFAULT_CATALOG = Path("data") / "catalog.duckdb"

_PID_RE = re.compile(r"\(PID (\d+)\)")


def resolve_catalog_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The catalog path: ``--catalog`` if given, else ``$AL_EXPLORER_CATALOG``, else the default."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get(ENV_CATALOG)
    return Path(env) if env else DEFAULT_CATALOG


def owner_file(path: Path) -> Path:
    return path.with_name(path.name + ".owner.json")


def read_owner(path: Path) -> dict[str, Any] | None:
    """The sidecar record of the process that holds ``path`` read-write, if any."""
    try:
        return json.loads(owner_file(path).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _atomic(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN; COMMIT if the block succeeds, ROLLBACK (and re-raise) if anything escapes it."""
    cur.execute(sql.BEGIN)
    try:
        yield
        cur.execute(sql.COMMIT)
    except BaseException:
        cur.execute(sql.ROLLBACK)
        raise


def _busy_message(path: Path, err: Exception) -> CatalogBusyError:
    match = _PID_RE.search(str(err))
    pid = int(match.group(1)) if match else None
    owner = read_owner(path)
    who = f"another process (pid {pid})" if pid else "another process"
    if owner and pid and owner.get("pid") == pid:
        role = owner.get("role", "process")
        where = f" at {owner['url']}" if owner.get("url") else ""
        who = f"a running al-explorer {role}{where} (pid {pid})"
    hint = (
        "Stop that process, or do this from the app; read-only commands can use --read-only "
        "once nothing holds the file for writing."
    )
    return CatalogBusyError(f"The catalog {path} is open in {who}. {hint}", pid=pid)


class Catalog:
    """An open catalog file.

    Use :meth:`cursor` for a unit of read work and :meth:`transaction` for every write: it is
    the only write path, runs in one transaction and bumps ``data_version`` so caches keyed
    on it see the change.
    """

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, read_only: bool,
                 role: str) -> None:
        self.path = path
        self.con = con
        self.read_only = read_only
        self.role = role
        self._write_lock = threading.Lock()
        self._cursor_lock = threading.Lock()

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, read_only: bool = False,
             role: str = "cli", url: str | None = None) -> Catalog:
        """Open (creating and migrating if needed) the catalog at ``path``.

        Raises :class:`CatalogBusyError` if another process holds the file,
        :class:`SchemaVersionError` if the file is from a newer al-explorer.
        """
        p = resolve_catalog_path(path)
        if read_only and not p.exists():
            raise CatalogError(f"The catalog {p} does not exist. Run `al-explorer demo` or "
                               "`al-explorer ingest ...` to create it.")
        if not read_only:
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(p), read_only=read_only)
        except duckdb.IOException as err:
            if "lock" in str(err).lower():
                raise _busy_message(p, err) from None
            raise CatalogError(f"Cannot open the catalog {p}: {err}") from None
        except duckdb.Error as err:
            raise CatalogError(f"{p} is not a readable DuckDB catalog: {err}") from None
        cat = cls(p, con, read_only, role)
        try:
            cat.migrate()
        except Exception:
            con.close()
            raise
        if not read_only:
            cat._write_owner(url)
        return cat

    def _write_owner(self, url: str | None) -> None:
        record = {"pid": os.getpid(), "role": self.role, "host": socket.gethostname(),
                  "url": url, "al_explorer": __version__}
        with contextlib.suppress(OSError):
            owner_file(self.path).write_text(json.dumps(record))

    def close(self) -> None:
        """Close the connection and drop the owner record if it is ours."""
        with contextlib.suppress(Exception):
            self.con.close()
        if not self.read_only:
            owner = read_owner(self.path)
            if owner and owner.get("pid") == os.getpid():
                with contextlib.suppress(OSError):
                    owner_file(self.path).unlink()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- migrations
    def schema_version(self) -> int:
        cur = self.con.cursor()
        if cur.execute(sql.HAS_SCHEMA_VERSION).fetchone()[0] == 0:
            return 0
        return int(cur.execute(sql.CURRENT_SCHEMA_VERSION).fetchone()[0])

    def migrate(self, target: int | None = None) -> None:
        """Apply pending migrations up to ``target`` (default: latest), one transaction each."""
        target = sql.LATEST_SCHEMA_VERSION if target is None else target
        current = self.schema_version()
        if current > sql.LATEST_SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The catalog {self.path} has schema version {current}, written by a newer "
                f"al-explorer; this one ({__version__}) knows up to version "
                f"{sql.LATEST_SCHEMA_VERSION}. Upgrade al-explorer to open it."
            )
        pending = [m for m in sql.MIGRATIONS if current < m[0] <= target]
        if not pending:
            return
        if self.read_only:
            raise CatalogError(
                f"The catalog {self.path} has schema version {current} and needs upgrading to "
                f"{target}; open it once without --read-only to upgrade it."
            )
        cur = self.con.cursor()
        for version, description, statements in pending:
            with _atomic(cur):
                cur.execute(sql.CREATE_SCHEMA_VERSION)
                for statement in statements:
                    cur.execute(statement)
                cur.execute(sql.RECORD_MIGRATION, [version, description, __version__])

    # ---------------------------------------------------------------- reading
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A fresh cursor: use one per unit of work (DuckDB results stream).

        Cursors are separate connections to the same database, so threads (the app's sessions)
        each get their own; creating them is serialized.
        """
        with self._cursor_lock:
            return self.con.cursor()

    def query_df(self, query: sql.Query | str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a read query and fetch it fully as a DataFrame."""
        text, bound = (query, params or []) if isinstance(query, str) else query
        return self.cursor().execute(text, bound).df()

    def query_rows(self, query: sql.Query | str, params: list[Any] | None = None) -> list[tuple]:
        text, bound = (query, params or []) if isinstance(query, str) else query
        return self.cursor().execute(text, bound).fetchall()

    def scalar(self, query: sql.Query | str, params: list[Any] | None = None) -> Any:
        rows = self.query_rows(query, params)
        return rows[0][0] if rows else None

    def data_version(self) -> int:
        """A counter bumped by every committed write; key caches on it."""
        return int(self.scalar(sql.DATA_VERSION))

    def metadata_fields(self) -> dict[str, str]:
        """User metadata fields in order of addition: ``{name: duckdb type}``."""
        return dict(self.query_rows(sql.metadata_fields()))

    # ---------------------------------------------------------------- writing
    @contextlib.contextmanager
    def transaction(self, cur: duckdb.DuckDBPyConnection | None = None
                    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one write path: BEGIN, yield a cursor, bump data_version and COMMIT (or ROLLBACK)."""
        if self.read_only:
            raise CatalogError(f"The catalog {self.path} is open read-only; writes need the "
                               "process that owns it.")
        cur = cur or self.cursor()
        with self._write_lock, _atomic(cur):
            yield cur
            cur.execute(sql.BUMP_DATA_VERSION)

def snapshot(cat: Catalog) -> dict[str, pd.DataFrame]:
    """Every base table's rows in a stable order: compare two snapshots to prove nothing changed."""
    tables = [r[0] for r in cat.query_rows(sql.table_names())]
    return {t: cat.query_df(sql.select_all_ordered(t)) for t in tables}
