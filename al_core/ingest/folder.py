"""Image-folder importer: flat, or ``class_name/`` subfolders, optionally under split folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest.images import IMAGE_EXTENSIONS
from al_core.ingest.manifest import ImportResult, ingest_frame

if TYPE_CHECKING:
    import pandas as pd

#: Top-level folder names taken as the split rather than a class.
SPLIT_NAMES = frozenset({"train", "val", "valid", "validation", "test", "unlabeled", "pool"})


def walk_images(root: Path) -> Iterator[str]:
    """Relative POSIX paths of image files under ``root``, recursively, in sorted order."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as err:
            raise IngestError(str(folder), [f"cannot list folder: {err.strerror}"]) from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(entry.path).relative_to(root).as_posix()


def folder_manifest(root: Path) -> pd.DataFrame:
    """A manifest frame for ``root``: path, id (= relative path), label and split from folders."""
    paths, labels, splits = [], [], []
    for rel in walk_images(root):
        parts = rel.split("/")[:-1]
        split = None
        if parts and parts[0].lower() in SPLIT_NAMES:
            split = parts[0].lower()
            parts = parts[1:]
        paths.append(rel)
        labels.append(parts[-1] if parts else None)
        splits.append(split)
    import pandas as pd

    frame = pd.DataFrame({"path": paths, "sample_id": paths,
                          "label": pd.array(labels, dtype="string"),
                          "split": pd.array(splits, dtype="string")})
    if frame["split"].isna().all():
        frame = frame.drop(columns="split")
    return frame


def ingest_folder(cat: Catalog, root: str | Path, **options: object) -> ImportResult:
    """Import every image under ``root``; the label is the image's parent folder name, if any.

    Folders named train/val/test/unlabeled at the top level set the split. Images directly
    in ``root`` (or in a split folder) are unlabeled.
    """
    root = Path(root)
    if not root.is_dir():
        raise IngestError(str(root), ["is not a folder"])
    frame = folder_manifest(root)
    if frame.empty:
        raise IngestError(str(root), [f"contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"])
    return ingest_frame(cat, frame, kind="folder", source=str(root), base_dir=root, **options)
