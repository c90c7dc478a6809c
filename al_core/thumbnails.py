"""Thumbnails: made once per image content, in bounded memory, and cached on disk beside the catalog."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from PIL import Image, ImageOps

from al_core.ingest.images import ImageTooLarge, decode_slot, open_capped

THUMB_SIZE = 160
_SCHEME = ("://",)
_KEY = re.compile(r"[0-9a-f]{16,128}")  # a content hash as the probe writes it: safe as a file name
_REDUCIBLE = frozenset({"RGB", "RGBA", "RGBX", "L", "LA", "CMYK"})  # resized before conversion


def cache_dir(catalog_path: Path) -> Path:
    """Where thumbnails of a catalog live (a derived cache: safe to delete)."""
    return catalog_path.resolve().parent / "thumbs"


def is_local(uri: str) -> bool:
    return not any(s in uri for s in _SCHEME)


def thumb_path(folder: Path, uri: str, content_hash: str | None, size: int) -> Path:
    """Where the thumbnail of ``uri`` goes: always inside ``folder``, whatever the hash holds.

    A hash that is not plain lowercase hex (a manifest can give any text) is hashed again.
    """
    key = content_hash if content_hash and _KEY.fullmatch(content_hash) else None
    key = key or hashlib.blake2b(f"{content_hash}\0{uri}".encode(), digest_size=16).hexdigest()
    return folder / key[:2] / f"{key}_{int(size)}.jpg"


def render(uri: str, size: int = THUMB_SIZE) -> Image.Image:
    """An RGB image of ``uri`` at most ``size`` px a side, upright, decoded at reduced scale.

    JPEGs decode at 1/2-1/8 scale; other formats decode in full, within the shared decode
    budget, and are reduced before anything else is copied. Raises :class:`ImageTooLarge`
    above the pixel cap, before decoding.
    """
    with open_capped(uri) as img:
        full = img.size
        img.draft("RGB", (2 * size, 2 * size))
        convert = img.mode not in _REDUCIBLE
        with decode_slot(img, full, to_rgb=convert):
            small = img.convert("RGB") if convert else img
            small.thumbnail((size, size), reducing_gap=2.0)
        small = ImageOps.exif_transpose(small).convert("RGB")
    if max(small.size) < size:  # small images are enlarged crisply, not blurred
        scale = size / max(small.size)
        small = small.resize((round(small.width * scale), round(small.height * scale)),
                             Image.NEAREST)
    return small


def thumbnail(uri: str, content_hash: str | None, folder: Path, size: int = THUMB_SIZE) -> Path | None:
    """Path of a JPEG thumbnail for ``uri``, created on first use; None if it cannot be read.

    None too for an image above the pixel cap (``al_core.ingest.images.MAX_PIXELS``).
    """
    if not is_local(uri):
        return None
    path = thumb_path(folder, uri, content_hash, size)
    if path.exists():
        return path
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        img = render(uri, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp, format="JPEG", quality=88)
        tmp.replace(path)
    except (ImageTooLarge, OSError, ValueError, SyntaxError, EOFError):
        tmp.unlink(missing_ok=True)
        return None
    return path
