"""`al-explorer report`: the JSON keys and numbers equal the library's and scikit-learn's; the text
summary shows the same numbers; unknown runs and splits fail clearly with nothing printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm
from test_diagnostics import ABC, Spec, build, import_run, raw

from al_core import diagnostics as dg
from al_core.cli import main
from al_core.db.catalog import Catalog

KEYS = {"run", "n", "accuracy", "balanced_accuracy", "log_loss", "top2_accuracy", "ece", "macro",
        "weighted", "classes", "confusion", "per_class", "worst_slices", "label_issues"}


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    cat, manifest = build(tmp_path, Spec(ABC, ABC, seed=71, n=500))
    import_run(cat, Spec(ABC, ABC, kind="top1"), list(manifest["sample_id"]),
               manifest["label"].to_numpy(object), np.random.default_rng(72), "other")
    cat.close()
    return cat.path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["report", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


CASES = {
    "all labeled": ([], None, None),
    "split val": (["--split", "val"], "val", None),
    "compare": (["--compare", "other", "--min-n", "10"], None, "other"),
    "top-1 run on test, compared": (["--split", "test", "--compare", "run"], "test", "run"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_json_equals_library_and_sklearn(two_runs: Path, capsys: pytest.CaptureFixture[str],
                                         case: str) -> None:
    args, split, other = CASES[case]
    run = "other" if case.startswith("top-1") else "run"
    status, out, err = _run(capsys, "--run", run, "--catalog", str(two_runs), "--json", *args)
    assert status == 0, err
    rep = json.loads(out)
    assert set(rep) == KEYS | ({"compare"} if other else set())
    cat = Catalog.open(two_runs)
    min_n = 10 if "--min-n" in args else 30
    assert rep == json.loads(json.dumps(dg.report(cat, run, split=split, compare=other, min_n=min_n)))
    rows = raw(cat, run)
    if split:
        rows = rows[rows["split"] == split]
    y, yp = rows["label"], rows["pred_label"]
    assert rep["n"] == len(rows)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, yp), abs=1e-9)
    assert rep["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yp), abs=1e-9)
    assert rep["confusion"] == skm.confusion_matrix(y, yp, labels=rep["classes"]).tolist()
    f1 = skm.f1_score(y, yp, labels=rep["classes"], average=None, zero_division=0)
    assert [rep["per_class"][c]["f1"] for c in rep["classes"]] == pytest.approx(list(f1), abs=1e-9)
    assert rep["macro"]["f1"] == pytest.approx(skm.f1_score(y, yp, average="macro", zero_division=0), abs=1e-9)
    assert (rep["log_loss"] is None) == (run == "other")
    assert all(s["n"] >= min_n for s in rep["worst_slices"])
    if other:
        assert set(rep["compare"]) == {"run", "fixed", "broken", "accuracy_delta"}
        assert rep["compare"]["run"] == other


def test_text_summary_shows_the_same_numbers(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--run", "run", "--catalog", str(two_runs), "--compare", "other")
    assert status == 0
    _, raw_json, _ = _run(capsys, "--run", "run", "--catalog", str(two_runs), "--compare", "other", "--json")
    rep = json.loads(raw_json)
    assert f"accuracy {rep['accuracy']:.4f}" in out
    assert f"log loss {rep['log_loss']:.4f}" in out
    assert f"{rep['n']:,} labeled samples" in out
    assert f"fixed {rep['compare']['fixed']:,}, broken {rep['compare']['broken']:,}" in out
    for name in rep["classes"]:
        assert name in out


@pytest.mark.parametrize("args, message", [
    (["--run", "nope"], "no model run 'nope' in the catalog; known runs: 'other', 'run'"),
    (["--run", "run", "--split", "holdout"], "no split 'holdout' in the catalog; known splits: 'test'"),
    (["--run", "run", "--compare", "nope"], "known runs: 'other', 'run'"),
    (["--run", "run", "--compare", "run"], "names the run itself"),
    (["--run", "run", "--min-n", "0"], "--min-n must be 1 or more"),
])
def test_bad_input_fails_clearly_and_prints_nothing(two_runs: Path, capsys: pytest.CaptureFixture[str],
                                                    args: list[str], message: str) -> None:
    status, out, err = _run(capsys, *args, "--catalog", str(two_runs), "--json")
    assert status == 1
    assert out == ""
    assert message in err and err.startswith("al-explorer: error: ")


def test_missing_catalog_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "--run", "x", "--catalog", str(tmp_path / "none.duckdb"))
    assert status == 1 and out == "" and "does not exist" in err
    assert not (tmp_path / "none.duckdb").exists()


def test_the_installed_command_runs(two_runs: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "al_core", "report", "--run", "run", "--json",
                           "--catalog", str(two_runs)], capture_output=True, text=True, cwd=root,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == KEYS


def test_worst_slices_leave_out_the_slice_that_is_the_whole_split(
        two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = Catalog(two_runs).query_rows("SELECT split FROM samples WHERE label IS NOT NULL "
                                         "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")[0][0]
    status, out, _ = _run(capsys, "--run", "run", "--split", split, "--json", "--min-n", "1",
                          "--catalog", str(two_runs))
    assert status == 0
    rep = json.loads(out)
    assert rep["worst_slices"] and all(s["n"] < rep["n"] for s in rep["worst_slices"])
    assert not any(s["field"] == "split" for s in rep["worst_slices"])
