"""SQL of export batches: recording a batch with a snapshot of its items, reading it back, status."""

from __future__ import annotations

from al_core.db.sql import Query

#: Batch statuses after export; ``cancelled`` frees the samples for later batches.
STATUSES = ("exported", "sent", "labeled", "cancelled")


def create_batch(name: str, strategy: str, params: str, fmt: str, budget: int) -> Query:
    return ("INSERT INTO export_batches (batch_id, name, strategy, params, format, path, budget, created_at, "
            "status, status_at) VALUES (nextval('batch_seq'), ?, ?, ?::JSON, ?, NULL, ?, "
            "current_timestamp::TIMESTAMP, 'exported', current_timestamp::TIMESTAMP) RETURNING batch_id",
            [name, strategy, params, fmt, budget])


def insert_items(batch_id: int, run_id: int | None) -> Query:
    """Items from a registered frame ``picked`` (sample_id, rank, part, strategy, score, rel_path)
    with a snapshot of the sample (uri, size) and of the run's prediction."""
    pred = ("p.pred_label, p.confidence" if run_id is not None else "NULL::VARCHAR, NULL::FLOAT")
    join = ("LEFT JOIN predictions p ON p.sample_key = s.sample_key AND p.run_id = ?"
            if run_id is not None else "")
    params = [batch_id, *([run_id] if run_id is not None else [])]
    return ("INSERT INTO export_items (batch_id, sample_id, rank, score, added_at, part, strategy, uri, "
            "rel_path, width, height, pred_label, confidence) "
            f"SELECT ?, f.sample_id, f.rank, f.score, current_timestamp::TIMESTAMP, f.part, f.strategy, "
            f"s.uri, f.rel_path, s.width, s.height, {pred} FROM picked f "
            f"JOIN samples s ON s.sample_id = f.sample_id {join}", params)


SAMPLE_SOURCES = ("SELECT s.sample_id, s.uri, i.kind, i.source FROM picked f JOIN samples s "
                  "ON s.sample_id = f.sample_id LEFT JOIN imports i ON i.import_id = s.import_id")


def batch(batch_id: int) -> Query:
    return ("SELECT batch_id, name, status, strategy, params, format, budget, created_at FROM export_batches "
            "WHERE batch_id = ? AND status <> 'draft'", [batch_id])


def items(batch_id: int) -> Query:
    return ("SELECT rank, sample_id, part, strategy, score, uri, rel_path, width, height, pred_label, confidence "
            "FROM export_items WHERE batch_id = ? ORDER BY rank", [batch_id])


KNOWN_BATCH_IDS = "SELECT batch_id FROM export_batches WHERE status <> 'draft' ORDER BY batch_id"


def set_status(batch_id: int, status: str) -> Query:
    return ("UPDATE export_batches SET status = ?, status_at = current_timestamp::TIMESTAMP "
            "WHERE batch_id = ? AND status <> 'draft'", [status, batch_id])


LIST = ("SELECT b.batch_id, b.status, count(i.sample_id) AS size, b.strategy AS recipe, b.format, b.created_at "
        "FROM export_batches b LEFT JOIN export_items i ON i.batch_id = b.batch_id WHERE b.status <> 'draft' "
        "GROUP BY ALL ORDER BY b.batch_id DESC")

LABELED_CLASSES = "SELECT DISTINCT label FROM samples WHERE label IS NOT NULL ORDER BY label"
