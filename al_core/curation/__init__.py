"""Curation: tag and untag samples (undoable), and collect the next batch to label (a draft batch).

Every write goes through :meth:`Catalog.transaction`, the catalog's one short write path. An
action targets a :class:`Selection`: listed sample ids (what a user ticked in a gallery) or
every sample a :class:`~al_core.view.filters.Filter` matches ("select all N in this view"),
resolved inside the write, so it costs one SQL statement at any catalog size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from al_core.curation import sql
from al_core.db.catalog import Catalog
from al_core.db.sql import Query
from al_core.errors import AlExplorerError
from al_core.view import sql as view_sql
from al_core.view.filters import Filter
from al_core.view.sql import NULL_VALUE, RunRef

__all__ = ["DRAFT_NAME", "MAX_TAG_LEN", "CurationError", "Selection", "TagAction", "add_to_batch",
           "batch_items", "batches", "clean_tag", "clear_batch", "count_in_view", "draft_composition", "draft_size", "last_tag_action",
           "remove_from_batch", "tag", "tag_counts", "undo_tag_action", "untag"]

MAX_TAG_LEN = 64
DRAFT_NAME = "next batch"
#: At most this many ids in one listed selection (a gallery's ticks); "all in view" has no limit.
MAX_LISTED_IDS = 100_000


class CurationError(AlExplorerError):
    """A tag or batch action cannot be done as asked; nothing was written."""


@dataclass(frozen=True)
class Selection:
    """The samples an action applies to: ``ids`` listed, or all that ``flt`` matches (with ``run``)."""

    ids: tuple[str, ...] = ()
    flt: Filter | None = None
    run: RunRef | None = None
    #: with ``flt``: samples to leave out (unticked after "select all")
    exclude: tuple[str, ...] = ()

    @classmethod
    def of_ids(cls, ids: Sequence[str]) -> Selection:
        ids = tuple(dict.fromkeys(str(i) for i in ids))
        if len(ids) > MAX_LISTED_IDS:
            raise CurationError(f"{len(ids):,} listed samples is more than {MAX_LISTED_IDS:,}; "
                                "select them with a filter instead")
        return cls(ids=ids)

    @classmethod
    def of_filter(cls, flt: Filter, run: RunRef | None = None, exclude: Sequence[str] = ()) -> Selection:
        return cls(flt=flt, run=run if run is not None else flt.run, exclude=tuple(map(str, exclude)))

    def query(self, fields: dict[str, str]) -> Query:
        """``SELECT sample_id`` of the selected samples."""
        if self.flt is not None:
            view = view_sql.filtered_view(self.flt, fields, self.run, "s.sample_id")
            return sql.without(view, self.exclude) if self.exclude else view
        return sql.ids_target(self.ids)


@dataclass(frozen=True)
class TagAction:
    """One tag or untag action as logged: ``n`` samples changed (the others already were so)."""

    action_id: int
    op: str  # "add" or "remove"
    tag: str
    n: int
    created_at: datetime | None = None
    undone_at: datetime | None = None
    #: who did it: the catalog handle's role (``app``, ``cli``, …)
    origin: str | None = None

    def describe(self) -> str:
        """E.g. ``added tag 'night' to 12 samples`` (the tag quoted as it is)."""
        verb = "added tag" if self.op == "add" else "removed tag"
        word = "to" if self.op == "add" else "from"
        return f"{verb} {self.tag!r} {word} {self.n:,} sample{'s' if self.n != 1 else ''}"


def clean_tag(text: object) -> str:
    """``text`` as a tag: trimmed, 1..:data:`MAX_TAG_LEN` characters, no control characters."""
    tag = str(text if text is not None else "").strip()
    if not tag:
        raise CurationError("A tag needs at least one visible character.")
    if len(tag) > MAX_TAG_LEN:
        raise CurationError(f"A tag has at most {MAX_TAG_LEN} characters; {tag[:20]!r}… has {len(tag)}.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in tag):
        raise CurationError(f"The tag {tag!r} contains control characters.")
    if tag == NULL_VALUE:  # the filters' word for "no value"
        raise CurationError(f"{NULL_VALUE!r} cannot be a tag: filters use it for a missing value.")
    return tag


def _check_ids(cur: duckdb.DuckDBPyConnection, selection: Selection) -> None:
    if selection.flt is not None or not selection.ids:
        return
    unknown = cur.execute(*sql.unknown_ids(selection.ids)).fetchone()[0] or []
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5])
        more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
        raise CurationError(f"No sample with id {shown}{more} in the catalog; nothing was changed.")


def _tag_action(cat: Catalog, op: str, tag_text: object, selection: Selection) -> TagAction:
    tag_name = clean_tag(tag_text)
    what = f"{'tag' if op == 'add' else 'untag'} samples {tag_name!r}"
    with cat.transaction(what) as cur:
        _check_ids(cur, selection)
        target = selection.query(cat.metadata_fields(cur))
        action_id = int(cur.execute(sql.NEXT_TAG_ACTION).fetchone()[0])
        stage = sql.stage_tag_add if op == "add" else sql.stage_tag_remove
        cur.execute(*stage(action_id, tag_name, target))
        n = int(cur.execute(*sql.count_items(action_id)).fetchone()[0])
        cur.execute(*(sql.apply_tag_add if op == "add" else sql.apply_tag_remove)(action_id, tag_name))
        if n:  # an action that changed nothing leaves nothing to undo
            cur.execute(*sql.record_tag_action(action_id, op, tag_name, n, cat.role))
    return TagAction(action_id, op, tag_name, n, origin=cat.role)


def tag(cat: Catalog, tag_text: object, selection: Selection) -> TagAction:
    """Give every selected sample the tag; returns the action (``n`` newly tagged; an action
    with ``n == 0`` changed nothing and is not logged, so it is not what an undo reverses)."""
    return _tag_action(cat, "add", tag_text, selection)


def untag(cat: Catalog, tag_text: object, selection: Selection) -> TagAction:
    """Take the tag off every selected sample; returns the logged action (``n`` untagged)."""
    return _tag_action(cat, "remove", tag_text, selection)


def _action(row: Sequence[object] | None) -> TagAction | None:
    if row is None:
        return None
    action_id, op, tag_name, n, created, undone, origin = row
    return TagAction(int(action_id), str(op), str(tag_name), int(n),  # type: ignore[call-overload]
                     created, undone, origin)  # type: ignore[arg-type]


def last_tag_action(cat: Catalog) -> TagAction | None:
    """The action an undo would reverse: the newest one not undone yet (None if there is none)."""
    rows = cat.query_rows(sql.LAST_TAG_ACTION)
    return _action(rows[0] if rows else None)


def undo_tag_action(cat: Catalog, action_id: int) -> TagAction:
    """Reverse the tag action ``action_id``, which must be the newest one not undone yet.

    Undo works as a stack: after undoing the newest action, the one before it can be undone.
    A removal comes back with each tag's original time.
    """
    with cat.transaction("undo a tag action") as cur:
        rows = cur.execute(sql.LAST_TAG_ACTION).fetchall()
        last = _action(rows[0] if rows else None)
        if last is None:
            raise CurationError("There is no tag action to undo.")
        if last.action_id != action_id:
            raise CurationError(f"Only the newest tag action can be undone, and that is now #{last.action_id} "
                                f"({last.describe()}), not #{action_id}; nothing was undone.")
        if last.op == "add":
            cur.execute(*sql.apply_tag_remove(action_id, last.tag))
        else:
            cur.execute(*sql.restore_removed_tags(action_id, last.tag))
        cur.execute(*sql.mark_undone(action_id))
    return last


def count_in_view(cat: Catalog, ids: Sequence[str], flt: Filter) -> int:
    """How many of ``ids`` the filter (with its run) matches."""
    return int(cat.scalar(sql.count_listed_in(
        view_sql.filtered_view(flt, cat.metadata_fields(), flt.run, "s.sample_id"), list(ids))))


def tag_counts(cat: Catalog) -> pd.DataFrame:
    """Every tag in use with its number of samples (columns tag, n)."""
    return cat.query_df(sql.TAG_COUNTS)


# ---------------------------------------------------------------- the next batch

def _draft_id(cur: duckdb.DuckDBPyConnection, create: bool) -> int | None:
    row = cur.execute(sql.DRAFT_BATCH).fetchone()
    if row is not None:
        return int(row[0])
    if not create:
        return None
    return int(cur.execute(*sql.create_draft(DRAFT_NAME)).fetchone()[0])


def add_to_batch(cat: Catalog, selection: Selection) -> int:
    """Add the selected samples to the next batch (the one open draft, created if needed).

    Returns how many were added (samples already in it stay where they are). A draft keeps no
    sample from other strategies; only exporting it does.
    """
    with cat.transaction("add samples to the next batch") as cur:
        _check_ids(cur, selection)
        target = selection.query(cat.metadata_fields(cur))
        batch_id = _draft_id(cur, create=True)
        return int(cur.execute(*sql.add_to_batch(batch_id, target)).fetchone()[0])  # type: ignore[arg-type]


def remove_from_batch(cat: Catalog, selection: Selection) -> int:
    """Take the selected samples out of the next batch; returns how many were in it."""
    with cat.transaction("remove samples from the next batch") as cur:
        _check_ids(cur, selection)
        batch_id = _draft_id(cur, create=False)
        if batch_id is None:
            return 0
        target = selection.query(cat.metadata_fields(cur))
        return int(cur.execute(*sql.remove_from_batch(batch_id, target)).fetchone()[0])


def clear_batch(cat: Catalog) -> int:
    """Empty the next batch; returns how many samples it held."""
    with cat.transaction("empty the next batch") as cur:
        batch_id = _draft_id(cur, create=False)
        if batch_id is None:
            return 0
        return int(cur.execute(*sql.clear_batch(batch_id)).fetchone()[0])


def draft_size(cat: Catalog) -> int:
    """Samples in the next batch (0 when there is none)."""
    return int(cat.scalar(sql.DRAFT_SIZE))


def batch_items(cat: Catalog) -> pd.DataFrame:
    """The next batch's samples in the order they were added (sample_id, rank, added_at)."""
    with cat.read() as cur:
        batch_id = _draft_id(cur, create=False)
        if batch_id is None:
            return pd.DataFrame({"sample_id": [], "rank": [], "added_at": []})
        return cur.execute(*sql.batch_items(batch_id)).df()


def draft_composition(cat: Catalog) -> pd.DataFrame:
    """The next batch by part (``unlabeled`` / ``labeled``) and the newest run's predicted class:
    columns part, predicted, n."""
    return cat.query_df(sql.DRAFT_COMPOSITION)


def batches(cat: Catalog) -> pd.DataFrame:
    """Every batch, newest first: batch_id, name, status (draft / exported), strategy, created_at, n."""
    return cat.query_df(sql.batch_summary())
