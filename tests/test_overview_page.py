"""AppTest: the Overview page's decision aids, checked against SQL written here on the same file.

Labeled vs unlabeled-pool charts per metadata field, the base of the imbalance measures, axis
titles (log scale said), the class table (every class clickable), and empty-filter messages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core.overview.charts import HIT
from al_core.view.filters import parse_drill


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _title(obj: dict) -> str:
    title = obj.get("title") or {}
    return title.get("text", "") if isinstance(title, dict) else str(title)


def _figure(at: AppTest, title: str) -> dict:
    return next(f for f in _figures(at) if _title(f["layout"]) == title)


def _traces(fig: dict) -> dict[str, dict[str, tuple[float, str | None]]]:
    """``{trace name: {x: (y, drill spec)}}``."""
    return {t["name"]: {str(x): (y, d[0]) for x, y, d in zip(t["x"], t["y"], t["customdata"], strict=True)}
            for t in fig["data"]}


def _gallery_total(at: AppTest) -> int:
    text = next(m.value for m in at.markdown if m.value.endswith(" samples**"))
    return int(text.strip("*").split()[0].replace(",", ""))


def _drill_heading(at: AppTest) -> str:
    return next(h.value for h in at.subheader if h.value.startswith("Drill-down")).replace("\\", "")


@pytest.fixture
def at(app_catalog: Path) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=APP_TIMEOUT).run()
    assert not app.exception
    return app


@pytest.mark.parametrize("field", ["time_of_day", "weather", "camera"])
def test_field_charts_show_labeled_beside_the_pool(at: AppTest, app_catalog: Path, field: str) -> None:
    at.segmented_control(key="ov_field_mode").set_value("counts").run()
    traces = _traces(_figure(at, field))
    rows = direct(app_catalog, f"SELECT coalesce({field}, '(missing)'), label IS NULL, count(*) FROM samples GROUP BY ALL")
    expected = {("unlabeled pool" if pool else "labeled", v): n for v, pool, n in rows}
    shown = {(name, x): y for name in ("labeled", "unlabeled pool") for x, (y, _) in traces[name].items() if y}
    assert shown == expected
    # every mark's hit area drills like the mark; pool marks open only unlabeled samples
    for name in ("labeled", "unlabeled pool"):
        for x, (_, spec) in traces[name].items():
            assert traces[f"{HIT}: {name}"][x][1] == spec
    for (name, value), n in expected.items():
        at.session_state["overview_drill"] = traces[name][value][1]
        at.run()
        assert _gallery_total(at) == n
        where = f"{field} = '{value}'" if value != "(missing)" else f"{field} IS NULL"
        group = "label IS NULL" if name == "unlabeled pool" else "label IS NOT NULL"
        assert direct(app_catalog, f"SELECT count(*) FROM samples WHERE {where} AND {group}")[0][0] == n
        assert name.split()[0] in _drill_heading(at) and value in _drill_heading(at)


def test_shares_make_a_rare_labeled_value_visible(at: AppTest, app_catalog: Path) -> None:
    """By default the bars are each group's share: night is rarer among the labeled than in the pool."""
    traces = _traces(_figure(at, "time_of_day"))
    (lab_night, lab_all), (pool_night, pool_all) = direct(
        app_catalog, "SELECT count(*) FILTER (WHERE time_of_day = 'night'), count(*) FROM samples "
                     "GROUP BY label IS NULL ORDER BY label IS NULL")
    assert traces["labeled"]["night"][0] == pytest.approx(lab_night / lab_all)
    assert traces["unlabeled pool"]["night"][0] == pytest.approx(pool_night / pool_all)
    assert traces["labeled"]["night"][0] < traces["unlabeled pool"]["night"][0]
    assert "share of its group" in _figure(at, "time_of_day")["layout"]["yaxis"]["title"]["text"]


def test_class_chart_counts_and_every_class_has_a_full_height_target(at: AppTest, app_catalog: Path) -> None:
    fig = _figure(at, "Classes")
    traces = _traces(fig)
    labeled = dict(direct(app_catalog, "SELECT label, count(*) FROM samples WHERE label IS NOT NULL GROUP BY 1"))
    pool = dict(direct(app_catalog, "SELECT pred_label, count(*) FROM samples WHERE label IS NULL GROUP BY 1"))
    assert {x: y for x, (y, _) in traces["labeled"].items() if y} == labeled
    assert {x: y for x, (y, _) in traces["predicted in unlabeled pool"].items() if y} == pool
    top = fig["layout"]["yaxis"]["range"][1]
    rarest = min(labeled, key=labeled.get)
    y, spec = traces[f"{HIT}: labeled"][rarest]
    assert y == top and spec == traces["labeled"][rarest][1]
    assert parse_drill(spec)[1][0].value == rarest
    for _, spec in traces["predicted in unlabeled pool"].values():
        if spec:
            conditions = parse_drill(spec)[1]
            assert conditions[0].column == "label" and conditions[0].is_null  # the pool only


def _captions(at: AppTest) -> list[str]:
    """Captions as shown: plain() escapes punctuation and writes colons as a character reference."""
    return [re.sub(r"\\(.)", r"\1", c.value).replace("&#58;\u2060", ":") for c in at.caption]


def test_imbalance_states_its_base(at: AppTest, app_catalog: Path) -> None:
    counts = dict(direct(app_catalog, "SELECT label, count(*) FROM samples WHERE label IS NOT NULL GROUP BY 1"))
    big, small = max(counts, key=counts.get), min(counts, key=counts.get)
    ratio = next(m for m in at.metric if m.label == "Largest / smallest class")
    assert ratio.value == f"{counts[big] / counts[small]:.1f} : 1"
    assert "labeled samples" in ratio.help
    caption = next(c for c in _captions(at) if c.startswith("Base:"))
    assert "labeled samples" in caption and f"{big} ({counts[big]:,})" in caption
    assert f"{small} ({counts[small]:,})" in caption
    entropy = next(m for m in at.metric if m.label == "Normalized entropy")
    assert "labeled samples" in entropy.help

    at.segmented_control(key="flt_labeled").set_value("unlabeled").run()
    pred = dict(direct(app_catalog, "SELECT pred_label, count(*) FROM samples WHERE label IS NULL GROUP BY 1"))
    ratio = next(m for m in at.metric if m.label == "Largest / smallest class")
    assert ratio.value == f"{max(pred.values()) / min(pred.values()):.1f} : 1"
    caption = next(c for c in _captions(at) if c.startswith("Base:"))
    assert "predictions over the unlabeled pool" in caption and "predictions" in ratio.help


def test_axis_titles_name_the_log_scale(at: AppTest) -> None:
    for fig in _figures(at):
        assert _title(fig["layout"]["xaxis"]) and _title(fig["layout"]["yaxis"]), _title(fig["layout"])
    at.segmented_control(key="ov_scale").set_value("log").run()
    at.segmented_control(key="ov_field_mode").set_value("counts").run()
    for fig in _figures(at):
        if fig["layout"]["yaxis"].get("type") == "log":
            assert _title(fig["layout"]["yaxis"]).endswith("(log scale)")
    logs = [_title(f["layout"]) for f in _figures(at) if f["layout"]["yaxis"].get("type") == "log"]
    assert {"Classes", "Classes per split (labeled)", "time_of_day", "brightness"} <= set(logs)


@pytest.mark.parametrize("column, pool", [(None, False), ("labeled", False), ("predicted in pool", True)])
def test_the_rarest_class_opens_from_the_class_table(at: AppTest, app_catalog: Path, column: str | None,
                                                     pool: bool) -> None:
    at.segmented_control(key="ov_class_view").set_value("table").run()
    table = next(d for d in at.dataframe if d.key and d.key.startswith("ov_class_table"))
    frame = table.value
    assert list(frame.columns) == ["class", "labeled", "predicted in pool"]
    present = frame[frame["predicted in pool"] > 0] if pool else frame[frame["labeled"] > 0]
    row = int(present[present.columns[2 if pool else 1]].idxmin())
    rare = frame.loc[row, "class"]
    selection = {"rows": [row], "columns": [], "cells": []} if column is None else \
        {"rows": [], "columns": [], "cells": [[row, column]]}
    at.session_state[table.key] = {"selection": selection}
    at.run()
    assert not at.exception
    where = f"label IS NULL AND pred_label = '{rare}'" if pool else f"label = '{rare}'"
    assert _gallery_total(at) == direct(app_catalog, f"SELECT count(*) FROM samples WHERE {where}")[0][0] > 0
    assert rare in _drill_heading(at)
    # a chart click afterwards wins over the table's standing selection
    at.session_state["overview_drill"] = _traces(_figure(at, "time_of_day"))["labeled"]["night"][1]
    at.run()
    assert _drill_heading(at) == "Drill-down: labeled, time_of_day = night"


def test_an_empty_filter_says_so_instead_of_blank_charts(app_catalog: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["class"] = ["bus"]
    at.query_params["labeled"] = "unlabeled"  # a class is a label: no unlabeled sample has one
    at.run()
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Samples") == "0"
    assert not at.get("plotly_chart")
    infos = [i.value for i in at.info]
    assert len(infos) >= 7 and all(i.startswith("No samples for this filter") for i in infos)
    assert next(m.value for m in at.metric if m.label == "Largest / smallest class") == "–"
