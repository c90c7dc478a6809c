"""A streaming pass over image files: size, content hash and a decode check, with progress."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ProbeResult:
    """What one file told us: size and hash, or the problem that makes it unusable."""

    row: int
    sample_id: str
    width: int | None
    height: int | None
    content_hash: str | None
    problem: str | None


def file_hash(path: str) -> str:
    """BLAKE2b-128 of the file's bytes, read in chunks (never the whole file at once)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def probe_one(row: int, sample_id: str, path: str) -> ProbeResult:
    """Open ``path`` safely: read its size, decode it at reduced scale, hash its bytes."""
    if not os.path.exists(path):
        return ProbeResult(row, sample_id, None, None, None, f"{path}: file does not exist")
    try:
        with Image.open(path) as img:
            width, height = img.size
            img.draft("RGB", (64, 64))  # JPEG decodes at 1/8 scale: catches truncation cheaply
            img.load()
    except Image.DecompressionBombError as err:
        return ProbeResult(row, sample_id, None, None, None, f"{path}: refused, {err}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return ProbeResult(row, sample_id, None, None, None,
                           f"{path}: unreadable or corrupt image ({err})")
    return ProbeResult(row, sample_id, width, height, file_hash(path), None)


def probe_images(items: Iterable[tuple[int, str, str]], total: int, *, progress: bool = True,
                 workers: int | None = None) -> Iterator[ProbeResult]:
    """Probe ``(row, sample_id, path)`` items in order with a thread pool and a progress bar.

    Streams: at most a few chunks of work are in flight, so memory stays flat for any size.
    """
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    bar = tqdm(total=total, unit="img", desc="probing images", disable=not progress or total == 0,
               mininterval=0.5, dynamic_ncols=True)
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            chunk = [item for _, item in zip(range(256), items, strict=False)]
            if not chunk:
                break
            yield from pool.map(lambda it: probe_one(*it), chunk)
            bar.update(len(chunk))
    bar.close()
