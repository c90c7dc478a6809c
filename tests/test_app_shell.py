"""The app shell (pages/_ui/shell.py): one catalog handle per run, busy and broken catalogs.

Each test runs a tiny page through ``run_page`` with AppTest, on a catalog of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit
from conftest import write_manifest
from streamlit.testing.v1 import AppTest

from al_core.db.catalog import Catalog, read_writer
from al_core.ingest import ingest_manifest
from pages._ui import shell

TIMEOUT = 30  # the shell imports al_core, which imports torch

#: Holds the writer lock (in its own process) until told to commit on stdin. What it does is
#: named with markdown and HTML characters: the page must show them as they are.
WHAT = "tag **3** `samples` <b>now</b>"
WRITER = textwrap.dedent(f"""
    import sys
    from pathlib import Path
    from al_core.db.catalog import Catalog
    cat = Catalog(Path(sys.argv[1]), role="app", url="http://127.0.0.1:8599")
    with cat.transaction({WHAT!r}) as cur:
        cur.execute("INSERT INTO tags VALUES ('a', 'held', now()::TIMESTAMP)")
        print("writing", flush=True)
        sys.stdin.readline()
""")


def page_script() -> None:
    """A page that asks the shell for the catalog twice in one run, as pages and helpers do."""
    import time

    import streamlit as st

    from pages._ui import shell

    class Page:
        def run(self) -> None:
            st.session_state["attempts"] = st.session_state.get("attempts", 0) + 1
            st.session_state["asked_at"] = time.monotonic()
            first = shell.catalog()
            second = shell.catalog()
            tags = first.scalar("SELECT count(*) FROM tags")
            st.write(f"done: same handle {first is second}, {tags} tags")

    shell.run_page(Page())


@pytest.fixture
def app_catalog(tmp_path: Path, manifest_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "shell.duckdb"
    with Catalog.open(path) as cat:
        ingest_manifest(cat, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(path))
    return path


@pytest.fixture
def writer(app_catalog: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(app_catalog)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    yield proc
    _release(proc)


def _release(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
    assert proc.wait(timeout=60) == 0


def _markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def test_two_catalog_calls_in_one_run_render_once(app_catalog: Path) -> None:
    at = AppTest.from_function(page_script, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert _markdown(at) == ["done: same handle True, 0 tags"]
    assert at.session_state["attempts"] == 1  # one run of the page: no rerun, let alone forever
    at.run()
    assert not at.exception and at.session_state["attempts"] == 2
    assert _markdown(at) == ["done: same handle True, 0 tags"]


def test_a_busy_catalog_is_shown_as_such_then_retried(app_catalog: Path, writer: subprocess.Popen,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """While another process writes, the page says who writes what (as plain text) and asks for a rerun."""
    reruns: list[float] = []
    monkeypatch.setattr(shell, "APP_WAIT_S", 0.5)
    monkeypatch.setattr(shell, "BUSY_RETRY_S", 0.3)
    monkeypatch.setattr(streamlit, "rerun", lambda *a, **k: reruns.append(time.monotonic()))
    at = AppTest.from_function(page_script, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["The catalog is busy; this page retries by itself in a moment."]
    assert len(at.text) == 1
    message = at.text[0].value
    assert f"{WHAT} by the al-explorer app at http://127.0.0.1:8599 (pid {writer.pid}) since " in message
    assert str(app_catalog) in message
    assert not _markdown(at)  # shown as text, and the page did not go on
    assert len(reruns) == 1  # it waited for the catalog, paused, then asked for a rerun
    assert reruns[0] - at.session_state["asked_at"] >= 0.5 + 0.3
    assert read_writer(app_catalog)["pid"] == writer.pid  # the writer still holds it

    _release(writer)
    at.run()
    assert not at.exception and not at.warning and not at.text
    assert _markdown(at) == ["done: same handle True, 1 tags"]  # it sees the write once committed
    assert len(reruns) == 1


def test_a_busy_catalog_is_retried_until_the_writer_is_done(app_catalog: Path, writer: subprocess.Popen,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With Streamlit's own rerun: the page retries by itself and shows the data once the write commits."""
    monkeypatch.setattr(shell, "APP_WAIT_S", 0.3)
    monkeypatch.setattr(shell, "BUSY_RETRY_S", 0.2)
    released_at: list[float] = []

    def release_later() -> None:
        released_at.append(time.monotonic())  # from here on the writer may commit
        _release(writer)

    timer = threading.Timer(2.0, release_later)
    timer.start()
    try:
        at = AppTest.from_function(page_script, default_timeout=TIMEOUT).run()
        finished_at = time.monotonic()
    finally:
        timer.join()
    assert released_at and finished_at > released_at[0]  # it could only finish after the writer let go
    assert not at.exception and not at.warning and not at.text
    assert _markdown(at) == ["done: same handle True, 1 tags"]
    assert at.session_state["attempts"] >= 3  # busy runs of the page, then the one that worked


def test_a_catalog_that_cannot_be_opened_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "not *a* catalog.duckdb"
    bad.write_text("this is not a DuckDB file")
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(bad))
    at = AppTest.from_function(page_script, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The catalog cannot be opened."]
    assert len(at.text) == 1
    assert at.text[0].value.startswith(f"Cannot open the catalog {bad}: ")  # as text: its name holds *s
    assert "not a valid DuckDB database file" in at.text[0].value
    assert not _markdown(at)  # the page stopped: nothing after the error
    assert at.session_state["attempts"] == 1
