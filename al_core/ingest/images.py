"""A streaming pass over image files: size, content hash and a bounded-memory decode check."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from al_core.quality.signals import Prepared, Signals, measure_batch, prepare

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

#: Largest image accepted, in pixels (width x height): where Pillow raises its
#: DecompressionBombError by default (2 x ``Image.MAX_IMAGE_PIXELS``), about 178.9 MP.
#: Anything larger is refused from its header alone, never decoded, by the probe and by
#: thumbnails. Between 1x and 2x its limit Pillow only warns; that warning is silenced, as
#: this cap is the one enforced (lower it here, not through Pillow).
MAX_PIXELS = 178_956_970

#: Bytes of decoded pixels that all probes and thumbnails of one process may hold at once;
#: an image that needs more decodes alone. Keeps parallel decodes of big images bounded.
DECODE_BUDGET_BYTES = 768 * 1024 * 1024

_CHUNK = 1 << 20
_ORIENTATION = 0x0112
_ROTATED = frozenset({5, 6, 7, 8})  # EXIF orientations displayed turned by 90 or 270 degrees
_ONE_BYTE_MODES = frozenset({"1", "L", "P"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")
_CORRUPT = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, zlib.error,
            struct.error)
_QUIET = ("ignore", None, Image.DecompressionBombWarning, None, 0)


class ImageTooLarge(ValueError):
    """An image above :data:`MAX_PIXELS`, refused before any of it is decoded."""


@dataclass(frozen=True)
class ProbeResult:
    """What one file told us: size and hash, or the problem that makes it unusable."""

    row: int
    sample_id: str
    width: int | None
    height: int | None
    content_hash: str | None
    problem: str | None
    signals: Signals | None = None
    #: the image reduced for the signals, until :func:`probe_images` measures its chunk
    prepared: Prepared | None = None


class _Budget:
    """A first-come-first-served counting semaphore over bytes of decoded pixels."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._used = 0
        self._next = 0
        self._serving = 0

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        total = DECODE_BUDGET_BYTES
        cost = min(cost, total)
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            self._cond.wait_for(lambda: self._serving == ticket and self._used + cost <= total)
            self._serving += 1
            self._used += cost
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._used -= cost
                self._cond.notify_all()


_BUDGET = _Budget()


def file_hash(path: str) -> str:
    """BLAKE2b-128 of the file's bytes, read in chunks (never the whole file at once)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def too_large_message(path: str, pixels: int | None, size: tuple[int, int] | None = None) -> str:
    """The refusal of an image above the cap, naming the file, its size and the cap."""
    shown = f"{size[0]}x{size[1]} = " if size else ""
    count = f"{shown}{pixels:,} pixels" if pixels else "more pixels than Pillow allows"
    return (f"{path}: refused, the image has {count}, above the cap of {MAX_PIXELS:,} pixels "
            "(al_core.ingest.images.MAX_PIXELS); it was not decoded")


def _quiet_pillow_warning() -> None:
    """Silence Pillow's bomb warning (1x-2x its limit): :data:`MAX_PIXELS` is the limit enforced.

    Checked on each open, not once at import: a ``warnings.catch_warnings`` block around the
    import (pytest has one) would otherwise drop the filter when it ends.
    """
    if _QUIET not in warnings.filters:
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@contextmanager
def open_capped(path: str) -> Iterator[Image.Image]:
    """Open ``path`` lazily (its header only); :class:`ImageTooLarge` above :data:`MAX_PIXELS`."""
    _quiet_pillow_warning()
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as err:  # Pillow's own limit, checked inside open()
        found = _PILLOW_PIXELS.search(str(err))
        raise ImageTooLarge(too_large_message(path, int(found[1]) if found else None)) from None
    with img:
        pixels = img.width * img.height
        if pixels > MAX_PIXELS:
            raise ImageTooLarge(too_large_message(path, pixels, img.size))
        yield img


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` as displayed: swapped for EXIF orientations 5-8 (header only)."""
    if img.format == "PNG" and "exif" not in img.info:
        return img.size  # a PNG's getexif() decodes the whole image to look for a late eXIf
    try:
        orientation = img.getexif().get(_ORIENTATION)
    except (OSError, ValueError, SyntaxError, struct.error):
        orientation = None  # unreadable EXIF: the pixels may still be fine
    width, height = img.size
    return (height, width) if orientation in _ROTATED else (width, height)


def decode_cost(img: Image.Image, full_size: tuple[int, int], *, to_rgb: bool = False) -> int:
    """Bytes a decode of ``img`` at its current (possibly draft-reduced) size needs.

    ``to_rgb``: the decoded image is then converted to RGB, a second copy of 4 bytes a pixel.
    """
    pixels = img.width * img.height
    cost = pixels * (1 if img.mode in _ONE_BYTE_MODES else 4) + (4 * pixels if to_rgb else 0)
    if "progressive" in img.info:  # only the JPEG plugin sets it
        # libjpeg keeps every DCT coefficient of a progressive JPEG, at full size, whatever the scale
        cost += full_size[0] * full_size[1] * 2 * len(img.getbands())
    return cost


@contextmanager
def decode_slot(img: Image.Image, full_size: tuple[int, int], *, to_rgb: bool = False
                ) -> Iterator[None]:
    """Wait until the process-wide decode budget has room for ``img``, and hold it."""
    with _BUDGET.hold(decode_cost(img, full_size, to_rgb=to_rgb)):
        yield


def _inflate(inflate: zlib._Decompress, data: bytes) -> None:
    """Feed ``data`` to ``inflate``, discarding its output 1 MiB at a time."""
    while data and not inflate.eof:
        inflate.decompress(data, _CHUNK)
        data = inflate.unconsumed_tail


def _png_chunks(fh: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    """``(type, piece of data)`` of every chunk up to IEND (or the file's end), CRC-checked."""
    while True:
        head = fh.read(8)
        if not head:
            return  # no IEND: harmless (Pillow reads such files) once the image data is whole
        if len(head) < 8:
            raise OSError("truncated PNG file: it ends inside a chunk header")
        length, kind = struct.unpack(">I4s", head)
        crc = zlib.crc32(kind)
        while length:
            piece = fh.read(min(length, _CHUNK))
            if not piece:
                raise OSError(f"truncated PNG file: it ends inside a {kind!r} chunk")
            crc = zlib.crc32(piece, crc)
            length -= len(piece)
            yield kind, piece
        if fh.read(4) != struct.pack(">I", crc):
            raise OSError(f"broken PNG file: bad checksum in a {kind!r} chunk")
        if kind == b"IEND":
            return


def check_png(path: str) -> None:
    """Check every chunk's CRC and inflate all image data, holding at most 1 MiB of pixels.

    Catches what a full decode catches (truncation, bit rot, a broken zlib stream) without
    holding the decoded image (4 bytes a pixel: 680 MB for a 170 MP PNG).
    """
    inflate = zlib.decompressobj()
    with open(path, "rb") as fh:
        if fh.read(8) != _PNG_SIGNATURE:
            raise OSError("not a PNG file")
        for kind, piece in _png_chunks(fh):
            if kind == b"IDAT":
                _inflate(inflate, piece)
    if not inflate.eof:
        raise OSError("truncated PNG image data")


def check_and_measure(path: str, *, signals: bool = True) -> tuple[tuple[int, int], Prepared | None]:
    """Displayed ``(width, height)`` of ``path`` once its pixel data is known to decode, and
    (``signals``) the same decode reduced for the quality signals.

    Memory is bounded per image: the cap refuses huge ones from the header, a JPEG decodes
    at 1/8 scale, a PNG is checked as a stream, and other decodes share a byte budget.

    The signals need the pixels: a JPEG's come from its 1/8-scale decode (the one the check
    does anyway), other formats' from a full decode inside the shared byte budget; a PNG is
    still stream-checked first (its checksums).
    """
    with open_capped(path) as img:
        size = displayed_size(img)
        full = img.size
        if img.format == "PNG":
            check_png(path)
            if not signals:
                return size, None
        else:
            img.draft("RGB", (64, 64))  # JPEG decodes at 1/8 scale: still reads every byte
        with decode_slot(img, full, to_rgb=signals):
            img.load()
            return size, prepare(img) if signals else None


def probe_one(row: int, sample_id: str, path: str, *, signals: bool = True) -> ProbeResult:
    """Open ``path`` safely: read its displayed size, check that it decodes, hash its bytes,
    and (``signals``) measure its image-quality signals from the same decode."""
    if not os.path.exists(path):
        return ProbeResult(row, sample_id, None, None, None, f"{path}: file does not exist")
    try:
        (width, height), measured = check_and_measure(path, signals=signals)
    except ImageTooLarge as err:
        return ProbeResult(row, sample_id, None, None, None, str(err))
    except _CORRUPT as err:
        return ProbeResult(row, sample_id, None, None, None,
                           f"{path}: unreadable or corrupt image ({err})")
    return ProbeResult(row, sample_id, width, height, file_hash(path), None, prepared=measured)


def _measured(results: list[ProbeResult]) -> list[ProbeResult]:
    """The chunk's results with their quality signals, measured for the whole chunk at once."""
    todo = [i for i, r in enumerate(results) if r.prepared is not None]
    for i, sig in zip(todo, measure_batch([results[i].prepared for i in todo]), strict=True):
        results[i] = replace(results[i], signals=sig, prepared=None)
    return results


def probe_images(items: Iterable[tuple[int, str, str]], total: int, *, progress: bool = True,
                 workers: int | None = None, signals: bool = True,
                 desc: str = "probing images") -> Iterator[ProbeResult]:
    """Probe ``(row, sample_id, path)`` items in order with a thread pool and a progress bar.

    Streams: at most two chunks of work are in flight (one read by the pool while the other's
    quality signals are computed), so memory stays flat for any size.
    """
    workers = workers or min(8, max(2, os.cpu_count() or 2))  # more threads only fight over the GIL
    bar = tqdm(total=total, unit="img", desc=desc, disable=not progress or total == 0,
               mininterval=0.5, dynamic_ncols=True)
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        in_flight = None  # the previous chunk: measured here while the pool reads the next one
        while True:
            chunk = [item for _, item in zip(range(256), items, strict=False)]
            submitted = pool.map(lambda it: probe_one(*it, signals=signals), chunk) if chunk else None
            if in_flight is not None:
                done = list(in_flight)
                yield from _measured(done)
                bar.update(len(done))
            if submitted is None:
                break
            in_flight = submitted
    bar.close()
