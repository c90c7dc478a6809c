"""The `al-explorer` command: ingest, import-predictions and info, with clean errors."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_manifest

from al_core.cli import main


def test_ingest_predictions_info_round_trip(tmp_path: Path, manifest_frame: pd.DataFrame,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.duckdb")
    manifest = write_manifest(manifest_frame, tmp_path / "m.csv")
    assert main(["ingest", str(manifest), "--catalog", db, "--no-progress"]) == 0
    assert "4 new samples" in capsys.readouterr().out
    preds = write_manifest(pd.DataFrame({"sample_id": ["a", "b"], "prob_cat": [0.6, 0.1],
                                         "prob_dog": [0.4, 0.9]}), tmp_path / "p.csv")
    assert main(["import-predictions", str(preds), "--run", "r1", "--catalog", db]) == 0
    assert "2 new or changed" in capsys.readouterr().out
    assert main(["info", "--catalog", db, "--read-only"]) == 0
    out = capsys.readouterr().out
    assert "samples         4" in out and "model_runs      1" in out and "captured_at (TIMESTAMP)" in out


def test_catalog_from_environment(tmp_path: Path, image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(db))
    assert main(["ingest", str(image_dir), "--no-progress"]) == 0
    assert db.exists()


def test_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\n")
    proc = subprocess.run([sys.executable, "-m", "al_core", "ingest", str(bad), "--catalog",
                           str(tmp_path / "c.duckdb")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "bad.csv: has no data rows" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`al-explorer info | head -1`: no BrokenPipeError traceback, no "Exception ignored"."""
    images = tmp_path / "images"
    images.mkdir()
    # ~90 kB of info output: more than a pipe buffer (64 kB) and the reader's first read together
    fields = {f"field_{i:03d}_{'x' * 100}": [i] for i in range(700)}
    manifest = write_manifest(pd.DataFrame({"path": ["images/a.png"], "label": ["cat"], **fields}),
                              tmp_path / "m.csv")
    db = str(tmp_path / "c.duckdb")
    assert main(["ingest", str(manifest), "--catalog", db, "--no-probe", "--no-progress"]) == 0

    read_end, write_end = os.pipe()
    if sys.platform.startswith("linux"):  # a one-page pipe: the writer blocks all the sooner
        import fcntl
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    with open(read_end, "rb") as reader:
        proc = subprocess.Popen([sys.executable, "-m", "al_core", "info", "--catalog", db],
                                stdout=write_end, stderr=subprocess.PIPE)
        os.close(write_end)
        first = reader.readline()
    # the reader has gone with most of the output unread
    _, err = proc.communicate(timeout=120)
    assert first.startswith(b"catalog "), first
    assert err.decode() == ""
    assert proc.returncode == 141


def test_info_on_a_mistyped_path_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope" / "none.duckdb"
    assert main(["info", "--catalog", str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()
