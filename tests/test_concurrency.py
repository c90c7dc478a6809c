"""The app/CLI concurrency policy: one writer process; others get a clear message, never damage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_manifest

from al_core.cli import main
from al_core.db.catalog import Catalog, owner_file
from al_core.errors import CatalogBusyError

HOLDER = textwrap.dedent("""
    import sys, time
    from al_core.db.catalog import Catalog
    cat = Catalog.open(sys.argv[1], role="app", url="http://127.0.0.1:8599")
    print("ready", flush=True)
    sys.stdin.readline()
    cat.close()
""")


@pytest.fixture
def held_catalog(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A catalog held read-write by another process posing as the app."""
    path = tmp_path / "shared.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield path, proc
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_second_writer_gets_a_message_naming_the_app(held_catalog: tuple[Path, subprocess.Popen]) -> None:
    path, proc = held_catalog
    with pytest.raises(CatalogBusyError) as err:
        Catalog.open(path)
    assert err.value.pid == proc.pid
    assert f"running al-explorer app at http://127.0.0.1:8599 (pid {proc.pid})" in str(err.value)


def test_cli_ingest_while_app_runs_fails_cleanly_and_writes_nothing(
        held_catalog: tuple[Path, subprocess.Popen], manifest_frame: pd.DataFrame, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, proc = held_catalog
    manifest = write_manifest(manifest_frame, tmp_path / "m.csv")
    code = main(["ingest", str(manifest), "--catalog", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"pid {proc.pid}" in err and "Traceback" not in err
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    assert not owner_file(path).exists()
    with Catalog.open(path, read_only=True) as cat:  # intact, and nothing was written
        assert cat.scalar("SELECT count(*) FROM samples") == 0
    assert main(["ingest", str(manifest), "--catalog", str(path), "--no-progress"]) == 0


def test_many_read_only_processes_may_share_a_catalog(tmp_path: Path, manifest_frame: pd.DataFrame) -> None:
    path = tmp_path / "ro.duckdb"
    with Catalog.open(path) as cat:
        from al_core.ingest import ingest_manifest
        ingest_manifest(cat, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    reader = ("import sys; from al_core.db.catalog import Catalog; c = Catalog.open(sys.argv[1], read_only=True); "
              "print(c.scalar('SELECT count(*) FROM samples'), flush=True); sys.stdin.readline()")
    procs = [subprocess.Popen([sys.executable, "-c", reader, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["4", "4"]
        with Catalog.open(path, read_only=True) as mine:
            assert mine.scalar("SELECT count(*) FROM samples") == 4
        with pytest.raises(CatalogBusyError, match="open in another process"):
            Catalog.open(path)  # a writer must wait for the readers
    finally:
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            p.wait(timeout=30)
