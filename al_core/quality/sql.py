"""SQL of the image-quality signals: flags from stored signals, duplicate candidates, counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


#: Near duplicates also differ by at most this much in mean brightness: a perceptual hash
#: ignores overall level, so a black and a white image (both flat) would otherwise match.
NEAR_BRIGHTNESS = 0.1


def near_pairs(max_distance: int) -> Query:
    """Pairs ``(key_a, key_b)`` whose perceptual hashes differ in at most ``max_distance`` bits
    and whose mean brightness differs by at most :data:`NEAR_BRIGHTNESS`.

    Split into ``max_distance + 1`` bands, two such hashes agree exactly on at least one band
    (pigeonhole): candidates share a band value, and are then checked bit by bit.
    """
    bands = max_distance + 1
    width = -(-64 // bands)
    return (
        "WITH h AS (SELECT sample_key AS k, q_phash AS p, q_brightness AS y FROM samples "
        "WHERE q_phash IS NOT NULL), "
        "b AS (SELECT k, p, y, i, (p >> (i * ?)) & ? AS v FROM h, range(?) t(i)) "
        "SELECT DISTINCT a.k, c.k FROM b a JOIN b c ON a.i = c.i AND a.v = c.v AND a.k < c.k "
        "WHERE bit_count(xor(a.p, c.p)) <= ? AND abs(a.y - c.y) <= ?",
        [width, (1 << width) - 1, bands, max_distance, NEAR_BRIGHTNESS],
    )


def set_duplicate_sets(frame: str) -> Query:
    """Write the set ids of registered ``frame`` (sample_key, exact_set, near_set); others cleared."""
    return (
        "UPDATE samples SET q_exact_set = f.exact_set, q_near_set = f.near_set FROM ("
        "SELECT s.sample_key, d.exact_set, d.near_set FROM samples s "
        f"LEFT JOIN {quote_ident(frame)} d USING (sample_key) "
        "WHERE s.q_exact_set IS DISTINCT FROM d.exact_set "
        "OR s.q_near_set IS DISTINCT FROM d.near_set) f WHERE samples.sample_key = f.sample_key",
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


def count_sets(kind: str) -> Query:
    col = {"exact": "q_exact_set", "near": "q_near_set"}[kind]
    return f"SELECT count(DISTINCT {col}) FROM samples", []


def missing_signals(local_only: bool = True) -> Query:
    """``(sample_key, sample_id, uri)`` of samples without measured signals, by key."""
    local = " AND NOT regexp_matches(uri, '^[A-Za-z][A-Za-z0-9+.-]*://')" if local_only else ""
    return (f"SELECT sample_key, sample_id, uri FROM samples WHERE q_brightness IS NULL{local} "
            "ORDER BY sample_key", [])


COUNT_MISSING = "SELECT count(*) FROM samples WHERE q_brightness IS NULL"


def store_signals(frame: str) -> Query:
    """Fill the measured signals of registered ``frame`` (sample_key, MEASURED...) where still missing."""
    sets = ", ".join(f"{c} = f.{c}" for c in MEASURED)
    return (f"UPDATE samples SET {sets} FROM {quote_ident(frame)} f "
            "WHERE samples.sample_key = f.sample_key AND samples.q_brightness IS NULL", [])


def measured_columns(prefix: str = "") -> Sequence[str]:
    return [f"{prefix}{c}" for c in MEASURED]
