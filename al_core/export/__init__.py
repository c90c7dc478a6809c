"""Export batches: a recipe's selection recorded in the catalog with a snapshot of every item,
written in the formats labeling providers import, re-exported byte-identically, given a status."""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from al_core.db.catalog import Catalog, new_connection
from al_core.errors import AlExplorerError
from al_core.export import formats, sql
from al_core.strategies.recipes import Recipe
from al_core.view.sql import RunRef

FORMATS = tuple(formats.WRITERS)
STATUSES = sql.STATUSES
#: ``--out`` extension per format (a hint in messages; any name is written as given)
EXTENSIONS = {"label-studio": ".json", "labelbox": ".json", "cvat": ".xml", "coco": ".json",
              "csv": ".csv", "jsonl": ".jsonl"}


class ExportError(AlExplorerError, ValueError):
    """An export that cannot be made: an unknown batch, format or status, an empty selection."""


@dataclass(frozen=True)
class Batch:
    """A recorded batch: its facts and its items in rank order (the stored snapshot)."""

    batch_id: int
    name: str
    status: str
    strategy: str
    params: dict[str, Any]
    format: str | None
    created_at: Any
    items: pd.DataFrame


def describe(recipe: Recipe) -> str:
    """A recipe in one line, e.g. ``hybrid 50% + seeded 30% + random 20%``."""
    return " + ".join(f"{p.strategy} {p.share:.0%}" if p.share is not None else f"{p.strategy} ×{p.count}"
                      for p in recipe.parts)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")


def _import_root(kind: str | None, source: str | None) -> str | None:
    """The folder an import's relative image paths start from (a manifest's folder, the folder)."""
    if not source or "://" in source:
        return None
    return source if kind == "folder" else os.path.dirname(source)


def _rel_paths(cur: Any) -> dict[str, str]:
    """Each picked sample's path below its import folder (its file name when not under it)."""
    out = {}
    for sample_id, uri, kind, source in cur.execute(sql.SAMPLE_SOURCES).fetchall():
        root = _import_root(kind, source)
        rel = None
        if root and "://" not in uri:
            try:
                rel = Path(uri).resolve().relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                rel = None
        out[sample_id] = rel or posixpath.basename(uri.rstrip("/"))
    return out


def create_batch(cat: Catalog, selection: pd.DataFrame, *, recipe: Recipe, budget: int, seed: int,
                 run: RunRef | None, set_name: str | None, fmt: str, image_prefix: str | None = None,
                 name: str | None = None) -> int:
    """Record ``selection`` (from :func:`~al_core.strategies.recipes.select_batch`) as an
    exported batch, in one transaction; returns its id. Each item keeps a snapshot of what the
    files say (image path, size, the run's prediction), so re-exports never change."""
    _check_format(fmt)
    if selection.empty:
        raise ExportError("the recipe picked nothing: the pool is empty after its exclusions")
    classes = _classes(cat, run)
    params = {"recipe": recipe.to_dict(), "seed": seed, "budget": budget, "run": run.name if run else None,
              "set": set_name, "classes": classes, "image_prefix": image_prefix}
    picked = selection[["sample_id", "rank", "part", "strategy", "score"]].copy()
    cur = new_connection()
    try:
        cur.register("picked", picked)
        with cat.transaction("record an export batch", cur) as tx:
            rel = _rel_paths(tx)
            picked["rel_path"] = picked["sample_id"].map(rel)
            tx.unregister("picked")
            tx.register("picked", picked)
            batch_id = int(tx.execute(*sql.create_batch(
                name or f"batch {pd.Timestamp.now():%Y-%m-%d %H:%M}", describe(recipe),
                json.dumps(params), fmt, budget)).fetchone()[0])
            tx.execute(*sql.insert_items(batch_id, run.run_id if run else None))
    finally:
        cur.close()
    return batch_id


def _classes(cat: Catalog, run: RunRef | None) -> list[str]:
    if run is not None:
        rows = cat.query_rows(*sql.run_classes(run.run_id))
        if rows:
            return list(rows[0][0])
    return [r[0] for r in cat.query_rows(sql.LABELED_CLASSES)]


def get_batch(cat: Catalog, batch_id: int) -> Batch:
    rows = cat.query_rows(*sql.batch(int(batch_id)))
    if not rows:
        known = [str(r[0]) for r in cat.query_rows(sql.KNOWN_BATCH_IDS)]
        raise ExportError(f"no exported batch {batch_id}; batches: {', '.join(known) or 'none yet'}")
    bid, name, status, strategy, params, fmt, _, created = rows[0]
    items = cat.query_df(*sql.items(int(bid)))
    return Batch(int(bid), name, status, strategy, json.loads(params) if params else {}, fmt, created, items)


def render(batch: Batch, fmt: str, image_prefix: str | None = None) -> dict[str, bytes]:
    """The batch's files in ``fmt``: ``{suffix: bytes}`` (``""`` the main file). ``image_prefix``
    defaults to the one the batch was exported with."""
    _check_format(fmt)
    prefix = image_prefix if image_prefix is not None else batch.params.get("image_prefix")
    items = []
    for row in batch.items.to_dict("records"):
        row = {k: (None if isinstance(v, float) and np.isnan(v) and k != "score" else v) for k, v in row.items()}
        row["pred_label"] = row["pred_label"] if isinstance(row["pred_label"], str) else None
        row["image"] = formats.image_ref(row["uri"], row["rel_path"], prefix)
        row["name"] = row["rel_path"] or posixpath.basename(row["uri"])
        items.append(row)
    facts = {"batch_id": batch.batch_id, "classes": batch.params.get("classes", []),
             "run": batch.params.get("run")}
    return formats.WRITERS[fmt](items, facts)


def companion(out: Path, suffix: str) -> Path:
    """Where a companion file goes: beside ``out``, same stem (``batch.json`` → ``batch.config.xml``)."""
    return out if not suffix else out.with_name(out.stem + suffix)


def write(batch: Batch, fmt: str, out: Path, image_prefix: str | None = None) -> list[Path]:
    """Write the batch's files (main at ``out``, companions beside it); each file is written to a
    temporary name and renamed, so a failure leaves no half-written file. Returns the paths."""
    files = render(batch, fmt, image_prefix)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name (e.g. {out / ('batch' + EXTENSIONS[fmt])})")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, data in files.items():
        path = companion(out, suffix)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        written.append(path)
    return written


def set_status(cat: Catalog, batch_id: int, status: str) -> None:
    """Mark a batch ``sent``, ``labeled`` or ``cancelled`` (cancelling frees its samples)."""
    if status not in STATUSES:
        raise ExportError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    get_batch(cat, batch_id)
    with cat.transaction(f"mark batch {batch_id} {status}") as cur:
        cur.execute(*sql.set_status(int(batch_id), status))


def composition(cat: Catalog, selection: pd.DataFrame, run: RunRef | None,
                field: str | None = None) -> pd.DataFrame:
    """The batch against the labeled set: per class (the run's predicted class for the batch,
    the label for the labeled set) or per value of metadata ``field``: columns ``value``,
    ``batch``, ``batch_share``, ``labeled``, ``labeled_share``."""
    if field is not None and field not in cat.metadata_fields():
        raise ExportError(f"unknown metadata field {field!r}")
    cur = new_connection()
    try:
        cur.register("picked", selection[["sample_id"]])
        with cat.read(cur):
            frame = cur.execute(*sql.composition(run.run_id if run else None, field)).df()
    finally:
        cur.close()
    for col in ("batch", "labeled"):
        frame[col] = frame[col].fillna(0).astype(int)
        total = frame[col].sum()
        frame[f"{col}_share"] = frame[col] / total if total else 0.0
    return frame[["value", "batch", "batch_share", "labeled", "labeled_share"]]


def list_batches(cat: Catalog) -> pd.DataFrame:
    """Exported batches, newest first: batch_id, status, size, recipe, format, created_at."""
    return cat.query_df(sql.LIST)
