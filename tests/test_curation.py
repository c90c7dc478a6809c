"""Tags (with undo) and the next batch, on the catalog, checked against plain SQL on the same file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from al_core import curation, view
from al_core.curation import CurationError, Selection
from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog, snapshot
from al_core.ingest import ingest_manifest
from al_core.view.filters import Filter

IDS = [f"s{i:02d}" for i in range(12)]


@pytest.fixture
def cat(tmp_path: Path, image_dir: Path) -> Catalog:
    """Twelve samples: even ones labeled (car / bus), odd ones in the pool; weather sun / rain."""
    images = sorted(image_dir.glob("*.png"))
    frame = pd.DataFrame({
        "sample_id": IDS,
        "path": [str(images[i % len(images)]) for i in range(len(IDS))],
        "label": [("car" if i % 4 == 0 else "bus") if i % 2 == 0 else None for i in range(len(IDS))],
        "weather": ["rain" if i % 3 == 0 else "sun" for i in range(len(IDS))],
    })
    manifest = tmp_path / "m.csv"
    frame.to_csv(manifest, index=False)
    catalog = Catalog.open(tmp_path / "c.duckdb")
    ingest_manifest(catalog, manifest)
    return catalog


def _tagged(cat: Catalog, tag: str) -> list[str]:
    return [r[0] for r in cat.query_rows("SELECT sample_id FROM tags WHERE tag = ? ORDER BY 1", [tag])]


RAIN = Filter(categorical=(("weather", ("rain",)),))
RAIN_IDS = [i for n, i in enumerate(IDS) if n % 3 == 0]


@pytest.mark.parametrize(("selection", "expected"), [
    (Selection.of_ids(["s01", "s02", "s01"]), ["s01", "s02"]),  # a repeated tick counts once
    (Selection.of_filter(RAIN), RAIN_IDS),
    (Selection.of_filter(Filter(labeled="unlabeled")), IDS[1::2]),
    (Selection.of_filter(Filter(classes=("car",), labeled="labeled")), ["s00", "s04", "s08"]),
    (Selection.of_filter(Filter(splits=("no-such-split",))), []),
])
def test_tag_selects_exactly_what_the_selection_names(cat: Catalog, selection: Selection,
                                                      expected: list[str]) -> None:
    done = curation.tag(cat, "look", selection)
    assert _tagged(cat, "look") == expected
    assert done.n == len(expected) and done.op == "add" and done.tag == "look"
    assert view.count_filtered(cat, Filter(tags=("look",)), None) == len(expected)


def test_tagging_again_changes_nothing_and_logs_nothing(cat: Catalog) -> None:
    first = curation.tag(cat, "x", Selection.of_ids(["s00", "s01"]))
    version = cat.data_version()
    again = curation.tag(cat, "x", Selection.of_ids(["s00", "s01", "s02"]))
    assert again.n == 1 and _tagged(cat, "x") == ["s00", "s01", "s02"]
    assert cat.data_version() == version + 1
    nothing = curation.tag(cat, "x", Selection.of_ids(["s00"]))
    assert nothing.n == 0
    assert curation.last_tag_action(cat).action_id == again.action_id != first.action_id


def test_undo_is_a_stack_and_restores_removed_tags_with_their_time(cat: Catalog) -> None:
    add_a = curation.tag(cat, "a", Selection.of_ids(["s00", "s01"]))
    before = cat.query_df("SELECT * FROM tags ORDER BY sample_id, tag")
    add_b = curation.tag(cat, "a", Selection.of_ids(["s02"]))
    removed = curation.untag(cat, "a", Selection.of_ids(["s00", "s02", "s05"]))  # s05 never had it
    assert removed.n == 2 and _tagged(cat, "a") == ["s01"]
    with pytest.raises(CurationError, match="only the newest tag action|Only the newest"):
        curation.undo_tag_action(cat, add_b.action_id)
    assert _tagged(cat, "a") == ["s01"]  # refused: nothing undone
    curation.undo_tag_action(cat, removed.action_id)
    assert _tagged(cat, "a") == ["s00", "s01", "s02"]
    curation.undo_tag_action(cat, add_b.action_id)
    pd.testing.assert_frame_equal(cat.query_df("SELECT * FROM tags ORDER BY sample_id, tag"), before)
    assert curation.last_tag_action(cat).action_id == add_a.action_id
    curation.undo_tag_action(cat, add_a.action_id)
    assert _tagged(cat, "a") == [] and curation.last_tag_action(cat) is None
    with pytest.raises(CurationError, match="no tag action to undo"):
        curation.undo_tag_action(cat, add_a.action_id)


@pytest.mark.parametrize(("tag", "problem"), [
    ("", "at least one visible character"),
    ("   ", "at least one visible character"),
    (None, "at least one visible character"),
    ("x" * 65, "at most 64 characters"),
    ("bad\ttag", "control characters"),
    ("bad\x00tag", "control characters"),
])
def test_bad_tags_are_refused_and_nothing_is_written(cat: Catalog, tag: object, problem: str) -> None:
    before = snapshot(cat)
    with pytest.raises(CurationError, match=problem):
        curation.tag(cat, tag, Selection.of_ids(["s00"]))
    assert_same(before, snapshot(cat))


@pytest.mark.parametrize("tag", ["  night  ", "![x](http://127.0.0.1:9/p.png)", "<b>é</b>", "a'b\"c;--"])
def test_any_visible_text_is_a_tag_kept_as_written_trimmed(cat: Catalog, tag: str) -> None:
    curation.tag(cat, tag, Selection.of_ids(["s03"]))
    assert view.list_tags(cat) == [tag.strip()]
    assert view.count_filtered(cat, Filter(tags=(tag.strip(),)), None) == 1


def assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for table in before:
        if table == "catalog_info":
            continue
        pd.testing.assert_frame_equal(before[table], after[table], obj=table)


@pytest.mark.parametrize("action", [
    lambda c, s: curation.tag(c, "t", s),
    lambda c, s: curation.untag(c, "t", s),
    curation.add_to_batch,
    curation.remove_from_batch,
])
def test_unknown_ids_are_named_and_nothing_is_written(cat: Catalog, action) -> None:  # noqa: ANN001
    curation.tag(cat, "t", Selection.of_ids(["s00"]))
    curation.add_to_batch(cat, Selection.of_ids(["s00"]))
    before = snapshot(cat)
    with pytest.raises(CurationError, match=r"'nope', 'zz'.*nothing was changed"):
        action(cat, Selection.of_ids(["s00", "zz", "nope"]))
    assert_same(before, snapshot(cat))


def test_next_batch_is_one_draft_that_adds_without_duplicates(cat: Catalog) -> None:
    assert curation.draft_size(cat) == 0 and curation.batches(cat).empty
    assert curation.add_to_batch(cat, Selection.of_ids(["s05", "s01"])) == 2
    assert curation.add_to_batch(cat, Selection.of_filter(RAIN)) == len(set(RAIN_IDS) - {"s05", "s01"})
    batches = curation.batches(cat)
    assert batches[["name", "status", "strategy"]].values.tolist() == [["next batch", "draft", "manual"]]
    items = curation.batch_items(cat)
    assert items["sample_id"].tolist()[:2] == ["s01", "s05"]  # first add, in id order
    assert items["rank"].tolist() == list(range(1, len(items) + 1))
    expected = sorted({"s05", "s01", *RAIN_IDS})
    assert sorted(items["sample_id"]) == expected == [
        r[0] for r in cat.query_rows(*view.sql.filtered_ids(Filter(batch="in"), cat.metadata_fields(), None))]
    assert view.count_filtered(cat, Filter(batch="out"), None) == len(IDS) - len(expected)
    assert curation.remove_from_batch(cat, Selection.of_ids(["s01", "s02"])) == 1  # s02 was not in it
    assert curation.draft_size(cat) == len(expected) - 1
    assert curation.clear_batch(cat) == len(expected) - 1 and curation.draft_size(cat) == 0
    assert len(curation.batches(cat)) == 1  # the draft stays, empty: still one


def test_draft_composition_counts_labeled_and_pool(cat: Catalog) -> None:
    curation.add_to_batch(cat, Selection.of_ids(IDS[:5]))
    parts = curation.draft_composition(cat).groupby("part")["n"].sum().to_dict()
    assert parts == {"labeled": 3, "unlabeled": 2}


def test_batch_filter_ignores_exported_batches(cat: Catalog) -> None:
    curation.add_to_batch(cat, Selection.of_ids(["s00"]))
    with cat.transaction("test: pretend the draft was exported") as cur:
        cur.execute("UPDATE export_batches SET status = 'exported'")
    assert curation.draft_size(cat) == 0
    assert view.count_filtered(cat, Filter(batch="in"), None) == 0
    curation.add_to_batch(cat, Selection.of_ids(["s01"]))  # a new draft opens
    assert curation.batches(cat)["status"].tolist() == ["draft", "exported"]


def test_v2_catalog_upgrades_with_batches_marked_exported(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    cat = Catalog(path)
    cat.migrate(target=2)
    with cat.transaction("test: an export written by v2") as cur:
        cur.execute("INSERT INTO export_batches VALUES (nextval('batch_seq'), 'b1', 'uncertainty', NULL, "
                    "'csv', '/x.csv', 10, current_timestamp::TIMESTAMP)")
        cur.execute("INSERT INTO export_items VALUES (1, 's00', 1, 0.5)")
    cat.migrate()
    assert cat.schema_version() == db_sql.LATEST_SCHEMA_VERSION
    assert cat.query_rows("SELECT name, status FROM export_batches") == [("b1", "exported")]
    assert curation.draft_size(cat) == 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = {r[0] for r in con.execute("DESCRIBE export_items").fetchall()}
    finally:
        con.close()
    assert "added_at" in cols


def test_select_all_in_view_scales_as_one_statement(cat: Catalog) -> None:
    """A filter selection is resolved in SQL inside the write, never listed in Python."""
    sel = Selection.of_filter(Filter(labeled="labeled"))
    text, params = sel.query(cat.metadata_fields())
    assert "unnest" not in text and params == []
    assert curation.add_to_batch(cat, sel) == 6
