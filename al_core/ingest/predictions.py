"""Predictions importer: full probability vectors (``prob_<class>`` columns or a list column)
or top-1 label + confidence, for a named model run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from al_core.db.catalog import Catalog, new_connection
from al_core.errors import IngestError
from al_core.ingest import files, sql
from al_core.ingest.manifest import ROLE_ALIASES, NothingChanged

if TYPE_CHECKING:
    import pandas as pd

ID_ALIASES = ROLE_ALIASES["id"]
LIST_ALIASES = ("probs", "probabilities", "scores")
LABEL_ALIASES = ("pred_label", "prediction", "predicted", "predicted_label", "label")
CONFIDENCE_ALIASES = ("confidence", "score", "prob", "probability")
PROB_PREFIX = "prob_"
DEFAULT_TOLERANCE = 1e-3


@dataclass
class PredictionResult:
    """What a predictions import did; ``changed`` is 0 for an identical re-run."""

    run: str
    run_id: int | None
    rows: int
    changed: int
    classes: list[str]
    has_probs: bool

    def summary(self) -> str:
        if not self.changed:
            return f"run {self.run!r}: {self.rows} predictions, nothing changed (already imported)"
        kind = "probability vectors" if self.has_probs else "top-1 labels"
        return (f"run {self.run!r}: {self.rows} predictions ({kind} over {len(self.classes)} "
                f"classes), {self.changed} new or changed")


@dataclass
class _Layout:
    id_col: str
    classes: list[str]
    prob_expr: str | None = None
    label_col: str | None = None
    confidence_col: str | None = None


def _pick(columns: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[a] for a in aliases if a in lower), None)


def _layout(source: str, columns: dict[str, str], classes: list[str] | None,
            run_classes: list[str] | None, id_column: str | None) -> _Layout:
    id_col = id_column or _pick(columns, ID_ALIASES)
    if id_col is None or id_col not in columns:
        raise IngestError(source, [f"no sample id column: expected one of {', '.join(ID_ALIASES)}; "
                                   f"found {', '.join(columns)}"])
    prob_cols = [c for c in columns if c.lower().startswith(PROB_PREFIX)]
    if prob_cols:
        by_class = {c[len(PROB_PREFIX):]: c for c in prob_cols}
        order = classes or run_classes or list(by_class)
        if set(order) != set(by_class):
            raise IngestError(source, [
                f"probability columns are for classes {sorted(by_class)} but the run's classes "
                f"are {sorted(order)}; a run keeps its classes, so use a new run name for others"])
        return _Layout(id_col, list(order), prob_expr=sql.prob_columns_expr([by_class[c] for c in order]))
    list_col = _pick(columns, LIST_ALIASES)
    if list_col and columns[list_col].endswith("[]"):
        order = classes or run_classes
        if not order:
            raise IngestError(source, [f"column {list_col!r} holds probability lists; name the "
                                       "classes in order with --classes a,b,c"])
        return _Layout(id_col, list(order), prob_expr=sql.prob_list_expr(list_col))
    label_col = _pick(columns, LABEL_ALIASES)
    if label_col:
        return _Layout(id_col, list(classes or run_classes or []), label_col=label_col,
                       confidence_col=_pick(columns, CONFIDENCE_ALIASES))
    raise IngestError(source, [
        f"no predictions found: expected {PROB_PREFIX}<class> columns, a list column "
        f"({', '.join(LIST_ALIASES)}), or a label column ({', '.join(LABEL_ALIASES)}) with an "
        f"optional confidence; found {', '.join(columns)}"])


def _row_problems(rows: list[tuple]) -> list[str]:
    return [f"row {row} (sample {sid!r}): {problem}" for row, sid, problem in rows]


def check_tolerance(source: str, tolerance: float) -> None:
    """Refuse a tolerance that would switch the probability-sum check off (NaN, infinite, < 0)."""
    try:
        ok = math.isfinite(tolerance) and tolerance >= 0
    except TypeError:
        ok = False
    if not ok:
        raise IngestError(source, [f"--tolerance must be a finite number >= 0 (how far a row's "
                                   f"probabilities may sum from 1), not {tolerance!r}"])


def _validate_ids(cur: duckdb.DuckDBPyConnection, id_col: str) -> list[str]:
    """Blank, duplicate and unknown ids of ``pred`` (ids trimmed like a manifest's)."""
    problems = []
    blank = [r[0] for r in cur.execute(*sql.rows_where_blank("pred", "sample_id")).fetchall()]
    if blank:
        problems.append(f"column {id_col!r} is empty in row(s) {', '.join(map(str, blank))}")
    for value, rows in cur.execute(*sql.duplicate_values("pred", "sample_id")).fetchall():
        problems.append(f"sample_id {value!r} appears in rows {', '.join(map(str, rows))}")
    n_unknown = cur.execute(*sql.count_unknown_sample_ids("pred", "sample_id")).fetchone()[0]
    if n_unknown:
        shown = cur.execute(*sql.unknown_sample_ids("pred", "sample_id")).fetchall()
        listed = ", ".join(f"row {r} {sid!r}" for r, sid in shown)
        problems.append(f"{n_unknown} sample id(s) are not in the catalog: {listed}"
                        + (" ..." if n_unknown > len(shown) else ""))
    return problems


def _stage_predictions(cur: duckdb.DuckDBPyConnection, source: str, layout: _Layout,
                       tolerance: float) -> list[str]:
    if layout.prob_expr is not None:
        try:
            cur.execute(*sql.stage_prob_predictions("stage", layout.id_col, layout.prob_expr))
        except duckdb.Error as err:
            raise IngestError(source, [f"probabilities are not numbers: {str(err).splitlines()[0]}"]) from None
        return _row_problems(cur.execute(
            *sql.bad_probability_rows(len(layout.classes), tolerance)).fetchall())
    try:
        cur.execute(*sql.stage_top1_predictions("stage", layout.id_col, layout.label_col,  # type: ignore[arg-type]
                                                layout.confidence_col))
    except duckdb.Error as err:
        raise IngestError(source, [f"confidence is not a number: {str(err).splitlines()[0]}"]) from None
    if not layout.classes:
        layout.classes = [r[0] for r in cur.execute(sql.DISTINCT_PRED_LABELS).fetchall()]
    return _row_problems(cur.execute(
        *sql.bad_top1_rows(layout.classes, layout.confidence_col is not None)).fetchall())


def _import_staged(cat: Catalog, cur: duckdb.DuckDBPyConnection, source: str, run: str, rows: int,
                   classes: list[str] | None, id_column: str | None,
                   tolerance: float) -> PredictionResult:
    if not run or not run.strip():
        raise IngestError(source, ["a model run name is required (--run NAME)"])
    if classes is not None and len(set(classes)) != len(classes):
        raise IngestError(source, [f"--classes lists a class twice: {classes}"])
    existing = cat.query_rows(sql.find_run(run))
    existing = existing[0] if existing else None
    run_classes = list(existing[1]) if existing else None
    layout = _layout(source, files.staged_columns(cur, "stage"), classes, run_classes, id_column)
    has_probs = layout.prob_expr is not None
    problems = _stage_predictions(cur, source, layout, tolerance)
    with cat.read(cur):  # the catalog attached read-only for the id checks
        problems = _validate_ids(cur, layout.id_col) + problems
    problems += _run_mismatch(run, existing, layout.classes, has_probs)
    if problems:
        raise IngestError(source, problems)
    result = PredictionResult(run, existing[0] if existing else None, rows, 0, layout.classes,
                              has_probs)
    try:
        with cat.transaction(f"predictions import of {source} (run {run!r})", con=cur):
            _write(cur, result, source, layout, has_probs)
    except NothingChanged:
        pass
    return result


def _run_mismatch(run: str, existing: tuple | None, classes: list[str], has_probs: bool) -> list[str]:
    if existing and (list(existing[1]) != classes or bool(existing[2]) != has_probs):
        return [f"run {run!r} already exists with classes {list(existing[1])} "
                f"({'probabilities' if existing[2] else 'top-1'}); this file has "
                f"{classes} ({'probabilities' if has_probs else 'top-1'}). Use a new run name."]
    return []


def _write(cur: duckdb.DuckDBPyConnection, result: PredictionResult, source: str,
           layout: _Layout, has_probs: bool) -> None:
    """Inside the write transaction: re-read the run, then upsert what is new or changed."""
    existing = cur.execute(*sql.find_run(result.run)).fetchone()
    problems = _run_mismatch(result.run, existing, layout.classes, has_probs)
    problems += [f"sample id {sid!r} was removed from the catalog meanwhile" for _, sid in
                 cur.execute(*sql.unknown_sample_ids("pred", "sample_id")).fetchall()]
    if problems:
        raise IngestError(source, [*problems, "the catalog changed during this import; run it again"])
    if has_probs:
        cur.execute(*sql.finalize_prob_predictions(layout.classes))
    else:
        cur.execute(sql.FINALIZE_TOP1)
    result.changed = (int(cur.execute(*sql.count_changed_predictions(existing[0])).fetchone()[0])
                      if existing else result.rows)
    if result.changed == 0:
        raise NothingChanged
    import_id = int(cur.execute(sql.NEXT_IMPORT_ID).fetchone()[0])
    if existing is None:
        result.run_id = int(cur.execute(*sql.create_run(result.run, layout.classes, has_probs,
                                                        import_id)).fetchone()[0])
    else:
        result.run_id = int(existing[0])
    cur.execute(*sql.upsert_predictions(result.run_id))
    if cur.execute(sql.MAX_RUN_ID).fetchone()[0] == result.run_id:
        for q in sql.refresh_mirrored_predictions(result.run_id):
            cur.execute(*q)
    cur.execute(*sql.record_import(import_id, "predictions", source, json.dumps(
        {"run": result.run, "rows": result.rows, "changed": result.changed})))


def import_predictions(cat: Catalog, path: str | Path, run: str, *,
                       classes: list[str] | None = None, id_column: str | None = None,
                       tolerance: float = DEFAULT_TOLERANCE) -> PredictionResult:
    """Import a predictions file (CSV / Parquet / JSONL) for model run ``run``.

    Accepted layouts: ``prob_<class>`` columns (class order = column order unless ``classes``
    is given), a list column ``probs`` with ``classes``, or a label column with an optional
    confidence. Every row is checked (ids known, probabilities finite, non-negative and
    summing to 1 within ``tolerance``) before one transaction writes them.
    """
    path = Path(path)
    check_tolerance(str(path), tolerance)
    cur = new_connection()
    try:
        n = files.stage(cur, "stage", path)
        staged = files.staged_columns(cur, "stage")
        files.read_as_text(cur, "stage", path, [id_column or _pick(staged, ID_ALIASES),
                                                       _pick(staged, LABEL_ALIASES)])
        return _import_staged(cat, cur, str(path), run, n, classes, id_column, tolerance)
    finally:
        cur.close()


def import_predictions_frame(cat: Catalog, frame: pd.DataFrame, run: str, *, source: str,
                             classes: list[str] | None = None,
                             tolerance: float = DEFAULT_TOLERANCE) -> PredictionResult:
    """Like :func:`import_predictions` for an in-memory frame (used by the demo's model)."""
    check_tolerance(source, tolerance)
    cur = new_connection()
    try:
        files.stage_frame(cur, "stage", frame, source)
        return _import_staged(cat, cur, source, run, len(frame), classes, None, tolerance)
    finally:
        cur.close()
