"""Peak memory of ingest and thumbnails on huge images and a very wide manifest, each in a subprocess.

Usage: python bench/bench_memory.py [--columns 10000] [--limit-gb 6] [--only a,b,c] [--write]
Every case runs in its own process (the real CLI for ingest); peak RSS is that process's
``ru_maxrss`` from ``os.wait4``. A watchdog kills a case whose RSS passes ``--limit-gb``.
Inputs are written to a temporary folder, never into the repository.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JUST_UNDER = (15_000, 11_300)  # 169.5 MP, under the 178.9 MP cap
OVER = (16_000, 12_500)  # 200 MP, over it
BEFORE = (
    "Before bounded decodes and the column cap (commit fceca82, same script and machine): "
    "ingest of the 169.5 MP folder 1,063 MB (2.9 s); thumbnail of the 169.5 MP PNG 1,961 MB "
    "(4.0 s), of the progressive JPEG 518 MB; 200 MP images refused by Pillow's own error "
    "(no cap of ours, pixel count unformatted); 1,000 x 1,000 CSV 587 MB (3.9 s); "
    "1,000 x 10,000 CSV killed by the watchdog at 5.7 GB after 42 s (reported killed at "
    "~23.7 GB without one). The wide manifest's memory is DuckDB's: one `ALTER TABLE samples "
    "ADD COLUMN` per metadata field inside the import's transaction keeps every table version "
    "until commit, ~260 bytes x columns^2 (2,000 columns: +1.0 GB, 4,000: +4.2 GB); reading "
    "the CSV is linear (4,000 columns: +0.4 GB)."
)
THUMB = ("import sys; from pathlib import Path; from al_core.thumbnails import thumbnail; "
         "print('thumbnail:', thumbnail(sys.argv[1], None, Path(sys.argv[2])))")


@dataclass
class Run:
    """One measured subprocess: what it printed, how it ended, its peak RSS and wall time."""

    name: str
    rc: int
    peak_mb: float
    seconds: float
    output: str
    killed: bool = False

    def outcome(self) -> str:
        if self.killed:
            return "killed by the watchdog"
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip()]
        if self.rc == 0:
            return "ok: " + (lines[-1] if lines else "").split(", new metadata fields")[0]
        wanted = [ln for ln in lines if "refused" in ln] or [ln for ln in lines if "error" in ln]
        return f"exit {self.rc}: " + (wanted or lines or [""])[0][:300]


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def measure(name: str, cmd: list[str], limit_bytes: int) -> Run:
    """Run ``cmd``; kill it if its RSS passes ``limit_bytes``; return its peak RSS and time."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        killed = threading.Event()

        def watch() -> None:
            while proc.returncode is None and not killed.is_set():
                if _rss_bytes(proc.pid) > limit_bytes:
                    killed.set()
                    os.kill(proc.pid, signal.SIGKILL)
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Run(name, proc.returncode, usage.ru_maxrss / 1024, seconds, text, killed.is_set())


def write_png(path: Path, width: int, height: int) -> Path:
    """A valid RGB PNG with a vertical gradient, streamed row by row (never held in memory)."""
    def chunk(cid: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + cid + data + struct.pack(">I", zlib.crc32(cid + data))

    deflate = zlib.compressobj(6)
    with path.open("wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for y in range(height):
            data = deflate.compress(b"\x00" + bytes([y * 255 // height]) * (width * 3))
            if data:
                fh.write(chunk(b"IDAT", data))
        fh.write(chunk(b"IDAT", deflate.flush()) + chunk(b"IEND", b""))
    return path


def write_jpeg(path: Path, width: int, height: int, progressive: bool = False) -> Path:
    """A solid-colour JPEG (compresses to a small file; made once, in this process)."""
    Image.new("RGB", (width, height), (90, 140, 200)).save(path, quality=90, progressive=progressive)
    return path


def write_wide_csv(path: Path, rows: int, columns: int) -> Path:
    """``rows`` rows of a path column plus ``columns - 1`` small integer columns."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", *(f"f{i}" for i in range(columns - 1))])
        for r in range(rows):
            writer.writerow([f"images/{r}.jpg", *((r + i) % 100 for i in range(columns - 1))])
    return path


def ingest(folder_or_file: Path, work: Path, *extra: str) -> list[str]:
    catalog = work / f"c_{folder_or_file.stem}.duckdb"
    for f in work.glob(f"{catalog.name}*"):
        f.unlink()
    return [sys.executable, "-m", "al_core", "ingest", str(folder_or_file), "--catalog", str(catalog),
            "--no-progress", *extra]


def thumb(image: Path, work: Path) -> list[str]:
    return [sys.executable, "-c", THUMB, str(image), str(work / "thumbs")]


def make_inputs(work: Path, only: set[str], columns: int) -> None:
    """Write every input under ``work`` (run in a child, so this process stays small)."""
    tiny = work / "images_tiny"
    tiny.mkdir()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(tiny / "t.png")
    for tag, size in (("a", JUST_UNDER), ("b", OVER)):
        if tag in only:
            folder = work / f"images_{tag}"
            folder.mkdir()
            write_jpeg(folder / f"{tag}.jpg", *size)
            write_jpeg(folder / f"{tag}_progressive.jpg", *size, progressive=True)
            write_png(folder / f"{tag}.png", *size)
    if "c" in only:
        from al_core.ingest.files import MAX_COLUMNS  # here, in the child: it loads DuckDB

        for n in sorted({1_000, MAX_COLUMNS, columns}):
            write_wide_csv(work / f"wide_{n:06d}.csv", 1_000, n)


def cases(work: Path, only: set[str]) -> list[tuple[str, list[str]]]:
    """``(name, command)`` of every case, in order, over the inputs of :func:`make_inputs`."""
    todo = [("baseline: CLI ingest of one 64x48 PNG", ingest(work / "images_tiny", work))]
    for tag, size in (("a", JUST_UNDER), ("b", OVER)):
        if tag not in only:
            continue
        mp = size[0] * size[1] / 1e6
        folder = work / f"images_{tag}"
        todo.append((f"({tag}) CLI ingest of a folder: {mp:.1f} MP JPEG + progressive JPEG + PNG",
                     ingest(folder, work)))
        for image in sorted(folder.iterdir()):
            todo.append((f"({tag}) thumbnail of the {mp:.1f} MP {image.name}", thumb(image, work)))
    for wide in sorted(work.glob("wide_*.csv")):
        n = int(wide.stem.split("_")[1])
        todo.append((f"(c) CLI ingest --no-probe of a 1,000 x {n:,} CSV", ingest(wide, work, "--no-probe")))
    return todo


def report(runs: list[Run], limit_gb: float, work: Path) -> list[str]:
    lines = [
        f"Machine: {machine()}. Each case is one fresh process; peak RSS is its `ru_maxrss`; "
        f"a watchdog kills a case above {limit_gb:g} GB. Target: under 1.5 GB, or refused quickly. "
        "Importing al_core with DuckDB and pandas alone takes about 130-175 MB.",
        "",
        "| case | outcome | peak RSS MB | s |",
        "| --- | --- | ---: | ---: |",
    ]
    for r in runs:
        outcome = r.outcome().replace(str(work), "TMP").replace("|", "\\|")
        lines.append(f"| {r.name} | {outcome} | {r.peak_mb:,.0f} | {r.seconds:.1f} |")
    return lines + ["", BEFORE]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--columns", type=int, default=10_000, help="columns of the wide manifest")
    ap.add_argument("--limit-gb", type=float, default=6.0, help="watchdog: kill a case above this RSS")
    ap.add_argument("--only", default="a,b,c", help="cases to run: a, b and/or c")
    ap.add_argument("--write", action="store_true", help="write results to docs/BENCHMARKS.md")
    ap.add_argument("--make-inputs", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    only = set(args.only.split(","))
    if args.make_inputs:
        make_inputs(args.make_inputs, only, args.columns)
        return
    work = Path(tempfile.mkdtemp(prefix="al-bench-mem-"))
    try:
        subprocess.run([sys.executable, __file__, "--make-inputs", str(work), "--only", args.only,
                        "--columns", str(args.columns)], check=True)
        runs = []
        for name, cmd in cases(work, only):
            runs.append(measure(name, cmd, int(args.limit_gb * 1e9)))
            print(f"{runs[-1].peak_mb:8,.0f} MB {runs[-1].seconds:6.1f} s  {name}: "
                  f"{runs[-1].outcome()}", flush=True)
        lines = report(runs, args.limit_gb, work)
        print("\n".join(lines))
        if args.write:
            write_section("memory", "## Memory (bench/bench_memory.py)\n\n" + "\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
