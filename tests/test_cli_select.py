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


@pytest.mark.parametrize(("query", "named"), [
    ("bogus=1", "bogus (not a filter key)"),
    ("run=no-such-run", "run=no-such-run (no such run)"),
    ("f.nofield=x", "f.nofield (not a filter key)"),
    ("drill=%7Bjunk", "drill (malformed)"),
    ("conf=junk", "conf=junk (not a valid value)"),
    ("conf=0.7..0.2", "conf=0.7..0.2 (not a valid value)"),
    ("f.brightness=abc", "f.brightness=abc (not a valid value)"),
    ("labeled=unlabled", "labeled=unlabled (not a valid value)"),
    ("batch=inn", "batch=inn (not a valid value)"),
    ("outcome=worng", "outcome=worng (not a valid value)"),
])
def test_select_names_what_it_ignored_and_will_not_write_wider(db: str, query: str, named: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", query, "--catalog", db, "--count"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(len(_ids(db, "TRUE")))  # what the filter kept: nothing
    assert f"ignored {named}" in err, err
    version = Catalog(db).data_version()
    for write in (["--tag", "x"], ["--add-to-batch"]):
        assert main(["select", query, "--catalog", db, *write]) == 1
        assert "nothing was written" in capsys.readouterr().err
    assert Catalog(db).data_version() == version
    assert main(["select", query, "--catalog", db, "--tag", "x", "--force"]) == 0
    assert capsys.readouterr().out.strip() == f"added tag 'x' to {len(_ids(db, 'TRUE')):,} samples"


@pytest.mark.parametrize("query", ["tag=why?", "f.weather=fog&conf=0..0.6", "split=train&split=val",
                                   "f.brightness=0.1..0.4", "labeled=labeled&outcome=correct"])
def test_valid_queries_ignore_nothing(db: str, query: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", query, "--catalog", db, "--count"]) == 0
    assert capsys.readouterr().err == ""


def test_a_next_batch_link_selects_within_the_batch(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "split=val", "--catalog", db, "--add-to-batch"]) == 0
    capsys.readouterr()
    assert main(["select", "http://127.0.0.1:8501/batch?labeled=labeled", "--catalog", db]) == 0
    assert capsys.readouterr().out.split() == _ids(db, "split = 'val' AND label IS NOT NULL")


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
    (["--count", "--tag", "x"], "only go with listing"),
    (["--undo-tag"], "takes no QUERY"),
])
def test_select_refuses_bad_input_with_a_message(db: str, args: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    version = Catalog(db).data_version()
    assert main(["select", "split=train" if "--undo-tag" in args else "", "--catalog", db, *args]) == 1
    assert message in capsys.readouterr().err
    assert Catalog(db).data_version() == version


def test_select_refuses_a_missing_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "", "--catalog", str(tmp_path / "nope.duckdb")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope.duckdb").exists()
