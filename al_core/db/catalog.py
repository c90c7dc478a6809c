"""The catalog: one DuckDB file shared by the app and the CLI through short-lived connections.

DuckDB lets one process open a file for writing, or many for reading. Nobody keeps the file
open: reads take a shared read-only connection for as long as they run (kept a moment
longer so a page's queries share it), and every write opens the file for writing only for its
transaction. A writer first takes ``<catalog>.lock`` (an OS file lock, released even if the
process dies) and records what it does and since when; readers in other processes see that
and wait, so the writer gets the file as soon as their running queries end. Anyone who waits
too long gets a :class:`CatalogBusyError` that says who holds the catalog, doing what, since
when. See the README's concurrency section.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from al_core import __version__
from al_core.db import sql
from al_core.errors import CatalogBusyError, CatalogError, SchemaVersionError

if TYPE_CHECKING:  # pandas loads only where a frame is asked for: CLI start-up stays quick
    import pandas as pd

try:  # POSIX; elsewhere DuckDB's own lock and the retries below still keep writes safe
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

ENV_CATALOG = "AL_EXPLORER_CATALOG"
DEFAULT_CATALOG = Path("data") / "catalog.duckdb"
#: How long a write waits for the catalog by default (readers finish in well under this).
WRITE_WAIT_S = 60.0
#: How long a read waits for a writer in another process by default.
READ_WAIT_S = 30.0
#: How long the shared read connection stays open after its last query (a page's queries share it).
LINGER_S = 0.3
_POLL_S = 0.02
ALIAS = "catalog"
_PID_RE = re.compile(r"\(PID (\d+)\)")


def resolve_catalog_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The catalog path: ``--catalog`` if given, else ``$AL_EXPLORER_CATALOG``, else the default."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get(ENV_CATALOG)
    return Path(env) if env else DEFAULT_CATALOG


def lock_file(path: Path) -> Path:
    """The sidecar that writers lock, holding who writes what since when."""
    return path.with_name(path.name + ".lock")


def read_writer(path: Path) -> dict[str, Any] | None:
    """The record of the process writing to ``path`` right now (or last), if any."""
    try:
        record = json.loads(lock_file(path).read_text() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe_writer(record: dict[str, Any] | None) -> str:
    """``ingest m.csv by the al-explorer CLI (pid 42) since 12:03:04`` from a writer record."""
    if not record:
        return "another process"
    since = record.get("since")
    when = f" since {datetime.fromtimestamp(since).strftime('%H:%M:%S')}" if since else ""
    role = record.get("role", "process")
    who = f"the al-explorer {'CLI' if role == 'cli' else role}"
    if record.get("url"):
        who += f" at {record['url']}"
    return f"{record.get('what', 'a write')} by {who} (pid {record.get('pid')}){when}"


def _is_lock_conflict(err: Exception) -> bool:
    text = str(err).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _foreign_holder(path: Path, err: Exception) -> str:
    match = _PID_RE.search(str(err))
    record = read_writer(path)
    if match and record and record.get("pid") == int(match.group(1)):
        return describe_writer(record)
    return f"another process (pid {match.group(1)})" if match else "another process"


class _WriterLock:
    """``<catalog>.lock`` held exclusively (``flock``) by the one process writing the catalog."""

    def __init__(self, path: Path) -> None:
        self.path = lock_file(path)
        self.fd: int | None = None

    def acquire(self, record: dict[str, Any], deadline: float, catalog: Path) -> None:
        if fcntl is None:
            return
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise CatalogBusyError(
                        f"catalog busy: {catalog} is being written: "
                        f"{describe_writer(read_writer(catalog))}."
                    ) from None
                time.sleep(_POLL_S * 5)
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(record).encode(), 0)
        except OSError:
            self.release()
            raise

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def writer_active(path: Path) -> bool:
    """True while another process (or thread) holds the catalog's writer lock."""
    if fcntl is None:
        return False
    try:
        fd = os.open(lock_file(path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class _SharedFile:
    """Per process and file: the shared read connection, its users, and the in-process writer.

    Many threads (the app's sessions) read through cursors of one read-only connection. A writer
    in this process waits until they are done, then attaches the file for writing; new readers
    wait for it (writers go first, so a busy page cannot starve a write).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cond = threading.Condition()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.readers = 0
        self.writing = False
        self.writers_waiting = 0
        self.write_mutex = threading.Lock()
        self.generation = 0

    # -- reading
    def _wait_for_writers(self, deadline: float) -> None:
        """Under ``cond``: return once no writer, in this process or another, wants the file.

        A writer in another process is seen by its lock: no new read starts, and the shared
        connection is let go as soon as its running reads end, so the writer gets the file.
        """
        while True:
            if self.writing or self.writers_waiting:
                holder = "this process"
            elif writer_active(self.path):
                if self.readers == 0:
                    self._close()
                holder = describe_writer(read_writer(self.path))
            else:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CatalogBusyError(f"catalog busy: {self.path} is being written by {holder}.")
            self.cond.wait(timeout=min(remaining, _POLL_S * 2.5))

    def acquire_read(self, deadline: float) -> duckdb.DuckDBPyConnection:
        with self.cond:
            self._wait_for_writers(deadline)
            if self.con is None:
                self.con = _attach(self.path, read_only=True, deadline=deadline)
            cur = self.con.cursor()
            cur.execute(sql.use(ALIAS))  # the default database is a per-cursor setting
            self.readers += 1
            self.generation += 1
            return cur

    def join_read(self, deadline: float) -> None:
        """Count a private read-only attachment as a reader of this process."""
        with self.cond:
            self._wait_for_writers(deadline)
            self.readers += 1
            self.generation += 1

    def release_read(self) -> None:
        with self.cond:
            self.readers -= 1
            if self.readers == 0:
                if self.writers_waiting:
                    self._close()
                else:
                    generation = self.generation
                    timer = threading.Timer(LINGER_S, self._close_if_idle, args=(generation,))
                    timer.daemon = True
                    timer.start()
            self.cond.notify_all()

    def _close_if_idle(self, generation: int) -> None:
        with self.cond:
            if self.readers == 0 and generation == self.generation:
                self._close()

    def _close(self) -> None:
        if self.con is not None:
            with contextlib.suppress(duckdb.Error):
                self.con.close()
            self.con = None

    # -- writing
    @contextlib.contextmanager
    def writing_slot(self, deadline: float) -> Iterator[None]:
        """Wait until no reader of this process holds the file; keep new ones out meanwhile."""
        if not self.write_mutex.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise CatalogBusyError(f"catalog busy: {self.path} is being written by this process.")
        try:
            with self.cond:
                self.writers_waiting += 1
                try:
                    while self.readers:
                        if not self.cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                            raise CatalogBusyError(
                                f"catalog busy: {self.path} is being read by this process for "
                                "longer than the write may wait.")
                    self._close()
                    self.writing = True
                finally:
                    self.writers_waiting -= 1
                    self.cond.notify_all()  # readers held back by this writer may go on
            try:
                yield
            finally:
                with self.cond:
                    self.writing = False
                    self.cond.notify_all()
        finally:
            self.write_mutex.release()


_FILES: dict[Path, _SharedFile] = {}
_FILES_LOCK = threading.Lock()


def _close_all() -> None:
    """At exit: close lingering read connections (DuckDB objects alive at shutdown are reported leaked)."""
    with _FILES_LOCK:
        for shared in _FILES.values():
            with shared.cond:
                shared._close()


atexit.register(_close_all)


def _shared(path: Path) -> _SharedFile:
    key = path.resolve()
    with _FILES_LOCK:
        if key not in _FILES:
            _FILES[key] = _SharedFile(key)
        return _FILES[key]


_THREAD = threading.local()


@contextlib.contextmanager
def _holding(path: Path, mode: str) -> Iterator[None]:
    """Refuse at once what would wait on itself: a read inside a write (or the other way round)
    of the same catalog in one thread. Use the write's own cursor to read inside a write."""
    held: dict[tuple[Path, str], int] = _THREAD.__dict__.setdefault("held", {})
    other = "write" if mode == "read" else "read"
    if held.get((path, other)) or (mode == "write" and held.get((path, "write"))):
        raise RuntimeError(f"a {mode} of {path} inside a {other if held.get((path, other)) else mode} "
                           "of it in the same thread would wait for itself; read through the "
                           "write's cursor, or finish one before starting the other")
    held[(path, mode)] = held.get((path, mode), 0) + 1
    try:
        yield
    finally:
        held[(path, mode)] -= 1


def new_connection() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB (for staging input files); it spills to the system temp folder."""
    con = duckdb.connect()
    con.execute(sql.set_temp_directory(str(Path(tempfile.gettempdir()) / "al-explorer-spill")))
    return con


def _attach(path: Path, *, read_only: bool, deadline: float,
            con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """Attach the catalog file as ``catalog`` and make it the default; retry while it is locked."""
    con = con or new_connection()
    statement = sql.attach(str(path), ALIAS, read_only)
    while True:
        if read_only and writer_active(path):
            err: Exception | None = None
        else:
            try:
                con.execute(statement)
                con.execute(sql.use(ALIAS))
                return con
            except duckdb.IOException as e:
                if not _is_lock_conflict(e):
                    raise CatalogError(f"Cannot open the catalog {path}: {e}") from None
                err = e
            except duckdb.Error as e:
                raise CatalogError(f"{path} is not a readable DuckDB catalog: {e}") from None
        if time.monotonic() >= deadline:
            holder = _foreign_holder(path, err) if err else describe_writer(read_writer(path))
            raise CatalogBusyError(f"catalog busy: {path} is in use: {holder}.",
                                   pid=_pid_of(err)) from None
        time.sleep(_POLL_S)


def _pid_of(err: Exception | None) -> int | None:
    match = _PID_RE.search(str(err)) if err else None
    return int(match.group(1)) if match else None


def _detach(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):
        con.execute(sql.use("memory"))
    con.execute(sql.detach(ALIAS))


@contextlib.contextmanager
def atomic(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN; COMMIT if the block succeeds, else ROLLBACK and re-raise the block's own error."""
    cur.execute(sql.BEGIN)
    try:
        yield
        cur.execute(sql.COMMIT)
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed ROLLBACK must not hide the cause
            cur.execute(sql.ROLLBACK)
        raise


class Catalog:
    """A catalog file. Holds no connection: each read or write takes one for as long as it runs.

    Read with :meth:`query_df` / :meth:`query_rows` / :meth:`scalar` or, for several
    statements on one snapshot, :meth:`read`. Write only through :meth:`transaction`: it is the
    one write path, runs in one transaction and bumps ``data_version`` so caches keyed on it
    see the change.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False,
                 role: str = "cli", url: str | None = None, wait: float | None = None) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.role = role
        self.url = url
        self.wait = wait
        self._shared = _shared(self.path)

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, read_only: bool = False,
             role: str = "cli", url: str | None = None, wait: float | None = None) -> Catalog:
        """The catalog at ``path``, created and migrated if needed (unless ``read_only``).

        Raises :class:`CatalogBusyError` if another process keeps it busy for longer than
        ``wait`` seconds, :class:`SchemaVersionError` if the file is from a newer al-explorer.
        """
        p = resolve_catalog_path(path)
        if not p.exists():
            if read_only:
                raise CatalogError(f"The catalog {p} does not exist. Run `al-explorer demo` or "
                                   "`al-explorer ingest ...` to create it.")
            p.parent.mkdir(parents=True, exist_ok=True)
        cat = cls(p, read_only=read_only, role=role, url=url, wait=wait)
        cat.migrate()
        return cat

    def close(self) -> None:
        """Let go of this process's lingering read connection now, if no one is using it."""
        with self._shared.cond:
            if self._shared.readers == 0:
                self._shared._close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _deadline(self, default: float) -> float:
        return time.monotonic() + (self.wait if self.wait is not None else default)

    # ---------------------------------------------------------------- migrations
    def schema_version(self, cur: duckdb.DuckDBPyConnection | None = None) -> int:
        if cur is None:
            if not self.path.exists():
                return 0
            with self.read() as c:
                return self.schema_version(c)
        if cur.execute(sql.HAS_SCHEMA_VERSION).fetchone()[0] == 0:
            return 0
        return int(cur.execute(sql.CURRENT_SCHEMA_VERSION).fetchone()[0])

    def migrate(self, target: int | None = None) -> None:
        """Apply pending migrations up to ``target`` (default: latest), one transaction each."""
        target = sql.LATEST_SCHEMA_VERSION if target is None else target
        current = self.schema_version()
        self._check_not_newer(current)
        if current >= target:
            return
        if self.read_only:
            raise CatalogError(
                f"The catalog {self.path} has schema version {current} and needs upgrading to "
                f"{target}; open it once without --read-only to upgrade it.")
        with self._write_connection("upgrade the catalog schema", create=True) as cur:
            current = self.schema_version(cur)  # re-read under the lock: another may have done it
            self._check_not_newer(current)
            for version, description, statements in sql.MIGRATIONS:
                if current < version <= target:
                    with atomic(cur):
                        cur.execute(sql.CREATE_SCHEMA_VERSION)
                        for statement in statements:
                            statement(cur) if callable(statement) else cur.execute(statement)
                        cur.execute(sql.RECORD_MIGRATION, [version, description, __version__])

    def _check_not_newer(self, current: int) -> None:
        if current > sql.LATEST_SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The catalog {self.path} has schema version {current}, written by a newer "
                f"al-explorer; this one ({__version__}) knows up to version "
                f"{sql.LATEST_SCHEMA_VERSION}. Upgrade al-explorer to open it.")

    # ---------------------------------------------------------------- reading
    @contextlib.contextmanager
    def read(self, con: duckdb.DuckDBPyConnection | None = None
             ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one unit of read work (results are fetched inside the block).

        With ``con`` (a private connection from :func:`new_connection`), the catalog is attached
        to it read-only for the block instead, so staged tables there can be joined with it.
        """
        deadline = self._deadline(READ_WAIT_S)
        with _holding(self._shared.path, "read"):
            yield from self._read(deadline, con)

    def _read(self, deadline: float, con: duckdb.DuckDBPyConnection | None
              ) -> Iterator[duckdb.DuckDBPyConnection]:
        if con is None:
            cur = self._shared.acquire_read(deadline)
            try:
                yield cur
            finally:
                with contextlib.suppress(duckdb.Error):
                    cur.close()
                self._shared.release_read()
            return
        self._shared.join_read(deadline)
        try:
            _attach(self.path, read_only=True, deadline=deadline, con=con)
            try:
                yield con
            finally:
                _detach(con)
        finally:
            self._shared.release_read()

    def query_df(self, query: sql.Query | str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a read query and fetch it fully as a DataFrame."""
        text, bound = (query, params or []) if isinstance(query, str) else query
        with self.read() as cur:
            return cur.execute(text, bound).df()

    def query_rows(self, query: sql.Query | str, params: list[Any] | None = None) -> list[tuple]:
        text, bound = (query, params or []) if isinstance(query, str) else query
        with self.read() as cur:
            return cur.execute(text, bound).fetchall()

    def scalar(self, query: sql.Query | str, params: list[Any] | None = None) -> Any:
        rows = self.query_rows(query, params)
        return rows[0][0] if rows else None

    def data_version(self) -> int:
        """A counter bumped by every committed write; key caches on it."""
        return int(self.scalar(sql.DATA_VERSION))

    def metadata_fields(self, cur: duckdb.DuckDBPyConnection | None = None) -> dict[str, str]:
        """User metadata fields in order of addition: ``{name: duckdb type}``."""
        if cur is not None:
            return dict(cur.execute(*sql.metadata_fields()).fetchall())
        return dict(self.query_rows(sql.metadata_fields()))

    # ---------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _write_connection(self, what: str, con: duckdb.DuckDBPyConnection | None = None,
                          create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog attached for writing, for this block only, after the writer lock."""
        if self.read_only:
            raise CatalogError(f"The catalog {self.path} is open read-only; this write "
                               f"({what}) needs a catalog opened for writing.")
        deadline = self._deadline(WRITE_WAIT_S)
        lock = _WriterLock(self.path)
        record = {"pid": os.getpid(), "role": self.role, "what": what, "since": time.time(),
                  "url": self.url, "host": socket.gethostname(), "al_explorer": __version__}
        if not create and not self.path.exists():
            raise CatalogError(f"The catalog {self.path} no longer exists; nothing was written.")
        with _holding(self._shared.path, "write"), self._shared.writing_slot(deadline):
            lock.acquire(record, deadline, self.path)
            try:
                own = con is None
                con = _attach(self.path, read_only=False, deadline=deadline, con=con)
                try:
                    yield con
                except BaseException:
                    with contextlib.suppress(duckdb.Error):  # never hide the block's own error
                        con.close() if own else _detach(con)
                    raise
                con.close() if own else _detach(con)
            finally:
                lock.release()

    @contextlib.contextmanager
    def transaction(self, what: str = "a write", con: duckdb.DuckDBPyConnection | None = None
                    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one write path: take the file, BEGIN, yield, bump data_version, COMMIT, let go.

        ``what`` says what the write does (shown to anyone who must wait for it). Pass a private
        connection ``con`` whose staged tables the write reads. Validate and stage before: the
        catalog is held only for this block. Re-read inside it whatever the write depends on.
        """
        with self._write_connection(what, con) as cur, atomic(cur):
            yield cur
            cur.execute(sql.BUMP_DATA_VERSION)


def snapshot(cat: Catalog) -> dict[str, pd.DataFrame]:
    """Every base table's rows in a stable order: compare two snapshots to prove nothing changed."""
    tables = [r[0] for r in cat.query_rows(sql.table_names())]
    return {t: cat.query_df(sql.select_all_ordered(t)) for t in tables}
