"""Query images from outside the catalog (uploads, --image): size-checked and decoded safely."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from al_core.errors import AlExplorerError
from al_core.ingest.images import MAX_PIXELS

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest decoded query image, in pixels (far below the catalog's cap: a query needs no more).
MAX_QUERY_PIXELS = min(MAX_PIXELS, 50_000_000)
#: Formats a query image may have.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


class UploadError(AlExplorerError):
    """An uploaded file that is not an image we can decode safely."""


def decode_upload(data: bytes, name: str = "upload", max_bytes: int = MAX_UPLOAD_BYTES,
                  draft_size: int = 224) -> Image.Image:
    """An upright RGB image from ``data``; :class:`UploadError` naming ``name`` otherwise.

    Only common photo formats are opened (no EPS or other rarely hardened decoders); the size is
    checked before decoding, the pixel count from the header before any pixel is decoded, and the
    file is fully decoded here (a truncated file fails now, not later). JPEGs decode at reduced
    scale, never below ``draft_size`` a side (the model's input size, as the embed job does).
    """
    if len(data) == 0:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise UploadError(f"{name}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = img.size
        if width * height > MAX_QUERY_PIXELS:
            raise UploadError(f"{name}: {width}x{height} pixels is over the "
                              f"{MAX_QUERY_PIXELS / 1e6:.0f} MP limit for a query image")
        img.draft("RGB", (draft_size, draft_size))
        img.load()
        return ImageOps.exif_transpose(img).convert("RGB")
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise UploadError(f"{name}: not an image ({', '.join(FORMATS)} are accepted)") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UploadError(f"{name}: the image is damaged or truncated ({err})") from err
