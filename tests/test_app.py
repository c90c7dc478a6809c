"""AppTest: the Overview and Samples pages on a small demo catalog, checked against direct queries."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from al_core.db.catalog import Catalog
from al_core.db.sql import quote_ident
from al_core.view.filters import Condition, drill_spec

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90


@pytest.fixture
def app_catalog(demo_build: tuple[Path, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the demo catalog (the app owns its file read-write)."""
    path = tmp_path / "app.duckdb"
    shutil.copy(demo_build[0], path)
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(path))
    yield path


def _direct(path: Path, query: str) -> list[tuple]:
    """Plain SQL, written here, on the app's file (through the catalog's shared read connection)."""
    return Catalog(path).query_rows(query)


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _metric(at: AppTest, label: str) -> int:
    return int(next(m.value for m in at.metric if m.label == label).replace(",", ""))


def _gallery_ids(at: AppTest) -> list[str]:
    return [c.value.split("`")[1] for c in at.caption if c.value.startswith("`")]


def _gallery_total(at: AppTest) -> int:
    text = next(m.value for m in at.markdown if m.value.endswith(" samples**"))
    return int(text.strip("*").split()[0].replace(",", ""))


def test_overview_loads_with_charts(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Overview"
    assert _metric(at, "Samples") == _direct(app_catalog, "SELECT count(*) FROM samples")[0][0]
    assert len(at.get("plotly_chart")) >= 6
    assert len(at.dataframe) == 1  # the slices table


def test_sidebar_filter_changes_counts_and_url(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.multiselect(key="flt_split").set_value(["train"]).run()
    at.multiselect(key="flt_f_weather").set_value(["rain", "fog"]).run()
    expected = _direct(app_catalog, "SELECT count(*), count(label) FROM samples "
                                    "WHERE split = 'train' AND weather IN ('rain', 'fog')")[0]
    assert (_metric(at, "Samples"), _metric(at, "Labeled")) == expected
    assert _as_list(at.query_params["split"]) == ["train"]
    assert sorted(_as_list(at.query_params["f.weather"])) == ["fog", "rain"]


def test_url_filter_is_applied_on_load(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["labeled"] = "unlabeled"
    at.query_params["f.time_of_day"] = ["night"]
    at.run()
    expected = _direct(app_catalog, "SELECT count(*) FROM samples WHERE label IS NULL AND time_of_day = 'night'")[0][0]
    assert _metric(at, "Samples") == expected
    assert at.multiselect(key="flt_f_time_of_day").value == ["night"]


@pytest.mark.parametrize("conditions, where", [
    ((Condition("label", "traffic_cone_green"),), "label = 'traffic_cone_green'"),
    ((Condition("label", is_null=True), Condition("time_of_day", "night")), "label IS NULL AND time_of_day = 'night'"),
    ((Condition("brightness", low=0.3, high=0.5),), "brightness >= 0.3 AND brightness < 0.5"),
])
def test_drill_down_gallery_shows_exactly_those_samples(app_catalog: Path, conditions: tuple, where: str) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.session_state["overview_drill"] = drill_spec("test", *conditions)
    at.run()
    assert not at.exception
    expected = [r[0] for r in _direct(app_catalog, f"SELECT sample_id FROM samples WHERE {where} ORDER BY sample_id")]
    assert _gallery_total(at) == len(expected)
    assert sorted(_gallery_ids(at)) == expected[:24]  # the first page, in id order (grid reads column-wise)


def test_samples_page_gallery_follows_the_filter(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/samples.py").run()
    at.multiselect(key="flt_class").set_value(["bus"]).run()
    expected = _direct(app_catalog, "SELECT count(*) FROM samples WHERE label = 'bus'")[0][0]
    assert at.title[0].value == "Samples"
    assert _gallery_total(at) == expected
    assert all(f"`{i}`" in c.value for i, c in zip(_gallery_ids(at), at.caption, strict=False))


def test_empty_catalog_says_how_to_fill_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(tmp_path / "empty.duckdb"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
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
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    at.multiselect(key=f"flt_f_{hostile}").set_value(["b"]).run()
    assert _metric(at, "Samples") == 1
    assert _direct(path, f"SELECT count({quote_ident(hostile)}) FROM samples")[0][0] == 2

