"""SQL of export batches: recording a batch with a snapshot of its items, reading it back, status."""

from __future__ import annotations

from typing import Any

from al_core.db.sql import Query, quote_ident

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
    return ("INSERT INTO export_items (batch_id, sample_id, rank, score, added_at, part, strategy, sent_uri, "
            "rel_path, sent_width, sent_height, sent_pred_label, sent_confidence) "
            f"SELECT ?, f.sample_id, f.rank, f.score, current_timestamp::TIMESTAMP, f.part, f.strategy, "
            f"s.uri, f.rel_path, s.width, s.height, {pred} FROM picked f "
            f"JOIN samples s ON s.sample_id = f.sample_id {join}", params)


SAMPLE_SOURCES = ("SELECT s.sample_id, s.uri, i.kind, i.source FROM picked f JOIN samples s "
                  "ON s.sample_id = f.sample_id LEFT JOIN imports i ON i.import_id = s.import_id")


def batch(batch_id: int) -> Query:
    return ("SELECT batch_id, name, status, strategy, params, format, budget, created_at FROM export_batches "
            "WHERE batch_id = ? AND status <> 'draft'", [batch_id])


def items(batch_id: int) -> Query:
    return ("SELECT rank, sample_id, part, strategy, score, sent_uri AS uri, rel_path, sent_width AS width, "
            "sent_height AS height, sent_pred_label AS pred_label, sent_confidence AS confidence "
            "FROM export_items WHERE batch_id = ? ORDER BY rank", [batch_id])


KNOWN_BATCH_IDS = "SELECT batch_id FROM export_batches WHERE status <> 'draft' ORDER BY batch_id"


def set_status(batch_id: int, status: str) -> Query:
    return ("UPDATE export_batches SET status = ?, status_at = current_timestamp::TIMESTAMP "
            "WHERE batch_id = ? AND status <> 'draft'", [status, batch_id])


LIST = ("SELECT b.batch_id, b.status, count(i.sample_id) AS size, b.strategy AS recipe, b.format, b.created_at "
        "FROM export_batches b LEFT JOIN export_items i ON i.batch_id = b.batch_id WHERE b.status <> 'draft' "
        "GROUP BY ALL ORDER BY b.batch_id DESC")

def run_classes(run_id: int) -> Query:
    return "SELECT classes FROM model_runs WHERE run_id = ?", [run_id]


LABELED_CLASSES = "SELECT DISTINCT label FROM samples WHERE label IS NOT NULL ORDER BY label"


# ---------------------------------------------------------------- labels back
#: Image names of exported items (CVAT's names), older batches first (the newest wins).
EXPORTED_NAMES = ("SELECT rel_path, sample_id FROM export_items WHERE rel_path IS NOT NULL "
                  "ORDER BY batch_id, rank")

#: Returned ids (registered frame ``returned``: sample_id, label, annotator) the catalog lacks.
UNKNOWN_RETURNED_IDS = ("SELECT r.sample_id FROM returned r ANTI JOIN samples s USING (sample_id) "
                        "ORDER BY r.sample_id")

#: Classes the catalog knows: every run's classes and every current label.
KNOWN_CLASSES = ("SELECT DISTINCT c FROM (SELECT unnest(classes) AS c FROM model_runs "
                 "UNION SELECT label FROM samples WHERE label IS NOT NULL) ORDER BY c")

#: Returned labels of classes the catalog does not know (none when it knows no class at all).
UNKNOWN_RETURNED_CLASSES = (f"WITH k AS ({KNOWN_CLASSES}) SELECT r.sample_id, r.label FROM returned r "
                            "WHERE (SELECT count(*) FROM k) > 0 AND r.label NOT IN (SELECT c FROM k) "
                            "ORDER BY r.sample_id")

#: A returned label that differs from the current one and was already seen (pending or rejected).
_SEEN_CONFLICT = ("EXISTS (SELECT 1 FROM labels l WHERE l.sample_id = r.sample_id AND l.label = r.label "
                  "AND l.status IN ('conflict', 'rejected'))")


def classify_returned(replace: bool) -> Query:
    """``new, unchanged, conflicts`` among the returned labels (a conflict seen before counts as
    unchanged unless replacing)."""
    conflict = f"s.label <> r.label AND (? OR NOT {_SEEN_CONFLICT})"
    return (f"SELECT count(*) FILTER (WHERE s.label IS NULL), "
            f"count(*) FILTER (WHERE s.label IS NOT NULL AND NOT ({conflict})), "
            f"count(*) FILTER (WHERE {conflict}) FROM returned r JOIN samples s USING (sample_id)",
            [replace, replace])


def record_returned(source: str, replace: bool) -> Query:
    """A label version per new or conflicting returned label, with its batch (the newest exported
    batch holding the sample) and annotator; runs before :func:`apply_returned`."""
    return ("INSERT INTO labels (sample_id, label, source, batch_id, import_id, created_at, annotator, status) "
            "SELECT r.sample_id, r.label, ?, (SELECT max(i.batch_id) FROM export_items i JOIN export_batches b "
            "ON b.batch_id = i.batch_id WHERE i.sample_id = r.sample_id AND b.status <> 'draft'), NULL, "
            "current_timestamp::TIMESTAMP, r.annotator, "
            "CASE WHEN s.label IS NULL OR ? THEN 'current' ELSE 'conflict' END "
            "FROM returned r JOIN samples s USING (sample_id) "
            f"WHERE s.label IS NULL OR (s.label <> r.label AND (? OR NOT {_SEEN_CONFLICT})) "
            "ORDER BY r.sample_id", [source, replace, replace])


def apply_returned(replace: bool) -> Query:
    return ("UPDATE samples SET label = r.label FROM returned r WHERE samples.sample_id = r.sample_id "
            "AND (samples.label IS NULL OR (? AND samples.label <> r.label))", [replace])


#: Exported or sent batches whose every sample now has a label given since the batch was made
#: (a label recorded for it, or one of this import's returned labels): marked labeled.
CLOSE_LABELED_BATCHES = (
    "UPDATE export_batches SET status = 'labeled', status_at = current_timestamp::TIMESTAMP "
    "WHERE status IN ('exported', 'sent') AND EXISTS (SELECT 1 FROM export_items i WHERE i.batch_id = "
    "export_batches.batch_id) AND NOT EXISTS (SELECT 1 FROM export_items i JOIN samples s "
    "ON s.sample_id = i.sample_id WHERE i.batch_id = export_batches.batch_id AND (s.label IS NULL OR "
    "NOT (EXISTS (SELECT 1 FROM labels l WHERE l.sample_id = i.sample_id AND l.created_at >= "
    "export_batches.created_at) OR EXISTS (SELECT 1 FROM returned r WHERE r.sample_id = i.sample_id)))) "
    "RETURNING batch_id")

CONFLICTS = ("SELECT l.label_seq, l.sample_id, s.label AS current, l.label AS proposed, l.source, l.batch_id, "
             "l.annotator, l.created_at FROM labels l JOIN samples s USING (sample_id) "
             "WHERE l.status = 'conflict' ORDER BY l.label_seq")


def conflict(label_seq: int) -> Query:
    return "SELECT sample_id, label FROM labels WHERE label_seq = ? AND status = 'conflict'", [label_seq]


def resolve(label_seq: int, accept: bool) -> list[Query]:
    """Accept (the label becomes current) or reject a pending conflict."""
    status = "accepted" if accept else "rejected"
    out: list[Query] = [("UPDATE labels SET status = ? WHERE label_seq = ? AND status = 'conflict'",
                         [status, label_seq])]
    if accept:
        out.append(("UPDATE samples SET label = l.label FROM labels l WHERE l.label_seq = ? "
                    "AND samples.sample_id = l.sample_id", [label_seq]))
    return out


def composition(run_id: int | None, field: str | None = None) -> Query:
    """Per class (or per value of metadata ``field``): samples of the registered ``picked``
    frame (by the run's predicted class, or their field value) and labeled samples (by label,
    or field value); groups of either side."""
    if field is not None:
        col = f"coalesce(s.{quote_ident(field)}::VARCHAR, '(none)')"
        pred = f"SELECT {col} AS c, count(*) AS n FROM picked f JOIN samples s ON s.sample_id = f.sample_id GROUP BY 1"
        lab = f"SELECT {col} AS c, count(*) AS n FROM samples s WHERE s.label IS NOT NULL GROUP BY 1"
        params: list[Any] = []
    else:
        lab = "SELECT label AS c, count(*) AS n FROM samples WHERE label IS NOT NULL GROUP BY 1"
        if run_id is not None:
            pred = ("SELECT coalesce(p.pred_label, '(no prediction)') AS c, count(*) AS n FROM picked f "
                    "JOIN samples s ON s.sample_id = f.sample_id LEFT JOIN predictions p "
                    "ON p.sample_key = s.sample_key AND p.run_id = ? GROUP BY 1")
            params = [run_id]
        else:
            pred, params = "SELECT '(no run)' AS c, count(*) AS n FROM picked GROUP BY 1", []
    return (f"WITH b AS ({pred}), l AS ({lab}) SELECT coalesce(b.c, l.c) AS value, b.n AS batch, "
            "l.n AS labeled FROM b FULL JOIN l ON b.c = l.c ORDER BY labeled NULLS FIRST, value", params)
