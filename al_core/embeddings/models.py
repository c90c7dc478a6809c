"""open_clip models: named architectures with a pretrained tag, local weight files, custom configs;
a model's full identity, and one clear message when its weights cannot be had."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from al_core.errors import AlExplorerError

#: The documented default: OpenAI's CLIP architecture with LAION-2B weights (open_clip's tag).
DEFAULT_ARCH = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"

_CONFIG_LOCK = threading.Lock()


class ModelLoadError(AlExplorerError):
    """A model's weights or configuration cannot be found or loaded."""


@dataclass(frozen=True)
class ModelSpec:
    """Which open_clip model to load: an architecture, and a pretrained tag or a local weights file.

    ``model_config`` is an open_clip model-config JSON for a custom architecture (its file stem is
    the architecture name, e.g. the demo's ``al-demo-clip.json``).
    """

    arch: str = DEFAULT_ARCH
    pretrained: str | None = None
    weights: Path | None = None
    model_config: Path | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.pretrained and self.weights:
            raise ValueError("give a pretrained tag or a weights file, not both")

    def describe(self) -> str:
        source = (f"weights file {self.weights}" if self.weights else
                  f"pretrained tag {self.pretrained!r}" if self.pretrained else "random weights")
        return f"open_clip {self.arch} with {source}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_places(spec: ModelSpec) -> list[str]:
    if spec.cache_dir:
        return [str(spec.cache_dir)]
    hf = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    return [hf, os.path.expanduser("~/.cache/clip")]


def _register_config(spec: ModelSpec) -> None:
    import open_clip

    if spec.model_config is None:
        return
    path = Path(spec.model_config)
    if not path.is_file():
        raise ModelLoadError(f"model config {path} not found (--model-config must be an open_clip "
                             "model-config JSON, named after its architecture)")
    if path.stem != spec.arch:
        raise ModelLoadError(f"model config {path} defines architecture {path.stem!r}, not "
                             f"{spec.arch!r}: name the file {spec.arch}.json or pass --model {path.stem}")
    try:
        json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"model config {path} is not valid JSON: {err}") from err
    with _CONFIG_LOCK:
        open_clip.add_model_config(path)


def _missing_weights_message(spec: ModelSpec, reason: str) -> str:
    places = " and ".join(_cache_places(spec))
    return (f"Cannot load the weights of {spec.describe()}: they are not in the local cache "
            f"(looked in {places}) and could not be downloaded ({reason}). On a machine with "
            f"internet, download the checkpoint (for tag {spec.pretrained!r}: the "
            "open_clip_pytorch_model.bin of the model's hub page), copy it here and pass it with "
            f"--weights FILE (in the app: the weights file box), e.g. `al-explorer embed --model "
            f"{spec.arch} --weights /path/to/open_clip_pytorch_model.bin`; or point --cache-dir at "
            "a cache that already holds it.")


#: Where pretrained tags download from; probed once (a few seconds at most) before a download.
HUB_HOST = ("huggingface.co", 443)


@contextlib.contextmanager
def _offline_unless_reachable(downloading: bool) -> Iterator[None]:
    """With the hub unreachable, look in the cache only (huggingface_hub's offline mode): the
    missing-weights message comes at once instead of after a minute of retries."""
    if not downloading:
        yield
        return
    try:
        socket.create_connection(HUB_HOST, timeout=3).close()
        reachable = True
    except OSError:
        reachable = False
    if reachable:
        yield
        return
    import huggingface_hub.constants as hf_constants

    quiet = logging.getLogger("huggingface_hub")
    before, level = hf_constants.HF_HUB_OFFLINE, quiet.level
    hf_constants.HF_HUB_OFFLINE = True
    quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = before
        quiet.setLevel(level)


@dataclass
class LoadedModel:
    """An open_clip model ready to encode, with its preprocessing, tokenizer and identity."""

    spec: ModelSpec
    model: Any
    preprocess: Callable[[Any], Any]
    tokenizer: Callable[[Sequence[str]], Any] | None
    dim: int
    identity: dict[str, Any]
    image_size: int
    device: str = "cpu"
    dtype: Any = None

    @property
    def has_text(self) -> bool:
        return self.tokenizer is not None and hasattr(self.model, "encode_text")

    def encode_images(self, batch: Any) -> np.ndarray:
        """``(n, 3, H, W)`` preprocessed tensor -> L2-normalized ``(n, dim)`` float32 vectors."""
        import torch

        with torch.inference_mode():
            x = batch.to(self.device, dtype=self.dtype or torch.float32, non_blocking=True)
            out = self.model.encode_image(x).float()
            out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy().astype(np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalized ``(n, dim)`` float32 vectors from the text tower."""
        import torch

        if not self.has_text:
            raise ModelLoadError(f"{self.spec.describe()} has no text tower")
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            out = self.model.encode_text(tokens).float()
            out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy().astype(np.float32)


def resolve_device(device: str = "auto") -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but torch sees no CUDA GPU here")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def identity_of(spec: ModelSpec, preprocess_cfg: dict[str, Any]) -> dict[str, Any]:
    """What makes two models' vectors comparable: architecture, weights, preprocessing."""
    ident: dict[str, Any] = {"kind": "open_clip", "arch": spec.arch}
    if spec.weights:
        ident["weights_sha256"] = file_sha256(Path(spec.weights))
    else:
        ident["pretrained"] = spec.pretrained or None
    if spec.model_config:
        ident["config_sha256"] = file_sha256(Path(spec.model_config))
    ident["preprocess"] = {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in sorted(preprocess_cfg.items())}
    return ident


def load_model(spec: ModelSpec, device: str = "auto") -> LoadedModel:
    """Load ``spec`` through open_clip: the pretrained tag from the cache (downloading it if the
    network allows), or a local weights file; a :class:`ModelLoadError` says what to do if not."""
    import open_clip
    import torch

    device = resolve_device(device)
    _register_config(spec)
    if spec.arch not in open_clip.list_models():
        raise ModelLoadError(f"unknown open_clip architecture {spec.arch!r}; known ones include "
                             f"{', '.join(sorted(open_clip.list_models())[:12])}, ... (or pass "
                             "--model-config FILE for a custom one)")
    pretrained: str | None = None
    if spec.weights:
        weights = Path(spec.weights)
        if not weights.is_file():
            raise ModelLoadError(f"weights file {weights} not found (--weights must be a checkpoint "
                                 f"file of {spec.arch})")
        pretrained = str(weights)
    elif spec.pretrained:
        if spec.pretrained not in open_clip.list_pretrained_tags_by_model(spec.arch):
            tags = open_clip.list_pretrained_tags_by_model(spec.arch)
            raise ModelLoadError(f"{spec.arch} has no pretrained tag {spec.pretrained!r}; its tags: "
                                 f"{', '.join(tags) or 'none (pass --weights FILE)'}")
        pretrained = spec.pretrained
    try:
        with _offline_unless_reachable(bool(spec.pretrained)):
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=pretrained, device="cpu",
                cache_dir=str(spec.cache_dir) if spec.cache_dir else None)
    except RuntimeError as err:
        if spec.pretrained and ("download" in str(err).lower() or "connect" in str(err).lower()
                                or "offline" in str(err).lower()):
            reason = str(err).splitlines()[0].split(" Last error")[0]
            raise ModelLoadError(_missing_weights_message(spec, reason[:240])) from err
        raise ModelLoadError(f"cannot load {spec.describe()}: {str(err).splitlines()[0][:500]}") from err
    except (OSError, ValueError, KeyError) as err:
        if spec.pretrained:
            raise ModelLoadError(_missing_weights_message(spec, f"{type(err).__name__}: {err}")) from err
        raise ModelLoadError(f"cannot load {spec.describe()}: {type(err).__name__}: {err}") from err
    model.eval()
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = model.to(device=device, dtype=dtype)
    try:
        tokenizer = open_clip.get_tokenizer(spec.arch, cache_dir=str(spec.cache_dir) if spec.cache_dir else None)
    except Exception:  # noqa: BLE001 - an HF tokenizer that cannot be fetched: no text queries
        tokenizer = None
    pp_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = pp_cfg.get("size", 224)
    image_size = int(size if isinstance(size, int) else max(size))
    with torch.inference_mode():
        probe = torch.zeros(1, 3, image_size, image_size, device=device, dtype=dtype)
        dim = int(model.encode_image(probe).shape[-1])
    return LoadedModel(spec=spec, model=model, preprocess=preprocess, tokenizer=tokenizer, dim=dim,
                       identity=identity_of(spec, pp_cfg), image_size=image_size, device=device,
                       dtype=dtype)


def spec_from_identity(identity: dict[str, Any], weights: Path | None = None,
                       model_config: Path | None = None) -> ModelSpec:
    """The spec that reloads a set's model (for its text tower), from its stored identity."""
    if identity.get("kind") != "open_clip":
        raise ModelLoadError("this embedding set was not made by an open_clip model of al-explorer: "
                             "it has no text tower to load")
    paths = identity.get("paths", {})
    weights = weights or (Path(paths["weights"]) if paths.get("weights") else None)
    model_config = model_config or (Path(paths["model_config"]) if paths.get("model_config") else None)
    cache_dir = Path(paths["cache_dir"]) if paths.get("cache_dir") else None
    spec = ModelSpec(arch=identity["arch"], pretrained=None if weights else identity.get("pretrained"),
                     weights=weights, model_config=model_config, cache_dir=cache_dir)
    if weights is not None:
        if not Path(weights).is_file():
            raise ModelLoadError(f"the set's weights file {weights} is gone; pass it again")
        if identity.get("weights_sha256") and file_sha256(Path(weights)) != identity["weights_sha256"]:
            raise ModelLoadError(f"the weights file {weights} changed since the set was embedded; its "
                                 "text vectors would not match the set's image vectors")
    return spec
