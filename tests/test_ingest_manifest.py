"""Manifest ingest: formats, typed metadata, idempotency, label history and bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_same_content, content, make_image, user_fields, write_manifest

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import ingest_manifest


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_each_format_imports_samples_labels_and_typed_metadata(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = write_manifest(manifest_frame, tmp_path / f"manifest{suffix}")
    result = ingest_manifest(catalog, path, progress=False)
    assert (result.new_samples, result.new_label_versions) == (4, 3)
    assert user_fields(catalog) == {"weather": "VARCHAR", "brightness": "DOUBLE",
                                         "frame_no": "BIGINT", "captured_at": "TIMESTAMP"}
    rows = catalog.query_df("SELECT * FROM samples ORDER BY sample_id")
    assert list(rows["sample_id"]) == ["a", "b", "c", "d"]
    assert list(rows["split"]) == ["train", "val", "train", "unlabeled"]
    assert rows["label"].tolist()[:3] == ["cat", "cat", "dog"] and pd.isna(rows["label"][3])
    assert rows["uri"][0] == str((tmp_path / "images/cat/c0.png").resolve())
    assert (rows["width"][0], rows["height"][0]) == (10, 8)
    assert rows["content_hash"].str.len().eq(32).all()
    assert rows["captured_at"][2] == pd.Timestamp("2024-03-01 22:00")
    assert rows["frame_no"].tolist() == [1, 2, 3, 4]


def test_rerun_changes_nothing(catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_manifest(manifest_frame, tmp_path / "m.csv")
    ingest_manifest(catalog, path, progress=False)
    before = content(catalog)
    again = ingest_manifest(catalog, path, progress=False)
    assert not again.changed and again.new_samples == 0
    assert_same_content(before, content(catalog))


def test_changed_label_records_a_new_version_and_keeps_history(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    relabeled = manifest_frame.assign(label=["dog", "cat", "dog", "cat"])
    result = ingest_manifest(catalog, write_manifest(relabeled, tmp_path / "m2.csv"),
                             label_source="annotator-7", progress=False)
    assert result.new_label_versions == 2  # a: cat->dog, d: none->cat
    history = catalog.query_df(db_sql.label_history("a"))
    assert history["label"].tolist() == ["cat", "dog"]
    assert history["source"].tolist() == ["manifest:m.csv", "annotator-7"]
    current = dict(catalog.query_rows("SELECT sample_id, label FROM samples"))
    assert current == {"a": "dog", "b": "cat", "c": "dog", "d": "cat"}
    # invariant: samples.label is always the latest version in the history
    latest = dict(catalog.query_rows(
        "SELECT sample_id, arg_max(label, label_seq) FROM labels GROUP BY sample_id"))
    assert latest == current


def test_changed_metadata_and_split_update_in_place(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.parquet"), progress=False)
    changed = manifest_frame.assign(weather=["snow", "rain", "sun", "fog"],
                                    split=["test", "val", "train", "unlabeled"])
    result = ingest_manifest(catalog, write_manifest(changed, tmp_path / "m2.parquet"), progress=False)
    assert result.updated_samples == 1 and result.new_samples == 0
    assert catalog.query_rows("SELECT split, weather FROM samples WHERE sample_id = 'a'") == [("test", "snow")]


def test_new_columns_on_reimport_become_new_fields(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    more = manifest_frame.assign(camera=["front", "rear", "front", "side"])
    result = ingest_manifest(catalog, write_manifest(more, tmp_path / "m2.csv"), progress=False)
    assert result.fields_added == ["camera"]
    assert catalog.scalar("SELECT camera FROM samples WHERE sample_id = 'c'") == "front"


def test_ids_default_to_the_path_and_uris_are_kept(catalog: Catalog, tmp_path: Path) -> None:
    frame = pd.DataFrame({"uri": ["s3://bucket/x.jpg", "https://example.org/y.png"], "class": ["a", "b"]})
    path = write_manifest(frame, tmp_path / "remote.csv")
    ingest_manifest(catalog, path, progress=False)  # remote URIs are not probed
    rows = catalog.query_rows("SELECT sample_id, uri, label, width FROM samples ORDER BY 1")
    assert rows == [("https://example.org/y.png", "https://example.org/y.png", "b", None),
                    ("s3://bucket/x.jpg", "s3://bucket/x.jpg", "a", None)]


def test_hostile_column_names_are_stored_safely(catalog: Catalog, image_dir: Path, tmp_path: Path) -> None:
    hostile = 'x"; DROP TABLE samples; --'
    frame = pd.DataFrame({"path": ["images/u0.png"], hostile: ["boom"], "semi;colon": [1.5]})
    ingest_manifest(catalog, write_manifest(frame, tmp_path / "h.parquet"), progress=False)
    assert set(user_fields(catalog)) == {hostile, "semi;colon"}
    assert catalog.scalar(f"SELECT {db_sql.quote_ident(hostile)} FROM samples") == "boom"
    assert catalog.scalar("SELECT count(*) FROM samples") == 1


# ----------------------------------------------------------------------------- bad input

def _bad_cases(tmp: Path, frame: pd.DataFrame) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, fragments the error message must contain)."""
    cases: dict[str, tuple[Path, list[str]]] = {}

    def add(name: str, f: pd.DataFrame | None, fragments: list[str], suffix: str = ".csv",
            raw: bytes | None = None) -> None:
        path = tmp / f"{name}{suffix}"
        if raw is not None:
            path.write_bytes(raw)
        else:
            write_manifest(f, path)  # type: ignore[arg-type]
        cases[name] = (path, [path.name, *fragments])

    add("no_path_column", frame.drop(columns="path"), ["no path column", "sample_id"])
    dup = frame.copy()
    dup.loc[2, "sample_id"] = "a"
    add("duplicate_ids", dup, ["'a'", "rows 1, 3"])
    missing = frame.copy()
    missing.loc[1, "path"] = "images/nope.png"
    add("missing_file", missing, ["row 2", "nope.png", "does not exist"])
    blank = frame.copy()
    blank.loc[3, "path"] = None
    add("blank_path", blank, ["'path'", "row(s) 4"])
    add("empty_file", None, ["empty"], raw=b"")
    add("header_only", None, ["no data rows"], raw=b"path,label\n")
    add("bad_encoding", None, ["line 3", "not valid UTF-8"],
        raw=b"path,label\nimages/u0.png,a\nimages/u1.png,caf\xe9\n")
    add("builtin_name", frame.assign(ingested_at=1), ["'ingested_at'", "built-in"])
    add("bad_json", None, ["cannot be read as jsonl"], suffix=".jsonl", raw=b'{"path": "a.png"}\n{oops\n')
    add("unknown_type", None, ["unknown file type"], suffix=".xlsx", raw=b"PK")
    return cases


CASE_NAMES = ["no_path_column", "duplicate_ids", "missing_file", "blank_path", "empty_file",
              "header_only", "bad_encoding", "builtin_name", "bad_json", "unknown_type"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_manifest_is_refused_clearly_and_writes_nothing(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path, case: str) -> None:
    good = write_manifest(manifest_frame.iloc[:1], tmp_path / "seed.csv")
    ingest_manifest(catalog, good, progress=False)
    before = content(catalog)
    path, fragments = _bad_cases(tmp_path, manifest_frame)[case]
    with pytest.raises(IngestError) as err:
        ingest_manifest(catalog, path, progress=False)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Nothing was written" in message
    assert_same_content(before, content(catalog))


def test_type_conflict_with_existing_field_is_refused(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    before = content(catalog)
    clash = manifest_frame.assign(frame_no=["x", "y", "z", "w"])
    with pytest.raises(IngestError, match="'frame_no' holds VARCHAR values but metadata field 'frame_no' is BIGINT"):
        ingest_manifest(catalog, write_manifest(clash, tmp_path / "clash.csv"), progress=False)
    assert_same_content(before, content(catalog))


def test_id_already_used_for_another_path_is_refused(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    moved = manifest_frame.assign(path=["images/cat/c2.png", *manifest_frame["path"][1:]])
    with pytest.raises(IngestError, match="row 1: sample_id 'a' is already in the catalog with path"):
        ingest_manifest(catalog, write_manifest(moved, tmp_path / "moved.csv"), progress=False)


def test_corrupt_images_are_listed_and_skipped_only_on_request(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = make_image(tmp_path / "images" / "t.jpg", (40, 30))
    good_bytes = good.read_bytes()
    (tmp_path / "images" / "truncated.jpg").write_bytes(good_bytes[: len(good_bytes) // 2])
    frame = pd.concat([manifest_frame, pd.DataFrame({
        "path": ["images/broken.png", "images/truncated.jpg"], "sample_id": ["x", "y"]})])
    path = write_manifest(frame, tmp_path / "with_bad.csv")
    before = content(catalog)
    with pytest.raises(IngestError) as err:
        ingest_manifest(catalog, path, progress=False)
    assert "row 5" in str(err.value) and "broken.png" in str(err.value)
    assert "row 6" in str(err.value) and "truncated.jpg" in str(err.value)
    assert "--skip-bad-images" in str(err.value)
    assert_same_content(before, content(catalog))

    result = ingest_manifest(catalog, path, skip_bad_images=True, progress=False)
    assert result.new_samples == 4 and len(result.skipped) == 2
    assert "broken.png" in result.summary()
    assert catalog.scalar("SELECT count(*) FROM samples WHERE sample_id IN ('x', 'y')") == 0


def test_no_probe_skips_file_checks(catalog: Catalog, tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": ["does/not/exist.jpg"], "width": [640], "height": [480]})
    result = ingest_manifest(catalog, write_manifest(frame, tmp_path / "m.csv"), probe=False)
    assert result.new_samples == 1
    assert catalog.query_rows("SELECT width, height, content_hash FROM samples") == [(640, 480, None)]


def test_many_missing_images_keep_the_hint_and_count(catalog: Catalog, tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": [f"missing/{i}.png" for i in range(30)]})
    with pytest.raises(IngestError) as err:
        ingest_manifest(catalog, write_manifest(frame, tmp_path / "m.csv"), progress=False)
    message = str(err.value)
    assert "30 image(s) missing or unreadable" in message and "--skip-bad-images" in message
    assert "... and 11 more problem(s)" in message


def test_a_column_whose_late_rows_do_not_fit_the_sniffed_type_is_read_from_every_row(
        catalog: Catalog, tmp_path: Path) -> None:
    rows = [f"img{i}.png,{i}" for i in range(30_000)] + ["img_last.png,not-a-number"]
    path = tmp_path / "late.csv"
    path.write_text("path,code\n" + "\n".join(rows) + "\n")
    result = ingest_manifest(catalog, path, probe=False, progress=False)
    assert result.new_samples == 30_001
    assert catalog.metadata_fields()["code"] == "VARCHAR"
    assert catalog.scalar("SELECT code FROM samples WHERE sample_id = 'img_last.png'") == "not-a-number"
    assert catalog.scalar("SELECT code FROM samples WHERE sample_id = 'img7.png'") == "7"


def test_a_column_spelled_like_an_existing_field_in_another_case_is_said(
        catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> None:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    again = manifest_frame[["path", "sample_id"]].assign(Weather="snow")
    result = ingest_manifest(catalog, write_manifest(again, tmp_path / "w.csv"), progress=False)
    assert "column 'Weather' went into the existing field 'weather'" in result.summary()
    assert catalog.metadata_fields()["weather"] == "VARCHAR" and "Weather" not in catalog.metadata_fields()
    assert {r[0] for r in catalog.query_rows("SELECT weather FROM samples")} == {"snow"}
