"""AppTest: ticking samples, tagging them (and undo), the next batch and its count on every page,
and the sample detail's previous / next and link, checked against plain SQL on the catalog."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core import curation
from al_core.db.catalog import Catalog

WRONG = "label IS NOT NULL AND pred_label IS NOT NULL AND label <> pred_label"


def _page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params.update(params)
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception
    return at


def _ticks(at: AppTest, key: str = "samples") -> list:
    return [c for c in at.checkbox if c.key and c.key.startswith(f"{key}_sel_")]


def _tagged(path: Path, tag: str) -> list[str]:
    return [r[0] for r in direct(path, f"SELECT sample_id FROM tags WHERE tag = '{tag}' ORDER BY 1")]


def _badge(at: AppTest) -> str:
    return next(e.proto.label for e in at.sidebar if e.type == "page_link")


def _plain(markdown: str) -> str:
    """The characters a Markdown string made by ``plain()`` shows."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("&#58;", ":").replace("\u2060", "")


def test_tick_tag_and_undo_round_trip_through_the_catalog(app_catalog: Path) -> None:
    first = direct(app_catalog, f"SELECT sample_id FROM samples WHERE {WRONG} ORDER BY 1 LIMIT 1")[0][0]
    curation.tag(Catalog(app_catalog), "seen", curation.Selection.of_ids([first]))
    at = _page("samples", outcome="wrong")
    ticks = _ticks(at)
    chosen = [t.key.removeprefix("samples_sel_") for t in ticks[1:3]]
    for tick in ticks[1:3]:
        tick.check()
    at.run()
    assert "**2 selected**" in [m.value for m in at.markdown]
    at.selectbox(key="samples_tag").set_value("seen").run()
    at.button(key="samples_tag_add").click().run()
    assert not at.exception
    assert _tagged(app_catalog, "seen") == sorted([first, *chosen])
    assert [_plain(t.value) for t in at.toast] == ["Added tag 'seen' to 2 samples."]
    at.button(key="samples_undo").click().run()
    assert _tagged(app_catalog, "seen") == [first]
    assert any("Last tag action: added tag" in _plain(c.value) and "to 1 sample" in _plain(c.value)
               for c in at.caption)  # the one before is next to undo


def test_tag_without_a_name_says_so_and_writes_nothing(app_catalog: Path) -> None:
    at = _page("samples")
    _ticks(at)[0].check()
    at.run()
    version = Catalog(app_catalog).data_version()
    at.button(key="samples_tag_add").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["A tag needs at least one visible character\\."]
    assert Catalog(app_catalog).data_version() == version


def test_select_all_into_the_next_batch_counted_on_every_page(app_catalog: Path) -> None:
    wrong = direct(app_catalog, f"SELECT count(*) FROM samples WHERE {WRONG}")[0][0]
    assert wrong > 24, "the demo must give more than a page of mistakes"
    at = _page("samples", outcome="wrong")
    assert _badge(at) == "Next batch: 0 samples"
    at.button(key="samples_sel_all").click().run()
    assert f"**{wrong:,} selected** (every sample in this view)" in [m.value for m in at.markdown]
    assert all(t.value for t in _ticks(at))
    at.button(key="samples_batch_add").click().run()
    assert curation.draft_size(Catalog(app_catalog)) == wrong
    assert direct(app_catalog, "SELECT count(*) FROM export_items i JOIN export_batches b USING (batch_id) "
                               f"JOIN samples s USING (sample_id) WHERE b.status = 'draft' AND NOT ({WRONG})"
                  ) == [(0,)]
    assert _badge(at) == f"Next batch: {wrong:,} samples"
    for page in ("overview", "batch"):
        assert _badge(_page(page)) == f"Next batch: {wrong:,} samples"
    batch = _page("batch")
    assert f"**{wrong:,} samples**" in [m.value for m in batch.markdown]
    batch.button(key="batch_sel_page").click().run()
    batch.button(key="batch_batch_remove").click().run()
    assert curation.draft_size(Catalog(app_catalog)) == wrong - 24
    assert f"**{wrong - 24:,} samples**" in [m.value for m in batch.markdown]


def test_detail_steps_through_the_gallery_and_its_link_reopens_it(app_catalog: Path) -> None:
    order = [r[0] for r in direct(app_catalog, f"SELECT sample_id FROM samples WHERE {WRONG} ORDER BY 1")]
    at = _page("samples", outcome="wrong")
    at.button(key=f"samples_open_{order[4]}").click().run()
    assert at.query_params["sample"] == order[4]
    assert f"### {order[4]}" in [_plain(m.value) for m in at.markdown]
    at.button(key="detail_next").click().run()
    assert at.query_params["sample"] == order[5]
    assert f"6 of {len(order):,} in this gallery" in [c.value for c in at.caption]
    at.button(key="detail_prev").click().run()
    at.button(key="detail_prev").click().run()
    assert at.query_params["sample"] == order[3]

    link = _page("samples", outcome="wrong", sample=order[30])  # a fresh session from the link
    assert f"### {order[30]}" in [_plain(m.value) for m in link.markdown]
    assert f"31 of {len(order):,} in this gallery" in [c.value for c in link.caption]
    code = [c.value for c in link.code]
    assert code and code[-1].endswith(f"?outcome=wrong&sample={order[30]}")


def test_a_sample_link_works_on_a_page_without_a_gallery_and_unknown_ids_say_so(app_catalog: Path) -> None:
    some = direct(app_catalog, "SELECT min(sample_id) FROM samples")[0][0]
    at = _page("overview", sample=some)
    assert f"### {some}" in [_plain(m.value) for m in at.markdown]
    unknown = _page("samples", sample="no-such-id ![x](http://127.0.0.1:9/p.png)")
    assert [_plain(w.value) for w in unknown.warning] == [
        "No sample no-such-id ![x](http://127.0.0.1:9/p.png) in this catalog."]
