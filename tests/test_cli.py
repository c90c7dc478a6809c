"""The `al-explorer` command: ingest, import-predictions and info, with clean errors."""

from __future__ import annotations

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
