"""Predictions importer: layouts, validation of every row, idempotency and run consistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_same_content, content, write_manifest

from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import import_predictions, ingest_manifest
from al_core.ingest.predictions import import_predictions_frame


@pytest.fixture
def loaded(catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> Catalog:
    ingest_manifest(catalog, write_manifest(manifest_frame, tmp_path / "m.csv"), progress=False)
    return catalog


def _probs_frame() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["a", "b", "c", "d"],
                         "prob_cat": [0.9, 0.2, 0.5, 0.3],
                         "prob_dog": [0.1, 0.8, 0.5, 0.7]})


def test_probability_columns(loaded: Catalog, tmp_path: Path) -> None:
    result = import_predictions(loaded, write_manifest(_probs_frame(), tmp_path / "p.csv"), "resnet-v1")
    assert result.changed == 4 and result.classes == ["cat", "dog"] and result.has_probs
    rows = loaded.query_rows("SELECT sample_id, pred_label, confidence, probs FROM predictions_by_id ORDER BY 1")
    assert rows[0][:2] == ("a", "cat") and rows[0][2] == pytest.approx(0.9)
    assert rows[1][1] == "dog" and rows[1][3] == pytest.approx([0.2, 0.8])
    assert rows[2][1] == "cat"  # ties go to the first class in order
    assert loaded.query_rows("SELECT name, classes, has_probs FROM model_runs") == [("resnet-v1", ["cat", "dog"], True)]


def test_list_column_with_classes_and_rerun(loaded: Catalog, tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "probs": [[0.25, 0.75], [0.6, 0.4]]})
    path = write_manifest(frame, tmp_path / "p.parquet")
    import_predictions(loaded, path, "m", classes=["dog", "cat"])
    assert dict(loaded.query_rows("SELECT sample_id, pred_label FROM predictions_by_id")) == {"a": "cat", "b": "dog"}
    before = content(loaded)
    assert import_predictions(loaded, path, "m").changed == 0  # the run remembers its classes
    assert_same_content(before, content(loaded))


def test_top1_with_confidence_and_update(loaded: Catalog, tmp_path: Path) -> None:
    frame = pd.DataFrame({"sample_id": ["a", "b"], "prediction": ["cat", "dog"], "confidence": [0.7, 0.6]})
    import_predictions(loaded, write_manifest(frame, tmp_path / "t.jsonl"), "top1", classes=["cat", "dog"])
    changed = frame.assign(prediction=["dog", "dog"])
    result = import_predictions(loaded, write_manifest(changed, tmp_path / "t2.jsonl"), "top1")
    assert result.changed == 1
    assert loaded.query_rows("SELECT pred_label, probs FROM predictions_by_id WHERE sample_id = 'a'") == [("dog", None)]


BAD = [
    ("nan", {"prob_cat": [np.nan, 0.2, 0.5, 0.3]}, "row 1 (sample 'a'): has a NaN probability"),
    ("empty_cell", {"prob_dog": [0.1, None, 0.5, 0.7]}, "row 2 (sample 'b'): has an empty (NULL) probability"),
    ("infinite", {"prob_dog": [0.1, 0.8, np.inf, 0.7]}, "row 3 (sample 'c'): has an infinite probability"),
    ("negative", {"prob_cat": [0.9, -0.2, 0.5, 0.3], "prob_dog": [0.1, 1.2, 0.5, 0.7]},
     "row 2 (sample 'b'): has a negative probability"),
    ("bad_sum", {"prob_dog": [0.1, 0.8, 0.6, 0.7]}, "row 3 (sample 'c'): probabilities sum to 1.1"),
    ("unknown_id", {"sample_id": ["a", "b", "c", "zzz"]}, "1 sample id(s) are not in the catalog: row 4 'zzz'"),
    ("duplicate_id", {"sample_id": ["a", "b", "a", "d"]}, "sample_id 'a' appears in rows 1, 3"),
    ("not_numbers", {"prob_cat": ["x", "0.2", "0.5", "0.3"]}, "probabilities are not numbers"),
]


@pytest.mark.parametrize("name, change, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_predictions_are_refused(loaded: Catalog, tmp_path: Path, name: str, change: dict, fragment: str) -> None:
    frame = _probs_frame().assign(**change)
    if name in ("not_numbers", "empty_cell"):  # CSV: an empty cell reads as NULL
        path = write_manifest(frame, tmp_path / f"{name}.csv")
    else:  # parquet through pyarrow keeps NaN as NaN (pandas would write it as null)
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({c: pa.array(frame[c].tolist(), from_pandas=False) for c in frame}), path)
    before = content(loaded)
    with pytest.raises(IngestError) as err:
        import_predictions(loaded, path, "run")
    assert fragment in str(err.value) and path.name in str(err.value)
    assert_same_content(before, content(loaded))


@pytest.mark.parametrize("frame, kwargs, fragment", [
    (pd.DataFrame({"id": ["a"], "probs": [[0.5, 0.3, 0.2]]}), {"classes": ["cat", "dog"]},
     "has 3 probabilities, expected 2"),
    (pd.DataFrame({"id": ["a"], "probs": [[0.5, 0.5]]}), {}, "name the classes in order with --classes"),
    (pd.DataFrame({"id": ["a"], "prediction": ["bird"]}), {"classes": ["cat", "dog"]}, "predicts unknown class bird"),
    (pd.DataFrame({"id": ["a"], "prediction": ["cat"], "confidence": [1.5]}), {"classes": ["cat"]},
     "outside [0, 1]"),
    (pd.DataFrame({"id": ["a"], "whatever": [1]}), {}, "no predictions found"),
    (pd.DataFrame({"name": ["a"], "prob_cat": [1.0]}), {}, "no sample id column"),
])
def test_more_bad_layouts(loaded: Catalog, tmp_path: Path, frame: pd.DataFrame, kwargs: dict, fragment: str) -> None:
    with pytest.raises(IngestError, match=None) as err:
        import_predictions(loaded, write_manifest(frame, tmp_path / "p.parquet"), "run", **kwargs)
    assert fragment in str(err.value)


def test_existing_run_with_other_classes_is_refused(loaded: Catalog, tmp_path: Path) -> None:
    import_predictions(loaded, write_manifest(_probs_frame(), tmp_path / "p.csv"), "run")
    other = pd.DataFrame({"sample_id": ["a"], "prob_cat": [0.5], "prob_dog": [0.25], "prob_cow": [0.25]})
    before = content(loaded)
    with pytest.raises(IngestError, match="the run's classes are .* use a new run name"):
        import_predictions(loaded, write_manifest(other, tmp_path / "q.csv"), "run")
    assert_same_content(before, content(loaded))


def _mirror(cat: Catalog) -> dict[str, str | None]:
    return dict(cat.query_rows("SELECT sample_id, pred_label FROM samples"))


def test_samples_mirror_the_latest_runs_top1(loaded: Catalog, tmp_path: Path) -> None:
    import_predictions(loaded, write_manifest(_probs_frame(), tmp_path / "p.csv"), "old")
    assert _mirror(loaded) == {"a": "cat", "b": "dog", "c": "cat", "d": "dog"}
    newer = pd.DataFrame({"sample_id": ["a", "b"], "prob_cat": [0.1, 0.9], "prob_dog": [0.9, 0.1]})
    import_predictions(loaded, write_manifest(newer, tmp_path / "q.csv"), "new")
    assert _mirror(loaded) == {"a": "dog", "b": "cat", "c": None, "d": None}
    assert loaded.scalar("SELECT pred_confidence FROM samples WHERE sample_id = 'a'") == pytest.approx(0.9)
    changed_old = _probs_frame().assign(prob_cat=[0.0, 0.0, 0.0, 0.0], prob_dog=[1.0, 1.0, 1.0, 1.0])
    import_predictions(loaded, write_manifest(changed_old, tmp_path / "r.csv"), "old")
    assert _mirror(loaded) == {"a": "dog", "b": "cat", "c": None, "d": None}  # still the newest run


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -1e-3])
def test_tolerance_that_would_disable_the_sum_check_is_refused(
        loaded: Catalog, tmp_path: Path, tolerance: float) -> None:
    path = write_manifest(_probs_frame().assign(prob_dog=[5.0, 5.0, 5.0, 5.0]), tmp_path / "p.csv")
    before = content(loaded)
    with pytest.raises(IngestError) as err:
        import_predictions(loaded, path, "run", tolerance=tolerance)
    assert "p.csv" in str(err.value) and "--tolerance must be a finite number >= 0" in str(err.value)
    assert repr(tolerance) in str(err.value)
    with pytest.raises(IngestError, match="--tolerance"):
        import_predictions_frame(loaded, _probs_frame(), "run", source="frame", tolerance=tolerance)
    assert_same_content(before, content(loaded))


def test_zero_tolerance_is_allowed(loaded: Catalog, tmp_path: Path) -> None:
    frame = _probs_frame().assign(prob_cat=[0.5] * 4, prob_dog=[0.5] * 4)
    assert import_predictions(loaded, write_manifest(frame, tmp_path / "p.csv"), "run",
                              tolerance=0.0).changed == 4


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_prediction_ids_are_trimmed_like_sample_ids(catalog: Catalog, manifest_frame: pd.DataFrame,
                                                    tmp_path: Path, suffix: str) -> None:
    spaced = manifest_frame.assign(sample_id=[" a", "b ", " c ", "d"])
    ingest_manifest(catalog, write_manifest(spaced, tmp_path / f"m{suffix}"), progress=False)
    assert catalog.query_rows("SELECT sample_id FROM samples ORDER BY 1") == [("a",), ("b",), ("c",), ("d",)]
    preds = _probs_frame().assign(sample_id=["  a", "b ", " c ", "d"])
    result = import_predictions(catalog, write_manifest(preds, tmp_path / f"p{suffix}"), "run")
    assert result.changed == 4
    assert dict(catalog.query_rows("SELECT sample_id, pred_label FROM predictions_by_id")) == {
        "a": "cat", "b": "dog", "c": "cat", "d": "dog"}


def test_padded_ids_that_collide_are_duplicates(loaded: Catalog, tmp_path: Path) -> None:
    preds = _probs_frame().assign(sample_id=["a", "b", " a ", "d"])
    with pytest.raises(IngestError, match="sample_id 'a' appears in rows 1, 3"):
        import_predictions(loaded, write_manifest(preds, tmp_path / "p.csv"), "run")


def test_prediction_ids_and_labels_keep_their_written_form(catalog: Catalog, tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.png", "id": 1}\n{"path": "b.png", "id": "x"}\n'
                        '{"path": "c.png", "id": "007"}\n')
    ingest_manifest(catalog, manifest, probe=False)
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": 1, "prediction": 3}\n{"id": "x", "prediction": "cat"}\n'
                     '{"id": "007", "prediction": 3}\n')
    assert import_predictions(catalog, preds, "run").changed == 3
    assert catalog.query_rows("SELECT sample_id, pred_label FROM predictions_by_id ORDER BY 1") == [
        ("007", "3"), ("1", "3"), ("x", "cat")]
