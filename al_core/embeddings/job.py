"""The embedding job: decode on a bounded worker pool while the model runs, commit in chunks,
resume where an earlier run stopped."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from al_core.db.catalog import Catalog
from al_core.embeddings import EmbeddingSet, ensure_set, sql, write_vectors
from al_core.embeddings.models import LoadedModel, ModelSpec, load_model
from al_core.ingest.images import _CORRUPT, ImageTooLarge, decode_slot, open_capped
from al_core.thumbnails import is_local

#: Vectors committed per transaction: an interrupted job loses at most this many.
CHUNK = 512
#: How decoding feeds the model; part of every open_clip set's identity.
DECODE = "PIL, JPEG draft to >= input size, EXIF-upright, RGB, then the model's preprocess"
#: bf16 on the CPU is used only if its vectors match fp32's this closely on the first batch.
BF16_MIN_COSINE = 0.99

ProgressFn = Callable[[int, int], None]


@dataclass
class EmbedReport:
    """What a job did: ``embedded`` new vectors, ``already`` done before, ``failed`` (id, why)."""

    set_name: str
    total: int = 0
    embedded: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    stopped: bool = False

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [f"embed: {self.embedded} new vectors in set {self.set_name!r} ({self.already} already "
               f"there) in {self.seconds:.1f} s, {self.rate:.0f} img/s on {self.device} ({self.precision})"]
        if self.stopped:
            out.append("embed: stopped early; run it again to finish (done chunks are kept)")
        for sid, why in self.failed[:20]:
            out.append(f"embed: skipped {sid}: {why}")
        if len(self.failed) > 20:
            out.append(f"embed: ... {len(self.failed)} images skipped in all")
        return out


def default_set_name(spec: ModelSpec) -> str:
    """``ViT-B-32 laion2b_s34b_b79k``, or the weights file's stem for a local file."""
    source = spec.pretrained or (Path(spec.weights).stem if spec.weights else "random")
    return f"{spec.arch} {source}"


def load_image(uri: str, size: int) -> Image.Image:
    """An upright RGB image, JPEGs decoded at reduced scale (never below ``size`` a side)."""
    with open_capped(uri) as img:
        full = img.size
        img.draft("RGB", (size, size))
        with decode_slot(img, full, to_rgb=True):
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    return rgb


def _prepare(lm: LoadedModel, uri: str) -> Any:
    return lm.preprocess(load_image(uri, lm.image_size))


def _timed(lm: LoadedModel, batch: Any) -> tuple[np.ndarray, float]:
    lm.encode_images(batch)  # warm-up: first calls pay one-time costs
    t0 = time.perf_counter()
    out = lm.encode_images(batch)
    return out, time.perf_counter() - t0


def _choose_bf16(lm: LoadedModel, batch: Any) -> str:
    """Switch ``lm`` to a bf16 copy of its weights (cast once) if, on ``batch``, its vectors match
    fp32's (min cosine >= :data:`BF16_MIN_COSINE`) and it is faster; says what was chosen."""
    import copy

    import torch

    ref, t32 = _timed(lm, batch)
    old_model, old_dtype = lm.model, lm.dtype
    lm.model, lm.dtype = copy.deepcopy(lm.model).to(dtype=torch.bfloat16), torch.bfloat16
    got, t16 = _timed(lm, batch)
    cos = float((ref * got).sum(axis=1).min()) if len(ref) else 0.0
    if cos >= BF16_MIN_COSINE and t16 < 0.9 * t32:
        return f"bf16 (min cosine to fp32 {cos:.4f}, {t32 / t16:.1f}x faster)"
    lm.model, lm.dtype = old_model, old_dtype
    why = f"min cosine {cos:.4f}" if cos < BF16_MIN_COSINE else f"not faster ({t32 / t16:.2f}x)"
    return f"fp32 (bf16 {why})"


def cpu_bf16_supported() -> bool:
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _decode_ahead(pool: ThreadPoolExecutor, lm: LoadedModel, todo: Sequence[tuple[str, str]],
                  batch_size: int, depth: int = 2):
    """Yield ``[(sample_id, future of a preprocessed tensor)]`` batches, ``depth`` decoded ahead."""
    queue: deque[list[tuple[str, Future]]] = deque()
    starts = iter(range(0, len(todo), batch_size))

    def submit_next() -> None:
        start = next(starts, None)
        if start is not None:
            queue.append([(sid, pool.submit(_prepare, lm, uri))
                          for sid, uri in todo[start:start + batch_size]])

    for _ in range(depth):
        submit_next()
    while queue:
        batch = queue.popleft()
        submit_next()
        yield batch


def embed_catalog(cat: Catalog, spec: ModelSpec | LoadedModel, set_name: str | None = None, *,
                  device: str = "auto", batch_size: int = 64, workers: int | None = None,
                  chunk: int = CHUNK, precision: str = "auto", progress: bool = True,
                  on_progress: ProgressFn | None = None, stop: threading.Event | None = None
                  ) -> EmbedReport:
    """Embed every local sample not yet in the set, ``batch_size`` at a time, committing every
    ``chunk`` vectors; a rerun skips what is done. Unreadable images are skipped and reported.

    The model loads (or fails with one clear message) before anything is written.
    """
    import torch
    from tqdm import tqdm

    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    lm = spec if isinstance(spec, LoadedModel) else load_model(spec, device)
    name = set_name or default_set_name(lm.spec)
    identity = dict(lm.identity, decode=DECODE)
    paths = {k: str(Path(v).resolve()) for k, v in (("weights", lm.spec.weights),
                                                     ("model_config", lm.spec.model_config),
                                                     ("cache_dir", lm.spec.cache_dir)) if v}
    if paths:
        identity["paths"] = paths
    emb: EmbeddingSet = ensure_set(cat, name, lm.spec.describe(), lm.dim, identity, lm.has_text)
    report = EmbedReport(set_name=name, device=lm.device,
                         precision="fp16" if lm.device == "cuda" else "fp32")
    rows = cat.query_rows(sql.missing_ids(emb.table))
    report.already = int(cat.scalar(sql.count_vectors(emb.table)))
    todo = [(sid, uri) for sid, uri in rows if is_local(uri)]
    report.failed += [(sid, f"not a local file ({uri}); only local images are embedded")
                      for sid, uri in rows if not is_local(uri)]
    report.total = len(todo)
    t0 = time.perf_counter()
    workers = workers or min(8, max(2, os.cpu_count() or 2))
    bar = tqdm(total=len(todo), desc=f"embedding ({name})", unit="img", disable=not progress,
               mininterval=0.5)
    ids: list[str] = []
    vecs: list[np.ndarray] = []
    seen = 0
    checked_bf16 = precision == "fp32" or lm.device != "cpu" or not cpu_bf16_supported()
    if precision == "bf16" and not checked_bf16:
        import torch

        lm.model, lm.dtype = lm.model.to(dtype=torch.bfloat16), torch.bfloat16
        report.precision, checked_bf16 = "bf16 (asked for)", True

    def flush() -> None:
        if ids:
            write_vectors(cat, emb, ids, np.concatenate(vecs), what=f"embed into {name!r}")
            report.embedded += len(ids)
            ids.clear()
            vecs.clear()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed-decode") as pool:
        for batch in _decode_ahead(pool, lm, todo, batch_size):
            if stop is not None and stop.is_set():
                report.stopped = True
                for _, fut in batch:
                    fut.cancel()
                break
            good_ids, tensors = [], []
            for sid, fut in batch:
                try:
                    tensors.append(fut.result())
                    good_ids.append(sid)
                except ImageTooLarge as err:
                    report.failed.append((sid, str(err)))
                except (*_CORRUPT, FileNotFoundError, PermissionError) as err:
                    report.failed.append((sid, f"cannot decode: {type(err).__name__}: {err}"))
            if tensors:
                x = torch.stack(tensors)
                if lm.device == "cuda":
                    x = x.pin_memory()
                if not checked_bf16:
                    report.precision = _choose_bf16(lm, x)
                    checked_bf16 = True
                ids += good_ids
                vecs.append(lm.encode_images(x))
                if len(ids) >= chunk:
                    flush()
            bar.update(len(batch))
            seen += len(batch)
            if on_progress is not None:
                on_progress(seen, len(todo))
        flush()
    bar.close()
    report.seconds = time.perf_counter() - t0
    return report
