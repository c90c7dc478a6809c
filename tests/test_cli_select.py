"""`al-explorer select`: the app's URL filter from the command line (list, count, tag, batch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from al_core.cli import main
from al_core.db.catalog import Catalog

NIGHT_WRONG = ("time_of_day = 'night' AND label IS NOT NULL AND pred_label IS NOT NULL "
               "AND label <> pred_label")


@pytest.fixture
def db(demo_build: tuple[Path, object], tmp_path: Path) -> str:
    path = tmp_path / "c.duckdb"
    shutil.copy(demo_build[0], path)
    return str(path)


def _ids(db: str, where: str) -> list[str]:
    return [r[0] for r in Catalog(db).query_rows(f"SELECT sample_id FROM samples WHERE {where} ORDER BY 1")]


@pytest.mark.parametrize(("query", "where"), [
    ("", "TRUE"),
    ("f.time_of_day=night&outcome=wrong", NIGHT_WRONG),
    ("http://127.0.0.1:8501/samples?f.time_of_day=night&outcome=wrong&page=2", NIGHT_WRONG),
    ("?labeled=unlabeled&conf=0.0..0.6", "label IS NULL AND pred_confidence <= 0.6"),
    ("split=train&split=val", "split IN ('train', 'val')"),
    ("outcome=correct&f.weather=fog", "weather = 'fog' AND label = pred_label"),
])
def test_select_lists_and_counts_what_the_app_url_selects(db: str, query: str, where: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    expected = _ids(db, where)
    assert expected, "a case that selects nothing would prove little"
    assert main(["select", query, "--catalog", db]) == 0
    assert capsys.readouterr().out.split() == expected
    assert main(["select", query, "--catalog", db, "--count"]) == 0
    assert capsys.readouterr().out.strip() == str(len(expected))
    assert main(["select", query, "--catalog", db, "--limit", "3"]) == 0
    assert capsys.readouterr().out.split() == expected[:3]


def test_select_names_what_it_ignored(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "bogus=1&run=no-such-run&f.nofield=x&drill=%7Bjunk", "--catalog", db,
                 "--count"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(len(_ids(db, "TRUE")))
    for key in ("'bogus'", "'f.nofield'", "run=no-such-run (no such run)", "drill (malformed)"):
        assert key in err, err


def test_select_tags_batches_and_undoes(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = _ids(db, NIGHT_WRONG)
    query = "f.time_of_day=night&outcome=wrong"
    assert main(["select", query, "--catalog", db, "--tag", "night review"]) == 0
    assert capsys.readouterr().out.strip() == f"added tag 'night review' to {len(wrong)} samples"
    assert main(["select", "tag=night+review", "--catalog", db]) == 0
    assert capsys.readouterr().out.split() == wrong
    assert main(["select", "tag=night review", "--catalog", db, "--add-to-batch"]) == 0
    assert capsys.readouterr().out.strip() == f"added {len(wrong)} samples to the next batch (now {len(wrong)})"
    assert main(["select", "batch=in", "--catalog", db]) == 0
    assert capsys.readouterr().out.split() == wrong
    assert main(["select", "--undo-tag", "--catalog", db]) == 0
    assert capsys.readouterr().out.strip() == f"undone: added tag 'night review' to {len(wrong)} samples"
    assert _ids(db, "sample_id IN (SELECT sample_id FROM tags)") == []
    assert main(["select", "--undo-tag", "--catalog", db]) == 1
    assert "no tag action to undo" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--tag", "  "], "at least one visible character"),
    (["--limit", "-1"], "--limit must be 0 or more"),
])
def test_select_refuses_bad_input_with_a_message(db: str, args: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    version = Catalog(db).data_version()
    assert main(["select", "", "--catalog", db, *args]) == 1
    assert message in capsys.readouterr().err
    assert Catalog(db).data_version() == version


def test_select_refuses_a_missing_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "", "--catalog", str(tmp_path / "nope.duckdb")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope.duckdb").exists()
