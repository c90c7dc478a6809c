"""AppTest: the Export page on the demo: a recipe previewed, recorded, its Label Studio file
offered for download (its SHA-256 shown), the batch in the history with the same bytes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from conftest import APP, APP_TIMEOUT
from streamlit.testing.v1 import AppTest

from al_core import export
from al_core.db.catalog import Catalog


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.run()
    at.switch_page("pages/export.py").run()
    assert not at.exception, at.exception
    return at


def _frame(at: AppTest, column: str):  # noqa: ANN202
    """The first table on the page with ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _text(value: str) -> str:
    """What the user reads of text shown through ``plain()`` (escapes and entities undone)."""
    return re.sub(r"\\(.)", r"\1", value).replace("&#58;\u2060", ":").replace("\u2060", "")


def _hashes(at: AppTest) -> list[str]:
    return re.findall(r"sha256 `([0-9a-f]{64})`", " ".join(c.value for c in at.caption))


def test_preview_record_download_and_history(app_catalog: Path) -> None:
    at = _page()
    assert at.selectbox(key="ex_set").value == "demo CLIP"  # the newest set, for hybrid and de-duplication
    at.number_input(key="ex_budget").set_value(30).run()
    at.button(key="ex_preview").click().run()
    assert not at.exception, at.exception
    assert any("Preview: 30 samples (hybrid 50% + class-balance 30% + random 20%)" in s.value for s in at.subheader)
    picked = _frame(at, "part_rank")
    assert len(picked) == 30 and picked["sample_id"].is_unique
    assert picked.groupby("strategy").size().to_dict() == {"hybrid": 15, "class-balance": 9, "random": 6}
    with Catalog.open(app_catalog, read_only=True) as cat:
        unlabeled = {r[0] for r in cat.query_rows("SELECT sample_id FROM samples WHERE label IS NULL "
                                                  "AND split NOT IN ('val', 'test')")}
    assert set(picked["sample_id"]) <= unlabeled
    comp = _frame(at, "labeled_share")
    assert comp["batch"].sum() == 30 and comp["labeled"].sum() > 0

    at.selectbox(key="ex_format").set_value("label-studio").run()
    at.button(key="ex_create").click().run()
    assert not at.exception, at.exception
    assert any("Batch 1 recorded: 30 samples" in s.value for s in at.success)
    shown = _hashes(at)
    with Catalog.open(app_catalog, read_only=True) as cat:
        files = export.render(export.get_batch(cat, 1), "label-studio")
        assert export.get_batch(cat, 1).items["sample_id"].tolist() == picked["sample_id"].tolist()
    expected = [hashlib.sha256(files[""]).hexdigest(), hashlib.sha256(files[".config.xml"]).hexdigest()]
    assert shown[:2] == expected  # the download buttons hand over exactly what the CLI re-exports
    assert len(at.get("download_button")) >= 2

    history = _frame(at, "recipe")
    assert history["batch_id"].tolist() == [1] and history["size"].tolist() == [30]
    assert at.selectbox(key="ex_hist_format").value == "label-studio"
    assert _hashes(at)[-2:] == expected  # re-download from the history: the same bytes
    at.selectbox(key="ex_status_1").set_value("cancelled").run()
    assert not at.exception, at.exception
    with Catalog.open(app_catalog, read_only=True) as cat:
        assert export.get_batch(cat, 1).status == "cancelled"


def test_a_bad_recipe_says_why(app_catalog: Path) -> None:
    at = _page()
    at.selectbox(key="ex_set").set_value("(no embedding set)").run()  # hybrid needs a set
    at.button(key="ex_preview").click().run()
    assert not at.exception
    assert any("needs an embedding set" in _text(e.value) for e in at.error)


def test_labels_come_back_through_an_upload_and_conflicts_are_reviewed(app_catalog: Path) -> None:
    with Catalog.open(app_catalog, read_only=True) as cat:
        unlabeled = [r[0] for r in cat.query_rows("SELECT sample_id FROM samples WHERE label IS NULL "
                                                  "ORDER BY sample_id LIMIT 3")]
        labeled = cat.query_rows("SELECT sample_id, label FROM samples WHERE label IS NOT NULL "
                                 "ORDER BY sample_id LIMIT 1")[0]
        classes = sorted({r[0] for r in cat.query_rows("SELECT DISTINCT label FROM samples WHERE label IS NOT NULL")})
    other = next(c for c in classes if c != labeled[1])
    rows = "".join(f"{sid},{classes[i]},ann@example.com\n" for i, sid in enumerate(unlabeled))
    text = f"sample_id,label,annotator\n{rows}{labeled[0]},{other},ann@example.com\n"
    at = _page()
    at.file_uploader(key="ex_labels_file").upload("back.csv", text.encode(), "text/csv").run()
    at.button(key="ex_labels_import").click().run()
    assert not at.exception, at.exception
    assert any("3 applied" in _text(s.value) and "1 disagreeing" in _text(s.value) for s in at.success)
    conflicts = _frame(at, "proposed")
    assert conflicts[["sample_id", "current", "proposed"]].values.tolist() == [[labeled[0], labeled[1], other]]
    with Catalog.open(app_catalog, read_only=True) as cat:
        got = dict(cat.query_rows("SELECT sample_id, label FROM samples WHERE sample_id IN (?, ?, ?, ?)",
                                  [*unlabeled, labeled[0]]))
    assert got == {**{sid: classes[i] for i, sid in enumerate(unlabeled)}, labeled[0]: labeled[1]}
    at.button(key="ex_accept").click().run()
    assert not at.exception, at.exception
    with Catalog.open(app_catalog, read_only=True) as cat:
        assert cat.query_rows("SELECT label FROM samples WHERE sample_id = ?", [labeled[0]]) == [(other,)]
    assert any("No label conflicts." in c.value for c in at.caption)
    at.file_uploader(key="ex_labels_file").upload("bad.csv", b"sample_id,label\nghost,car\n", "text/csv").run()
    at.button(key="ex_labels_import").click().run()
    assert any("bad.csv: 1 unknown sample id(s), nothing imported: line 2: 'ghost'" in _text(e.value)
               for e in at.error), [e.value for e in at.error]
