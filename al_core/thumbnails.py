"""Thumbnails: made once per image content and cached on disk beside the catalog."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image, ImageOps

THUMB_SIZE = 160
_SCHEME = ("://",)


def cache_dir(catalog_path: Path) -> Path:
    """Where thumbnails of a catalog live (a derived cache: safe to delete)."""
    return catalog_path.resolve().parent / "thumbs"


def is_local(uri: str) -> bool:
    return not any(s in uri for s in _SCHEME)


def thumbnail(uri: str, content_hash: str | None, folder: Path, size: int = THUMB_SIZE) -> Path | None:
    """Path of a JPEG thumbnail for ``uri``, created on first use; None if it cannot be read."""
    if not is_local(uri):
        return None
    key = content_hash or hashlib.blake2b(uri.encode(), digest_size=16).hexdigest()
    path = folder / key[:2] / f"{key}_{size}.jpg"
    if path.exists():
        return path
    try:
        with Image.open(uri) as img:
            img.draft("RGB", (size, size))
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((size, size))
            if max(img.size) < size:  # small images are enlarged crisply, not blurred
                scale = size / max(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.NEAREST)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            img.save(tmp, format="JPEG", quality=88)
            tmp.replace(path)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return path
