"""Image-quality signals of decoded images: brightness, contrast, sharpness, entropy, colour, hashes.

Two steps: :func:`prepare` (per image, in the probe's worker threads, on the image decoded at
probe scale: a JPEG at up to 1/8 of its size) reduces it to at most 64 px a side;
:func:`measure_batch` (per chunk of images, vectorized in NumPy, images of one size together)
computes every signal at once, so the per-image cost stays far below the decode's. Brightness
and chroma are taken from every other pixel each way of the 64-px image. Formulas follow
CleanVision's where it has one, so its published thresholds apply:

* perceived brightness of a pixel: ``sqrt(0.241 R² + 0.691 G² + 0.068 B²) / 255`` in [0, 1],
  counted in 256 levels; ``brightness`` is its mean, ``brightness_p99`` / ``brightness_p05``
  its nearest-rank 99th / 5th percentiles (dark: even the brightest pixels are dim; light:
  even the darkest are bright);
* grayscale: Pillow's ``convert("L")`` (ITU-R 601 luma);
* ``contrast``: standard deviation of the grayscale in [0, 1] (RMS contrast);
* ``sharpness``: ``1 - exp(-0.01 σ)`` where σ is the standard deviation of Pillow's
  ``FIND_EDGES`` (8-neighbour Laplacian, clipped to 0-255) on the grayscale, over interior
  pixels (those with 8 neighbours: Pillow copies the border unfiltered);
* ``entropy``: Shannon entropy of the 256-bin grayscale histogram, in bits (0 to 8);
* ``chroma``: mean over pixels of ``(max(R, G, B) - min(R, G, B)) / 255``: 0 for a gray image,
  however it is stored;
* ``phash``: the 64-bit DCT perceptual hash (grayscale area-averaged to 32x32, 2-D DCT-II,
  the 8x8 lowest frequencies against their median), as a signed 64-bit integer;
* ``pixel_digest``: BLAKE2b-128 of the decoded RGB pixels and their size at probe scale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

#: Longest side, in pixels, at which brightness, contrast, sharpness, entropy and chroma are
#: measured (CleanVision measures blur at 64): the signals do not depend on resolution.
ANALYSIS_SIZE = 64

#: Side of the grayscale image the perceptual hash is taken from, and of its kept DCT block.
PHASH_IMAGE, PHASH_BITS_SIDE = 32, 8

_LUMA = np.array([0.241, 0.691, 0.068], dtype=np.float64)


@dataclass(frozen=True)
class Prepared:
    """One image reduced for :func:`measure_batch`: its pixels at most 64 px a side (RGB),
    and, unless those are the whole image at 64x64 (the batch then derives them), its 32x32
    grayscale for the perceptual hash and the digest of its pixels at probe scale.
    ``gray`` is filled in by the batch."""

    small: np.ndarray
    gray: np.ndarray | None
    gray32: np.ndarray | None
    pixel_digest: str | None


@dataclass(frozen=True)
class Signals:
    """What :func:`measure` finds in one image (see the module docstring for each formula)."""

    brightness: float
    brightness_p99: float
    brightness_p05: float
    contrast: float
    sharpness: float
    entropy: float
    chroma: float
    phash: int
    pixel_digest: str


def as_rgb(img: Image.Image) -> Image.Image:
    """``img`` in RGB as displayed (EXIF orientation applied; transparency dropped: the colour
    stored under it counts)."""
    if "exif" in img.info or img.format not in ("JPEG", "PNG"):  # parse EXIF only if there is some
        try:
            img = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError, KeyError, TypeError):
            pass  # unreadable EXIF: measure the pixels as stored
    if img.mode.startswith(("I", "F")):
        img = _gray_to_8bit(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _gray_to_8bit(img: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as 8-bit "L", reduced first (these formats
    decode at full size). Integers are read as 16-bit (0-65535: 16-bit PNG and TIFF); floats as
    0-1 when none exceeds 1, else as 0-255."""
    wide = img.convert("F")
    scale = max(wide.size) / (4 * ANALYSIS_SIZE)
    if scale > 1:
        wide = wide.resize((max(1, round(wide.width / scale)), max(1, round(wide.height / scale))),
                           Image.Resampling.BOX)
    values = np.asarray(wide, dtype=np.float32)
    if img.mode.startswith("I"):
        values = values / 257.0
    elif values.size and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def analysis_image(rgb: Image.Image, size: int = ANALYSIS_SIZE) -> Image.Image:
    """``rgb`` with its longest side at most ``size`` pixels (area-averaged)."""
    scale = size / max(rgb.size)
    if scale >= 1:
        return rgb
    target = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(target, Image.Resampling.BOX)


def prepare(img: Image.Image) -> Prepared:
    """Reduce ``img`` (decoded at probe scale, any mode) to what :func:`measure_batch` needs:
    a few Pillow calls per image; the pixel work is done for many images at once."""
    rgb = as_rgb(img)
    small = analysis_image(rgb)
    a = np.asarray(small)
    if small is rgb and a.shape[:2] == (2 * PHASH_IMAGE, 2 * PHASH_IMAGE):
        return Prepared(a, None, None, None)  # gray, hash input and digest: from ``a``, in the batch
    gray32 = np.asarray(rgb.convert("L").resize((PHASH_IMAGE, PHASH_IMAGE), Image.Resampling.BOX))
    return Prepared(a, None, gray32, _digest(np.asarray(rgb)))


def _digest(rgb: np.ndarray) -> str:
    """BLAKE2b-128 of RGB pixels ``(h, w, 3)`` and their size."""
    digest = hashlib.blake2b(f"{rgb.shape[1]}x{rgb.shape[0]}:".encode(), digest_size=16)
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def measure(img: Image.Image) -> Signals:
    """All signals of one image (decoded at probe scale, any mode)."""
    return measure_batch([prepare(img)])[0]


_LEVELS = np.arange(256, dtype=np.float64)
#: DCT-II basis of the 8 lowest frequencies over 32 samples (unnormalized: a constant factor
#: does not move the median the hash bits are taken against).
_DCT8 = np.cos(np.pi * (2 * np.arange(PHASH_IMAGE)[None, :] + 1) * np.arange(PHASH_BITS_SIDE)[:, None]
               / (2 * PHASH_IMAGE))


def _histograms(levels: np.ndarray) -> np.ndarray:
    """Per-image counts ``(k, 256)`` of integer ``levels`` (``(k, ...)``, each in 0..255)."""
    return np.array([np.bincount(x.ravel(), minlength=256) for x in levels.astype(np.intp)],
                    dtype=np.float64).reshape(len(levels), 256)


def _mean_std(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and standard deviation of the levels 0..255 counted by ``hist`` (n, 256)."""
    count = np.maximum(hist.sum(axis=1), 1)
    mean = hist @ _LEVELS / count
    var = hist @ (_LEVELS ** 2) / count - mean ** 2
    return mean, np.sqrt(np.maximum(var, 0))


def _percentile(hist: np.ndarray, q: float) -> np.ndarray:
    """Per-row nearest-rank ``q``-th percentile (0-100) of the levels counted by ``hist``."""
    rank = np.maximum(np.ceil(q / 100.0 * hist.sum(axis=1)), 1)
    return np.argmax(np.cumsum(hist, axis=1) >= rank[:, None], axis=1).astype(np.float64)


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` of ``rgb`` (``(..., 3)`` uint8), exactly: ITU-R 601 luma in
    16-bit fixed point, rounded."""
    r, g, b = (rgb[..., c].astype(np.uint32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _group_stats(rgb: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per image of one size: brightness and gray histograms ``(k, 256)``, the edge response's
    standard deviation and the mean channel spread ``(k,)``, with whole-array operations on
    ``rgb`` ``(k, h, w, 3)`` and ``gray`` ``(k, h, w)`` (uint8)."""
    k = rgb.shape[0]
    sample = rgb[:, ::2, ::2]  # brightness and colour: every other pixel each way
    r, g, b = sample[..., 0], sample[..., 1], sample[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    r, g, b = (c.astype(np.float32) for c in (r, g, b))
    bright = np.rint(np.sqrt(r * r * _LUMA[0] + g * g * _LUMA[1] + b * b * _LUMA[2])).astype(np.uint8)
    edge_std = np.zeros(k)
    if gray.shape[1] >= 3 and gray.shape[2] >= 3:  # FIND_EDGES: 9 x centre - the 3x3 box sum
        g16 = gray.astype(np.int16)
        rows = g16[:, :-2] + g16[:, 1:-1] + g16[:, 2:]
        box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
        edges = np.clip(9 * g16[:, 1:-1, 1:-1] - box, 0, 255).reshape(k, -1).astype(np.int32)
        mean = edges.sum(axis=1) / edges.shape[1]
        edge_std = np.sqrt(np.maximum((edges * edges).sum(axis=1) / edges.shape[1] - mean * mean, 0))
    chroma = spread.reshape(k, -1).sum(axis=1, dtype=np.int64) / spread[0].size
    return _histograms(bright), _histograms(gray), edge_std, chroma


def measure_batch(items: list[Prepared]) -> list[Signals]:
    """The signals of each prepared image; images of one size are measured together."""
    n = len(items)
    bright, gray = np.zeros((n, 256)), np.zeros((n, 256))
    edge_std, spread = np.zeros(n), np.zeros(n)
    gray32 = np.zeros((n, PHASH_IMAGE, PHASH_IMAGE))
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(items):
        by_shape.setdefault(p.small.shape, []).append(i)
    digests = [p.pixel_digest for p in items]
    for members in by_shape.values():
        rgb = np.stack([items[i].small for i in members])
        g = _gray(rgb)
        bright[members], gray[members], edge_std[members], spread[members] = _group_stats(rgb, g)
        for j, i in enumerate(members):
            if digests[i] is None:
                digests[i] = _digest(rgb[j])
        own = [j for j, i in enumerate(members) if items[i].gray32 is None]
        if own:  # 64x64 images: each 2x2 block's mean
            q = g[own].astype(np.float64)
            gray32[[members[j] for j in own]] = (q[:, 0::2, 0::2] + q[:, 0::2, 1::2] + q[:, 1::2, 0::2]
                                                 + q[:, 1::2, 1::2]) / 4
        for i in members:
            if items[i].gray32 is not None:
                gray32[i] = items[i].gray32
    p99, p05 = _percentile(bright, 99) / 255, _percentile(bright, 5) / 255
    sharp = 1 - np.exp(-0.01 * edge_std)
    share = gray / np.maximum(gray.sum(axis=1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(share > 0, share * np.log2(share), 0).sum(axis=1) + 0.0
    mean_bright, contrast = _mean_std(bright)[0] / 255, _mean_std(gray)[1] / 255
    chroma = spread / 255
    hashes = _phashes(gray32) if n else []
    return [Signals(float(mean_bright[i]), float(p99[i]), float(p05[i]), float(contrast[i]),
                    float(sharp[i]), float(entropy[i]), float(chroma[i]), hashes[i], digests[i])
            for i in range(n)]


def _phashes(gray32: np.ndarray) -> list[int]:
    """64-bit DCT perceptual hashes of ``gray32`` (``(n, 32, 32)``) as signed 64-bit integers.

    Bit ``i`` (row-major over the 8x8 lowest DCT frequencies, DC included, the first bit the
    highest) is set where that coefficient is above its block's median.
    """
    blocks = (_DCT8 @ gray32 @ _DCT8.T).reshape(len(gray32), 64)
    ordered = np.sort(blocks, axis=1)
    median = (ordered[:, 31] + ordered[:, 32]) / 2
    bits = np.packbits(blocks > median[:, None], axis=1)
    return [int(v) for v in bits.view(">i8").ravel()]


def phash(gray: Image.Image) -> int:
    """64-bit DCT perceptual hash of ``gray`` (mode L), area-averaged to 32x32 first."""
    small = gray.resize((PHASH_IMAGE, PHASH_IMAGE), Image.Resampling.BOX)
    return _phashes(np.asarray(small, dtype=np.float64)[None])[0]


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or not)."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()
