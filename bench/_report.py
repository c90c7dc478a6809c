"""Helpers for benchmark scripts: timing medians, machine description, BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def median_time(fn: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS.write_text(text)


def synthetic_catalog(folder: Path, rows: int, n_classes: int, want: dict,
                      extra: Callable[[object], None] | None = None) -> Path:
    """A catalog of ``rows`` synthetic samples (``bench_ingest.make_files``) with one model run of
    ``n_classes`` classes, built once in ``folder``; rebuilt when ``want`` (its stamp) changes.
    ``extra(cat)`` adds what a bench needs beyond that (tags, say)."""
    import json
    import shutil

    from bench_ingest import make_files

    from al_core.db.catalog import Catalog
    from al_core.ingest import import_predictions, ingest_manifest

    path, stamp = folder / "catalog.duckdb", folder / "built.json"
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return path
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    manifest, preds = make_files(folder, rows, n_classes)
    with Catalog.open(path) as cat:
        ingest_manifest(cat, manifest, probe=False, progress=False)
        import_predictions(cat, preds, "bench-run")
        if extra is not None:
            extra(cat)
    manifest.unlink()
    preds.unlink()
    stamp.write_text(json.dumps(want))
    print(f"built {path} ({rows:,} samples, {n_classes} classes) in {time.perf_counter() - t0:.0f} s", flush=True)
    return path
