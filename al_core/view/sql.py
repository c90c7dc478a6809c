"""SQL of the filtered view every page reads: the WHERE clause of a Filter, galleries, counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from al_core.db.sql import Query, quote_ident

NULL_VALUE = "(missing)"


def _in_list(expr: str, values: Sequence[Any], params: list[Any]) -> str:
    """``expr IN (?, ...)``; the value ``(missing)`` also matches NULL."""
    wanted = [v for v in values if v != NULL_VALUE]
    parts = []
    if wanted:
        parts.append(f"{expr} IN ({', '.join('?' for _ in wanted)})")
        params.extend(wanted)
    if len(wanted) < len(values):
        parts.append(f"{expr} IS NULL")
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


@dataclass(frozen=True)
class RunRef:
    """A model run as the view sees it: mirrored in ``samples`` (``cached``) or joined as ``p``."""

    run_id: int
    name: str
    cached: bool

    @property
    def label(self) -> str:
        return "s.pred_label" if self.cached else "p.pred_label"

    @property
    def confidence(self) -> str:
        return "s.pred_confidence" if self.cached else "p.confidence"


def column_expr(column: str, fields: dict[str, str], run: RunRef | None = None) -> str:
    """SQL for a filterable column of the view: a whitelisted name or a known metadata field."""
    pred = run.label if run else "p.pred_label"
    builtin = {"label": "s.label", "split": "s.split", "pred_label": pred,
               "class_or_pred": f"coalesce(s.label, {pred})", "sample_id": "s.sample_id"}
    if column in builtin:
        return builtin[column]
    if column in fields:
        return f"s.{quote_ident(column)}"
    raise ValueError(f"unknown column {column!r}")


def view_run(flt: Any, run: RunRef | None) -> RunRef | None:
    """The run whose predictions a view needs: the caller's, else the filter's when it asks
    something of the model (a view that does not, joins nothing)."""
    return run if run is not None else (flt.run if flt.on_model else None)


def _model_clauses(flt: Any, run: RunRef, params: list[Any]) -> list[str]:
    """The model's view of the filter: predicted classes, confidence range, outcome."""
    clauses = []
    if flt.pred_classes:
        clauses.append(_in_list(run.label, flt.pred_classes, params))
    if flt.confidence is not None:
        clauses.append(f"{run.confidence} BETWEEN ? AND ?")
        params += list(flt.confidence)
    outcome = {"correct": f"s.label IS NOT NULL AND s.label = {run.label}",
               "wrong": f"s.label IS NOT NULL AND {run.label} IS NOT NULL AND s.label <> {run.label}",
               "unlabeled": f"s.label IS NULL AND {run.label} IS NOT NULL"}.get(flt.outcome)
    if outcome:
        clauses.append(f"({outcome})")
    return clauses


def filter_where(flt: Any, fields: dict[str, str], run: RunRef | None = None) -> Query:
    """The WHERE clause (without the keyword) of a :class:`al_core.view.filters.Filter`.

    ``run`` is the run whose predictions the model conditions read (see :func:`view_run`).
    """
    from datetime import timedelta

    clauses: list[str] = []
    params: list[Any] = []
    if getattr(flt, "ids", ()):
        clauses.append("s.sample_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(flt.ids))
    if flt.splits:
        clauses.append(_in_list("s.split", flt.splits, params))
    if flt.classes:
        clauses.append(_in_list("s.label", flt.classes, params))
    if flt.labeled == "labeled":
        clauses.append("s.label IS NOT NULL")
    elif flt.labeled == "unlabeled":
        clauses.append("s.label IS NULL")
    for tags, exists in ((flt.tags, "EXISTS"), (flt.tags_exclude, "NOT EXISTS")):
        if tags:
            sub: list[Any] = []
            inner = _in_list("t.tag", tags, sub)
            clauses.append(f"{exists} (SELECT 1 FROM tags t WHERE t.sample_id = s.sample_id AND {inner})")
            params.extend(sub)
    if flt.batch != "all":
        clauses.append(("EXISTS" if flt.batch == "in" else "NOT EXISTS") + " (SELECT 1 FROM export_items i "
                       "JOIN export_batches b ON b.batch_id = i.batch_id AND b.status = 'draft' "
                       "WHERE i.sample_id = s.sample_id)")
    for name, values in flt.categorical:
        clauses.append(_in_list(f"{column_expr(name, fields)}::VARCHAR", values, params))
    for name, (lo, hi) in flt.numeric:
        clauses.append(f"{column_expr(name, fields)} BETWEEN ? AND ?")
        params += [lo, hi]
    for name, (first, last) in flt.dates:
        col = column_expr(name, fields)
        clauses.append(f"{col} >= ?::TIMESTAMP AND {col} < ?::TIMESTAMP")
        params += [first, last + timedelta(days=1)]
    if run is not None:
        clauses += _model_clauses(flt, run, params)
    for cond in flt.conditions:
        col = column_expr(cond.column, fields, run)
        if cond.is_null:
            clauses.append(f"{col} IS NULL")
        elif cond.low is not None or cond.high is not None:
            if cond.low is not None:
                clauses.append(f"{col} >= ?")
                params.append(cond.low)
            if cond.high is not None:
                clauses.append(f"{col} < ?")
                params.append(cond.high)
        else:
            clauses.append(f"{col}::VARCHAR = ?")
            params.append(str(cond.value))
    return (" AND ".join(clauses) or "TRUE"), params


def filtered_view(flt: Any, fields: dict[str, str], run: RunRef | None,
                  columns: str = "s.*") -> Query:
    """``SELECT columns FROM samples s [LEFT JOIN predictions p] WHERE <filter>``.

    A run's predictions are joined (as ``p``) only for a run that ``samples`` does not mirror;
    write prediction columns as ``run.label`` / ``run.confidence``.
    """
    run = view_run(flt, run)
    if run is None and flt.on_model:  # a question to the model, and no model run to ask
        return f"SELECT {columns} FROM samples s WHERE FALSE", []
    where, params = filter_where(flt, fields, run)
    if run is None or run.cached:
        return f"SELECT {columns} FROM samples s WHERE {where}", params
    return (f"SELECT {columns} FROM samples s LEFT JOIN predictions p "
            f"ON p.sample_key = s.sample_key AND p.run_id = ? WHERE {where}", [run.run_id, *params])


def over(view: Query, select: str, extra: list[Any] | None = None) -> Query:
    text, params = view
    return f"WITH v AS ({text}) {select}", [*params, *(extra or [])]


def field_range(name: str) -> Query:
    """Minimum and maximum of a field over the whole catalog (stable bins across filters)."""
    col = quote_ident(name)
    return f"SELECT min({col}), max({col}) FROM samples", []


def count_filtered(flt: Any, fields: dict[str, str], run: RunRef | None) -> Query:
    text, params = filtered_view(flt, fields, run, "count(*)")
    return text, params


def filtered_ids(flt: Any, fields: dict[str, str], run: RunRef | None) -> Query:
    text, params = filtered_view(flt, fields, run, "s.sample_id")
    return f"{text} ORDER BY s.sample_id", params


def distinct_values(name: str, limit: int = 200) -> Query:
    col = column_expr(name, {name: ""})
    return (f"SELECT DISTINCT {col}::VARCHAR AS v FROM samples s WHERE {col} IS NOT NULL "
            "ORDER BY v LIMIT ?", [limit])


LIST_TAGS = "SELECT DISTINCT tag FROM tags ORDER BY tag"
#: Runs, newest first, with their classes (the newest is the one ``samples`` mirrors).
LIST_RUNS = "SELECT run_id, name, classes FROM model_runs ORDER BY run_id DESC"


LATEST_RUN = "SELECT run_id, name FROM model_runs ORDER BY run_id DESC LIMIT 1"


#: Gallery orders besides a metadata field: key -> (needs a run, ORDER BY template).
SORTS = {
    "id": (False, "s.sample_id"),
    "confidence_asc": (True, "{conf} ASC NULLS LAST, s.sample_id"),
    "confidence_desc": (True, "{conf} DESC NULLS LAST, s.sample_id"),
}
#: A sort key ``field:<name>`` orders by that metadata field (ascending, missing last);
#: ``field_desc:<name>`` from the highest value down.
FIELD_SORT = "field:"
FIELD_SORT_DESC = "field_desc:"


def sort_clause(sort: str, fields: dict[str, str], run: RunRef | None) -> str:
    """``ORDER BY`` body of a whitelisted sort key; ties (and missing values) by sample_id.

    Raises ValueError for a key that is neither in :data:`SORTS` nor ``field:<known field>``;
    a confidence order without a run falls back to id order.
    """
    if sort in SORTS:
        needs_run, template = SORTS[sort]
        if needs_run and run is None:
            return "s.sample_id"
        return template.format(conf=run.confidence if run is not None else "")
    if sort.startswith(FIELD_SORT) and sort[len(FIELD_SORT):] in fields:
        return f"s.{quote_ident(sort[len(FIELD_SORT):])} ASC NULLS LAST, s.sample_id"
    if sort.startswith(FIELD_SORT_DESC) and sort[len(FIELD_SORT_DESC):] in fields:
        return f"s.{quote_ident(sort[len(FIELD_SORT_DESC):])} DESC NULLS LAST, s.sample_id"
    raise ValueError(f"unknown sort {sort!r}")


#: The sort key of a filter that lists its samples (``Filter.ids``): in the listed order.
LISTED = "listed"


def _order(sort: str, flt: Any, fields: dict[str, str], run: RunRef | None) -> Query:
    """``ORDER BY`` body and its parameters: ``listed`` (a filter's own id order) or a sort key."""
    if sort == LISTED and getattr(flt, "ids", ()):
        return "list_position(?::VARCHAR[], s.sample_id), s.sample_id", [list(flt.ids)]
    return sort_clause("id" if sort == LISTED else sort, fields, run), []


def gallery_page(flt: Any, fields: dict[str, str], run: RunRef | None, show: Sequence[str],
                 limit: int, offset: int, sort: str = "id") -> Query:
    """One page of samples with label, prediction and a few metadata fields, in the order of a
    whitelisted ``sort`` key (see :func:`sort_clause`, and :data:`LISTED`); ties by sample_id."""
    order, order_params = _order(sort, flt, fields, run)
    meta = "".join(f", s.{quote_ident(n)}" for n in show)
    pred = (f", {run.label} AS pred_label, {run.confidence} AS confidence" if run is not None
            else ", NULL AS pred_label, NULL AS confidence")
    text, params = filtered_view(flt, fields, run,
                                 f"s.sample_id, s.uri, s.content_hash, s.split, s.label{pred}{meta}")
    return f"{text} ORDER BY {order} LIMIT ? OFFSET ?", [*params, *order_params, limit, offset]


def sample_position(flt: Any, fields: dict[str, str], run: RunRef | None, sort: str,
                    sample_id: str) -> Query:
    """The 0-based position of ``sample_id`` in the gallery's order (no row if not in the view)."""
    order, order_params = _order(sort, flt, fields, run)
    text, params = filtered_view(flt, fields, run,
                                 f"s.sample_id, row_number() OVER (ORDER BY {order}) - 1 AS pos")
    return f"SELECT pos FROM ({text}) WHERE sample_id = ?", [*order_params, *params, sample_id]


def samples_brief(sample_ids: Sequence[str]) -> Query:
    """Id, URI, content hash and label of the listed samples, in the order listed."""
    return ("SELECT s.sample_id, s.uri, s.content_hash, s.label FROM samples s "
            "JOIN (SELECT unnest(?::VARCHAR[]) AS sample_id, generate_subscripts(?::VARCHAR[], 1) AS i) o "
            "USING (sample_id) ORDER BY o.i", [list(sample_ids), list(sample_ids)])


def sample_row(sample_id: str) -> Query:
    """Every built-in column and metadata field of one sample."""
    return "SELECT * FROM samples WHERE sample_id = ?", [sample_id]


def sample_label_history(sample_id: str) -> Query:
    """The labels a sample has had, oldest first, numbered as versions."""
    return ("SELECT row_number() OVER (ORDER BY label_seq) AS version, label, source, "
            "batch_id AS batch, created_at AS time FROM labels WHERE sample_id = ? "
            "ORDER BY label_seq", [sample_id])


def sample_predictions(sample_id: str) -> Query:
    """Every run's prediction for one sample, newest run first, with its classes and probabilities."""
    return ("SELECT r.run_id, r.name AS run, p.pred_label, p.confidence, r.has_probs, r.classes, "
            "p.probs FROM predictions p JOIN samples s ON s.sample_key = p.sample_key "
            "JOIN model_runs r ON r.run_id = p.run_id WHERE s.sample_id = ? ORDER BY r.run_id DESC",
            [sample_id])


def sample_tags(sample_id: str) -> Query:
    return "SELECT tag, created_at FROM tags WHERE sample_id = ? ORDER BY tag", [sample_id]
