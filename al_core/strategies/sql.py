"""SQL of batch selection: the candidate pool under a recipe's exclusions, and what strategies
read beside it (probabilities, labeled counts, tagged seeds, the draft).

Builders return ``(sql, params)``; values are bound, identifiers quoted; the sidebar filter's own
SQL comes from :func:`al_core.view.sql.filtered_view`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from al_core.db.sql import Query, quote_ident
from al_core.view.sql import RunRef, filtered_view

#: Batches whose samples are out with a labeling provider: not offered again until labeled or
#: cancelled.
OPEN_STATUSES = ("exported", "sent")


def pool(flt: Any, fields: dict[str, str], run: RunRef | None, *, labeled: bool,
         open_batches: bool, splits: Sequence[str], tag: str | None, columns: str) -> Query:
    """``SELECT columns`` of the samples the filter passes, less the exclusions: ``labeled``
    (keep only unlabeled), ``open_batches`` (not in an exported or sent batch), ``splits``
    (case-insensitive split names left out) and ``tag`` (samples carrying it left out).
    Ordered by ``sample_id`` so a seed always sees the same pool."""
    text, params = filtered_view(flt, fields, run, columns)
    conds: list[str] = []
    extra: list[Any] = []
    if labeled:
        conds.append("s.label IS NULL")
    if open_batches:
        conds.append("NOT EXISTS (SELECT 1 FROM export_items i JOIN export_batches b "
                     "ON b.batch_id = i.batch_id WHERE i.sample_id = s.sample_id "
                     f"AND b.status IN ({', '.join('?' for _ in OPEN_STATUSES)}))")
        extra += list(OPEN_STATUSES)
    if splits:
        conds.append(f"lower(coalesce(s.split, '')) NOT IN ({', '.join('?' for _ in splits)})")
        extra += [s.lower() for s in splits]
    if tag:
        conds.append("NOT EXISTS (SELECT 1 FROM tags t WHERE t.sample_id = s.sample_id AND t.tag = ?)")
        extra.append(tag)
    where = "".join(f" AND {c}" for c in conds)
    return f"{text}{where} ORDER BY s.sample_id", [*params, *extra]


def pool_predictions(pool_query: Query, run_id: int) -> Query:
    """``sample_id, pred_label, confidence, probs`` of run ``run_id`` for the pool a
    :func:`pool` query (columns ``s.sample_id, s.sample_key``) selects, in its order."""
    text, params = pool_query
    return (f"SELECT q.sample_id, p.pred_label, p.confidence, p.probs FROM ({text}) q LEFT JOIN predictions p "
            "ON p.sample_key = q.sample_key AND p.run_id = ? ORDER BY q.sample_id", [*params, run_id])


def run_classes(run_id: int) -> Query:
    return "SELECT classes, has_probs FROM model_runs WHERE run_id = ?", [run_id]


#: A pool that selects nothing (the context's placeholder until the real pool query is set).
EMPTY_POOL = "SELECT NULL AS sample_id, NULL AS sample_key WHERE FALSE"

LABELED_CLASSES = "SELECT label, count(*) FROM samples WHERE label IS NOT NULL GROUP BY label"


def labeled_values(field: str) -> Query:
    """Labeled samples per value of a metadata field (as text; NULL as ``(none)``)."""
    col = f"coalesce(s.{quote_ident(field)}::VARCHAR, '(none)')"
    return f"SELECT {col}, count(*) FROM samples s WHERE s.label IS NOT NULL GROUP BY 1", []


def pool_field_values(pool_query: Query, field: str) -> Query:
    """``value``: a metadata field's value (as text; NULL as ``(none)``) for the pool a
    :func:`pool` query selects, in its order."""
    text, params = pool_query
    return (f"SELECT coalesce(s.{quote_ident(field)}::VARCHAR, '(none)') AS value FROM ({text}) q "
            "JOIN samples s ON s.sample_key = q.sample_key ORDER BY q.sample_id", params)


def tagged(tag: str) -> Query:
    return "SELECT sample_id FROM tags WHERE tag = ? ORDER BY sample_id", [tag]


LABELED_IDS = "SELECT sample_id FROM samples WHERE label IS NOT NULL ORDER BY sample_id"

DRAFT_ITEMS = ("SELECT i.sample_id FROM export_items i JOIN export_batches b ON b.batch_id = i.batch_id "
               "WHERE b.status = 'draft' ORDER BY i.rank")


def excluded(open_batches: bool, tag: str | None) -> Query:
    """Ids a recipe keeps out even of its labeled candidates: in an open batch, or tagged ``tag``."""
    parts: list[str] = ["SELECT NULL::VARCHAR AS sample_id WHERE FALSE"]
    params: list[Any] = []
    if open_batches:
        parts.append("SELECT i.sample_id FROM export_items i JOIN export_batches b ON b.batch_id = i.batch_id "
                     f"WHERE b.status IN ({', '.join('?' for _ in OPEN_STATUSES)})")
        params += list(OPEN_STATUSES)
    if tag:
        parts.append("SELECT sample_id FROM tags WHERE tag = ?")
        params.append(tag)
    return " UNION ".join(parts), params
