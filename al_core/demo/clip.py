"""A tiny open_clip CLIP trained contrastively on the CPU on the demo's labeled images and captions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn
from tqdm import tqdm

from al_core.demo.model import flipped_batches

#: The architecture name: ``open_clip.add_model_config`` registers a config file under its stem.
ARCH = "al-demo-clip"
IMAGE_SIZE = 64
CONTEXT_LENGTH = 16

CLASS_PHRASES: dict[str, str] = {
    "car": "car",
    "pedestrian": "pedestrian",
    "truck": "truck",
    "cyclist": "cyclist",
    "traffic_cone_orange": "orange traffic cone",
    "bus": "bus",
    "motorcycle": "motorcycle",
    "traffic_cone_green": "green traffic cone",
    "emergency_vehicle": "emergency vehicle",
}
_TIME_PHRASES = {"day": "during the day", "dusk": "at dusk", "night": "at night"}
_WEATHER_PHRASES = {"clear": "in clear weather", "cloudy": "under a cloudy sky", "rain": "in the rain",
                    "fog": "in fog"}
#: Caption templates; the partial ones teach the text tower that an unmentioned condition is "any".
_TEMPLATES = ("{obj} {time} {weather}", "a photo of {obj} {time} {weather}", "{obj} {weather} {time}",
              "{obj} {time}", "{obj} {weather}", "a photo of {obj}")


def model_config() -> dict:
    """The open_clip model config: a small ModifiedResNet image tower and a 2-layer text transformer."""
    return {
        "embed_dim": 128,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 16, "patch_size": None},
        "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2},
    }


def write_config(directory: Path) -> Path:
    """Write ``<directory>/al-demo-clip.json`` (for ``open_clip.add_model_config``); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ARCH}.json"
    path.write_text(json.dumps(model_config(), indent=2) + "\n")
    return path


def caption(label: str, time_of_day: str, weather: str, variant: int = 0) -> str:
    """A natural-English caption, e.g. "a green traffic cone at night in the rain"; ``variant`` (e.g. a
    per-sample number) picks the template, some of which leave a condition out."""
    phrase = CLASS_PHRASES.get(label, label.replace("_", " "))
    obj = ("an " if phrase[0] in "aeiou" else "a ") + phrase
    template = _TEMPLATES[variant % len(_TEMPLATES)]
    return template.format(obj=obj, time=_TIME_PHRASES.get(time_of_day, time_of_day),
                           weather=_WEATHER_PHRASES.get(weather, weather))


def _normalize(images: np.ndarray) -> torch.Tensor:
    """``(n, 64, 64, 3)`` uint8 -> ``(n, 3, 64, 64)`` float, normalized as open_clip's ``preprocess``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train(images: np.ndarray, captions: Sequence[str], *, seed: int, epochs: int = 20,
          batch_size: int = 128, progress: bool = True) -> nn.Module:
    """Train on ``images`` ``(n, 64, 64, 3)`` uint8 and one caption per image; deterministic per seed.

    Many images share a caption, and a caption may be implied by another ("a car at night" by
    "a car at night in fog": its words are a subset). So each step contrasts the batch's images with
    *all* distinct captions of the training set, with a soft target uniform over the captions that
    the image's caption implies (image -> text), and each of those captions with the batch's images,
    uniform over the images whose caption implies it (text -> image). Returns the model in eval mode.
    """
    if len(images) != len(captions):
        raise ValueError("one caption per image")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = open_clip.CLIP(**model_config())  # what create_model_and_transforms(ARCH) builds
    distinct = sorted(set(captions))
    tokens = open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)(distinct)  # (c, context_length)
    words = [set(c.split()) for c in distinct]
    implies = torch.tensor([[b <= a for b in words] for a in words], dtype=torch.float32)  # (c, c)
    position = {c: i for i, c in enumerate(distinct)}
    caption_idx = torch.tensor([position[c] for c in captions])  # (n,)
    x_all = _normalize(images)
    steps = epochs * ((len(x_all) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.15)
    model.train()
    bar = tqdm(range(epochs), desc="training demo CLIP", unit="epoch", disable=not progress)
    for _ in bar:
        total = 0.0
        for idx, x in flipped_batches(x_all, batch_size, gen):
            img = nn.functional.normalize(model.encode_image(x), dim=-1)  # (b, d)
            txt = nn.functional.normalize(model.encode_text(tokens), dim=-1)  # (c, d)
            logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # (b, c)
            pos = implies[caption_idx[idx]]  # (b, c): which captions describe each image
            loss_i = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
            present = pos.sum(0) > 0  # captions with a positive in the batch
            pos_t = pos[:, present].T  # (p, b)
            loss_t = -(pos_t / pos_t.sum(1, keepdim=True) * logits[:, present].T.log_softmax(1)).sum(1)
            loss = (loss_i + loss_t.mean()) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        bar.set_postfix(loss=f"{total / len(x_all):.3f}")
    model.eval()
    return model


def save(model: nn.Module, weights_path: Path) -> None:
    """Save the plain ``state_dict`` atomically, loadable by ``create_model_and_transforms(pretrained=)``."""
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_suffix(weights_path.suffix + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(weights_path)
