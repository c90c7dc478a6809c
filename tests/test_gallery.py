"""The gallery's order, pager, URL page and empty state (AppTest), and the sample detail view."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core import view
from al_core.db.catalog import Catalog
from al_core.ingest import ingest_manifest
from al_core.ingest.predictions import import_predictions_frame
from al_core.view import sql as view_sql
from al_core.view.filters import Filter
from pages._ui.detail import display_size, text_value
from pages._ui.gallery import EMPTY, GALLERY_COLUMNS, PAGE_SIZE, clamp_page


def _shown_ids(at: AppTest) -> list[str]:
    """Sample ids of the gallery's cards in grid order (Streamlit lists the grid column by column)."""
    ids = [re.sub(r"\\(.)", r"\1", c.value).split(" · ")[0] for c in at.caption if " · " in c.value]
    n = len(ids)
    listed = [i for c in range(GALLERY_COLUMNS) for i in range(c, n, GALLERY_COLUMNS)]
    grid = [""] * n
    for shown, i in zip(ids, listed, strict=True):
        grid[i] = shown
    return grid


def _samples_page(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params.update(query_params or {})
    at.run()
    at.switch_page("pages/samples.py").run()
    assert not at.exception
    return at


def _page_label(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("page "))


@pytest.mark.parametrize("sort, order", [
    ("id", "sample_id"),
    ("confidence_asc", "pred_confidence ASC NULLS LAST, sample_id"),
    ("confidence_desc", "pred_confidence DESC NULLS LAST, sample_id"),
    ("field:brightness", "brightness ASC NULLS LAST, sample_id"),
    ("field:weather", "weather ASC NULLS LAST, sample_id"),
])
def test_sort_orders_match_sql(app_catalog: Path, sort: str, order: str) -> None:
    at = _samples_page()
    at.selectbox(key="samples_sort").set_value(sort).run()
    assert not at.exception
    expected = [r[0] for r in direct(app_catalog, f"SELECT sample_id FROM samples ORDER BY {order} LIMIT 24")]
    assert _shown_ids(at) == expected
    at.number_input(key="samples_page").set_value(3).run()
    expected = [r[0] for r in direct(app_catalog, f"SELECT sample_id FROM samples ORDER BY {order} "
                                                   "LIMIT 24 OFFSET 48")]
    assert _shown_ids(at) == expected


def test_page_x_of_n_and_url_round_trip(app_catalog: Path) -> None:
    total = direct(app_catalog, "SELECT count(*) FROM samples")[0][0]
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    at = _samples_page()
    assert _page_label(at) == f"page 1 of {pages}"
    assert "page" not in at.query_params
    at.number_input(key="samples_page").set_value(4).run()
    assert _page_label(at) == f"page 4 of {pages}"
    assert at.query_params["page"] in ("4", ["4"])
    # a link naming that page opens on it
    again = _samples_page({"page": "4"})
    assert _page_label(again) == f"page 4 of {pages}"
    assert _shown_ids(again) == _shown_ids(at)


@pytest.mark.parametrize("value, expected", [("0", 1), ("-3", 1), ("junk", 1), ("", 1), ("2.5", 1),
                                             ("9" * 400, None), ("99999", None), ("' OR 1=1 --", 1)])
def test_junk_or_out_of_range_url_page_clamps(app_catalog: Path, value: str, expected: int | None) -> None:
    total = direct(app_catalog, "SELECT count(*) FROM samples")[0][0]
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    at = _samples_page({"page": value})
    assert _page_label(at) == f"page {expected or pages} of {pages}"


def test_empty_result_says_so(app_catalog: Path) -> None:
    at = _samples_page({"labeled": "labeled", "outcome": "unlabeled"})
    assert any(EMPTY in i.value for i in at.info), [i.value for i in at.info]
    assert not [c for c in at.caption if " · " in c.value]


def test_clamp_page() -> None:
    assert [clamp_page(v, 5) for v in ("3", 7, None, "x", "-1", " 2 ")] == [3, 5, 1, 1, 1, 2]
    assert clamp_page("4", 0) == 1


def test_display_size_never_upscales_beyond_4x() -> None:
    assert display_size(5, 5) == 20
    assert display_size(100, 50) == 400
    assert display_size(4000, 3000) == 640
    assert display_size(None, 3) is None


def test_text_value_has_no_nan() -> None:
    assert [text_value(v) for v in (None, float("nan"), pd.NaT, pd.NA, 0, "x")] == ["—", "—", "—", "—", "0", "x"]


# --- the view functions, on a small hand-made catalog ---------------------------------------

HOSTILE = "**bold** [x](http://127.0.0.1:9/) `c`"


@pytest.fixture
def small(catalog: Catalog, manifest_frame: pd.DataFrame, tmp_path: Path) -> Catalog:
    frame = manifest_frame.copy()
    frame.loc[frame["sample_id"] == "b", "label"] = HOSTILE
    frame.to_csv(tmp_path / "m.csv", index=False)
    ingest_manifest(catalog, tmp_path / "m.csv", progress=False)
    import_predictions_frame(catalog, pd.DataFrame({"sample_id": ["a", "b", "c", "d"],
                                                    "probs": [[.7, .2, .1], [.1, .3, .6], [.2, .5, .3], [.4, .4, .2]]}),
                             "probs-run", source="test", classes=["cat", "dog", "owl"])
    import_predictions_frame(catalog, pd.DataFrame({"sample_id": ["a", "c"], "pred_label": ["dog", "cat"],
                                                    "confidence": [0.55, 0.9]}),
                             "top1-run", source="test")
    with catalog.transaction("test tags") as cur:
        cur.execute("INSERT INTO tags VALUES ('a', 'review', now()::TIMESTAMP), ('a', 'blurry', now()::TIMESTAMP)")
        cur.execute("INSERT INTO labels (sample_id, label, source, created_at) "
                    "VALUES ('a', 'dog', 'relabel', now()::TIMESTAMP)")
        cur.execute("UPDATE samples SET weather = NULL WHERE sample_id = 'c'")
    return catalog


def test_sample_detail_matches_sql(small: Catalog) -> None:
    d = view.sample_detail(small, "a")
    assert d is not None
    row = small.query_df("SELECT * FROM samples WHERE sample_id = 'a'").iloc[0]
    assert list(d["fields"]) == list(row.index)
    assert d["fields"]["weather"] == "sun" and d["fields"]["frame_no"] == 1
    history = small.query_rows("SELECT label, source FROM labels WHERE sample_id = 'a' ORDER BY label_seq")
    assert list(zip(d["history"]["label"], d["history"]["source"], strict=True)) == history
    assert list(d["history"]["version"]) == list(range(1, len(history) + 1))
    assert list(d["history"].columns) == ["version", "label", "source", "batch", "time"]
    runs = small.query_rows("SELECT r.name, p.pred_label, p.confidence FROM predictions p JOIN model_runs r "
                            "USING (run_id) JOIN samples s USING (sample_key) WHERE s.sample_id = 'a' "
                            "ORDER BY r.run_id DESC")
    got = list(zip(d["predictions"]["run"], d["predictions"]["pred_label"], d["predictions"]["confidence"],
                   strict=True))
    assert [(r, p) for r, p, _ in got] == [(r, p) for r, p, _ in runs]
    assert [c for *_, c in got] == pytest.approx([c for *_, c in runs])
    top = d["top"]
    assert set(top["run"]) == {"probs-run"}  # the top-1 run has no probabilities
    assert list(top["class"]) == ["cat", "dog", "owl"]
    assert list(top["probability"]) == pytest.approx([.7, .2, .1])
    assert list(d["tags"]["tag"]) == ["blurry", "review"]


def test_sample_detail_missing_values_and_unknown_sample(small: Catalog) -> None:
    d = view.sample_detail(small, "c")
    assert d["fields"]["weather"] is None
    assert not any(isinstance(v, float) and v != v for v in d["fields"].values())  # no NaN
    assert d["tags"].empty
    assert view.sample_detail(small, "nope") is None
    assert view.sample_detail(small, "' OR 1=1 --") is None


def test_sample_detail_keeps_markdown_label_as_data(small: Catalog) -> None:
    d = view.sample_detail(small, "b")
    assert d["fields"]["label"] == HOSTILE
    assert list(d["history"]["label"]) == [HOSTILE]


def test_sorted_page_matches_sql_and_pages_do_not_overlap(small: Catalog) -> None:
    run = view.list_runs(small)["probs-run"][0]
    for sort, order in [("id", "s.sample_id"),
                        ("confidence_asc", "p.confidence ASC NULLS LAST, s.sample_id"),
                        ("field:weather", "s.weather ASC NULLS LAST, s.sample_id")]:
        expected = [r[0] for r in small.query_rows(
            "SELECT s.sample_id FROM samples s LEFT JOIN predictions p ON p.sample_key = s.sample_key "
            f"AND p.run_id = {run.run_id} ORDER BY {order}")]
        pages = [view.gallery_page(small, Filter(), run, [], 2, off, sort)["sample_id"].tolist()
                 for off in (0, 2)]
        assert pages[0] + pages[1] == expected, sort


def test_sort_keys_are_whitelisted(small: Catalog) -> None:
    fields = small.metadata_fields()
    with pytest.raises(ValueError):
        view_sql.sort_clause("sample_id; DROP TABLE samples", fields, None)
    with pytest.raises(ValueError):
        view_sql.sort_clause("field:nope", fields, None)
    assert view_sql.sort_clause("confidence_asc", fields, None) == "s.sample_id"
    numeric = [n for n, t in fields.items() if t in ("DOUBLE", "BIGINT")]
    assert set(view.sort_options(small, None)) == {"id", *(f"field:{n}" for n in fields),
                                                   *(f"field_desc:{n}" for n in numeric)}
    assert view_sql.sort_clause("field_desc:q_sharpness", fields, None).startswith('s."q_sharpness" DESC')
    with pytest.raises(ValueError):
        view_sql.sort_clause("field_desc:nope", fields, None)


def test_detail_dialog_renders_hostile_label_literally(small: Catalog) -> None:
    """The detail page's Markdown never renders the label; tables hold it as text."""
    def page(path: str) -> None:
        from al_core.db.catalog import Catalog
        from pages._ui.detail import sample_detail
        sample_detail(Catalog(path), "b")

    at = AppTest.from_function(page, args=(str(small.path),), default_timeout=APP_TIMEOUT).run()
    assert not at.exception
    assert any(HOSTILE in df.value.to_string() or (df.value == HOSTILE).any().any() for df in at.dataframe)
    for m in at.markdown:
        assert "[x](" not in m.value and "**bold**" not in m.value
