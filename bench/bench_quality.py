"""The ingest probe pass with image-quality signals against the same pass without them.

Usage: python bench/bench_quality.py [--demo 5000] [--large 1000] [--repeats 3] [--write]
Workloads: the demo's 64x64 JPEGs (rendered once under /tmp), and 12-MP (4000x3000) JPEGs
(200 distinct scenes, copied to reach --large files). Files are read once before timing, so
both passes read from the page cache. Baseline: the same probe (decode check, size, hash)
with ``signals=False``, interleaved with the measured runs.
Also: re-flagging (a threshold change) on the demo catalog, which reads no image.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, median_time, write_section  # noqa: E402

from al_core.ingest.images import probe_images  # noqa: E402

ROOT = Path("/tmp/al_bench_quality")


def demo_images(n: int) -> list[Path]:
    from al_core.demo.dataset import image_path, plan_dataset, write_images

    root = ROOT / f"demo_{n}"
    plan = plan_dataset(n, 0)
    write_images(plan, root, progress=True)
    return [image_path(root, sid) for sid in plan["sample_id"]]


def large_images(n: int, distinct: int = 200) -> list[Path]:
    folder = ROOT / "large"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"l{i:05d}.jpg"
        if not path.exists():
            if i < distinct:
                img = Image.new("RGB", (4000, 3000), tuple(int(v) for v in rng.integers(0, 255, 3)))
                draw = ImageDraw.Draw(img)
                for _ in range(80):
                    x, y = int(rng.integers(0, 4000)), int(rng.integers(0, 3000))
                    w, h = (int(v) for v in rng.integers(40, 900, 2))
                    draw.ellipse([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
                img.save(path, quality=90)
            else:
                shutil.copy(folder / f"l{i % distinct:05d}.jpg", path)
        paths.append(path)
    return paths


def probe_all(paths: list[Path], signals: bool) -> None:
    items = ((i, p.stem, str(p)) for i, p in enumerate(paths))
    for res in probe_images(items, total=len(paths), progress=False, signals=signals):
        if res.problem:
            raise RuntimeError(res.problem)


def warm(paths: list[Path]) -> None:
    for p in paths:
        p.read_bytes()


def compare(paths: list[Path], repeats: int) -> tuple[float, float]:
    warm(paths)
    without, with_ = [], []
    for _ in range(repeats):  # interleaved: drift hits both alike
        without.append(median_time(lambda: probe_all(paths, False), 1))
        with_.append(median_time(lambda: probe_all(paths, True), 1))
    return float(np.median(without)), float(np.median(with_))


def reflag_time(repeats: int) -> tuple[float, int]:
    from al_core import quality
    from al_core.db.catalog import Catalog

    path = Path("/tmp/al_bench_quality/demo_catalog.duckdb")
    if not path.exists():
        from al_core.demo import build_demo
        build_demo(path, size=5000, seed=0, progress=False, echo=False)
    cat = Catalog(path)
    values = iter([0.3, 0.4] * repeats)
    t = median_time(lambda: quality.set_thresholds(cat, {"dark": next(values)}), repeats)
    quality.set_thresholds(cat, {}, reset=True)
    return t, int(cat.scalar("SELECT count(*) FROM samples"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", type=int, default=5000)
    ap.add_argument("--large", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, paths in ((f"{args.demo:,} demo JPEGs (64x64)", demo_images(args.demo)),
                        (f"{args.large:,} 12-MP JPEGs (4000x3000)", large_images(args.large))):
        t0 = time.perf_counter()
        base, meas = compare(paths, args.repeats)
        print(f"{name}: without {base:.2f} s, with {meas:.2f} s, ratio {meas / base:.2f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append(f"| {name} | {base:.2f} s ({len(paths) / base:,.0f} img/s) | "
                    f"{meas:.2f} s ({len(paths) / meas:,.0f} img/s) | {meas / base:.2f}× |")
    t_reflag, n = reflag_time(args.repeats)
    print(f"re-flag {n:,} samples after a threshold change: {t_reflag * 1000:.0f} ms")
    body = "\n".join([
        "## Image quality: the probe pass with signals",
        "",
        f"Machine: {machine()}. `python bench/bench_quality.py --demo {args.demo} --large {args.large} "
        f"--repeats {args.repeats}`; median of {args.repeats} interleaved runs, files in the page cache. "
        "Baseline: the same probe pass (decode check, size, content hash) without signals. "
        "Target: ≤ 1.5× the baseline.",
        "",
        "| workload | probe without signals | probe with signals | ratio |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Changing a threshold re-flags all {n:,} demo samples from stored signals (no image read): "
        f"{t_reflag * 1000:.0f} ms, one transaction.",
    ])
    if args.write:
        write_section("quality", body)
    print(body)


if __name__ == "__main__":
    main()
