"""AppTest: ticking samples, tagging them (and undo), the next batch and its count on every page,
and the sample detail's previous / next and link, checked against plain SQL on the catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import APP, APP_TIMEOUT, direct
from streamlit.testing.v1 import AppTest

from al_core import curation
from al_core.db.catalog import Catalog
from al_core.ingest import ingest_manifest
from al_core.view.filters import Filter

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
    return [c for c in at.checkbox if c.key and c.key.startswith(f"{key}_tick:")]


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
    chosen = [t.key.removeprefix("samples_tick:") for t in ticks[1:3]]
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
    assert any(_plain(c.value).startswith("Last tag action (by the CLI at ")  # the one before, next
               and _plain(c.value).endswith("): added tag 'seen' to 1 sample") for c in at.caption)


def test_tag_without_a_name_says_so_and_writes_nothing(app_catalog: Path) -> None:
    at = _page("samples")
    _ticks(at)[0].check()
    at.run()
    version = Catalog(app_catalog).data_version()
    at.button(key="samples_tag_add").click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["Pick a tag or type a new one in the Tag box first\\."]
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
    at.button(key=f"samples_open:{order[4]}").click().run()
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
    assert not unknown.code  # no link to a sample that does not exist


@pytest.fixture
def odd_ids(tmp_path: Path, image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Samples whose ids read like the gallery's own widget names."""
    images = sorted(image_dir.rglob("*.png"))
    ids = ["page", "all", "clear", "open", "a", "b"]
    frame = pd.DataFrame({"sample_id": ids, "path": [str(images[i % len(images)]) for i in range(len(ids))]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    path = tmp_path / "odd.duckdb"
    with Catalog.open(path) as cat:
        ingest_manifest(cat, tmp_path / "m.csv", progress=False)
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(path))
    return path


def test_ids_named_like_widgets_do_not_collide(odd_ids: Path) -> None:
    at = _page("samples")
    ticks = {t.key.removeprefix("samples_tick:"): t for t in _ticks(at)}
    assert set(ticks) == {"page", "all", "clear", "open", "a", "b"}
    ticks["all"].check()
    at.run()
    assert not at.exception and "**1 selected**" in [m.value for m in at.markdown]
    at.button(key="samples_batch_add").click().run()
    assert curation.batch_items(Catalog(odd_ids))["sample_id"].tolist() == ["all"]


def test_select_all_then_untick_keeps_the_rest(odd_ids: Path) -> None:
    at = _page("samples")
    at.button(key="samples_sel_all").click().run()
    next(t for t in _ticks(at) if t.key == "samples_tick:page").uncheck()
    at.run()
    assert "**5 selected** (every sample in this view but 1)" in [m.value for m in at.markdown]
    assert not next(t for t in _ticks(at) if t.key == "samples_tick:page").value
    at.button(key="samples_batch_add").click().run()
    assert sorted(curation.batch_items(Catalog(odd_ids))["sample_id"]) == ["a", "all", "b", "clear", "open"]


def test_ticks_outside_the_view_are_counted_as_such(odd_ids: Path) -> None:
    at = _page("samples")
    for t in _ticks(at)[:2]:
        t.check()
    at.run()
    curation.tag(Catalog(odd_ids), "keep", curation.Selection.of_ids(["a"]))
    at = _page("samples", tag="keep")  # a fresh session: no ticks
    at.session_state["samples_selection"] = {"ids": {"a": True, "b": True}, "all": None, "except": {}}
    at.run()
    assert "**2 selected** (1 of them not in this view)" in [m.value for m in at.markdown]


def test_empty_the_batch(app_catalog: Path) -> None:
    curation.add_to_batch(Catalog(app_catalog), curation.Selection.of_filter(Filter(splits=("val",))))
    at = _page("batch")
    at.button(key="batch_clear").click().run()
    assert not at.exception
    assert curation.draft_size(Catalog(app_catalog)) == 0
    assert [t.value for t in at.toast][-1].startswith("Emptied the next batch (")
    assert _badge(at) == "Next batch: 0 samples"
