"""Re-imports never lose data: an absent column or a blank cell keeps what is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_same_content, content, make_image, user_fields, write_manifest

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import ingest_coco, ingest_folder, ingest_manifest
from al_core.ingest import manifest as manifest_module
from al_core.ingest.images import file_hash

#: Every column a manifest can carry: the built-in ones and one metadata field of each type.
COLUMNS = ["label", "split", "width", "height", "content_hash",
           "weather", "brightness", "frame_no", "captured_at"]
FORMATS = [".csv", ".parquet", ".jsonl"]


@pytest.fixture
def full_frame(manifest_frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """``manifest_frame`` plus the true width, height and hash of each image (nullable ints)."""
    paths = [tmp_path / p for p in manifest_frame["path"]]
    sizes = {"images/cat/c0.png": (10, 8), "images/cat/c1.png": (11, 8),
             "images/dog/d0.jpg": (20, 10), "images/u0.png": (5, 5)}
    return manifest_frame.assign(
        width=pd.array([sizes[p][0] for p in manifest_frame["path"]], dtype="Int64"),
        height=pd.array([sizes[p][1] for p in manifest_frame["path"]], dtype="Int64"),
        content_hash=[file_hash(str(p)) for p in paths],
        frame_no=manifest_frame["frame_no"].astype("Int64"),
        label=manifest_frame["label"].astype("string"))


def _import(catalog: Catalog, frame: pd.DataFrame, path: Path, **options: object):
    return ingest_manifest(catalog, write_manifest(frame, path), progress=False, **options)


def _blank(frame: pd.DataFrame, column: str, row: int, value: object = None) -> pd.DataFrame:
    out = frame.copy()
    if column == "captured_at":
        out[column] = out[column].astype("object")
    out.loc[row, column] = value
    return out


def _assert_nothing_changed(catalog: Catalog, before: dict, result) -> None:
    assert not result.changed and result.import_id is None
    assert (result.new_samples, result.updated_samples, result.new_label_versions) == (0, 0, 0)
    assert_same_content(before, content(catalog))  # catalog_info too: no new data version


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("column", COLUMNS)
def test_absent_column_keeps_what_is_stored(catalog: Catalog, full_frame: pd.DataFrame,
                                            tmp_path: Path, column: str, suffix: str) -> None:
    _import(catalog, full_frame, tmp_path / f"full{suffix}")
    before, version = content(catalog), catalog.data_version()
    result = _import(catalog, full_frame.drop(columns=column), tmp_path / f"less{suffix}")
    _assert_nothing_changed(catalog, before, result)
    assert catalog.data_version() == version


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("column", COLUMNS)
def test_blank_cell_keeps_what_is_stored(catalog: Catalog, full_frame: pd.DataFrame,
                                         tmp_path: Path, column: str, suffix: str) -> None:
    _import(catalog, full_frame, tmp_path / f"full{suffix}")
    before = content(catalog)
    result = _import(catalog, _blank(full_frame, column, 1), tmp_path / f"blank{suffix}")
    _assert_nothing_changed(catalog, before, result)


@pytest.mark.parametrize("column", ["label", "split", "content_hash", "weather"])
@pytest.mark.parametrize("value", ["", "   "])
def test_blank_text_keeps_what_is_stored(catalog: Catalog, full_frame: pd.DataFrame,
                                         tmp_path: Path, column: str, value: str) -> None:
    """Parquet keeps empty strings as strings (CSV reads them as NULL): blank all the same."""
    _import(catalog, full_frame, tmp_path / "full.parquet")
    before = content(catalog)
    result = _import(catalog, _blank(full_frame, column, 1, value), tmp_path / "blank.parquet")
    _assert_nothing_changed(catalog, before, result)


def test_reimport_to_add_a_field_keeps_every_split(catalog: Catalog, manifest_frame: pd.DataFrame,
                                                   tmp_path: Path) -> None:
    """The README's case: a manifest with no split column, to add one metadata column."""
    _import(catalog, manifest_frame, tmp_path / "m.csv")
    splits = dict(catalog.query_rows("SELECT sample_id, split FROM samples"))
    assert splits == {"a": "train", "b": "val", "c": "train", "d": "unlabeled"}
    more = manifest_frame[["path", "sample_id"]].assign(camera=["front", "rear", "front", "side"])
    result = _import(catalog, more, tmp_path / "camera.csv")
    assert result.fields_added == ["camera"] and result.updated_samples == 4
    assert dict(catalog.query_rows("SELECT sample_id, split FROM samples")) == splits
    assert dict(catalog.query_rows("SELECT sample_id, label FROM samples")) == {
        "a": "cat", "b": "cat", "c": "dog", "d": None}


def test_defaults_apply_only_to_new_samples(catalog: Catalog, manifest_frame: pd.DataFrame,
                                            image_dir: Path, tmp_path: Path) -> None:
    _import(catalog, manifest_frame, tmp_path / "m.csv")
    relabeled = pd.DataFrame({  # no split column; d gets a label, e and f are new
        "path": ["images/cat/c1.png", "images/u0.png", "images/dog/d1.jpg", "images/u1.png"],
        "sample_id": ["b", "d", "e", "f"], "label": ["cat", "dog", "dog", None]})
    result = _import(catalog, relabeled, tmp_path / "r.csv")
    assert (result.new_samples, result.new_label_versions) == (2, 2)  # d: none->dog, e: dog
    assert dict(catalog.query_rows("SELECT sample_id, split FROM samples")) == {
        "a": "train", "b": "val", "c": "train", "d": "unlabeled", "e": "train", "f": "unlabeled"}


def test_changed_split_alone_is_updated_and_counted(catalog: Catalog, manifest_frame: pd.DataFrame,
                                                   tmp_path: Path) -> None:
    _import(catalog, manifest_frame, tmp_path / "m.csv")
    moved = manifest_frame.assign(split=["test", "val", "train", "unlabeled"])
    result = _import(catalog, moved, tmp_path / "moved.csv")
    assert result.changed and result.updated_samples == 1 and result.new_label_versions == 0
    assert catalog.scalar("SELECT split FROM samples WHERE sample_id = 'a'") == "test"


@pytest.mark.parametrize("column, value", [("weather", "snow"), ("brightness", 0.25),
                                           ("frame_no", 9), ("label", "dog")])
def test_a_changed_value_is_updated(catalog: Catalog, full_frame: pd.DataFrame, tmp_path: Path,
                                    column: str, value: object) -> None:
    _import(catalog, full_frame, tmp_path / "full.csv")
    result = _import(catalog, _blank(full_frame, column, 0, value), tmp_path / "changed.csv")
    assert result.changed
    if column == "label":
        assert (result.updated_samples, result.new_label_versions) == (0, 1)
    else:
        assert (result.updated_samples, result.new_label_versions) == (1, 0)
    assert catalog.scalar(f"SELECT {db_sql.quote_ident(column)} FROM samples "
                          "WHERE sample_id = 'a'") == value


def test_batch_id_is_recorded_in_the_label_history(catalog: Catalog, manifest_frame: pd.DataFrame,
                                                   tmp_path: Path) -> None:
    _import(catalog, manifest_frame, tmp_path / "m.csv", batch_id=7)
    assert catalog.query_rows("SELECT DISTINCT batch_id FROM labels") == [(7,)]
    relabeled = manifest_frame.assign(label=["dog", "cat", "dog", "cat"])
    _import(catalog, relabeled, tmp_path / "r.csv", batch_id=8, label_source="annotator")
    assert catalog.query_df(db_sql.label_history("a"))["batch_id"].tolist() == [7, 8]


def test_catalog_changed_meanwhile_is_refused_inside_the_write(
        catalog: Catalog, full_frame: pd.DataFrame, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A row left unprobed because the catalog held its hash must still hold it when writing."""
    _import(catalog, full_frame.drop(columns="content_hash"), tmp_path / "m.csv")
    real_probe = manifest_module._probe

    def probe_then_someone_writes(*args: object, **kwargs: object) -> list[str]:
        skipped = real_probe(*args, **kwargs)
        with catalog.transaction("a concurrent write") as cur:
            cur.execute("UPDATE samples SET content_hash = NULL WHERE sample_id = 'b'")
        return skipped

    monkeypatch.setattr(manifest_module, "_probe", probe_then_someone_writes)
    before = content(catalog)
    with pytest.raises(IngestError) as err:
        _import(catalog, full_frame.assign(weather="hail"), tmp_path / "again.csv")
    assert "row 2: sample 'b' was changed in the catalog meanwhile" in str(err.value)
    after = content(catalog)  # only the concurrent write happened
    assert after["imports"].equals(before["imports"])
    assert after["samples"]["weather"].tolist() == before["samples"]["weather"].tolist()


# ----------------------------------------------------------------------------- folders

def test_folder_reimport_keeps_what_a_manifest_set(catalog: Catalog, image_dir: Path,
                                                   tmp_path: Path) -> None:
    ingest_folder(catalog, image_dir, progress=False)
    curated = pd.DataFrame({"path": ["cat/c0.png", "u0.png"], "sample_id": ["cat/c0.png", "u0.png"],
                            "split": ["val", "test"], "weather": ["rain", "fog"]})
    curated_path = write_manifest(curated, image_dir / "curated.csv")
    assert ingest_manifest(catalog, curated_path, progress=False).updated_samples == 2
    before = content(catalog)
    result = ingest_folder(catalog, image_dir, progress=False)
    _assert_nothing_changed(catalog, before, result)
    assert dict(catalog.query_rows("SELECT sample_id, split FROM samples WHERE weather IS NOT NULL")) == {
        "cat/c0.png": "val", "u0.png": "test"}


def test_folder_new_images_get_the_default_split(catalog: Catalog, image_dir: Path) -> None:
    ingest_folder(catalog, image_dir, progress=False)
    make_image(image_dir / "cat" / "c9.png")
    make_image(image_dir / "u9.png")
    result = ingest_folder(catalog, image_dir, progress=False)
    assert (result.new_samples, result.updated_samples, result.new_label_versions) == (2, 0, 1)
    assert dict(catalog.query_rows("SELECT sample_id, split FROM samples WHERE sample_id LIKE '%9%'")) == {
        "cat/c9.png": "train", "u9.png": "unlabeled"}


# ----------------------------------------------------------------------------- COCO

def _coco(tmp_path: Path, images: list[dict] | None = None) -> Path:
    make_image(tmp_path / "imgs" / "1.png")
    make_image(tmp_path / "imgs" / "2.png")
    data = {"categories": [{"id": 1, "name": "cone"}, {"id": 2, "name": "car"}],
            "images": images or [{"id": 10, "file_name": "imgs/1.png", "weather": "rain"},
                                 {"id": 11, "file_name": "imgs/2.png", "weather": "sun"}],
            "annotations": [{"id": 1, "image_id": 10, "category_id": 2}]}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reimport_without_split_keeps_the_split(catalog: Catalog, tmp_path: Path) -> None:
    path = _coco(tmp_path)
    ingest_coco(catalog, path, split="test", progress=False)
    before = content(catalog)
    result = ingest_coco(catalog, path, progress=False)
    _assert_nothing_changed(catalog, before, result)
    assert catalog.query_rows("SELECT DISTINCT split FROM samples") == [("test",)]


def test_coco_reimport_with_another_split_moves_them(catalog: Catalog, tmp_path: Path) -> None:
    path = _coco(tmp_path)
    ingest_coco(catalog, path, split="test", progress=False)
    assert ingest_coco(catalog, path, split="val", progress=False).updated_samples == 2
    assert catalog.query_rows("SELECT DISTINCT split FROM samples") == [("val",)]


def test_coco_default_split_is_only_for_new_images(catalog: Catalog, tmp_path: Path) -> None:
    ingest_coco(catalog, _coco(tmp_path), progress=False)
    assert dict(catalog.query_rows("SELECT sample_id, split FROM samples")) == {
        "10": "train", "11": "unlabeled"}


def test_coco_image_without_an_extra_keeps_the_stored_value(catalog: Catalog, tmp_path: Path) -> None:
    ingest_coco(catalog, _coco(tmp_path), split="test", progress=False)
    before = content(catalog)
    fewer = [{"id": 10, "file_name": "imgs/1.png", "weather": "rain"},
             {"id": 11, "file_name": "imgs/2.png"}]
    result = ingest_coco(catalog, _coco(tmp_path, fewer), progress=False)
    _assert_nothing_changed(catalog, before, result)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_blank_cells_of_typed_fields_keep_what_is_stored(catalog: Catalog, tmp_path: Path,
                                                         suffix: str) -> None:
    first = tmp_path / "a.csv"
    first.write_text("path,frame_no,seen_at\nx.png,1,2024-01-01 10:00\ny.png,2,2024-01-02 10:00\n")
    ingest_manifest(catalog, first, probe=False)
    second = tmp_path / f"b{suffix}"
    if suffix == ".csv":  # spaces-only cells make the reader type both columns as text
        second.write_text("path,frame_no,seen_at\nx.png,  ,\ny.png,5,  \n")
    else:
        second.write_text('{"path": "x.png", "frame_no": " ", "seen_at": ""}\n'
                          '{"path": "y.png", "frame_no": "5", "seen_at": " "}\n')
    result = ingest_manifest(catalog, second, probe=False)
    assert result.updated_samples == 1
    assert user_fields(catalog) == {"frame_no": "BIGINT", "seen_at": "TIMESTAMP"}
    assert catalog.query_rows("SELECT sample_id, frame_no, seen_at::VARCHAR FROM samples ORDER BY 1") == [
        ("x.png", 1, "2024-01-01 10:00:00"), ("y.png", 5, "2024-01-02 10:00:00")]
