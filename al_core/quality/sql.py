"""SQL of the image-quality signals: flags from stored signals, duplicate candidates, counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from al_core.db.sql import Query, quote_ident

#: Prefix of every built-in image-quality column (reserved: no user field may use it).
PREFIX = "q_"

#: Signals stored per sample (DOUBLE), in the order they are documented and shown.
SIGNALS = ("q_brightness", "q_brightness_p99", "q_brightness_p05", "q_contrast", "q_sharpness",
           "q_entropy", "q_chroma", "q_aspect_ratio", "q_pixels")

#: Signals the probe measures from pixels (aspect ratio and pixel count come from the size).
MEASURED = ("q_brightness", "q_brightness_p99", "q_brightness_p05", "q_contrast", "q_sharpness",
            "q_entropy", "q_chroma", "q_phash", "q_pixel_digest")

#: Flags (BOOLEAN) by name: the column each is stored in.
FLAGS = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio", "odd_size", "grayscale",
         "exact_duplicate", "near_duplicate")

#: Internal columns (not fields): hashes and duplicate-set ids.
INTERNAL = ("q_phash", "q_pixel_digest", "q_exact_set", "q_near_set")

#: Every built-in quality column: the signals and flags (fields) and the internal ones.
BUILT_IN = frozenset((*SIGNALS, *(f"q_{f}" for f in FLAGS), *INTERNAL))


def is_built_in(name: str) -> bool:
    """Whether ``name`` is a built-in quality field (a user field may also start with ``q_``:
    one added before the prefix was reserved)."""
    return name in BUILT_IN


def flag_column(flag: str) -> str:
    if flag not in FLAGS:
        raise ValueError(f"unknown quality flag {flag!r}; known: {', '.join(FLAGS)}")
    return f"q_{flag}"


def flag_expressions(median_pixels: float | None) -> dict[str, str]:
    """Each flag's SQL over ``samples`` columns; ``?`` placeholders bind :func:`flag_params`.

    NULL (missing) where the signals it needs are missing.
    """
    return {
        "dark": "q_brightness_p99 < ?",
        "light": "1 - q_brightness_p05 < ?",
        "blurry": "NOT (q_brightness_p99 < ?) AND q_sharpness < ?",
        "low_information": "q_entropy < ?",
        "odd_aspect_ratio": "least(q_aspect_ratio, 1 / q_aspect_ratio) < ?",
        "odd_size": ("greatest(sqrt(q_pixels / ?), sqrt(? / q_pixels)) > ?"
                     if median_pixels else "CAST(NULL AS BOOLEAN)"),
        "grayscale": "q_chroma <= ?",
        "exact_duplicate": ("CASE WHEN content_hash IS NULL AND q_pixel_digest IS NULL THEN NULL "
                            "ELSE q_exact_set IS NOT NULL END"),
        "near_duplicate": "CASE WHEN q_phash IS NULL THEN NULL ELSE q_near_set IS NOT NULL END",
    }


def flag_params(t: Mapping[str, float], median_pixels: float | None) -> dict[str, list[Any]]:
    """The values bound into each of :func:`flag_expressions`, from thresholds ``t``."""
    return {
        "dark": [t["dark"]],
        "light": [t["light"]],
        "blurry": [t["dark"], t["blurry"]],
        "low_information": [t["low_information"]],
        "odd_aspect_ratio": [t["odd_aspect_ratio"]],
        "odd_size": [median_pixels, median_pixels, t["odd_size"]] if median_pixels else [],
        "grayscale": [t["grayscale"]],
        "exact_duplicate": [],
        "near_duplicate": [],
    }


SIZE_SIGNALS = (
    "UPDATE samples SET q_aspect_ratio = width / height, q_pixels = width * height::DOUBLE "
    "WHERE width > 0 AND height > 0 AND (q_aspect_ratio IS DISTINCT FROM width / height "
    "OR q_pixels IS DISTINCT FROM width * height::DOUBLE)"
)

MEDIAN_PIXELS = "SELECT median(q_pixels) FROM samples WHERE q_pixels > 0"


def update_flags(t: Mapping[str, float], median_pixels: float | None) -> Query:
    """Set every flag from the stored signals; only rows where a flag changes are written."""
    exprs, binds = flag_expressions(median_pixels), flag_params(t, median_pixels)
    sets, diffs, params, diff_params = [], [], [], []
    for flag in FLAGS:
        col = flag_column(flag)
        sets.append(f"{col} = {exprs[flag]}")
        params += binds[flag]
        diffs.append(f"{col} IS DISTINCT FROM ({exprs[flag]})")
        diff_params += binds[flag]
    return (f"UPDATE samples SET {', '.join(sets)} WHERE {' OR '.join(diffs)}",
            [*params, *diff_params])


EXACT_CANDIDATES = (
    "WITH h AS (SELECT content_hash FROM samples WHERE content_hash IS NOT NULL "
    "GROUP BY 1 HAVING count(*) > 1), "
    "d AS (SELECT q_pixel_digest FROM samples WHERE q_pixel_digest IS NOT NULL "
    "GROUP BY 1 HAVING count(*) > 1) "
    "SELECT sample_key, content_hash, q_pixel_digest FROM samples "
    "WHERE content_hash IN (SELECT * FROM h) OR q_pixel_digest IN (SELECT * FROM d)"
)


#: Near duplicates also have a close mean brightness: the same or a neighbouring band of this
#: width. A perceptual hash ignores overall level, so a black and a white image (both flat)
#: would otherwise match.
BRIGHTNESS_BAND = 0.1

_NODES = ("SELECT q_phash AS p, floor(q_brightness / ?)::BIGINT AS band{extra} FROM samples "
          "WHERE q_phash IS NOT NULL AND q_brightness IS NOT NULL")


def near_nodes(paired: str) -> Query:
    """Samples grouped by (perceptual hash, brightness band): ``(p, band, keys, reps)``, with
    ``reps`` the number of distinct exact-duplicate sets among them (a sample alone counts as one).
    Identical images share a node, however many there are: the pairs below stay few. Only the
    nodes that can be in a set: those of several samples, and those in registered ``paired``
    (p, band) (a catalog's lone images are most of it, and are left in the database)."""
    text = _NODES.format(extra=", sample_key, q_exact_set")
    return (f"SELECT p, band, list(sample_key ORDER BY sample_key), "
            f"count(DISTINCT coalesce(q_exact_set, -sample_key)) FROM ({text}) GROUP BY p, band "
            f"HAVING count(*) > 1 OR (p, band) IN (SELECT (p, band) FROM {quote_ident(paired)})",
            [BRIGHTNESS_BAND])


def near_node_pairs(max_distance: int) -> Query:
    """Pairs of distinct nodes ``(p, band, p2, band2)`` whose hashes differ in at most
    ``max_distance`` bits and whose brightness bands are the same or neighbours.

    Split into ``max_distance + 1`` bands of bits, two such hashes agree exactly on at least one
    (pigeonhole): candidates share one, and are then checked bit by bit.
    """
    bands = max_distance + 1
    width = -(-64 // bands)
    return (
        f"WITH n AS (SELECT DISTINCT * FROM ({_NODES.format(extra='')})), "
        "b AS (SELECT p, band, i, (p >> (i * ?)) & ? AS v FROM n, range(?) t(i)) "
        "SELECT DISTINCT a.p, a.band, c.p, c.band FROM b a JOIN b c ON a.i = c.i AND a.v = c.v "
        "WHERE (a.p < c.p OR (a.p = c.p AND a.band < c.band)) AND abs(a.band - c.band) <= 1 "
        "AND bit_count(xor(a.p, c.p)) <= ?",
        [BRIGHTNESS_BAND, width, (1 << width) - 1, bands, max_distance],
    )


def set_duplicate_sets(frame: str, kind: str) -> Query:
    """Write the set ids of registered ``frame`` (sample_key, set_id) into the ``kind`` ('exact'
    or 'near') set column; samples not in the frame have theirs cleared. Only changes are written."""
    col = {"exact": "q_exact_set", "near": "q_near_set"}[kind]
    return (
        f"UPDATE samples SET {col} = f.set_id FROM ("
        "SELECT s.sample_key, d.set_id FROM samples s "
        f"LEFT JOIN {quote_ident(frame)} d USING (sample_key) "
        f"WHERE s.{col} IS DISTINCT FROM d.set_id) f WHERE samples.sample_key = f.sample_key",
        [],
    )


def flag_counts(view: Query) -> Query:
    """Per flag: flagged labeled, labeled with signals, flagged pool, pool with signals."""
    parts = []
    for flag in FLAGS:
        c = quote_ident(flag_column(flag))
        parts += [f"count(*) FILTER (WHERE label IS NOT NULL AND {c})",
                  f"count({c}) FILTER (WHERE label IS NOT NULL)",
                  f"count(*) FILTER (WHERE label IS NULL AND {c})",
                  f"count({c}) FILTER (WHERE label IS NULL)"]
    text, params = view
    return (f"WITH v AS ({text}) SELECT count(*), count(q_brightness), {', '.join(parts)} FROM v",
            params)


def flagged_ids(flag: str) -> Query:
    return (f"SELECT sample_id FROM samples WHERE {flag_column(flag)} ORDER BY sample_id", [])


def duplicate_sets(kind: str, limit: int | None = None) -> Query:
    """``(set_id, [sample_id, ...])`` of exact or near sets, largest first, members by id."""
    col = {"exact": "q_exact_set", "near": "q_near_set"}[kind]
    tail = " LIMIT ?" if limit is not None else ""
    return (f"SELECT {col}, list(sample_id ORDER BY sample_id) FROM samples WHERE {col} IS NOT NULL "
            f"GROUP BY 1 ORDER BY count(*) DESC, 1{tail}", [limit] if limit is not None else [])


def missing_signals(local_only: bool = True) -> Query:
    """``(sample_key, sample_id, uri)`` of samples without measured signals, by key."""
    local = f" AND {_LOCAL}" if local_only else ""
    return (f"SELECT sample_key, sample_id, uri FROM samples WHERE q_brightness IS NULL{local} "
            "ORDER BY sample_key", [])


_LOCAL = "NOT regexp_matches(uri, '^[A-Za-z][A-Za-z0-9+.-]*://')"

#: Local samples without signals (remote ones cannot be measured: they are not counted).
COUNT_MISSING = f"SELECT count(*) FROM samples WHERE q_brightness IS NULL AND {_LOCAL}"

#: Measured samples whose flags were never derived.
COUNT_UNFLAGGED = "SELECT count(*) FROM samples WHERE q_brightness IS NOT NULL AND q_dark IS NULL"

#: A measured file whose bytes differ from the content hash the catalog holds for it.
_CHANGED = "samples.content_hash IS NOT NULL AND samples.content_hash <> f.content_hash"


def changed_files(frame: str) -> Query:
    """Ids of samples of registered ``frame`` whose file no longer is the one ingested."""
    return (f"SELECT samples.sample_id FROM samples JOIN {quote_ident(frame)} f USING (sample_key) "
            f"WHERE {_CHANGED} ORDER BY 1", [])


def store_signals(frame: str) -> Query:
    """Fill the signals of registered ``frame`` (sample_key, width, height, content_hash,
    MEASURED...) where still missing; size and hash only fill gaps (a ``--no-probe`` ingest's),
    and a file whose bytes changed since it was ingested is left alone."""
    sets = ", ".join([*(f"{c} = f.{c}" for c in MEASURED),
                      *(f"{c} = coalesce(samples.{c}, f.{c})" for c in ("width", "height", "content_hash"))])
    return (f"UPDATE samples SET {sets} FROM {quote_ident(frame)} f "
            f"WHERE samples.sample_key = f.sample_key AND samples.q_brightness IS NULL AND NOT ({_CHANGED})",
            [])
