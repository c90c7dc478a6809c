"""Labels back: export a batch, fill labels the way each provider's export holds them, import,
and the catalog holds exactly those labels with provenance; conflicts kept for review."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import assert_same_content, content
from test_recipes import CLASSES, pool_catalog  # noqa: F401  (fixture)

from al_core import export
from al_core.cli import main
from al_core.db.catalog import Catalog
from al_core.export import labels as back

MAIN = {"label-studio": "batch.json", "labelbox": "rows.json", "cvat": "tasks.xml", "csv": "batch.csv"}


def _export(path: Path, out: Path, fmt: str) -> None:
    assert main(["export", "--catalog", str(path), "--strategy", "entropy", "--budget", "12",
                 "--format", fmt, "--out", str(out)]) == 0


def _answer(sample_id: str) -> str:
    return CLASSES[sum(map(ord, sample_id)) % len(CLASSES)]


def _fill(fmt: str, out: Path, answers: dict[str, str]) -> Path:
    """The provider's own export of the labeled batch (as its documentation shows it)."""
    returned = out.parent / f"returned-{fmt}"
    if fmt == "label-studio":
        tasks = json.loads(out.read_text())
        for n, task in enumerate(tasks):
            task["id"] = n + 1
            task["annotations"] = [{"id": n + 1, "completed_by": {"id": 7, "email": "ann@example.com"},
                                    "was_cancelled": False, "result": [{
                                        "from_name": "label", "to_name": "image", "type": "choices",
                                        "value": {"choices": [answers[task["data"]["sample_id"]]]}}]}]
        returned = returned.with_suffix(".json")
        returned.write_text(json.dumps(tasks))
    elif fmt == "labelbox":
        lines = []
        for row in json.loads(out.read_text()):
            lines.append(json.dumps({
                "data_row": {"id": "ck" + row["global_key"], "global_key": row["global_key"],
                             "row_data": row["row_data"]},
                "projects": {"proj1": {"name": "p", "labels": [{
                    "label_details": {"created_by": "ann@example.com"},
                    "annotations": {"objects": [], "relationships": [], "classifications": [
                        {"name": "label", "value": "label",
                         "radio_answer": {"name": answers[row["global_key"]], "value": "x"}}]}}]}}}))
        returned = returned.with_suffix(".ndjson")
        returned.write_text("\n".join(lines) + "\n")
    elif fmt == "cvat":
        root = ET.fromstring(out.read_text())
        with Catalog.open(out.parent.parent / "catalog.duckdb", read_only=True) as cat:
            by_name = dict(zip(export.get_batch(cat, 1).items["rel_path"], export.get_batch(cat, 1).items["sample_id"],
                               strict=True))
        for im in root.iter("image"):
            for tag in im.findall("tag"):
                im.remove(tag)
            ET.SubElement(im, "tag", {"label": answers[by_name[im.get("name")]], "source": "manual"})
        returned = returned.with_suffix(".xml")
        returned.write_text(ET.tostring(root, encoding="unicode"))
    else:
        returned = returned.with_suffix(".csv")
        with returned.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sample_id", "label", "annotator"])
            for row in csv.DictReader(out.open()):
                w.writerow([row["sample_id"], answers[row["sample_id"]], "ann@example.com"])
    return returned


@pytest.mark.parametrize("fmt", list(MAIN))
def test_round_trip_through_each_provider(pool_catalog: Catalog, fmt: str) -> None:  # noqa: F811
    path = pool_catalog.path
    pool_catalog.close()
    out = path.parent / "out" / MAIN[fmt]
    _export(path, out, fmt)
    with Catalog.open(path, read_only=True) as cat:
        ids = export.get_batch(cat, 1).items["sample_id"].tolist()
    answers = {i: _answer(i) for i in ids}
    returned = _fill(fmt, out, answers)
    assert main(["import-labels", "--catalog", str(path), str(returned)]) == 0
    with Catalog.open(path, read_only=True) as cat:
        now = dict(cat.query_rows("SELECT sample_id, label FROM samples WHERE sample_id IN "
                                  f"({', '.join('?' for _ in ids)})", ids))
        assert now == answers
        rows = cat.query_rows("SELECT sample_id, label, batch_id, annotator, status, source FROM labels "
                              "WHERE source LIKE 'import:%' ORDER BY sample_id")
        assert [(r[0], r[1]) for r in rows] == sorted(answers.items())
        assert {r[2] for r in rows} == {1} and {r[4] for r in rows} == {"current"}
        assert {r[3] for r in rows} == ({None} if fmt == "cvat" else {"ann@example.com"})
        assert all(r[5].startswith(f"import:{fmt}:") for r in rows)
        assert export.get_batch(cat, 1).status == "labeled"
        before = content(cat)
    assert main(["import-labels", "--catalog", str(path), str(returned)]) == 0  # again: nothing changes
    with Catalog.open(path, read_only=True) as cat:
        assert_same_content(before, content(cat))


def test_a_disagreeing_label_is_a_conflict_until_accepted(pool_catalog: Catalog, tmp_path: Path,  # noqa: F811
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    labeled = pool_catalog.query_rows("SELECT sample_id, label FROM samples WHERE label IS NOT NULL "
                                      "ORDER BY sample_id LIMIT 2")
    (a, a_label), (b, b_label) = labeled
    other = {a: next(c for c in CLASSES if c != a_label), b: next(c for c in CLASSES if c != b_label)}
    file = tmp_path / "back.csv"
    file.write_text(f"sample_id,label\n{a},{other[a]}\n{b},{other[b]}\n")
    result = back.import_labels(pool_catalog, file)
    assert (result.applied, result.conflicts) == (0, 2)
    assert dict(pool_catalog.query_rows("SELECT sample_id, label FROM samples WHERE sample_id IN (?, ?)",
                                        [a, b])) == {a: a_label, b: b_label}  # never silently overwritten
    pending = back.conflicts(pool_catalog)
    assert pending[["sample_id", "current", "proposed"]].values.tolist() == [[a, a_label, other[a]], [b, b_label, other[b]]]
    assert back.import_labels(pool_catalog, file).conflicts == 0  # re-import: the same conflicts, not twice
    assert len(back.conflicts(pool_catalog)) == 2
    back.resolve_conflict(pool_catalog, int(pending["label_seq"][0]), accept=True)
    back.resolve_conflict(pool_catalog, int(pending["label_seq"][1]), accept=False)
    assert dict(pool_catalog.query_rows("SELECT sample_id, label FROM samples WHERE sample_id IN (?, ?)",
                                        [a, b])) == {a: other[a], b: b_label}
    assert back.conflicts(pool_catalog).empty
    file.write_text(f"sample_id,label\n{b},{other[b]}\n")
    assert back.import_labels(pool_catalog, file, on_conflict="replace").replaced == 1
    assert pool_catalog.query_rows("SELECT label FROM samples WHERE sample_id = ?", [b]) == [(other[b],)]


BAD = [
    ("sample_id,label\ns0001,ant\nnobody,bee\n", "back.csv", "line 3: 'nobody'"),
    ("sample_id,label\ns0001,wasp\n", "back.csv", "line 2: 'wasp'"),
    ("id,label\nx,ant\n", "back.csv", "needs columns sample_id and label"),
    ('[{"data": {"image": "x.png"}, "annotations": []}]', "back.json", "task 0: has no data.sample_id"),
    ('{"data_row": {"id": "x"}}\n', "back.ndjson", "line 1: has no data_row.global_key"),
    ('<annotations><image id="0" name="ghost.png"><tag label="ant"/></image></annotations>', "back.xml",
     "image 0 (ghost.png): is not in any exported batch"),
    ("[not json", "back.json", "not valid JSON"),
]


@pytest.mark.parametrize(("text", "name", "message"), BAD)
def test_bad_label_files_change_nothing(pool_catalog: Catalog, tmp_path: Path, text: str, name: str,  # noqa: F811
                                        message: str) -> None:
    file = tmp_path / name
    file.write_text(text)
    before = content(pool_catalog)
    with pytest.raises(export.ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        back.import_labels(pool_catalog, file)
    assert_same_content(before, content(pool_catalog))


def test_conflicts_through_the_cli(pool_catalog: Catalog, tmp_path: Path,  # noqa: F811
                                   capsys: pytest.CaptureFixture[str]) -> None:
    sid, label = pool_catalog.query_rows("SELECT sample_id, label FROM samples WHERE label IS NOT NULL "
                                         "ORDER BY sample_id LIMIT 1")[0]
    other = next(c for c in CLASSES if c != label)
    file = tmp_path / "back.csv"
    file.write_text(f"sample_id,label,annotator\n{sid},{other},bo\n")
    path = str(pool_catalog.path)
    pool_catalog.close()
    assert main(["import-labels", "--catalog", path, str(file)]) == 0
    assert "1 disagreeing with the current label kept for review" in capsys.readouterr().out
    assert main(["conflicts", "--catalog", path, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["sample_id"], row["current"], row["proposed"], row["annotator"]) == (sid, label, other, "bo")
    assert main(["conflicts", "--catalog", path, "--accept", str(row["label_seq"])]) == 0
    assert "no label conflicts" in capsys.readouterr().out
    with Catalog.open(path, read_only=True) as cat:
        assert cat.query_rows("SELECT label FROM samples WHERE sample_id = ?", [sid]) == [(other,)]
    assert main(["conflicts", "--catalog", path, "--reject", "999999"]) == 1
    assert "no pending conflict 999999" in capsys.readouterr().err
