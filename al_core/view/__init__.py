"""The filtered view every page reads: the sidebar Filter and the queries built on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog
from al_core.view import sql
from al_core.view.filters import Filter, drill_from_link, field_kind
from al_core.view.sql import NULL_VALUE, RunRef

__all__ = ["NULL_VALUE", "RunRef", "count_filtered", "distinct_values", "field_range", "filter_from_link", "filtered_ids",
           "gallery_page", "list_runs", "list_tags", "sample_at", "sample_count",
           "sample_detail", "sample_position", "sort_options"]


def sample_count(cat: Catalog) -> int:
    """Number of samples in the whole catalog."""
    return int(cat.scalar(db_sql.COUNT_SAMPLES))


def distinct_values(cat: Catalog, column: str) -> list[str]:
    """Distinct non-missing values of a built-in column or metadata field, as text, sorted."""
    return [r[0] for r in cat.query_rows(sql.distinct_values(column))]


def field_range(cat: Catalog, name: str) -> tuple[Any, Any]:
    """``(min, max)`` of a metadata field over the whole catalog (``(None, None)`` if empty)."""
    return tuple(cat.query_rows(sql.field_range(name))[0])  # type: ignore[return-value]


def list_tags(cat: Catalog) -> list[str]:
    """Every tag in use, sorted."""
    return [r[0] for r in cat.query_rows(sql.LIST_TAGS)]


def list_runs(cat: Catalog) -> dict[str, tuple[RunRef, list[str]]]:
    """Model runs by name, newest first, with their classes; ``samples`` mirrors the newest."""
    rows = cat.query_rows(sql.LIST_RUNS)
    return {str(name): (RunRef(int(run_id), str(name), cached=i == 0), list(classes))
            for i, (run_id, name, classes) in enumerate(rows)}


def count_filtered(cat: Catalog, flt: Filter, run: RunRef | None) -> int:
    """Number of samples matching ``flt`` (with its drill-down conditions)."""
    return int(cat.scalar(sql.count_filtered(flt, cat.metadata_fields(), run)))


def filtered_ids(cat: Catalog, flt: Filter, limit: int | None = None) -> list[str]:
    """Ids of the samples matching ``flt`` (with its run), in id order, at most ``limit``."""
    text, params = sql.filtered_ids(flt, cat.metadata_fields(), flt.run)
    if limit is not None:
        text, params = f"{text} LIMIT ?", [*params, int(limit)]
    return [r[0] for r in cat.query_rows(text, params)]


def samples_brief(cat: Catalog, sample_ids: Sequence[str]) -> pd.DataFrame:
    """``sample_id, uri, content_hash, label`` of the listed samples, in the order listed."""
    return cat.query_df(sql.samples_brief(sample_ids))


def sort_options(cat: Catalog, run: RunRef | None, listed: str | None = None) -> dict[str, str]:
    """The gallery's sort keys (whitelisted, see :func:`al_core.view.sql.sort_clause`) and their
    labels: the listed order first when ``listed`` names it (e.g. "score"), id, confidence both
    ways (only with a run), each metadata field."""
    options = {sql.LISTED: listed} if listed else {}
    options |= {"id": "id"}
    if run is not None:
        options |= {"confidence_asc": "confidence, least confident first",
                    "confidence_desc": "confidence, most confident first"}
    fields = cat.metadata_fields()
    options |= {f"{sql.FIELD_SORT}{name}": name for name in fields}
    return options | {f"{sql.FIELD_SORT_DESC}{name}": f"{name}, highest first"
                      for name, dtype in fields.items() if field_kind(dtype) == "numeric"}


def gallery_page(cat: Catalog, flt: Filter, run: RunRef | None, show: Sequence[str], limit: int,
                 offset: int, sort: str = "id") -> pd.DataFrame:
    """One page of matching samples (id, uri, hash, split, label, prediction, ``show``) in the
    order of ``sort`` (a key of :func:`sort_options`); ties by sample_id, so pages never overlap."""
    return cat.query_df(sql.gallery_page(flt, cat.metadata_fields(), run, show, limit, offset, sort))


def sample_position(cat: Catalog, flt: Filter, run: RunRef | None, sort: str,
                    sample_id: str) -> int | None:
    """Where ``sample_id`` is in :func:`gallery_page`'s order (0-based), or None if not in the view."""
    rows = cat.query_rows(sql.sample_position(flt, cat.metadata_fields(), run, sort, sample_id))
    return int(rows[0][0]) if rows else None


def sample_at(cat: Catalog, flt: Filter, run: RunRef | None, sort: str, index: int) -> str | None:
    """The id at 0-based ``index`` of :func:`gallery_page`'s order, or None past the end."""
    if index < 0:
        return None
    frame = gallery_page(cat, flt, run, [], 1, index, sort)
    return None if frame.empty else str(frame["sample_id"].iloc[0])


#: Keys of an app URL that are not the filter: each page's own state (a link may carry them).
PAGE_KEYS = frozenset({"drill", "page", "drill_page", "sample", "view", "flag", "quality_page", "set",
                       "like", "unlike", "text", "k", "sim", "method", "color"})
FILTER_KEYS = frozenset({"split", "class", "labeled", "tag", "notag", "run", "pred", "conf",
                         "outcome", "batch"})


def filter_from_link(cat: Catalog, link: str) -> tuple[Filter, list[str]]:
    """The filter an app URL (or just its query string) describes, and what of it was ignored.

    A drill-down (``drill=``) in the link narrows the filter too, and a link to the Next batch
    page selects within the batch, so a link selects what its page's gallery showed. Every key
    or value the filter could not use is named in the second item (a malformed range, a value of
    a choice that does not exist, an unknown run or field), so a caller can refuse to act on a
    wider selection than the link meant.
    """
    is_url = link.startswith(("http://", "https://", "/", "?"))
    parts = urlsplit(link) if is_url else None
    params = parse_qs(parts.query if parts else link, keep_blank_values=True)
    fields = cat.metadata_fields()
    runs = {name: ref for name, (ref, _) in list_runs(cat).items()}
    flt = Filter.from_query_params(params, fields, runs)
    drill = drill_from_link((params.get("drill") or [None])[0], fields)
    if drill:
        flt = flt.narrowed(*drill[1])
    if parts and parts.path.rstrip("/").endswith("/batch"):
        flt = replace(flt, batch="in")
    kept = flt.to_query_params()
    ignored = []
    for key, values in params.items():
        if key in PAGE_KEYS:
            if key == "drill" and drill is None:
                ignored.append("drill (malformed)")
        elif key == "run":
            if values[0] not in runs:
                ignored.append(f"run={values[0]} (no such run)")
        elif not (key in FILTER_KEYS or (key.startswith("f.") and key[2:] in fields)):
            ignored.append(f"{key} (not a filter key)")
        elif kept.get(key) != values and not _same_range(kept.get(key), values):
            ignored.append(f"{key}={'&'.join(values)} (not a valid value)")
    return flt, ignored


def _same_range(kept: list[str] | None, given: list[str]) -> bool:
    """True when a range the filter kept is the range given, written differently (``0..0.6``)."""
    try:
        return kept is not None and len(given) == 1 and [float(v) for v in kept[0].split("..")] == [
            float(v) for v in given[0].split("..")]
    except ValueError:
        return False


TOP_K = 5


def sample_detail(cat: Catalog, sample_id: str) -> dict[str, Any] | None:
    """Everything known about one sample, or None if there is no such sample.

    ``fields``: every built-in column and metadata field, in catalog order, with its value (None
    where missing); ``history``: labels (version, label, source, batch, time), oldest first;
    ``predictions``: one row per run (run_id, run, pred_label, confidence, has_probs), newest
    first; ``top``: the top classes of runs with probabilities (run_id, run, rank, class,
    probability), at most :data:`TOP_K` per run; ``tags``: tag, created_at.
    """
    frame = cat.query_df(sql.sample_row(sample_id))
    if frame.empty:
        return None
    row = frame.iloc[0]
    fields = {name: (None if _missing(row[name]) else row[name]) for name in frame.columns}
    preds = cat.query_df(sql.sample_predictions(sample_id))
    top = []
    for p in preds.itertuples(index=False):
        if p.probs is None or _missing_list(p.probs):
            continue
        pairs = sorted(zip(p.classes, p.probs, strict=False), key=lambda cp: (-cp[1], cp[0]))
        top += [(p.run_id, p.run, rank, c, float(v)) for rank, (c, v) in enumerate(pairs[:TOP_K], 1)]
    return {
        "sample_id": sample_id,
        "fields": fields,
        "history": cat.query_df(sql.sample_label_history(sample_id)),
        "predictions": preds.drop(columns=["classes", "probs"]),
        "top": pd.DataFrame(top, columns=["run_id", "run", "rank", "class", "probability"]),
        "tags": cat.query_df(sql.sample_tags(sample_id)),
    }


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays are values, not missing
        return False


def _missing_list(value: Any) -> bool:
    try:
        return len(value) == 0
    except TypeError:
        return _missing(value)
