"""AppTest: the Image quality page on the demo: counts per flag, one flag's gallery worst first,
tagging it ``exclude``, thresholds that re-flag, and the warning for samples never measured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core.db.catalog import Catalog


def _page(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page("pages/quality.py").run()
    assert not at.exception, at.exception
    return at


def _card_ids(at: AppTest) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", c.value).split(" · ")[0] for c in at.caption if " · " in c.value]


def test_counts_match_the_catalog_and_follow_the_filter(app_catalog: Path) -> None:
    for params, where in (({}, "TRUE"), ({"f.time_of_day": "night"}, "time_of_day = 'night'")):
        at = _page(**params)
        table = at.dataframe[0].value.set_index("flag")
        lab, pool = direct(app_catalog, "SELECT count(*) FILTER (WHERE label IS NOT NULL AND q_dark), "
                                        f"count(*) FILTER (WHERE label IS NULL AND q_dark) FROM samples WHERE {where}")[0]
        assert (table.loc["dark", "labeled"], table.loc["dark", "pool"]) == (lab, pool)
        assert lab + pool > 0


def test_a_flag_gallery_lists_its_samples_worst_first(app_catalog: Path) -> None:
    at = _page(flag="dark")
    n = direct(app_catalog, "SELECT count(*) FROM samples WHERE q_dark")[0][0]
    assert f"**{n:,} samples**" in [m.value for m in at.markdown]
    darkest = [r[0] for r in direct(app_catalog, "SELECT sample_id FROM samples WHERE q_dark "
                                                 "ORDER BY q_brightness_p99, sample_id LIMIT 24")]
    shown = _card_ids(at)  # the grid is read column by column: compare the page as a set
    assert shown[0] == darkest[0] and set(shown) == set(darkest)
    at.selectbox(key="q_flag").set_value("blurry").run()
    n = direct(app_catalog, "SELECT count(*) FROM samples WHERE q_blurry")[0][0]
    assert f"**{n:,} samples**" in [m.value for m in at.markdown]
    assert at.query_params["flag"] == ["blurry"] or at.query_params["flag"] == "blurry"


def test_tag_all_exclude_tags_exactly_the_flagged_view(app_catalog: Path) -> None:
    at = _page(flag="dark", split="train")
    at.button(key="q_tag_all").click().run()
    tagged = {r[0] for r in direct(app_catalog, "SELECT sample_id FROM tags WHERE tag = 'exclude'")}
    expected = {r[0] for r in direct(app_catalog, "SELECT sample_id FROM samples WHERE q_dark AND split = 'train'")}
    assert tagged == expected and expected


def test_a_threshold_change_reflags(app_catalog: Path) -> None:
    at = _page(flag="dark")
    before = direct(app_catalog, "SELECT count(*) FROM samples WHERE q_dark")[0][0]
    at.number_input(key="q_t_dark").set_value(0.6)
    at.button(key="q_t_apply").click().run()
    assert not at.exception, at.exception
    after = direct(app_catalog, "SELECT count(*) FROM samples WHERE q_dark")[0][0]
    assert after > before
    assert direct(app_catalog, "SELECT count(*) FROM samples WHERE q_dark <> (q_brightness_p99 < 0.6)")[0][0] == 0


@pytest.mark.parametrize("unmeasured", [3])
def test_unmeasured_samples_are_named_with_the_command(app_catalog: Path, unmeasured: int) -> None:
    from al_core.db.catalog import Catalog

    with Catalog(app_catalog).transaction("test: forget some signals") as cur:
        cur.execute("UPDATE samples SET q_brightness = NULL WHERE sample_key <= ?", [unmeasured])
    at = _page()
    warning = " ".join(w.value for w in at.warning)
    assert f"{unmeasured:,} sample(s) have no quality signals" in warning
    assert "al-explorer quality --recompute" in warning


def test_switching_to_a_flag_without_a_signal_sorts_by_id(app_catalog: Path) -> None:
    at = _page(flag="blurry")
    assert at.selectbox(key="quality_sort").value == "field:q_sharpness"
    at.selectbox(key="q_flag").set_value("near_duplicate").run()
    assert at.selectbox(key="quality_sort").value == "id"


def test_a_flag_nothing_has_says_so_without_a_gallery(app_catalog: Path) -> None:
    assert direct(app_catalog, "SELECT count(*) FROM samples WHERE q_light")[0][0] == 0
    at = _page(flag="light")
    assert any("No sample in this view is flagged light" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "q_tag_all"]


def test_a_tag_filter_whose_tag_is_gone_empties_the_view(app_catalog: Path) -> None:
    """Undoing the tag a view filters on must not silently widen that view to everything."""
    at = _page(flag="dark")
    at.button(key="q_tag_all").click().run()
    at.switch_page("pages/samples.py").run()
    at.multiselect(key="flt_tag").set_value(["exclude"]).run()
    n = direct(app_catalog, "SELECT count(*) FROM samples WHERE q_dark")[0][0]
    assert f"**{n:,} samples**" in [m.value for m in at.markdown]
    with Catalog(app_catalog).transaction("test: untag elsewhere") as cur:
        cur.execute("DELETE FROM tags WHERE tag = 'exclude'")
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="flt_tag").value == ["exclude"]
    assert "**0 samples**" in [m.value for m in at.markdown]


def test_apply_stores_only_what_changed_here_and_boxes_follow_changes_elsewhere(app_catalog: Path) -> None:
    from al_core import quality

    at = _page(flag="dark")
    quality.set_thresholds(Catalog(app_catalog), {"dark": 0.3})  # the CLI, meanwhile
    at.run()
    assert at.number_input(key="q_t_dark").value == 0.3  # not edited here: it follows
    at.number_input(key="q_t_blurry").set_value(0.2)
    at.button(key="q_t_apply").click().run()
    stored = quality.thresholds(Catalog(app_catalog))
    assert (stored["dark"], stored["blurry"]) == (0.3, 0.2)


def test_duplicate_flags_offer_no_tag_all(app_catalog: Path) -> None:
    at = _page(flag="near_duplicate")
    assert direct(app_catalog, "SELECT count(*) FROM samples WHERE q_near_duplicate")[0][0] > 0
    assert not [b for b in at.button if b.key == "q_tag_all"]
    assert any("perceptual hash, which ignores colour" in c.value for c in at.caption)
