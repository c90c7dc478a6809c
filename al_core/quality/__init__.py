"""Image quality: signals measured in the ingest probe, flags from user-changeable thresholds, duplicates.

The signals (``q_brightness`` ... ``q_pixels``, DOUBLE) and flags (``q_dark`` ...
``q_near_duplicate``, BOOLEAN) are columns of ``samples`` registered as fields, so every
filter, chart and slice table reads them like any metadata. Flags are derived: changing a
threshold re-flags from the stored signals (:func:`set_thresholds`), never re-reading images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog, new_connection
from al_core.errors import AlExplorerError
from al_core.quality import sql
from al_core.quality.sql import FLAGS, SIGNALS, flag_column
from al_core.view import sql as view_sql
from al_core.view.filters import Filter

__all__ = ["DEFAULTS", "FLAGS", "FLAG_INFO", "SIGNALS", "QualityError", "Thresholds",
           "duplicate_sets", "flag_column", "flag_counts", "flagged_ids", "missing_count",
           "recompute", "reflag", "report", "set_thresholds", "thresholds"]

#: Catalog key of the stored thresholds (JSON: flag -> value; absent flags use the defaults).
THRESHOLDS_KEY = "quality_thresholds"

Thresholds = dict[str, float]


@dataclass(frozen=True)
class FlagInfo:
    """How a flag is decided and shown: its rule, its threshold's range and worst-first order."""

    rule: str
    low: float
    high: float
    sort_field: str | None
    worst_first_desc: bool = False


#: Default thresholds. CleanVision's published defaults where it has the same measure (dark
#: 0.37, light 0.05, blurry 0.17, odd aspect ratio 0.35); see README "Image quality".
DEFAULTS: Thresholds = {
    "dark": 0.37,
    "light": 0.05,
    "blurry": 0.17,
    "low_information": 1.4,
    "odd_aspect_ratio": 0.35,
    "odd_size": 5.0,
    "grayscale": 0.01,
    "exact_duplicate": 0.0,
    "near_duplicate": 0.0,
}

FLAG_INFO: dict[str, FlagInfo] = {
    "dark": FlagInfo("99th-percentile perceived brightness < threshold", 0, 1, "q_brightness_p99"),
    "light": FlagInfo("1 - 5th-percentile perceived brightness < threshold", 0, 1,
                      "q_brightness_p05", worst_first_desc=True),
    "blurry": FlagInfo("sharpness < threshold (dark images excepted)", 0, 1, "q_sharpness"),
    "low_information": FlagInfo("grayscale entropy (bits) < threshold", 0, 8, "q_entropy"),
    "odd_aspect_ratio": FlagInfo("min(w/h, h/w) < threshold", 0, 1, "q_aspect_ratio"),
    "odd_size": FlagInfo("side sqrt(w*h) over threshold times the median's, or under 1/threshold",
                         1, 1000, "q_pixels"),
    "grayscale": FlagInfo("chroma (mean max-min channel spread) <= threshold", 0, 1, "q_chroma"),
    "exact_duplicate": FlagInfo("same file bytes, or same decoded pixels at probe scale "
                                "(no threshold)", 0, 0, None),
    "near_duplicate": FlagInfo("perceptual hashes differ in <= threshold of 64 bits, mean brightness "
                               "in the same or a neighbouring tenth (not exact copies)", 0, 6, None),
}


class QualityError(AlExplorerError, ValueError):
    """A threshold that is not a number in its range, or an unknown flag."""


def _check(flag: str, value: object) -> float:
    if flag not in FLAG_INFO or flag == "exact_duplicate":
        settable = ", ".join(f for f in FLAGS if f != "exact_duplicate")
        what = "has no threshold (same bytes or pixels)" if flag == "exact_duplicate" else "is not a quality flag"
        raise QualityError(f"{flag!r} {what}; flags with a threshold: {settable}")
    info = FLAG_INFO[flag]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QualityError(f"threshold of {flag!r} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not info.low <= number <= info.high:
        raise QualityError(f"threshold of {flag!r} must be between {info.low:g} and "
                           f"{info.high:g}, got {value!r}")
    if flag == "near_duplicate" and number != int(number):
        raise QualityError(f"threshold of 'near_duplicate' is a whole number of bits, got {value!r}")
    return number


def _stored(raw: str | None) -> Thresholds:
    try:
        found = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        found = {}
    merged = dict(DEFAULTS)
    for flag, value in (found.items() if isinstance(found, dict) else ()):
        try:
            merged[flag] = _check(flag, value)
        except QualityError:
            continue  # a bad stored value falls back to the default
    return merged


def thresholds(cat: Catalog, cur: duckdb.DuckDBPyConnection | None = None) -> Thresholds:
    """The catalog's thresholds: stored values over :data:`DEFAULTS`."""
    rows = (cur.execute(*db_sql.get_info(THRESHOLDS_KEY)).fetchall() if cur is not None
            else cat.query_rows(db_sql.get_info(THRESHOLDS_KEY)))
    return _stored(rows[0][0] if rows else None)


def reflag(cur: duckdb.DuckDBPyConnection, t: Mapping[str, float]) -> None:
    """Inside a write: size signals, duplicate sets and every flag from the stored signals."""
    cur.execute(sql.SIZE_SIGNALS)
    _write_sets(cur, int(t["near_duplicate"]))
    median = cur.execute(sql.MEDIAN_PIXELS).fetchone()[0]
    cur.execute(*sql.update_flags(t, float(median) if median else None))


def reflag_catalog(cat: Catalog, what: str = "re-flag image quality") -> None:
    """:func:`reflag` with the catalog's thresholds, in its own transaction."""
    with cat.transaction(what) as cur:
        reflag(cur, thresholds(cat, cur))


def checked_thresholds(changes: Mapping[str, object]) -> Thresholds:
    """``changes`` as numbers; :class:`QualityError` naming the first bad flag or value."""
    return {flag: _check(flag, value) for flag, value in changes.items()}


def set_thresholds(cat: Catalog, changes: Mapping[str, object], *, reset: bool = False) -> Thresholds:
    """Store new thresholds (checked first; nothing written if one is bad) and re-flag."""
    checked = checked_thresholds(changes)
    with cat.transaction("change image-quality thresholds") as cur:
        now = dict(DEFAULTS) if reset else thresholds(cat, cur)
        now.update(checked)
        stored = {k: v for k, v in now.items() if DEFAULTS.get(k) != v}
        cur.execute(*db_sql.set_info(THRESHOLDS_KEY, json.dumps(stored, sort_keys=True)))
        reflag(cur, now)
    return now


class _Sets:
    """Union-find over sample keys: connected components of "is a duplicate of"."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, k: int) -> int:
        root = self.parent.setdefault(k, k)
        while root != self.parent[root]:
            root = self.parent[root]
        while k != root:  # path compression
            self.parent[k], k = root, self.parent[k]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def group(self, keys: Iterable[int]) -> None:
        keys = list(keys)
        for k in keys[1:]:
            self.union(keys[0], k)

    def labels(self) -> dict[int, int]:
        """Each key's set id: the smallest key of its set."""
        return {k: self.find(k) for k in self.parent}


def _exact_sets(cur: duckdb.DuckDBPyConnection) -> dict[int, int]:
    rows = cur.execute(sql.EXACT_CANDIDATES).fetchall()
    sets, by_hash, by_digest = _Sets(), {}, {}
    for key, digest_file, digest_pixels in rows:
        if digest_file is not None:
            by_hash.setdefault(digest_file, []).append(key)
        if digest_pixels is not None:
            by_digest.setdefault(digest_pixels, []).append(key)
    for members in (*by_hash.values(), *by_digest.values()):
        if len(members) > 1:
            sets.group(members)
    return sets.labels()


def _near_sets(cur: duckdb.DuckDBPyConnection, max_distance: int) -> dict[int, int]:
    """Near-duplicate set of each sample in one: connected components over (hash, brightness
    band) nodes. A node alone is a set only if it holds more than one exact-duplicate set."""
    pairs = cur.execute(*sql.near_node_pairs(max_distance)).fetchall()
    ends = list({(p, band) for row in pairs for p, band in (row[:2], row[2:])})
    paired = pd.DataFrame({"p": pd.array([e[0] for e in ends], dtype="Int64"),
                           "band": pd.array([e[1] for e in ends], dtype="Int64")})
    cur.register("near_paired", paired)
    try:
        nodes = {(p, band): (keys, reps) for p, band, keys, reps in
                 cur.execute(*sql.near_nodes("near_paired")).fetchall()}
    finally:
        cur.unregister("near_paired")
    index = {node: i for i, node in enumerate(nodes)}
    sets = _Sets()
    for p, band, p2, band2 in pairs:
        sets.union(index[(p, band)], index[(p2, band2)])
    members: dict[int, list[int]] = {}
    for i in index.values():
        members.setdefault(sets.find(i), []).append(i)
    keys_of = list(nodes.values())
    out: dict[int, int] = {}
    for group in members.values():
        if len(group) == 1 and keys_of[group[0]][1] < 2:
            continue  # one image, or exact copies of one image: not "near"
        keys = [k for i in group for k in keys_of[i][0]]
        first = min(keys)
        out.update(dict.fromkeys(keys, first))
    return out


def _write_sets(cur: duckdb.DuckDBPyConnection, max_distance: int) -> None:
    """Exact-duplicate sets, then (they tell exact copies apart) near-duplicate sets."""
    _store_sets(cur, "exact", _exact_sets(cur))
    _store_sets(cur, "near", _near_sets(cur, max_distance))


def _store_sets(cur: duckdb.DuckDBPyConnection, kind: str, sets: dict[int, int]) -> None:
    keys = sorted(sets)
    frame = pd.DataFrame({"sample_key": pd.array(keys, dtype="Int32"),
                          "set_id": pd.array([sets[k] for k in keys], dtype="Int32")})
    cur.register("quality_sets", frame)
    try:
        cur.execute(*sql.set_duplicate_sets("quality_sets", kind))
    finally:
        cur.unregister("quality_sets")


def flag_counts(cat: Catalog, flt: Filter | None = None) -> pd.DataFrame:
    """One row per flag: labeled and pool counts flagged, with shares of those measured.

    Columns: flag, rule, threshold, labeled, labeled_share, pool, pool_share, total.
    Also ``attrs``: ``samples`` (in the view) and ``measured`` (with signals).
    """
    flt = flt or Filter()
    view = view_sql.filtered_view(flt, cat.metadata_fields(), flt.run)
    row = cat.query_rows(sql.flag_counts(view))[0]
    t = thresholds(cat)
    records = []
    for i, flag in enumerate(FLAGS):
        lab, lab_n, pool, pool_n = row[2 + 4 * i: 6 + 4 * i]
        records.append({
            "flag": flag, "rule": FLAG_INFO[flag].rule,
            "threshold": np.nan if flag == "exact_duplicate" else t[flag],
            "labeled": int(lab), "labeled_share": lab / lab_n if lab_n else None,
            "pool": int(pool), "pool_share": pool / pool_n if pool_n else None,
            "total": int(lab + pool)})
    frame = pd.DataFrame.from_records(records)
    frame.attrs.update(samples=int(row[0]), measured=int(row[1]))
    return frame


def flagged_ids(cat: Catalog, flag: str) -> list[str]:
    return [r[0] for r in cat.query_rows(sql.flagged_ids(flag))]


def duplicate_sets(cat: Catalog, kind: str, limit: int | None = None) -> list[list[str]]:
    """Sample ids of each exact or near duplicate set, largest sets first."""
    if kind not in ("exact", "near"):
        raise QualityError(f"duplicate kind must be 'exact' or 'near', got {kind!r}")
    return [list(ids) for _, ids in cat.query_rows(sql.duplicate_sets(kind, limit))]


def missing_count(cat: Catalog) -> int:
    """Samples without measured signals (ingested with ``--no-probe`` or before this feature)."""
    return int(cat.scalar(sql.COUNT_MISSING))


def report(cat: Catalog) -> dict[str, object]:
    """Counts, flagged ids and duplicate sets: what ``al-explorer quality --json`` prints."""
    return {
        "counts": {flag: int(n) for flag, n in
                   zip(FLAGS, flag_counts(cat)["total"], strict=True)},
        "flagged": {flag: flagged_ids(cat, flag) for flag in FLAGS},
        "duplicate_sets": [{"kind": kind, "sample_ids": ids}
                           for kind in ("exact", "near") for ids in duplicate_sets(cat, kind)],
        "thresholds": {k: v for k, v in thresholds(cat).items() if k != "exact_duplicate"},
        "missing_signals": missing_count(cat),
    }


#: Images measured per committed chunk by :func:`recompute`.
RECOMPUTE_CHUNK = 500


def recompute(cat: Catalog, *, progress: bool = True, chunk: int = RECOMPUTE_CHUNK) -> tuple[int, list[str]]:
    """Measure the signals of local samples that have none, committing every ``chunk`` images.

    Resumable: an interrupted run keeps what it committed and the next one goes on from there.
    Returns ``(measured, problems)``: files that are missing or unreadable are listed, skipped.
    """
    from al_core.ingest.images import probe_images

    todo = cat.query_rows(sql.missing_signals())
    measured, problems = 0, []
    results = probe_images(((key, sid, uri) for key, sid, uri in todo), total=len(todo),
                           progress=progress, desc="measuring image quality")
    batch: list = []
    for res in results:
        if res.problem or res.signals is None:
            problems.append(f"sample {res.sample_id!r}: {res.problem}")
        else:
            batch.append(res)
        if len(batch) >= chunk:
            measured += _store(cat, batch, problems)
            batch = []
    if batch:
        measured += _store(cat, batch, problems)
    if measured or cat.scalar(sql.COUNT_UNFLAGGED):  # (an interrupted run may have left some)
        reflag_catalog(cat)
    return measured, problems


def _store(cat: Catalog, results: list, problems: list[str]) -> int:
    cols = {"sample_key": pd.array([r.row for r in results], dtype="Int32"),
            "width": pd.array([r.width for r in results], dtype="Int32"),
            "height": pd.array([r.height for r in results], dtype="Int32"),
            "content_hash": pd.array([r.content_hash for r in results], dtype="string")}
    for name in sql.MEASURED:
        attr = name.removeprefix("q_")
        values = [getattr(r.signals, attr) for r in results]
        dtype = "string" if name == "q_pixel_digest" else "Int64" if name == "q_phash" else "Float64"
        cols[name] = pd.array(values, dtype=dtype)
    cur = new_connection()
    try:
        cur.register("quality_signals", pd.DataFrame(cols))
        with cat.transaction("store image-quality signals", con=cur):
            problems += [f"sample {sid!r}: its file changed since it was ingested (its bytes no longer "
                         "match the stored content hash); re-ingest it" for (sid,) in
                         cur.execute(*sql.changed_files("quality_signals")).fetchall()]
            return int(cur.execute(*sql.store_signals("quality_signals")).fetchone()[0])
    finally:
        cur.close()
