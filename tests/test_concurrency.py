"""The app and the CLI share one catalog: real processes read and write it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_manifest

from al_core.cli import main
from al_core.db.catalog import Catalog, lock_file, read_writer
from al_core.errors import CatalogBusyError
from al_core.ingest import ingest_manifest

# A process that holds a read (or the write lock) until told to let go on stdin.
READER = textwrap.dedent("""
    import sys
    from al_core.db.catalog import Catalog
    cat = Catalog(__import__("pathlib").Path(sys.argv[1]), role="app")
    with cat.read() as cur:
        print(cur.execute("SELECT count(*) FROM samples").fetchone()[0], flush=True)
        sys.stdin.readline()
""")
WRITER = textwrap.dedent("""
    import sys
    from al_core.db.catalog import Catalog
    cat = Catalog(__import__("pathlib").Path(sys.argv[1]), role="app", url="http://127.0.0.1:8599")
    with cat.transaction("tag 3 samples") as cur:
        cur.execute("INSERT INTO tags VALUES ('a', 'held', now()::TIMESTAMP)")
        print("writing", flush=True)
        if sys.stdin.readline().strip() == "fail":
            raise SystemExit(3)
""")


def _spawn(script: str, path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc


def _finish(proc: subprocess.Popen, line: str = "") -> int:
    if proc.poll() is None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    return proc.wait(timeout=60)


@pytest.fixture
def filled(tmp_path: Path, manifest_frame: pd.DataFrame) -> Path:
    path = tmp_path / "shared.duckdb"
    with Catalog.open(path) as cat:
        ingest_manifest(cat, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    return path


@pytest.fixture
def reader(filled: Path) -> Iterator[subprocess.Popen]:
    proc = _spawn(READER, filled)
    assert proc.stdout.readline().strip() == "4"
    yield proc
    _finish(proc)


@pytest.fixture
def writer(filled: Path) -> Iterator[subprocess.Popen]:
    proc = _spawn(WRITER, filled)
    assert proc.stdout.readline().strip() == "writing"
    yield proc
    _finish(proc)


def test_a_write_waits_for_a_reader_in_another_process_then_succeeds(
        filled: Path, reader: subprocess.Popen, tmp_path: Path) -> None:
    manifest = write_manifest(pd.DataFrame({"path": ["images/u1.png"], "sample_id": ["e"]}),
                              tmp_path / "extra.csv")
    released_at: list[float] = []

    def let_go_soon() -> None:
        time.sleep(1.0)
        released_at.append(time.monotonic())  # before the reader is told: no race with the write
        _finish(reader)

    threading.Thread(target=let_go_soon, daemon=True).start()
    cat = Catalog.open(filled)
    result = ingest_manifest(cat, manifest, progress=False)
    done_at = time.monotonic()
    assert released_at and done_at > released_at[0]  # it could only write once the reader let go
    assert result.new_samples == 1
    assert cat.scalar("SELECT count(*) FROM samples") == 5


# A process that reads again and again, as an app with busy users does.
BUSY_READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from al_core.db.catalog import Catalog
    cat = Catalog(Path(sys.argv[1]), role="app")
    print("reading", flush=True)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        cat.scalar("SELECT count(*) FROM samples")
        time.sleep(0.05)
""")


def test_a_process_that_keeps_reading_does_not_starve_a_writer(filled: Path) -> None:
    busy = _spawn(BUSY_READER, filled)
    try:
        assert busy.stdout.readline().strip() == "reading"
        time.sleep(0.5)
        t0 = time.monotonic()
        with Catalog(filled, wait=10).transaction("tag while the app reads") as cur:
            cur.execute("INSERT INTO tags VALUES ('a', 'busy', now()::TIMESTAMP)")
        assert time.monotonic() - t0 < 10
        assert busy.poll() is None  # the reader kept going: it waited, it did not fail
    finally:
        busy.kill()
        busy.wait(timeout=30)
    assert Catalog(filled).scalar("SELECT count(*) FROM tags") == 1


def test_a_read_inside_a_write_of_the_same_thread_is_refused_at_once(filled: Path) -> None:
    cat = Catalog(filled, wait=30)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="would wait for itself"), cat.transaction("outer"):
        cat.scalar("SELECT 1")
    with pytest.raises(RuntimeError, match="would wait for itself"), cat.read():
        with cat.transaction("inner"):
            pass
    assert time.monotonic() - t0 < 5


def test_a_write_that_cannot_wait_longer_names_what_holds_the_catalog(
        filled: Path, reader: subprocess.Popen) -> None:
    cat = Catalog(filled, wait=0.5)
    with pytest.raises(CatalogBusyError, match=rf"catalog busy: .*pid {reader.pid}") as err:
        with cat.transaction("tag"):
            pass
    assert err.value.pid == reader.pid
    assert not read_writer(filled)  # a writer that gave up leaves no record behind


def test_a_reader_waits_for_a_writer_and_sees_its_commit(filled: Path, writer: subprocess.Popen) -> None:
    record = read_writer(filled)
    assert record["what"] == "tag 3 samples" and record["pid"] == writer.pid
    impatient = Catalog(filled, wait=0.3)
    with pytest.raises(CatalogBusyError) as err:
        impatient.scalar("SELECT count(*) FROM tags")
    message = str(err.value)
    assert "tag 3 samples by the al-explorer app at http://127.0.0.1:8599" in message
    assert f"(pid {writer.pid}) since " in message
    assert _finish(writer) == 0
    assert Catalog(filled).scalar("SELECT count(*) FROM tags") == 1  # now readable, committed


def test_a_writer_killed_mid_transaction_leaves_the_catalog_as_it_was(
        filled: Path, writer: subprocess.Popen) -> None:
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    cat = Catalog.open(filled, wait=5)
    assert cat.scalar("SELECT count(*) FROM tags") == 0
    assert cat.scalar("SELECT count(*) FROM samples") == 4
    with cat.transaction("after the crash") as cur:  # the OS dropped the dead writer's lock
        cur.execute("INSERT INTO tags VALUES ('a', 'ok', now()::TIMESTAMP)")
    assert cat.scalar("SELECT count(*) FROM tags") == 1


def test_a_failed_write_rolls_back_and_frees_the_catalog(filled: Path, writer: subprocess.Popen) -> None:
    assert _finish(writer, "fail") == 3
    cat = Catalog(filled, wait=5)
    assert cat.scalar("SELECT count(*) FROM tags") == 0
    assert lock_file(filled).read_text() == ""


def test_cli_ingest_waits_for_a_reading_app_and_succeeds(
        filled: Path, reader: subprocess.Popen, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    threading.Timer(1.0, _finish, args=(reader,)).start()
    manifest = write_manifest(pd.DataFrame({"path": ["images/u1.png"], "sample_id": ["e"]}),
                              tmp_path / "extra.csv")
    assert main(["ingest", str(manifest), "--catalog", str(filled), "--no-progress"]) == 0
    assert "1 new samples" in capsys.readouterr().out


def test_many_readers_in_several_processes_share_the_catalog(filled: Path) -> None:
    procs = [_spawn(READER, filled) for _ in range(3)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["4", "4", "4"]
        assert Catalog(filled).scalar("SELECT count(*) FROM samples") == 4
    finally:
        for p in procs:
            _finish(p)


def test_threads_of_one_process_read_while_another_thread_writes(filled: Path) -> None:
    cat = Catalog(filled)
    errors: list[BaseException] = []
    seen: list[list[int]] = [[], [], []]

    def read_many(counts: list[int]) -> None:
        try:
            for _ in range(30):
                counts.append(int(cat.scalar("SELECT count(*) FROM tags")))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=read_many, args=(counts,)) for counts in seen]
    for t in threads:
        t.start()
    for i in range(10):
        with cat.transaction("tag") as cur:
            cur.execute("INSERT INTO tags VALUES (?, 'x', now()::TIMESTAMP)", [f"s{i}"])
    for t in threads:
        t.join()
    assert not errors
    for counts in seen:  # each reader sees commits in order, never a partial state
        assert counts == sorted(counts) and all(0 <= c <= 10 for c in counts)
    assert cat.scalar("SELECT count(*) FROM tags") == 10
