"""Labels back from a labeling provider: Label Studio JSON, Labelbox NDJSON, CVAT XML or a CSV
of (sample_id, label[, annotator]); recorded with provenance (batch, annotator), conflicts kept
for review instead of overwriting, batches closed when every sample has its label."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from al_core.db.catalog import Catalog, new_connection
from al_core.export import ExportError
from al_core.export import sql as export_sql
from al_core.ingest.manifest import NothingChanged

FORMATS = ("auto", "label-studio", "labelbox", "cvat", "csv")
ON_CONFLICT = ("keep", "replace")
#: Largest labels file read (a provider's export of a very large project is split first).
MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class LabelsResult:
    """What an import did: new labels applied, unchanged ones, conflicts (kept or replaced),
    batches that became ``labeled``."""

    source: str
    rows: int
    applied: int
    unchanged: int
    conflicts: int
    replaced: int
    batches_labeled: tuple[int, ...]

    def describe(self) -> str:
        done = f"; batches now labeled: {', '.join(map(str, self.batches_labeled))}" if self.batches_labeled else ""
        kept = (f"{self.conflicts} disagreeing with the current label kept for review "
                f"(`--on-conflict replace` applies them)" if self.conflicts else "no conflicts")
        return (f"{self.source}: {self.rows} labels read, {self.applied} applied, {self.unchanged} unchanged, "
                f"{kept}" + (f", {self.replaced} replaced" if self.replaced else "") + done)


# ------------------------------------------------------------------------------------ parsing
def _fail(path: Path, where: str, what: str) -> ExportError:
    return ExportError(f"{path}: {where}: {what}")


def detect(path: Path, text: str) -> str:
    """The format of a labels file from its name and first characters."""
    head = text.lstrip()[:200]
    if path.suffix.lower() == ".xml" or head.startswith("<"):
        return "cvat"
    if path.suffix.lower() == ".csv":
        return "csv"
    if head.startswith("["):
        return "label-studio"
    if head.startswith("{"):
        return "labelbox"
    raise ExportError(f"{path}: cannot tell the format (Label Studio JSON, Labelbox NDJSON, CVAT XML "
                      "or CSV); pass --format")


def _label_studio(path: Path, text: str) -> list[dict[str, Any]]:
    """Tasks (JSON list): ``data.sample_id``; the newest annotation not cancelled, its first
    ``choices`` result; ``completed_by`` (an id, or an object with an email) as the annotator.
    Tasks without an annotation are skipped (not labeled yet)."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as err:
        raise _fail(path, f"line {err.lineno}", "not valid JSON") from None
    if not isinstance(tasks, list):
        raise _fail(path, "top level", "a Label Studio export is a JSON list of tasks")
    out = []
    for n, task in enumerate(tasks):
        where = f"task {n}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise _fail(path, where, "has no data object")
        sid = task["data"].get("sample_id")
        if not isinstance(sid, str) or not sid:
            raise _fail(path, where, "has no data.sample_id (was it exported by al-explorer?)")
        done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not done:
            continue
        ann = done[-1]
        choices = [r.get("value", {}).get("choices") for r in ann.get("result") or []
                   if isinstance(r, dict) and r.get("type") == "choices"]
        choices = [c for c in choices if isinstance(c, list) and c]
        if not choices:
            continue
        who = ann.get("completed_by")
        who = who.get("email") if isinstance(who, dict) else who
        out.append({"sample_id": sid, "label": str(choices[0][0]), "annotator": None if who is None else str(who),
                    "where": where})
    return out


def _labelbox(path: Path, text: str) -> list[dict[str, Any]]:
    """Labelbox export NDJSON (one data row per line): ``data_row.global_key``; in the first
    project's newest label, the first radio (or checklist) answer; ``label_details.created_by``."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise _fail(path, where, "not valid JSON") from None
        key = (row.get("data_row") or {}).get("global_key") if isinstance(row, dict) else None
        if not isinstance(key, str) or not key:
            raise _fail(path, where, "has no data_row.global_key (was it exported by al-explorer?)")
        for project in (row.get("projects") or {}).values():
            labels = project.get("labels") or []
            if not labels:
                continue
            label = labels[-1]
            answer = None
            for c in (label.get("annotations") or {}).get("classifications") or []:
                if isinstance(c.get("radio_answer"), dict):
                    answer = c["radio_answer"].get("name")
                elif c.get("checklist_answers"):
                    answer = c["checklist_answers"][0].get("name")
                if answer:
                    break
            if answer:
                who = (label.get("label_details") or {}).get("created_by")
                out.append({"sample_id": key, "label": str(answer), "annotator": who, "where": where})
            break
    return out


def _cvat(path: Path, text: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """CVAT for images 1.1 XML: each ``<image name>`` mapped back to its sample through the batch
    records; its first ``<tag label>``. Images without a tag are skipped."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise _fail(path, f"line {err.position[0]}", "not valid XML") from None
    if root.tag != "annotations":
        raise _fail(path, "root", f"a CVAT export's root is <annotations>, not <{root.tag}>")
    out = []
    for im in root.iter("image"):
        name = im.get("name") or ""
        where = f"image {im.get('id')} ({name})"
        sid = names.get(name)
        if sid is None:
            raise _fail(path, where, "is not in any exported batch (names map back through the batch history)")
        tag = im.find("tag")
        if tag is not None and tag.get("label"):
            out.append({"sample_id": sid, "label": tag.get("label"), "annotator": None, "where": where})
    return out


def _csv(path: Path, text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    cols = reader.fieldnames or []
    if "sample_id" not in cols or "label" not in cols:
        raise _fail(path, "header", f"needs columns sample_id and label (found: {', '.join(cols) or 'none'})")
    out = []
    for n, row in enumerate(reader, start=2):
        label = (row.get("label") or "").strip()
        if not label:
            continue
        out.append({"sample_id": (row.get("sample_id") or "").strip(), "label": label,
                    "annotator": (row.get("annotator") or "").strip() or None, "where": f"line {n}"})
    return out


def read_labels(cat: Catalog, path: Path, fmt: str = "auto") -> pd.DataFrame:
    """The labels a provider returned: ``sample_id, label, annotator, where`` (one per sample:
    the last one in the file)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown labels format {fmt!r}; one of: {', '.join(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise ExportError(f"{path}: larger than {MAX_BYTES // 2**20} MB; split the export")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ExportError(f"{path}: not UTF-8 text") from None
    fmt = detect(path, text) if fmt == "auto" else fmt
    if fmt == "label-studio":
        rows = _label_studio(path, text)
    elif fmt == "labelbox":
        rows = _labelbox(path, text)
    elif fmt == "cvat":
        rows = _cvat(path, text, dict(cat.query_rows(export_sql.EXPORTED_NAMES)))
    else:
        rows = _csv(path, text)
    frame = pd.DataFrame(rows, columns=["sample_id", "label", "annotator", "where"])
    frame.attrs["format"] = fmt
    return frame.drop_duplicates("sample_id", keep="last").reset_index(drop=True)


# ------------------------------------------------------------------------------------ writing
def import_labels(cat: Catalog, path: Path, fmt: str = "auto", on_conflict: str = "keep") -> LabelsResult:
    """Record returned labels in one transaction. A sample without a label gets it; the same
    label again changes nothing (re-importing a file is idempotent); a different label is kept in
    the history as a ``conflict`` and listed for review (``on_conflict="replace"``: applied, its
    old label staying in the history). Unknown ids and classes are refused, naming the rows,
    before anything is written. Each label records the newest batch holding its sample."""
    if on_conflict not in ON_CONFLICT:
        raise ExportError(f"on_conflict must be one of {ON_CONFLICT}, not {on_conflict!r}")
    frame = read_labels(cat, path, fmt)
    source = f"import:{frame.attrs['format']}:{Path(path).name}"
    if frame.empty:
        return LabelsResult(source, 0, 0, 0, 0, 0, ())
    cur = new_connection()
    try:
        cur.register("returned", frame[["sample_id", "label", "annotator"]])
        closed: list[int] = []
        try:
            with cat.transaction("import returned labels", cur) as tx:
                _check(tx, frame, path)
                counts = tx.execute(*export_sql.classify_returned(on_conflict == "replace")).fetchone()
                applied, unchanged, conflicts = (int(x or 0) for x in counts)
                tx.execute(*export_sql.record_returned(source, on_conflict == "replace"))
                tx.execute(*export_sql.apply_returned(on_conflict == "replace"))
                closed = [int(r[0]) for r in tx.execute(export_sql.CLOSE_LABELED_BATCHES).fetchall()]
                if not (applied or conflicts or closed):
                    raise NothingChanged  # a file imported before: not even the data version moves
        except NothingChanged:
            pass
    finally:
        cur.close()
    replaced = conflicts if on_conflict == "replace" else 0
    return LabelsResult(source, len(frame), applied, unchanged, conflicts - replaced, replaced, tuple(closed))


def _check(cur: Any, frame: pd.DataFrame, path: Path) -> None:
    where = dict(zip(frame["sample_id"], frame["where"], strict=True))
    unknown = [r[0] for r in cur.execute(export_sql.UNKNOWN_RETURNED_IDS).fetchall()]
    if unknown:
        shown = "; ".join(f"{where[i]}: {i!r}" for i in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ExportError(f"{path}: {len(unknown)} unknown sample id(s), nothing imported: {shown}{more}")
    bad = cur.execute(export_sql.UNKNOWN_RETURNED_CLASSES).fetchall()
    if bad:
        known = [r[0] for r in cur.execute(export_sql.KNOWN_CLASSES).fetchall()]
        shown = "; ".join(f"{where[sid]}: {label!r}" for sid, label in bad[:5])
        raise ExportError(f"{path}: {len(bad)} label(s) of unknown classes, nothing imported: {shown} "
                          f"(known classes: {', '.join(known)})")


def conflicts(cat: Catalog) -> pd.DataFrame:
    """Returned labels waiting for review: label_seq, sample_id, current, proposed, source,
    batch_id, annotator, created_at."""
    return cat.query_df(export_sql.CONFLICTS)


def resolve_conflict(cat: Catalog, label_seq: int, accept: bool) -> None:
    """Accept a conflicting label (it becomes current) or reject it (the current one stays)."""
    rows = cat.query_rows(*export_sql.conflict(int(label_seq)))
    if not rows:
        raise ExportError(f"no pending conflict {label_seq}")
    cur = new_connection()
    try:
        cur.register("returned", pd.DataFrame({"sample_id": pd.array([], dtype="string")}))
        with cat.transaction("resolve a label conflict", cur) as tx:
            for query in export_sql.resolve(int(label_seq), accept):
                tx.execute(*query)
            tx.execute(export_sql.CLOSE_LABELED_BATCHES)
    finally:
        cur.close()
