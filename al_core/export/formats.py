"""Writers of a batch in the formats labeling providers import; pure functions of the batch's
stored snapshot (so a re-export is byte-identical).

Each writer takes the batch's items (one dict per item, rank order: ``sample_id``, ``image``
(the reference chosen by :func:`image_ref`), ``name`` (path below the import folder), ``part``,
``strategy``, ``score``, ``width``, ``height``, ``pred_label``, ``confidence``) and the batch's
facts (``batch_id``, ``classes``, ``run``) and returns ``{suffix: bytes}``: ``""`` is the main
file, other suffixes are companions written beside it with the same stem.
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

Item = dict[str, Any]

#: Label Studio control and object names used in the tasks and the labeling config.
LS_FROM, LS_TO = "label", "image"
#: Labelbox classification (radio) name the prediction NDJSON answers.
LB_CLASSIFICATION = "label"
CSV_COLUMNS = ["sample_id", "image", "rank", "part", "strategy", "score", "predicted", "confidence"]


def image_ref(uri: str, rel_path: str | None, prefix: str | None) -> str:
    """How an export names an image: the absolute path (``prefix`` None), a ``file://`` URI
    (``prefix`` ``"file://"``), or ``prefix`` + the path below the folder the sample was imported
    from (a bucket or web server mirroring that folder). Remote URIs stay as they are."""
    if "://" in uri:
        return uri
    if prefix is None:
        return uri
    if prefix == "file://":
        return Path(uri).as_uri()
    return prefix.rstrip("/") + "/" + (rel_path or posixpath.basename(uri)).lstrip("/")


def _num(value: Any) -> Any:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else round(f, 6)


def _plain(item: Item) -> dict[str, Any]:
    return {"sample_id": item["sample_id"], "image": item["image"], "rank": int(item["rank"]),
            "part": None if item["part"] is None else int(item["part"]), "strategy": item["strategy"],
            "score": _num(item["score"]), "predicted": item["pred_label"], "confidence": _num(item["confidence"])}


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def write_csv(items: list[Item], facts: dict[str, Any]) -> dict[str, bytes]:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: ("" if v is None else v) for k, v in _plain(item).items()})
    return {"": out.getvalue().encode()}


def write_jsonl(items: list[Item], facts: dict[str, Any]) -> dict[str, bytes]:
    return {"": "".join(json.dumps(_plain(i), ensure_ascii=False) + "\n" for i in items).encode()}


def write_label_studio(items: list[Item], facts: dict[str, Any]) -> dict[str, bytes]:
    """Label Studio tasks JSON (``data.image``, ``data.sample_id``; the run's top-1 as a
    ``predictions`` pre-annotation with ``model_version`` and ``score``) and its labeling config
    (``.config.xml``: an Image and single-choice Choices over the classes)."""
    tasks = []
    for item in items:
        task: dict[str, Any] = {"data": {"image": item["image"], "sample_id": item["sample_id"],
                                         "al_part": item["part"], "al_strategy": item["strategy"],
                                         "al_score": _num(item["score"]), "al_rank": int(item["rank"])}}
        if item["pred_label"] is not None:
            task["predictions"] = [{
                "model_version": facts.get("run") or "model",
                "score": _num(item["confidence"]),
                "result": [{"from_name": LS_FROM, "to_name": LS_TO, "type": "choices",
                            "value": {"choices": [item["pred_label"]]}}],
            }]
        tasks.append(task)
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in facts["classes"])
    config = (f'<View>\n  <Image name="{LS_TO}" value="$image"/>\n'
              f'  <Choices name="{LS_FROM}" toName="{LS_TO}" choice="single" showInline="true">\n'
              f"{choices}\n  </Choices>\n</View>\n")
    return {"": _json(tasks), ".config.xml": config.encode()}


def write_labelbox(items: list[Item], facts: dict[str, Any]) -> dict[str, bytes]:
    """Labelbox data rows (``row_data``, ``global_key`` = sample_id, ``media_type``, why it was
    picked as a text attachment) and model-assisted-labeling predictions (``.predictions.ndjson``:
    one radio answer per row, keyed by ``dataRow.globalKey``)."""
    rows = [{"row_data": i["image"], "global_key": i["sample_id"], "media_type": "IMAGE",
             "attachments": [{"type": "RAW_TEXT",
                              "value": f"al-explorer batch {facts['batch_id']}: part {i['part']}, "
                                       f"{i['strategy']}, score {_num(i['score'])}, rank {int(i['rank'])}"}]}
            for i in items]
    lines = []
    for i in items:
        if i["pred_label"] is None:
            continue
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"al-explorer/{facts['batch_id']}/{i['sample_id']}")
        answer: dict[str, Any] = {"name": i["pred_label"]}
        if _num(i["confidence"]) is not None:
            answer["confidence"] = _num(i["confidence"])
        lines.append(json.dumps({"uuid": str(key), "dataRow": {"globalKey": i["sample_id"]},
                                 "name": LB_CLASSIFICATION, "answer": answer}, ensure_ascii=False) + "\n")
    return {"": _json(rows), ".predictions.ndjson": "".join(lines).encode()}


def write_cvat(items: list[Item], facts: dict[str, Any]) -> dict[str, bytes]:
    """CVAT for images 1.1 XML: the task's labels, one ``<image>`` per item named by its path
    below the import folder (the batch records that mapping), the prediction as an image tag."""
    labels = "".join(f"        <label>\n          <name>{escape(c)}</name>\n          <attributes>\n"
                     "          </attributes>\n        </label>\n" for c in facts["classes"])
    images = []
    for n, i in enumerate(items):
        tag = (f'\n    <tag label={quoteattr(i["pred_label"])} source="auto">\n    </tag>\n  '
               if i["pred_label"] is not None else "")
        images.append(f'  <image id="{n}" name={quoteattr(i["name"])} width="{int(i["width"] or 0)}" '
                      f'height="{int(i["height"] or 0)}">{tag}</image>\n')
    xml = ('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  <meta>\n'
           f"    <task>\n      <name>{escape('al-explorer batch ' + str(facts['batch_id']))}</name>\n"
           f"      <size>{len(items)}</size>\n      <mode>annotation</mode>\n"
           f"      <labels>\n{labels}      </labels>\n    </task>\n  </meta>\n{''.join(images)}</annotations>\n")
    return {"": xml.encode()}


def write_coco(items: list[Item], facts: dict[str, Any]) -> dict[str, bytes]:
    """COCO classification JSON: images (with ``sample_id``), categories from the classes, and
    no annotations (the labels are what the batch asks for)."""
    doc = {"info": {"description": f"al-explorer batch {facts['batch_id']}", "version": "1.0"},
           "licenses": [],
           "images": [{"id": n + 1, "file_name": i["image"], "width": int(i["width"] or 0),
                       "height": int(i["height"] or 0), "sample_id": i["sample_id"]}
                      for n, i in enumerate(items)],
           "categories": [{"id": n + 1, "name": c, "supercategory": "none"} for n, c in enumerate(facts["classes"])],
           "annotations": []}
    return {"": _json(doc)}


WRITERS = {"label-studio": write_label_studio, "labelbox": write_labelbox, "cvat": write_cvat,
           "coco": write_coco, "csv": write_csv, "jsonl": write_jsonl}
