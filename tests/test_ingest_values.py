"""What a manifest or COCO file may say: content hashes, sizes, column names and ids as written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_same_content, content, make_image, write_manifest

from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import ingest_coco, ingest_manifest
from al_core.ingest.images import file_hash

GOOD_HASH = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def seeded(catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> Catalog:
    """A catalog holding sample ``a`` already, so "nothing written" is checked against data."""
    ingest_manifest(catalog, write_manifest(manifest_frame.iloc[:1], tmp_path / "seed.csv"),
                    progress=False)
    return catalog


def _refused(cat: Catalog, path: Path, fragments: list[str], **options: object) -> str:
    """Import ``path``: it must fail naming the file and every fragment, and write nothing."""
    before = content(cat)
    with pytest.raises(IngestError) as err:
        ingest_manifest(cat, path, progress=False, **options)
    message = str(err.value)
    for fragment in [path.name, *fragments]:
        assert fragment in message, (fragment, message)
    assert "Nothing was written" in message
    assert_same_content(before, content(cat))
    return message


def _one(path: str = "images/cat/c1.png", **columns: object) -> pd.DataFrame:
    return pd.DataFrame({"path": [path], "sample_id": ["b"], **{k: [v] for k, v in columns.items()}})


# ----------------------------------------------------------------------------- content_hash

def test_content_hash_that_differs_from_the_file_is_refused(seeded: Catalog, tmp_path: Path) -> None:
    real = file_hash(str(tmp_path / "images/cat/c1.png"))
    path = write_manifest(_one(content_hash=GOOD_HASH), tmp_path / "h.csv")
    _refused(seeded, path, ["row 1", "'content_hash'", GOOD_HASH, real])


def test_changed_content_hash_of_a_stored_sample_is_checked_against_the_file(
        seeded: Catalog, tmp_path: Path) -> None:
    """Sample ``a`` is stored with its hash; a manifest claiming another one gets it re-read."""
    real = file_hash(str(tmp_path / "images/cat/c0.png"))
    frame = pd.DataFrame({"path": ["images/cat/c0.png"], "sample_id": ["a"], "hash": [GOOD_HASH]})
    _refused(seeded, write_manifest(frame, tmp_path / "h.csv"), ["row 1", "'hash'", GOOD_HASH, real])


def test_content_hash_that_matches_the_file_is_accepted(catalog: Catalog, image_dir: Path,
                                                        tmp_path: Path) -> None:
    real = file_hash(str(tmp_path / "images/cat/c1.png"))
    ingest_manifest(catalog, write_manifest(_one(content_hash=real), tmp_path / "h.csv"),
                    progress=False)
    assert catalog.scalar("SELECT content_hash FROM samples") == real


BAD_HASHES = ["../../x", GOOD_HASH.upper(), GOOD_HASH[:-1], GOOD_HASH + "0", "g" * 32,
              "0123456789abcdef 0123456789abcde"]


@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
@pytest.mark.parametrize("value", BAD_HASHES)
def test_malformed_content_hash_is_always_refused(seeded: Catalog, tmp_path: Path, value: str,
                                                  probe: bool) -> None:
    path = write_manifest(_one(content_hash=value), tmp_path / "h.parquet")
    _refused(seeded, path, ["row 1", "'content_hash'", repr(value), "not a content hash"],
             probe=probe)


def test_no_probe_stores_a_well_formed_hash(catalog: Catalog, tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": ["nowhere/x.png"], "content_hash": [GOOD_HASH]})
    ingest_manifest(catalog, write_manifest(frame, tmp_path / "h.csv"), probe=False)
    assert catalog.scalar("SELECT content_hash FROM samples") == GOOD_HASH


# ----------------------------------------------------------------------------- width / height

@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
@pytest.mark.parametrize("column, value", [("width", "-5"), ("width", "0"), ("height", "abc"),
                                           ("height", "12.5"), ("width", "nan"),
                                           ("width", "3000000000")])
def test_size_that_is_not_a_positive_whole_number_is_refused(
        seeded: Catalog, tmp_path: Path, column: str, value: str, probe: bool) -> None:
    path = tmp_path / "s.csv"
    path.write_text(f"path,sample_id,{column}\nimages/cat/c1.png,b,{value}\n")
    _refused(seeded, path, ["row 1", f"'{column}'", repr(value), "not a whole number"],
             probe=probe)


@pytest.mark.parametrize("column, value, measured", [("width", 12, "11 pixels wide"),
                                                     ("height", 9, "8 pixels high")])
def test_size_that_disagrees_with_the_image_is_refused(
        seeded: Catalog, tmp_path: Path, column: str, value: int, measured: str) -> None:
    path = write_manifest(_one(**{column: value}), tmp_path / "s.csv")
    _refused(seeded, path, ["row 1 (sample 'b')", f"'{column}'", f"says {value}", measured])


def test_measured_size_agreeing_with_the_manifest_is_stored(catalog: Catalog, image_dir: Path,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("path,width,height\nimages/cat/c1.png,11.0,8\n")
    ingest_manifest(catalog, path, progress=False)
    assert catalog.query_rows("SELECT width, height FROM samples") == [(11, 8)]


def test_no_probe_stores_valid_sizes(catalog: Catalog, tmp_path: Path) -> None:
    path = write_manifest(pd.DataFrame({"path": ["x.png"], "width": [640], "height": [480]}),
                          tmp_path / "s.jsonl")
    ingest_manifest(catalog, path, probe=False)
    assert catalog.query_rows("SELECT width, height FROM samples") == [(640, 480)]


def test_no_probe_never_overwrites_a_measured_size_or_hash(seeded: Catalog, tmp_path: Path) -> None:
    measured = seeded.query_rows("SELECT width, height, content_hash FROM samples WHERE sample_id = 'a'")
    path = tmp_path / "s.csv"
    path.write_text(f"path,sample_id,width,height,content_hash\nimages/cat/c0.png,a,999,999,{GOOD_HASH}\n")
    before = content(seeded)
    result = ingest_manifest(seeded, path, probe=False)
    assert not result.changed
    assert seeded.query_rows("SELECT width, height, content_hash FROM samples WHERE sample_id = 'a'") == measured
    assert_same_content(before, content(seeded))


def test_no_probe_fills_in_what_was_not_measured(catalog: Catalog, tmp_path: Path) -> None:
    first = write_manifest(pd.DataFrame({"path": ["x.png"], "sample_id": ["x"]}), tmp_path / "a.csv")
    ingest_manifest(catalog, first, probe=False)
    second = write_manifest(pd.DataFrame({"path": ["x.png"], "sample_id": ["x"], "width": [64]}),
                            tmp_path / "b.csv")
    assert ingest_manifest(catalog, second, probe=False).updated_samples == 1
    assert catalog.scalar("SELECT width FROM samples") == 64


def test_an_exif_rotated_image_may_be_given_by_its_stored_size(catalog: Catalog, tmp_path: Path) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: displayed 20 wide x 40 high, stored 40 x 20
    Image.new("RGB", (40, 20), (9, 9, 9)).save(tmp_path / "r.jpg", exif=exif)
    for i, (w, h) in enumerate([(40, 20), (20, 40)]):  # as COCO/PIL say it, or as displayed
        path = tmp_path / f"r{i}.csv"
        path.write_text(f"path,sample_id,width,height\nr.jpg,r{i},{w},{h}\n")
        ingest_manifest(catalog, path, progress=False)
    assert catalog.query_rows("SELECT width, height FROM samples ORDER BY 1") == [(20, 40), (20, 40)]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,sample_id,width,height\nr.jpg,r9,40,40\n")
    _refused(catalog, bad, ["row 1 (sample 'r9')", "says 40 but the image is 20 pixels wide"])


# ----------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["sample_key", "Sample_Key", "pred_label", "pred_confidence",
                                  "ingested_at", "import_id", "uri"])
def test_builtin_column_names_are_refused(seeded: Catalog, manifest_frame: pd.DataFrame,
                                          tmp_path: Path, name: str) -> None:
    path = write_manifest(manifest_frame.assign(**{name: 1}), tmp_path / "b.csv")
    _refused(seeded, path, [f"column {name!r}", "built-in"])


def test_builtin_name_given_up_for_another_role_column_is_refused(
        seeded: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    frame = manifest_frame.assign(name=manifest_frame["sample_id"])
    path = write_manifest(frame, tmp_path / "b.csv")
    _refused(seeded, path, ["column 'sample_id'", "built-in"], id_column="name")


def _parquet(path: Path, names: list[str]) -> Path:
    arrays = [pa.array(["images/cat/c1.png"])] + [pa.array([i]) for i in range(len(names) - 1)]
    pq.write_table(pa.table(arrays, names=names), path)
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


NAME_CASES = [
    ("csv_duplicate", lambda p: _text(p / "d.csv", "path,weather,weather\nimages/u0.png,1,2\n"),
     ["column 'weather' appears 2 times (column 2, 3)"]),
    ("csv_case", lambda p: _text(p / "c.csv", "path,weather,Weather\nimages/u0.png,1,2\n"),
     ["columns 'weather', 'Weather' (column 2, 3) differ only by case"]),
    ("csv_empty", lambda p: _text(p / "e.csv", "path,,x\nimages/u0.png,1,2\n"),
     ["a column has an empty name (column 2)"]),
    ("csv_row", lambda p: _text(p / "r.csv", "path,__row__\nimages/u0.png,1\n"),
     ["column '__row__' (column 2)"]),
    ("csv_rowid", lambda p: _text(p / "r.csv", "path,RowID\nimages/u0.png,7\nimages/u1.png,7\n"),
     ["column 'RowID' (column 2) has a name al-explorer uses itself"]),
    ("tsv_quoted_case", lambda p: _text(p / "q.tsv", 'path\t"a\tb"\t"A\tB"\nimages/u0.png\t1\t2\n'),
     ["columns 'a\\tb', 'A\\tB' (column 2, 3) differ only by case"]),
    ("parquet_duplicate", lambda p: _parquet(p / "d.parquet", ["path", "w", "w"]),
     ["column 'w' appears 2 times (column 2, 3)"]),
    ("parquet_case", lambda p: _parquet(p / "c.parquet", ["path", "w", "W"]),
     ["columns 'w', 'W' (column 2, 3) differ only by case"]),
    ("parquet_empty", lambda p: _parquet(p / "e.parquet", ["path", ""]),
     ["a column has an empty name (column 2)"]),
    ("jsonl_case", lambda p: _text(p / "c.jsonl", '{"path": "images/u0.png", "weather": 1}\n'
                                                  '{"path": "images/u1.png", "Weather": 2}\n'),
     ["columns 'weather', 'Weather' differ only by case"]),
    ("jsonl_empty", lambda p: _text(p / "e.jsonl", '{"path": "images/u0.png", "": 1}\n'),
     ["a column has an empty name;"]),
    ("jsonl_duplicate", lambda p: _text(p / "d.jsonl", '{"path": "images/u0.png", "w": 1, "w": 2}\n'),
     ["line 1", 'duplicate key "w"']),
]


@pytest.mark.parametrize("make, fragments", [c[1:] for c in NAME_CASES], ids=[c[0] for c in NAME_CASES])
def test_clashing_or_empty_column_names_are_refused(seeded: Catalog, tmp_path: Path,
                                                    make, fragments: list[str]) -> None:
    _refused(seeded, make(tmp_path), fragments)


# ----------------------------------------------------------------------------- ids as written

WRITTEN_FORM = [
    ("jsonl_int_next_to_float", "m.jsonl",
     '{"path": "a.png", "id": 1, "label": 7}\n{"path": "b.png", "id": 2.5, "label": 7.5}\n',
     [("1", "7"), ("2.5", "7.5")]),
    ("jsonl_int_next_to_text", "m.jsonl",
     '{"path": "a.png", "id": 1, "label": 3}\n{"path": "b.png", "id": "x", "label": "cat"}\n',
     [("1", "3"), ("x", "cat")]),
    ("csv_numbers", "m.csv", "path,id,label,split\na.png,1,1.50,2024\nb.png,2,2.0,2025\n",
     [("1", "1.50"), ("2", "2.0")]),
    ("csv_leading_zeros", "m.csv", "path,id,label\na.png,007,01\nb.png,8,2\n",
     [("007", "01"), ("8", "2")]),
]


@pytest.mark.parametrize("name, text, expected", [c[1:] for c in WRITTEN_FORM],
                         ids=[c[0] for c in WRITTEN_FORM])
def test_ids_and_labels_keep_their_written_form(catalog: Catalog, tmp_path: Path, name: str,
                                                text: str, expected: list[tuple[str, str]]) -> None:
    ingest_manifest(catalog, _text(tmp_path / name, text), probe=False)
    assert catalog.query_rows("SELECT sample_id, label FROM samples ORDER BY uri") == expected


def test_splits_keep_their_written_form(catalog: Catalog, tmp_path: Path) -> None:
    path = _text(tmp_path / "m.jsonl", '{"path": "a.png", "split": 2024}\n'
                                       '{"path": "b.png", "split": "val"}\n')
    ingest_manifest(catalog, path, probe=False)
    assert catalog.query_rows("SELECT split FROM samples ORDER BY uri") == [("2024",), ("val",)]


def test_mixed_json_metadata_is_stored_without_quotes(catalog: Catalog, tmp_path: Path) -> None:
    path = _text(tmp_path / "m.jsonl", '{"path": "a.png", "camera": 1}\n'
                                       '{"path": "b.png", "camera": "front"}\n')
    ingest_manifest(catalog, path, probe=False)
    assert catalog.query_rows("SELECT camera FROM samples ORDER BY uri") == [("1",), ("front",)]


# ----------------------------------------------------------------------------- COCO

def _coco(tmp_path: Path, images: list[dict]) -> Path:
    make_image(tmp_path / "imgs" / "1.png")
    make_image(tmp_path / "imgs" / "2.png")
    data = {"categories": [{"id": 1, "name": "cone"}],
            "images": images, "annotations": [{"image_id": 10, "category_id": 1}]}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


def _coco_images(**extra: object) -> list[dict]:
    return [{"id": 10, "file_name": "imgs/1.png"}, {"id": 11, "file_name": "imgs/2.png", **extra}]


@pytest.mark.parametrize("key", ["label", "path", "sample_id", "split", "uri", "hash", "subset",
                                 "class", "pred_label", "sample_key", "ID", "__row__"])
def test_coco_image_keys_that_would_override_are_refused(catalog: Catalog, tmp_path: Path,
                                                         key: str) -> None:
    before = content(catalog)
    with pytest.raises(IngestError) as err:
        ingest_coco(catalog, _coco(tmp_path, _coco_images(**{key: "x"})), progress=False)
    assert f"coco.json: images[1]: key {key!r}" in str(err.value)
    assert_same_content(before, content(catalog))


@pytest.mark.parametrize("images, fragment", [
    ([{"id": 10, "file_name": "imgs/1.png", "weather": "sun"},
      {"id": 11, "file_name": "imgs/2.png", "Weather": "rain"}],
     "images[1]: key 'Weather' differs only by case from 'weather' (images[0])"),
    (_coco_images(**{"": 1}), "images[1]: a key is empty"),
    (_coco_images(width=-5), "images[1]: 'width' is -5, not a whole number"),
    (_coco_images(height="12"), "images[1]: 'height' is '12', not a whole number"),
    (_coco_images(width=20), "row 2 (sample '11'): column 'width' says 20 but the image is 16"),
])
def test_bad_coco_images_are_refused(catalog: Catalog, tmp_path: Path, images: list[dict],
                                     fragment: str) -> None:
    before = content(catalog)
    with pytest.raises(IngestError) as err:
        ingest_coco(catalog, _coco(tmp_path, images), progress=False)
    assert fragment in str(err.value) and "coco.json" in str(err.value)
    assert_same_content(before, content(catalog))


# ----------------------------------------------------------------------------- skipping

def test_import_that_skips_every_image_says_what_and_why(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    frame = pd.DataFrame({"path": ["broken.png", "missing.png"]})
    before = content(catalog)
    result = ingest_manifest(catalog, write_manifest(frame, tmp_path / "bad.csv"),
                             skip_bad_images=True, progress=False)
    summary = result.summary()
    assert not result.changed and "already imported" not in summary
    assert "nothing imported: 2 skipped as bad images" in summary
    assert "row 1: " in summary and "broken.png: unreadable or corrupt image" in summary
    assert "row 2: " in summary and "missing.png: file does not exist" in summary
    assert_same_content(before, content(catalog))


def test_import_that_skips_some_and_has_the_rest_says_so(catalog: Catalog, image_dir: Path,
                                                         tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": ["images/u0.png", "images/u1.png"]})
    ingest_manifest(catalog, write_manifest(frame, tmp_path / "m.csv"), progress=False)
    more = pd.concat([frame, pd.DataFrame({"path": ["images/gone.png"]})])
    result = ingest_manifest(catalog, write_manifest(more, tmp_path / "m2.csv"),
                             skip_bad_images=True, progress=False)
    summary = result.summary()
    assert "nothing imported: 1 skipped as bad images" in summary
    assert "the other 2 are already in the catalog as given" in summary
    assert "gone.png: file does not exist" in summary
