"""Query images from outside the catalog (uploads, --image): size-checked and decoded safely."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from al_core.errors import AlExplorerError
from al_core.ingest.images import MAX_PIXELS

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest decoded query image, in pixels (far below the catalog's cap: a query needs no more).
MAX_QUERY_PIXELS = min(MAX_PIXELS, 50_000_000)


class UploadError(AlExplorerError):
    """An uploaded file that is not an image we can decode safely."""


def decode_upload(data: bytes, name: str = "upload", max_bytes: int = MAX_UPLOAD_BYTES) -> Image.Image:
    """An upright RGB image from ``data``; :class:`UploadError` naming ``name`` otherwise.

    The size is checked before decoding, the pixel count from the header before any pixel is
    decoded, and the file is fully decoded here (a truncated file fails now, not later).
    """
    if len(data) == 0:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise UploadError(f"{name}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > MAX_QUERY_PIXELS:
                raise UploadError(f"{name}: {width}x{height} pixels is over the "
                                  f"{MAX_QUERY_PIXELS / 1e6:.0f} MP limit for a query image")
            img.draft("RGB", (448, 448))
            img.load()
            return ImageOps.exif_transpose(img).convert("RGB")
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UploadError(f"{name}: not an image Pillow can read ({type(err).__name__})") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UploadError(f"{name}: the image is damaged or truncated ({err})") from err
