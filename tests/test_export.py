"""Export batches through the CLI: every format's documented keys, byte-identical re-exports,
image references, batch history and statuses."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_recipes import CLASSES, pool_catalog  # noqa: F401  (fixture)

from al_core import export
from al_core.cli import main
from al_core.db.catalog import Catalog

MAIN = {"label-studio": "batch.json", "labelbox": "rows.json", "cvat": "tasks.xml", "coco": "coco.json",
        "csv": "batch.csv", "jsonl": "batch.jsonl"}


def _export(cat: Catalog, tmp_path: Path, fmt: str, *extra: str, budget: int = 12) -> Path:
    out = tmp_path / "out" / MAIN[fmt]
    path = str(cat.path)
    cat.close()
    assert main(["export", "--catalog", path, "--strategy", "entropy", "--budget", str(budget),
                 "--format", fmt, "--out", str(out), *extra]) == 0
    return out


def _ids_in(fmt: str, out: Path) -> list[str]:
    """The sample ids an export carries, read the way the provider's format holds them."""
    text = out.read_text(encoding="utf-8")
    if fmt == "label-studio":
        return [t["data"]["sample_id"] for t in json.loads(text)]
    if fmt == "labelbox":
        return [r["global_key"] for r in json.loads(text)]
    if fmt == "coco":
        return [i["sample_id"] for i in json.loads(text)["images"]]
    if fmt == "csv":
        return [r["sample_id"] for r in csv.DictReader(io.StringIO(text))]
    if fmt == "jsonl":
        return [json.loads(line)["sample_id"] for line in text.splitlines()]
    return [el.get("name") for el in ET.fromstring(text).iter("image")]  # cvat: names, mapped in the batch


def test_label_studio_tasks_and_config(pool_catalog: Catalog, tmp_path: Path) -> None:  # noqa: F811
    out = _export(pool_catalog, tmp_path, "label-studio")
    tasks = json.loads(out.read_text())
    assert isinstance(tasks, list) and len(tasks) == 12
    config = ET.fromstring((out.parent / "batch.config.xml").read_text())
    image = config.find("Image")
    choices = config.find("Choices")
    assert image.get("value") == "$image" and choices.get("toName") == image.get("name")
    assert [c.get("value") for c in choices.findall("Choice")] == CLASSES
    for task in tasks:  # Label Studio's import: data holds the $image key; predictions as documented
        assert set(task) <= {"data", "predictions"} and task["data"]["image"].endswith(".png")
        (pred,) = task["predictions"]
        assert {"model_version", "score", "result"} <= set(pred) and pred["model_version"] == "run"
        (res,) = pred["result"]
        assert res["from_name"] == choices.get("name") and res["to_name"] == image.get("name")
        assert res["type"] == "choices" and res["value"]["choices"][0] in CLASSES
        assert 0 <= pred["score"] <= 1


def test_labelbox_rows_and_predictions(pool_catalog: Catalog, tmp_path: Path) -> None:  # noqa: F811
    out = _export(pool_catalog, tmp_path, "labelbox", "--image-prefix", "https://bucket.example/data")
    rows = json.loads(out.read_text())
    assert all({"row_data", "global_key"} <= set(r) for r in rows)
    assert all(r["row_data"].startswith("https://bucket.example/data/images/") for r in rows)
    lines = [json.loads(x) for x in (out.parent / "rows.predictions.ndjson").read_text().splitlines()]
    assert [x["dataRow"]["globalKey"] for x in lines] == [r["global_key"] for r in rows]
    assert len({x["uuid"] for x in lines}) == len(lines)
    assert all(x["name"] == "label" and x["answer"]["name"] in CLASSES for x in lines)


def test_cvat_xml(pool_catalog: Catalog, tmp_path: Path) -> None:  # noqa: F811
    out = _export(pool_catalog, tmp_path, "cvat")
    root = ET.fromstring(out.read_text())
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    assert [n.text for n in root.find("meta/task/labels").iter("name")] == CLASSES
    images = root.findall("image")
    assert [int(i.get("id")) for i in images] == list(range(12))
    for im in images:
        assert {"id", "name", "width", "height"} <= set(im.attrib)
        assert im.find("tag").get("label") in CLASSES
    with Catalog.open(pool_catalog.path, read_only=True) as cat:  # the name → sample_id mapping is recorded
        items = export.get_batch(cat, 1).items
    assert [i.get("name") for i in images] == items["rel_path"].tolist()


@pytest.mark.parametrize("fmt", list(MAIN))
def test_every_format_carries_the_sample_ids_and_re_exports_byte_identically(
        pool_catalog: Catalog, tmp_path: Path, fmt: str) -> None:  # noqa: F811
    out = _export(pool_catalog, tmp_path, fmt)
    with Catalog.open(pool_catalog.path, read_only=True) as cat:
        batch = export.get_batch(cat, 1)
    expected = batch.items["rel_path" if fmt == "cvat" else "sample_id"].tolist()
    assert _ids_in(fmt, out) == expected and len(expected) == 12
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    with Catalog.open(pool_catalog.path) as cat:  # the model changes after the export
        cat.query_rows("SELECT 1")
        with cat.transaction("new predictions") as cur:
            cur.execute("UPDATE predictions SET confidence = 0.01, pred_label = 'ant'")
    again = tmp_path / "again" / MAIN[fmt]
    assert main(["export", "--catalog", str(pool_catalog.path), "--batch-id", "1", "--format", fmt,
                 "--out", str(again)]) == 0
    after = {p.name: p.read_bytes() for p in again.parent.iterdir()}
    assert list(before.values()) == list(after.values())


def test_image_references(pool_catalog: Catalog, tmp_path: Path) -> None:  # noqa: F811
    out = _export(pool_catalog, tmp_path, "jsonl", "--image-prefix", "file://")
    first = json.loads(out.read_text().splitlines()[0])
    assert first["image"].startswith("file:///") and first["image"].endswith(f"images/{first['sample_id']}.png")
    plain = tmp_path / "plain.jsonl"
    assert main(["export", "--catalog", str(pool_catalog.path), "--batch-id", "1", "--format", "jsonl",
                 "--out", str(plain)]) == 0  # the batch keeps its prefix unless told otherwise
    assert plain.read_text() == out.read_text()
    assert main(["export", "--catalog", str(pool_catalog.path), "--batch-id", "1", "--format", "jsonl",
                 "--out", str(plain), "--image-prefix", "s3://b/x/"]) == 0
    assert json.loads(plain.read_text().splitlines()[0])["image"] == f"s3://b/x/images/{first['sample_id']}.png"


def test_batch_history_statuses_and_freed_samples(pool_catalog: Catalog, tmp_path: Path,  # noqa: F811
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    first = _ids_in("csv", _export(pool_catalog, tmp_path, "csv"))
    second = _ids_in("csv", _export(pool_catalog, tmp_path, "csv"))
    assert not set(first) & set(second)  # an exported batch is not offered again
    capsys.readouterr()
    assert main(["batches", "--catalog", str(pool_catalog.path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["batch_id"] for b in listed] == [2, 1]
    assert {"batch_id", "status", "size", "recipe", "format", "created_at"} <= set(listed[0])
    assert listed[0]["size"] == 12 and listed[0]["status"] == "exported" and listed[0]["recipe"] == "entropy 100%"
    assert main(["batches", "--catalog", str(pool_catalog.path), "--mark", "1", "cancelled"]) == 0
    third = _ids_in("csv", _export(pool_catalog, tmp_path, "csv"))
    assert third == first  # cancelling freed them: the same entropy ranking picks them again


BAD = [
    (["--batch-id", "7", "--format", "csv"], "no exported batch 7; batches: none yet"),
    (["--strategy", "entropy", "--format", "csv"], "--budget N is needed"),
    (["--strategy", "entropy", "--budget", "0", "--format", "csv"], "--budget must be at least 1, not 0"),
    (["--recipe", "nope.toml", "--budget", "3", "--format", "csv"], "nope.toml: no such file"),
    (["--strategy", "entropy", "--budget", "3", "--format", "csv", "--run", "other"], "no model run 'other'"),
    (["--strategy", "k-center", "--budget", "3", "--format", "csv"], "needs an embedding set"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_exports_fail_clearly_and_record_nothing(pool_catalog: Catalog, tmp_path: Path,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str],
                                                     args: list[str], message: str) -> None:
    path = str(pool_catalog.path)
    pool_catalog.close()
    assert main(["export", "--catalog", path, "--out", str(tmp_path / "x.csv"), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    with Catalog.open(path, read_only=True) as cat:
        assert export.list_batches(cat).empty


def test_marking_an_unknown_status_is_refused(pool_catalog: Catalog, tmp_path: Path,  # noqa: F811
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _export(pool_catalog, tmp_path, "csv")
    assert main(["batches", "--catalog", str(pool_catalog.path), "--mark", "1", "done"]) == 1
    assert "unknown status 'done'" in capsys.readouterr().err
    with Catalog.open(pool_catalog.path, read_only=True) as cat:
        assert export.get_batch(cat, 1).status == "exported"
        assert np.isfinite(pd.to_numeric(export.get_batch(cat, 1).items["confidence"])).all()
