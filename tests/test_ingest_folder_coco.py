"""Image-folder and COCO classification importers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_same_content, content, make_image

from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import ingest_coco, ingest_folder


def test_class_subfolders_become_labels(catalog: Catalog, image_dir: Path) -> None:
    result = ingest_folder(catalog, image_dir, progress=False)
    assert result.new_samples == 8
    rows = dict(catalog.query_rows("SELECT sample_id, label FROM samples"))
    assert rows["cat/c0.png"] == "cat" and rows["dog/d2.jpg"] == "dog"
    assert rows["u0.png"] is None
    splits = dict(catalog.query_rows("SELECT sample_id, split FROM samples"))
    assert splits["cat/c0.png"] == "train" and splits["u0.png"] == "unlabeled"


def test_split_folders_and_nested_class_folders(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_image(root / "train" / "cone" / "a.png")
    make_image(root / "val" / "car" / "b.jpeg")
    make_image(root / "unlabeled" / "c.webp")
    make_image(root / "test" / "deep" / "er" / "car" / "d.bmp")
    (root / "notes.txt").write_text("not an image")
    ingest_folder(catalog, root, progress=False)
    rows = catalog.query_rows("SELECT sample_id, split, label FROM samples ORDER BY 1")
    assert rows == [("test/deep/er/car/d.bmp", "test", "car"), ("train/cone/a.png", "train", "cone"),
                    ("unlabeled/c.webp", "unlabeled", None), ("val/car/b.jpeg", "val", "car")]


def test_folder_rerun_is_idempotent(catalog: Catalog, image_dir: Path) -> None:
    ingest_folder(catalog, image_dir, progress=False)
    before = content(catalog)
    assert not ingest_folder(catalog, image_dir, progress=False).changed
    assert_same_content(before, content(catalog))


def test_folder_without_images_or_missing(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="contains no images"):
        ingest_folder(catalog, tmp_path / "empty")
    with pytest.raises(IngestError, match="is not a folder"):
        ingest_folder(catalog, tmp_path / "nope")


def _coco(tmp_path: Path, **changes: object) -> Path:
    make_image(tmp_path / "imgs" / "1.png")
    make_image(tmp_path / "imgs" / "2.png")
    data = {
        "categories": [{"id": 1, "name": "cone"}, {"id": 2, "name": "car"}],
        "images": [{"id": 10, "file_name": "imgs/1.png", "width": 16, "height": 12,
                    "weather": "rain", "date_captured": "2024-02-03 04:05:06"},
                   {"id": 11, "file_name": "imgs/2.png", "weather": "sun",
                    "date_captured": "2024-02-04 04:05:06"}],
        "annotations": [{"id": 1, "image_id": 10, "category_id": 2}],
    }
    data.update(changes)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_classification(catalog: Catalog, tmp_path: Path) -> None:
    result = ingest_coco(catalog, _coco(tmp_path), split="train", progress=False)
    assert result.new_samples == 2
    rows = catalog.query_rows("SELECT sample_id, label, split, weather, width FROM samples ORDER BY 1")
    assert rows == [("10", "car", "train", "rain", 16), ("11", None, "train", "sun", 16)]
    assert catalog.metadata_fields()["date_captured"] == "TIMESTAMP"


@pytest.mark.parametrize("changes, fragment", [
    ({"annotations": [{"image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]}]}, "annotations[0]: has a bbox"),
    ({"annotations": [{"image_id": 10, "category_id": 9}]}, "unknown category_id 9"),
    ({"annotations": [{"image_id": 99, "category_id": 1}]}, "unknown image_id 99"),
    ({"annotations": [{"image_id": 10, "category_id": 1}, {"image_id": 10, "category_id": 2}]},
     "annotations[1]: image 10 already has category 'cone'"),
    ({"images": [{"id": 10, "file_name": "imgs/1.png"}, {"id": 10, "file_name": "imgs/2.png"}]},
     "images[1]: duplicate image id 10"),
    ({"categories": "nope"}, "missing list field(s): categories"),
    ({"images": [{"id": [10], "file_name": "imgs/1.png"}]}, "images[0]: 'id' must be a number or text"),
    ({"categories": [{"id": 1, "name": "  "}]}, "categories[0]: needs 'id' and a non-blank 'name'"),
    ({"annotations": [{"image_id": {"x": 1}, "category_id": 1}]},
     "annotations[0]: 'image_id' and 'category_id' must be numbers or text"),
])
def test_bad_coco_is_refused(catalog: Catalog, tmp_path: Path, changes: dict, fragment: str) -> None:
    before = content(catalog)
    with pytest.raises(IngestError) as err:
        ingest_coco(catalog, _coco(tmp_path, **changes), progress=False)
    assert fragment in str(err.value) and "coco.json" in str(err.value)
    assert_same_content(before, content(catalog))


def test_coco_invalid_json_names_the_line(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(IngestError, match=r"broken.json: invalid JSON at line 2"):
        ingest_coco(catalog, path)
