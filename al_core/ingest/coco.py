"""COCO-style classification JSON importer: categories, images, one annotation per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import files
from al_core.ingest.manifest import ImportResult, ingest_frame

_IMAGE_KEYS_USED = {"id", "file_name", "width", "height"}


def _load(path: Path) -> dict[str, Any]:
    files.check_readable(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise IngestError(str(path), [f"byte {err.start} is not valid UTF-8"]) from None
    except json.JSONDecodeError as err:
        raise IngestError(str(path), [f"invalid JSON at line {err.lineno}, column {err.colno}: "
                                      f"{err.msg}"]) from None
    if not isinstance(data, dict):
        raise IngestError(str(path), ["top level must be an object with images/categories/annotations"])
    missing = [k for k in ("images", "categories", "annotations") if not isinstance(data.get(k), list)]
    if missing:
        raise IngestError(str(path), [f"missing list field(s): {', '.join(missing)}"])
    return data


def coco_manifest(path: Path, data: dict[str, Any], split: str | None) -> pd.DataFrame:
    """Flatten COCO classification JSON into a manifest frame; every problem is collected."""
    problems: list[str] = []
    categories: dict[Any, str] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or not cat.get("name"):
            problems.append(f"categories[{i}]: needs 'id' and 'name'")
        else:
            categories[cat["id"]] = str(cat["name"])
    images: dict[Any, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not img.get("file_name"):
            problems.append(f"images[{i}]: needs 'id' and 'file_name'")
        elif img["id"] in images:
            problems.append(f"images[{i}]: duplicate image id {img['id']!r}")
        else:
            images[img["id"]] = img
    labels: dict[Any, str] = {}
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            problems.append(f"{where}: needs 'image_id' and 'category_id'")
            continue
        if ann.get("bbox") or ann.get("segmentation"):
            problems.append(f"{where}: has a bbox/segmentation; only classification "
                            "(one category per image, no boxes) is supported")
            continue
        if ann["image_id"] not in images:
            problems.append(f"{where}: unknown image_id {ann['image_id']!r}")
        elif ann["category_id"] not in categories:
            problems.append(f"{where}: unknown category_id {ann['category_id']!r}")
        elif ann["image_id"] in labels and labels[ann["image_id"]] != categories[ann["category_id"]]:
            problems.append(f"{where}: image {ann['image_id']!r} already has category "
                            f"{labels[ann['image_id']]!r}; classification allows one")
        else:
            labels[ann["image_id"]] = categories[ann["category_id"]]
    if problems:
        raise IngestError(str(path), problems)
    rows = []
    for image_id, img in images.items():
        row = {"sample_id": str(image_id), "path": str(img["file_name"]),
               "label": labels.get(image_id), "width": img.get("width"), "height": img.get("height")}
        row.update({k: v for k, v in img.items() if k not in _IMAGE_KEYS_USED
                    and isinstance(v, str | int | float | bool)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("string")
    if split:
        frame["split"] = split
    return frame


def ingest_coco(cat: Catalog, path: str | Path, *, image_root: str | Path | None = None,
                split: str | None = None, **options: object) -> ImportResult:
    """Import a COCO classification JSON; file names resolve against ``image_root`` (or its folder)."""
    path = Path(path)
    data = _load(path)
    frame = coco_manifest(path, data, split)
    if frame.empty:
        raise IngestError(str(path), ["contains no images"])
    base = Path(image_root) if image_root else path.parent
    return ingest_frame(cat, frame, kind="coco", source=str(path), base_dir=base, **options)
