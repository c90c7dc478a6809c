"""The demo's baseline: a small CNN trained on the CPU; it yields class probabilities and features."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

FEATURE_DIM = 64


class SmallCNN(nn.Module):
    """Four conv blocks and global pooling; ``features`` is the penultimate layer (64-d)."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, FEATURE_DIM),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def load_images(paths: Sequence[Path]) -> np.ndarray:
    """Images as a uint8 array of shape ``(n, 64, 64, 3)``."""
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(n, H, W, 3)`` uint8 -> ``(n, 3, H, W)`` float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def flipped_batches(x_all: torch.Tensor, batch_size: int, gen: torch.Generator
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of ``(indices, images)`` batches of ``x_all`` ``(n, 3, H, W)`` in a random order,
    each image flipped left-right with probability 1/2 (deterministic for ``gen``)."""
    order = torch.randperm(len(x_all), generator=gen)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = x_all[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        yield idx, torch.where(flip[:, None, None, None], x.flip(3), x)


def train(images: np.ndarray, labels: np.ndarray, n_classes: int, *, seed: int, epochs: int = 12,
          batch_size: int = 64, progress: bool = True) -> SmallCNN:
    """Train on ``images`` ``(n, 64, 64, 3)`` with integer ``labels`` ``(n,)``; deterministic per seed."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN(n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (
        (len(images) + batch_size - 1) // batch_size))
    x_all, y_all = to_tensor(images), torch.from_numpy(labels.astype(np.int64))
    model.train()
    bar = tqdm(range(epochs), desc="training baseline CNN", unit="epoch", disable=not progress)
    for _ in bar:
        total = 0.0
        for idx, x in flipped_batches(x_all, batch_size, gen):
            loss = nn.functional.cross_entropy(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        bar.set_postfix(loss=f"{total / len(x_all):.3f}")
    model.eval()
    return model


def _batches(paths: Sequence[Path], batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(paths), batch_size):
        yield load_images(paths[start:start + batch_size])


@torch.no_grad()
def predict(model: SmallCNN, paths: Sequence[Path], *, batch_size: int = 256,
            progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Stream images from disk; returns probabilities ``(n, C)`` and features ``(n, 64)``."""
    model.eval()
    probs, feats = [], []
    bar = tqdm(total=len(paths), desc="predicting", unit="img", disable=not progress, mininterval=0.5)
    for batch in _batches(paths, batch_size):
        f = model.features(to_tensor(batch))
        p = torch.softmax(model.head(f).double(), dim=1)
        probs.append(p.numpy())
        feats.append(f.numpy().astype(np.float32))
        bar.update(len(batch))
    bar.close()
    return np.concatenate(probs), np.concatenate(feats)


def save(model: SmallCNN, path: Path, classes: list[str]) -> None:
    torch.save({"state_dict": model.state_dict(), "classes": classes}, path)


def load(path: Path) -> tuple[SmallCNN, list[str]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = SmallCNN(len(blob["classes"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, list(blob["classes"])
