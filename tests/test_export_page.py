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
    assert any("needs an embedding set" in e.value for e in at.error)
