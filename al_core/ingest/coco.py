"""COCO-style classification JSON importer: categories, images, one annotation per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from al_core.db.catalog import Catalog
from al_core.db.sql import BUILTIN_SAMPLE_COLUMNS
from al_core.errors import IngestError
from al_core.ingest import files
from al_core.ingest.files import RESERVED
from al_core.ingest.manifest import ROLE_ALIASES, ImportResult, ingest_frame

if TYPE_CHECKING:
    import pandas as pd

_IMAGE_KEYS_USED = {"id", "file_name", "width", "height"}

#: Image keys that may not become metadata: built-in columns, and every name the importer
#: would take for a role (path, id, label, split, size, hash), which COCO sets itself.
RESERVED_KEYS = frozenset({*BUILTIN_SAMPLE_COLUMNS, *RESERVED,
                           *(alias for aliases in ROLE_ALIASES.values() for alias in aliases)})


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


def _size_problems(i: int, img: dict[str, Any]) -> list[str]:
    """``width``/``height`` of an image, when given, must be whole numbers of pixels from 1 up."""
    problems = []
    for key in ("width", "height"):
        value = img.get(key)
        whole = isinstance(value, int | float) and not isinstance(value, bool) and (
            float(value).is_integer() and 0 < value < 2**31)
        if value is not None and not whole:
            problems.append(f"images[{i}]: {key!r} is {value!r}, not a whole number of pixels "
                            "from 1 up")
    return problems


def _extras(i: int, img: dict[str, Any], seen: dict[str, tuple[str, int]]
            ) -> tuple[dict[str, Any], list[str]]:
    """An image's scalar extras (they become metadata) and the problems with their names.

    ``seen`` maps each lowercased key met so far to its spelling and image, across images.
    """
    extras: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in img.items():
        if key in _IMAGE_KEYS_USED or not isinstance(value, str | int | float | bool):
            continue
        low = key.lower()
        if not key.strip():
            problems.append(f"images[{i}]: a key is empty; give it a name")
        elif low in RESERVED_KEYS:
            problems.append(f"images[{i}]: key {key!r} is the name of a built-in column or of "
                            "one the importer reads itself (path, id, label, split, size, hash); "
                            "rename it")
        elif low in seen and seen[low][0] != key:
            problems.append(f"images[{i}]: key {key!r} differs only by case from "
                            f"{seen[low][0]!r} (images[{seen[low][1]}]); rename one")
        else:
            seen.setdefault(low, (key, i))
            extras[key] = value
    return extras, problems


def _images(data: dict[str, Any], problems: list[str]) -> dict[Any, tuple[int, dict[str, Any]]]:
    """Valid images by id, with their index in ``images``; problems are appended to ``problems``."""
    images: dict[Any, tuple[int, dict[str, Any]]] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not img.get("file_name"):
            problems.append(f"images[{i}]: needs 'id' and 'file_name'")
        elif not _is_id(img["id"]):
            problems.append(f"images[{i}]: 'id' must be a number or text, not {img['id']!r}")
        elif img["id"] in images:
            problems.append(f"images[{i}]: duplicate image id {img['id']!r}")
        else:
            images[img["id"]] = (i, img)
            problems += _size_problems(i, img)
    return images


def _is_id(value: Any) -> bool:
    """COCO ids are numbers or text (a list or an object cannot name an image)."""
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def coco_manifest(path: Path, data: dict[str, Any], split: str | None) -> pd.DataFrame:
    """Flatten COCO classification JSON into a manifest frame; every problem is collected.

    Without ``split`` the frame has no split column: new samples get the default split and
    samples already in the catalog keep theirs.
    """
    problems: list[str] = []
    categories: dict[Any, str] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or not str(cat.get("name") or "").strip():
            problems.append(f"categories[{i}]: needs 'id' and a non-blank 'name'")
        elif not _is_id(cat["id"]):
            problems.append(f"categories[{i}]: 'id' must be a number or text, not {cat['id']!r}")
        else:
            categories[cat["id"]] = str(cat["name"])
    images = _images(data, problems)
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
        if not (_is_id(ann["image_id"]) and _is_id(ann["category_id"])):
            problems.append(f"{where}: 'image_id' and 'category_id' must be numbers or text")
        elif ann["image_id"] not in images:
            problems.append(f"{where}: unknown image_id {ann['image_id']!r}")
        elif ann["category_id"] not in categories:
            problems.append(f"{where}: unknown category_id {ann['category_id']!r}")
        elif ann["image_id"] in labels and labels[ann["image_id"]] != categories[ann["category_id"]]:
            problems.append(f"{where}: image {ann['image_id']!r} already has category "
                            f"{labels[ann['image_id']]!r}; classification allows one")
        else:
            labels[ann["image_id"]] = categories[ann["category_id"]]
    rows = []
    seen: dict[str, tuple[str, int]] = {}
    for image_id, (i, img) in images.items():
        extras, extra_problems = _extras(i, img, seen)
        problems += extra_problems
        rows.append({"sample_id": str(image_id), "path": str(img["file_name"]),
                     "label": labels.get(image_id), "width": img.get("width"),
                     "height": img.get("height"), **extras})
    if problems:
        raise IngestError(str(path), problems)
    if not rows:
        raise IngestError(str(path), ["contains no images"])
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("string")
    for key in ("width", "height"):
        frame[key] = frame[key].astype("Int64")
    if split:
        frame["split"] = split
    return frame


def ingest_coco(cat: Catalog, path: str | Path, *, image_root: str | Path | None = None,
                split: str | None = None, **options: object) -> ImportResult:
    """Import a COCO classification JSON; file names resolve against ``image_root`` (or its folder)."""
    path = Path(path)
    data = _load(path)
    frame = coco_manifest(path, data, split)
    base = Path(image_root) if image_root else path.parent
    return ingest_frame(cat, frame, kind="coco", source=str(path), base_dir=base, **options)
