"""Image-quality signals of one decoded image: brightness, contrast, sharpness, entropy, colour, hashes.

Pure functions on a Pillow image already decoded at probe scale (a JPEG at up to 1/8 of its
size). Formulas follow CleanVision's where it has one, so its published thresholds apply:

* perceived brightness of a pixel: ``sqrt(0.241 R² + 0.691 G² + 0.068 B²) / 255`` in [0, 1];
  ``brightness`` is its mean, ``brightness_p99`` / ``brightness_p05`` its 99th / 5th percentiles
  (dark: even the brightest pixels are dim; light: even the darkest are bright);
* ``contrast``: standard deviation of the grayscale (ITU-R 601 luma) in [0, 1] (RMS contrast);
* ``sharpness``: ``1 - exp(-0.01 σ)`` where σ is the standard deviation of Pillow's
  ``FIND_EDGES`` response (8-neighbour Laplacian, clipped to 0-255) on the grayscale at most
  :data:`ANALYSIS_SIZE` pixels a side, over interior pixels;
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
from PIL import Image, ImageFilter, ImageOps
from scipy.fft import dct

#: Longest side, in pixels, at which brightness, contrast, sharpness, entropy and chroma are
#: measured (CleanVision measures blur at 64): the signals do not depend on resolution.
ANALYSIS_SIZE = 64

#: Side of the grayscale image the perceptual hash is taken from, and of its kept DCT block.
PHASH_IMAGE, PHASH_BITS_SIDE = 32, 8

_LUMA = np.array([0.241, 0.691, 0.068], dtype=np.float64)


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
    """``img`` in RGB as displayed (EXIF orientation applied; alpha over black dropped)."""
    try:
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        pass  # unreadable EXIF: measure the pixels as stored
    if img.mode.startswith(("I", "F")):  # 16-bit or float gray: scaled to 8 bits, not clipped
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype(np.uint8), "L")
    return img if img.mode == "RGB" else img.convert("RGB")


def analysis_image(rgb: Image.Image, size: int = ANALYSIS_SIZE) -> Image.Image:
    """``rgb`` with its longest side at most ``size`` pixels (area-averaged)."""
    scale = size / max(rgb.size)
    if scale >= 1:
        return rgb
    target = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(target, Image.Resampling.BOX)


def perceived_brightness(pixels: np.ndarray) -> np.ndarray:
    """Per-pixel perceived brightness in [0, 1] of RGB ``pixels`` (shape ``(..., 3)``, 0-255)."""
    p = pixels.astype(np.float64)
    return np.sqrt((p * p) @ _LUMA) / 255.0


def sharpness_of(gray: Image.Image) -> float:
    """``1 - exp(-0.01 σ)``, σ the standard deviation of ``FIND_EDGES`` on ``gray`` (mode L).

    Only interior pixels count: Pillow copies the 1-pixel border unfiltered, which would give
    a flat image a "sharpness" that grows with its brightness.
    """
    edges = np.asarray(gray.filter(ImageFilter.FIND_EDGES), dtype=np.float64)[1:-1, 1:-1]
    return float(1.0 - np.exp(-0.01 * edges.std())) if edges.size else 0.0


def entropy_of(gray: Image.Image) -> float:
    """Shannon entropy in bits of the 256-bin histogram of ``gray`` (mode L)."""
    counts = np.asarray(gray.histogram(), dtype=np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: never -0.0


def phash(gray: Image.Image) -> int:
    """64-bit DCT perceptual hash of ``gray`` (mode L) as a signed 64-bit integer.

    Bit ``i`` (row-major over the 8x8 lowest DCT frequencies, DC included) is set where that
    coefficient is above the block's median; near-identical images differ in few bits.
    """
    small = np.asarray(gray.resize((PHASH_IMAGE, PHASH_IMAGE), Image.Resampling.BOX),
                       dtype=np.float64)
    block = dct(dct(small, axis=0), axis=1)[:PHASH_BITS_SIDE, :PHASH_BITS_SIDE]
    bits = (block > np.median(block)).ravel()
    value = int(np.packbits(bits).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or not)."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def measure(img: Image.Image) -> Signals:
    """All signals of ``img``, decoded at probe scale (any mode; converted to RGB here)."""
    rgb = as_rgb(img)
    digest = hashlib.blake2b(f"{rgb.width}x{rgb.height}:".encode(), digest_size=16)
    digest.update(rgb.tobytes())
    small = analysis_image(rgb)
    pixels = np.asarray(small)
    bright = perceived_brightness(pixels).ravel()
    p05, p99 = np.percentile(bright, [5, 99])
    gray = small.convert("L")
    spread = pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)
    return Signals(
        brightness=float(bright.mean()),
        brightness_p99=float(p99),
        brightness_p05=float(p05),
        contrast=float(np.asarray(gray, dtype=np.float64).std() / 255.0),
        sharpness=sharpness_of(gray),
        entropy=entropy_of(gray),
        chroma=float(spread.mean() / 255.0),
        phash=phash(rgb.convert("L")),
        pixel_digest=digest.hexdigest(),
    )
