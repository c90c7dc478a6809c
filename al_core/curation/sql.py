"""SQL of curation: tags (with their undo log) and the next batch, a draft export batch."""

from __future__ import annotations

from collections.abc import Sequence

from al_core.db.sql import Query

#: Status of the one open batch: the next-batch cart. Exports (the export issue) turn it into
#: ``exported``; only exported batches keep their samples from other strategies.
DRAFT = "draft"


def ids_target(ids: Sequence[str]) -> Query:
    """``SELECT sample_id`` of the listed ids that exist (unknown ids simply do not match)."""
    return ("SELECT s.sample_id FROM samples s WHERE s.sample_id IN (SELECT unnest(?::VARCHAR[]))",
            [list(ids)])


def unknown_ids(ids: Sequence[str]) -> Query:
    return ("SELECT list(i ORDER BY i) FROM (SELECT DISTINCT unnest(?::VARCHAR[]) AS i) "
            "WHERE i NOT IN (SELECT sample_id FROM samples)", [list(ids)])


def without(target: Query, ids: Sequence[str]) -> Query:
    """``target`` less the listed ids."""
    text, params = target
    return (f"SELECT t.sample_id FROM ({text}) t WHERE t.sample_id NOT IN (SELECT unnest(?::VARCHAR[]))",
            [*params, list(ids)])


def count_listed_in(target: Query, ids: Sequence[str]) -> Query:
    """How many of the listed ids ``target`` selects."""
    text, params = target
    return (f"SELECT count(*) FROM ({text}) t WHERE t.sample_id IN (SELECT unnest(?::VARCHAR[]))",
            [*params, list(ids)])


NEXT_TAG_ACTION = "SELECT nextval('tag_action_seq')"


def stage_tag_add(action_id: int, tag: str, target: Query) -> Query:
    """Log, as the action's items, the targeted samples that do not have ``tag`` yet."""
    text, params = target
    return (f"INSERT INTO tag_action_items SELECT ?, t.sample_id, NULL FROM ({text}) t "
            "WHERE NOT EXISTS (SELECT 1 FROM tags g WHERE g.sample_id = t.sample_id AND g.tag = ?)",
            [action_id, *params, tag])


def stage_tag_remove(action_id: int, tag: str, target: Query) -> Query:
    """Log, as the action's items, the targeted samples that have ``tag`` (with its time)."""
    text, params = target
    return (f"INSERT INTO tag_action_items SELECT ?, g.sample_id, g.created_at FROM tags g "
            f"WHERE g.tag = ? AND g.sample_id IN (SELECT t.sample_id FROM ({text}) t)",
            [action_id, tag, *params])


def apply_tag_add(action_id: int, tag: str) -> Query:
    return ("INSERT INTO tags SELECT sample_id, ?, current_timestamp::TIMESTAMP "
            "FROM tag_action_items WHERE action_id = ?", [tag, action_id])


def apply_tag_remove(action_id: int, tag: str) -> Query:
    return ("DELETE FROM tags WHERE tag = ? AND sample_id IN "
            "(SELECT sample_id FROM tag_action_items WHERE action_id = ?)", [tag, action_id])


def restore_removed_tags(action_id: int, tag: str) -> Query:
    """Undo of a removal: the tags come back with their original time."""
    return ("INSERT INTO tags SELECT i.sample_id, ?, coalesce(i.tagged_at, current_timestamp::TIMESTAMP) "
            "FROM tag_action_items i WHERE i.action_id = ? AND i.sample_id IN (SELECT sample_id FROM samples) "
            "ON CONFLICT DO NOTHING", [tag, action_id])


def count_items(action_id: int) -> Query:
    return "SELECT count(*) FROM tag_action_items WHERE action_id = ?", [action_id]


def record_tag_action(action_id: int, op: str, tag: str, n: int, origin: str) -> Query:
    return ("INSERT INTO tag_actions VALUES (?, ?, ?, ?, current_timestamp::TIMESTAMP, NULL, ?)",
            [action_id, op, tag, n, origin])


TAG_ACTION_COLUMNS = "action_id, op, tag, n, created_at, undone_at, origin"

#: The action an undo reverses: the newest one not undone yet (undo works as a stack).
LAST_TAG_ACTION = (f"SELECT {TAG_ACTION_COLUMNS} FROM tag_actions WHERE undone_at IS NULL "
                   "ORDER BY action_id DESC LIMIT 1")


def mark_undone(action_id: int) -> Query:
    return ("UPDATE tag_actions SET undone_at = current_timestamp::TIMESTAMP WHERE action_id = ?",
            [action_id])


TAG_COUNTS = "SELECT tag, count(*) AS n FROM tags GROUP BY tag ORDER BY tag"

# ---------------------------------------------------------------- the next batch (draft)

DRAFT_BATCH = ("SELECT batch_id FROM export_batches WHERE status = 'draft' "
               "ORDER BY batch_id LIMIT 1")


def create_draft(name: str) -> Query:
    return ("INSERT INTO export_batches (batch_id, name, strategy, params, format, path, budget, "
            "created_at, status) VALUES (nextval('batch_seq'), ?, 'manual', NULL, NULL, NULL, NULL, "
            "current_timestamp::TIMESTAMP, 'draft') RETURNING batch_id", [name])


def add_to_batch(batch_id: int, target: Query) -> Query:
    """Add the targeted samples not in the batch yet, ranked after its current items."""
    text, params = target
    return (f"INSERT INTO export_items (batch_id, sample_id, rank, score, added_at) "
            f"SELECT ?, t.sample_id, (SELECT coalesce(max(rank), 0) FROM export_items WHERE batch_id = ?) "
            f"+ row_number() OVER (ORDER BY t.sample_id), NULL, current_timestamp::TIMESTAMP "
            f"FROM ({text}) t WHERE NOT EXISTS "
            f"(SELECT 1 FROM export_items e WHERE e.batch_id = ? AND e.sample_id = t.sample_id)",
            [batch_id, batch_id, *params, batch_id])


def remove_from_batch(batch_id: int, target: Query) -> Query:
    text, params = target
    return (f"DELETE FROM export_items WHERE batch_id = ? AND sample_id IN "
            f"(SELECT t.sample_id FROM ({text}) t)", [batch_id, *params])


def clear_batch(batch_id: int) -> Query:
    return "DELETE FROM export_items WHERE batch_id = ?", [batch_id]


DRAFT_SIZE = ("SELECT count(*) FROM export_items i JOIN export_batches b ON b.batch_id = i.batch_id "
              "WHERE b.status = 'draft'")


def batch_items(batch_id: int) -> Query:
    return ("SELECT sample_id, rank, added_at FROM export_items WHERE batch_id = ? ORDER BY rank",
            [batch_id])


def batch_summary() -> Query:
    """Every batch, newest first, with its size."""
    return ("SELECT b.batch_id, b.name, b.status, b.strategy, b.created_at, count(i.sample_id) AS n "
            "FROM export_batches b LEFT JOIN export_items i ON i.batch_id = b.batch_id "
            "GROUP BY ALL ORDER BY b.batch_id DESC", [])


#: What the next batch holds: labeled (to relabel) vs unlabeled, and the newest run's predicted
#: classes (mirrored in ``samples``).
DRAFT_COMPOSITION = (
    "SELECT CASE WHEN s.label IS NULL THEN 'unlabeled' ELSE 'labeled' END AS part, "
    "coalesce(s.pred_label, '(no prediction)') AS predicted, count(*) AS n "
    "FROM export_items i JOIN export_batches b ON b.batch_id = i.batch_id AND b.status = 'draft' "
    "JOIN samples s ON s.sample_id = i.sample_id GROUP BY ALL ORDER BY part DESC, n DESC, predicted")
