"""AppTest: the Overview and Samples pages on a small demo catalog, checked against direct queries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core.db.catalog import Catalog
from al_core.db.sql import quote_ident
from al_core.view.filters import Condition, drill_spec
from pages._ui.gallery import GALLERY_COLUMNS


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _metric(at: AppTest, label: str) -> int:
    return int(next(m.value for m in at.metric if m.label == label).replace(",", ""))


def _cards(at: AppTest) -> list[list[str]]:
    """The gallery's captions in the order Streamlit lists them, each split into its parts."""
    return [parts for c in at.caption if len(parts := _unescape(c.value).split(" · ")) >= 2]


def _unescape(markdown: str) -> str:
    """The characters a backslash-escaped Markdown caption shows."""
    return re.sub(r"\\(.)", r"\1", markdown)


#: What a gallery card shows, per sample: hand-written SQL on the same file, page by page.
CARD_SQL = ("SELECT sample_id, label, pred_label, pred_confidence, time_of_day, weather FROM samples "
            "WHERE {where} ORDER BY sample_id LIMIT 24 OFFSET {offset}")


def _assert_gallery_shows(at: AppTest, path: Path, where: str, page: int = 1) -> list[str]:
    """The gallery shows exactly the page the SQL selects: ids, labels, predictions, metadata."""
    rows = direct(path, CARD_SQL.format(where=where, offset=24 * (page - 1)))
    assert rows, "a page with nothing on it would prove nothing"
    cards = _cards(at)
    assert len(cards) == len(rows)
    # cards fill the grid's rows left to right; Streamlit lists the grid column by column
    listed = [i for c in range(GALLERY_COLUMNS) for i in range(c, len(rows), GALLERY_COLUMNS)]
    for card, i in zip(cards, listed, strict=True):
        sample_id, label, pred, confidence, time_of_day, weather = rows[i]
        assert card[0] == sample_id
        assert card[1] == (label if label is not None else "unlabeled"), sample_id
        shown = re.fullmatch(r"pred \*\*(.+)\*\* \((\d+)%\)", card[2])
        assert shown and shown[1] == pred, (sample_id, card)
        assert abs(int(shown[2]) - 100 * confidence) <= 0.5 + 1e-6, (sample_id, card)
        assert card[3:] == [v for v in (time_of_day, weather) if v is not None], (sample_id, card)
    return [r[0] for r in rows]


def _gallery_total(at: AppTest) -> int:
    text = next(m.value for m in at.markdown if m.value.endswith(" samples**"))
    return int(text.strip("*").split()[0].replace(",", ""))


def test_overview_loads_with_charts(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Overview"
    expected = direct(app_catalog, "SELECT count(*), count(label), count(*) - count(label), count(DISTINCT label), "
                                    "count(DISTINCT split), (SELECT count(*) FROM model_runs), "
                                    "(SELECT count(*) FROM embedding_sets) FROM samples")[0]
    shown = [_metric(at, m) for m in ("Samples", "Labeled", "Unlabeled", "Classes", "Splits", "Model runs",
                                      "Embedding sets")]
    assert tuple(shown) == expected
    largest, smallest = direct(app_catalog, "SELECT max(n), min(n) FROM (SELECT count(*) AS n FROM samples "
                                             "WHERE label IS NOT NULL GROUP BY label)")[0]
    ratio = next(m.value for m in at.metric if m.label == "Largest / smallest class")
    assert ratio == f"{largest / smallest:.1f} : 1"
    assert len(at.get("plotly_chart")) >= 6
    assert len(at.dataframe) == 1  # the slices table


def test_sidebar_filter_changes_counts_and_url(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    at.multiselect(key="flt_split").set_value(["train"]).run()
    at.multiselect(key="flt_f_weather").set_value(["rain", "fog"]).run()
    expected = direct(app_catalog, "SELECT count(*), count(label) FROM samples "
                                    "WHERE split = 'train' AND weather IN ('rain', 'fog')")[0]
    assert (_metric(at, "Samples"), _metric(at, "Labeled")) == expected
    assert _as_list(at.query_params["split"]) == ["train"]
    assert sorted(_as_list(at.query_params["f.weather"])) == ["fog", "rain"]


def test_url_filter_is_applied_on_load(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["labeled"] = "unlabeled"
    at.query_params["f.time_of_day"] = ["night"]
    at.run()
    expected = direct(app_catalog, "SELECT count(*) FROM samples WHERE label IS NULL AND time_of_day = 'night'")[0][0]
    assert _metric(at, "Samples") == expected
    assert at.multiselect(key="flt_f_time_of_day").value == ["night"]


@pytest.mark.parametrize("conditions, where, page", [
    ((Condition("label", "traffic_cone_green"),), "label = 'traffic_cone_green'", 1),
    ((Condition("label", is_null=True), Condition("time_of_day", "night")), "label IS NULL AND time_of_day = 'night'", 1),
    ((Condition("label", is_null=True), Condition("time_of_day", "night")), "label IS NULL AND time_of_day = 'night'", 3),
    ((Condition("brightness", low=0.3, high=0.5),), "brightness >= 0.3 AND brightness < 0.5", 2),
    ((Condition("label", is_null=True), Condition("pred_label", "car"), Condition("weather", "fog")),
     "label IS NULL AND pred_label = 'car' AND weather = 'fog'", 2),
])
def test_drill_down_gallery_shows_exactly_those_samples(app_catalog: Path, conditions: tuple, where: str,
                                                       page: int) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    at.session_state["overview_drill"] = drill_spec("test", *conditions)
    at.run()
    assert not at.exception
    total = direct(app_catalog, f"SELECT count(*) FROM samples WHERE {where}")[0][0]
    assert _gallery_total(at) == total
    if page > 1:
        at.number_input(key="ov_drill_gallery_page").set_value(page).run()
        assert not at.exception
    _assert_gallery_shows(at, app_catalog, where, page)


def test_samples_page_gallery_follows_the_filter(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    at.switch_page("pages/samples.py").run()
    assert at.title[0].value == "Samples"
    _assert_gallery_shows(at, app_catalog, "TRUE")
    at.multiselect(key="flt_class").set_value(["bus"]).run()
    assert _gallery_total(at) == direct(app_catalog, "SELECT count(*) FROM samples WHERE label = 'bus'")[0][0]
    first = _assert_gallery_shows(at, app_catalog, "label = 'bus'")
    at.number_input(key="samples_page").set_value(2).run()
    assert not at.exception
    second = _assert_gallery_shows(at, app_catalog, "label = 'bus'", page=2)
    assert not set(first) & set(second)


def test_samples_page_from_a_shared_link(app_catalog: Path) -> None:
    """A link with a filter opens the Samples page on the pool it selects, predictions and all."""
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["labeled"] = "unlabeled"
    at.query_params["f.weather"] = ["fog", "rain"]
    at.switch_page("pages/samples.py").run()
    assert at.title[0].value == "Samples"
    where = "label IS NULL AND weather IN ('fog', 'rain')"
    assert _gallery_total(at) == direct(app_catalog, f"SELECT count(*) FROM samples WHERE {where}")[0][0]
    at.number_input(key="samples_page").set_value(3).run()
    _assert_gallery_shows(at, app_catalog, where, page=3)


def test_gallery_leaves_out_missing_metadata(app_catalog: Path) -> None:
    with Catalog.open(app_catalog) as cat, cat.transaction("test setup") as cur:
        cur.execute("UPDATE samples SET weather = NULL WHERE label = 'bus' AND sample_key % 2 = 0")
    assert direct(app_catalog, "SELECT count(*) FROM samples WHERE label = 'bus' AND weather IS NULL")[0][0] > 0
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    at.switch_page("pages/samples.py").run()
    at.multiselect(key="flt_class").set_value(["bus"]).run()
    _assert_gallery_shows(at, app_catalog, "label = 'bus'")


def test_empty_catalog_says_how_to_fill_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(tmp_path / "empty.duckdb"))
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    assert not at.exception
    assert "al-explorer demo" in at.info[0].value


def test_hostile_field_names_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_dir: Path) -> None:
    import pandas as pd

    from al_core.db.catalog import Catalog
    from al_core.ingest import ingest_manifest

    path = tmp_path / "h.duckdb"
    hostile = 'x"); DROP TABLE samples; --'
    frame = pd.DataFrame({"path": ["images/u0.png", "images/u1.png"], hostile: ["a", "b"], "label": ["p", None]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    with Catalog.open(path) as cat:
        ingest_manifest(cat, tmp_path / "m.csv", progress=False)
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(path))
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    assert not at.exception
    at.multiselect(key=f"flt_f_{hostile}").set_value(["b"]).run()
    assert _metric(at, "Samples") == 1
    assert direct(path, f"SELECT count({quote_ident(hostile)}) FROM samples")[0][0] == 2



def test_the_filter_survives_a_page_switch(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["labeled"] = "unlabeled"
    at.query_params["f.weather"] = ["fog"]
    at.run()
    at.multiselect(key="flt_f_time_of_day").set_value(["night"]).run()
    at.switch_page("pages/samples.py").run()
    assert not at.exception
    where = "label IS NULL AND weather = 'fog' AND time_of_day = 'night'"
    assert _gallery_total(at) == direct(app_catalog, f"SELECT count(*) FROM samples WHERE {where}")[0][0]
    assert _as_list(at.query_params["f.time_of_day"]) == ["night"]
    at.switch_page("pages/overview.py").run()
    assert _metric(at, "Samples") == direct(app_catalog, f"SELECT count(*) FROM samples WHERE {where}")[0][0]


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/samples.py"])
def test_links_with_unknown_or_out_of_range_values_open_without_error(app_catalog: Path, page: str) -> None:
    """Values a link names that the catalog does not have are dropped; ranges are clamped."""
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params.update({"split": ["train", "nope"], "class": ["not-a-class"], "labeled": "bogus",
                            "f.weather": ["fog", "hail"], "f.brightness": "-5..99",
                            "f.captured_at": "1900-01-01..2999-12-31", "tag": "x", "f.unknown": "1"})
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    assert at.multiselect(key="flt_split").value == ["train"]
    assert at.multiselect(key="flt_f_weather").value == ["fog"]
    low, high = direct(app_catalog, "SELECT min(brightness), max(brightness) FROM samples")[0]
    assert tuple(at.slider(key="flt_f_brightness").value) == pytest.approx((low, high))


def test_fuzzed_links_never_raise(app_catalog: Path) -> None:
    import random
    rng = random.Random(7)
    keys = ["split", "class", "labeled", "tag", "f.weather", "f.brightness", "f.captured_at",
            "f.time_of_day", "f.", "f.f.weather", "page", ""]
    values = ["", "..", "1..", "..2", "nan..inf", "2024-13-45..x", "train", "night", "\u0000",
              "' OR 1=1 --", "![x](http://127.0.0.1:9/p.png)", "9" * 400, "-1e308..1e308", "fog"]
    for page in ("pages/overview.py", "pages/samples.py"):
        for _ in range(15):
            at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
            for _ in range(rng.randint(1, 5)):
                at.query_params[rng.choice(keys)] = [rng.choice(values) for _ in range(rng.randint(1, 3))]
            at.run()
            at.switch_page(page).run()
            assert not at.exception, dict(at.query_params)


def test_model_filters_find_the_night_samples_the_model_gets_wrong(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["f.time_of_day"] = ["night"]
    at.run()
    at.switch_page("pages/samples.py").run()
    at.segmented_control(key="flt_outcome").set_value("wrong").run()
    wrong = "time_of_day = 'night' AND label IS NOT NULL AND label <> pred_label"
    assert _gallery_total(at) == direct(app_catalog, f"SELECT count(*) FROM samples WHERE {wrong}")[0][0] > 0
    assert _as_list(at.query_params["outcome"]) == ["wrong"]
    at.segmented_control(key="flt_outcome").set_value("unlabeled").run()
    at.slider(key="flt_conf").set_value((0.0, 0.6)).run()
    pool = "time_of_day = 'night' AND label IS NULL AND pred_confidence <= 0.6"
    assert _gallery_total(at) == direct(app_catalog, f"SELECT count(*) FROM samples WHERE {pool}")[0][0] > 0
    _assert_gallery_shows(at, app_catalog, pool)


def test_a_drill_down_opens_from_its_link_and_closes(app_catalog: Path) -> None:
    spec = drill_spec("labeled as bus", Condition("label", "bus"))
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["drill"] = spec
    at.run()
    assert not at.exception
    assert any("Drill-down" in h.value and "bus" in h.value for h in at.subheader)
    assert _gallery_total(at) == direct(app_catalog, "SELECT count(*) FROM samples WHERE label = 'bus'")[0][0]
    at.button(key="ov_drill_close").click().run()
    assert not any("Drill-down" in h.value for h in at.subheader)
    assert "drill" not in at.query_params


@pytest.mark.parametrize("junk", ["", "{", "[1, 2]", '{"title": "x", "conditions": [["no_such", 1, null, null, false]]}',
                                  '{"title": "x", "conditions": [["label"]]}', '{"title": 5, "conditions": []}'])
def test_a_junk_drill_link_is_ignored(app_catalog: Path, junk: str) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["drill"] = junk
    at.run()
    assert not at.exception
    assert not any("Drill-down" in h.value for h in at.subheader)
