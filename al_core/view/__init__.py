"""The filtered view every page reads: the sidebar Filter and the queries built on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog
from al_core.view import sql
from al_core.view.filters import Filter
from al_core.view.sql import NULL_VALUE, RunRef

__all__ = ["NULL_VALUE", "RunRef", "count_filtered", "distinct_values", "field_range",
           "gallery_page", "list_runs", "list_tags", "sample_count"]


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


def gallery_page(cat: Catalog, flt: Filter, run: RunRef | None, show: Sequence[str], limit: int,
                 offset: int) -> pd.DataFrame:
    """One page (id order) of matching samples: id, uri, hash, split, label, prediction, ``show``."""
    return cat.query_df(sql.gallery_page(flt, cat.metadata_fields(), run, show, limit, offset))
