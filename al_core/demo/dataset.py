"""The demo dataset's plan (labels, conditions, splits) and its image files, deterministic per seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from al_core.demo.scenes import (
    CAMERAS,
    CLASS_WEIGHTS,
    RARE_CLASSES,
    TIME_OF_DAY,
    WEATHER,
    SceneSpec,
    render,
)

#: How much less likely a condition is to have been labeled: the labeled set under-represents
#: night, rain and fog relative to the pool, as in real collection campaigns.
LABEL_RATE = 0.46
TIME_LABEL_FACTOR = {"day": 1.0, "dusk": 0.7, "night": 0.35}
WEATHER_LABEL_FACTOR = {"clear": 1.0, "cloudy": 0.9, "rain": 0.45, "fog": 0.45}
#: The rare classes were labeled less often too, so the train split under-represents them.
RARE_CLASS_LABEL_FACTOR = 0.6
#: The test split is curated for slice diagnostics: it holds at least ``min(TEST_MIN, share × the
#: slice's size)`` images of each of these slices, topped up at random from the slice's other images
#: (labeled or not). The share keeps a small demo from moving most of a slice out of the pool; rare
#: classes can give a larger one, as the labeling above takes fewer of them.
TEST_MIN = 30
TEST_SLICES: tuple[tuple[str, str, float], ...] = (
    ("time_of_day", "night", 0.15),
    ("weather", "fog", 0.15),
    *(("true_label", name, 0.4) for name in RARE_CLASSES),
)
_HOURS = {"day": (8, 18), "dusk": (18, 21), "night": (21, 29)}
_START = pd.Timestamp("2025-03-01")


def class_counts(size: int) -> dict[str, int]:
    """Exact per-class counts for ``size`` images (largest remainder), each class at least 1."""
    weights = np.array(list(CLASS_WEIGHTS.values()))
    raw = weights / weights.sum() * size
    counts = np.maximum(np.floor(raw).astype(int), 1)
    order = np.argsort(-(raw - np.floor(raw)))
    i = 0
    while counts.sum() < size:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > size:
        counts[int(np.argmax(counts))] -= 1
    return dict(zip(CLASS_WEIGHTS, counts.tolist(), strict=True))


def min_test_count(slice_size: int, cap: float) -> int:
    """How many of a slice's ``slice_size`` images the test split holds at least."""
    return min(TEST_MIN, int(np.floor(cap * slice_size)))


def plan_dataset(size: int, seed: int) -> pd.DataFrame:
    """One row per image: id, true label, conditions, camera, capture time, split, labeled flag."""
    if size < 50:
        raise ValueError("the demo needs at least 50 images")
    rng = np.random.default_rng(seed)
    labels = np.repeat(list(CLASS_WEIGHTS), list(class_counts(size).values()))
    rng.shuffle(labels)
    tod = rng.choice(list(TIME_OF_DAY), size, p=list(TIME_OF_DAY.values()))
    weather = rng.choice(list(WEATHER), size, p=list(WEATHER.values()))
    camera = rng.choice(CAMERAS, size, p=[0.4, 0.3, 0.2, 0.1])
    day = rng.integers(0, 184, size)
    lo = np.array([_HOURS[t][0] for t in tod])
    hi = np.array([_HOURS[t][1] for t in tod])
    seconds = (lo * 3600 + rng.random(size) * (hi - lo) * 3600).astype(int)
    captured = _START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    p_label = LABEL_RATE * np.array([TIME_LABEL_FACTOR[t] for t in tod]) * np.array(
        [WEATHER_LABEL_FACTOR[w] for w in weather]) * np.where(np.isin(labels, RARE_CLASSES),
                                                                RARE_CLASS_LABEL_FACTOR, 1.0)
    labeled = rng.random(size) < p_label
    split = np.where(labeled, rng.choice(["train", "val", "test"], size, p=[0.7, 0.15, 0.15]), "unlabeled")
    render_seed = rng.integers(0, 2**31 - 1, size)  # drawn before the top-up: images as in build v1
    # top up the test split of each rare slice to its quota, from the slice's other images
    columns = {"time_of_day": tod, "weather": weather, "true_label": labels}
    for col, value, cap in TEST_SLICES:
        in_slice = columns[col] == value
        need = min_test_count(int(in_slice.sum()), cap) - int((in_slice & (split == "test")).sum())
        if need > 0:
            split[rng.choice(np.flatnonzero(in_slice & (split != "test")), need, replace=False)] = "test"
    labeled = split != "unlabeled"
    return pd.DataFrame({
        "sample_id": [f"demo-{i:06d}" for i in range(size)],
        "true_label": labels,
        "time_of_day": tod,
        "weather": weather,
        "camera": camera,
        "captured_at": captured,
        "split": split,
        "labeled": labeled,
        "render_seed": render_seed,
    })


def image_path(root: Path, sample_id: str) -> Path:
    return root / "images" / f"{sample_id}.jpg"


def write_images(plan: pd.DataFrame, root: Path, progress: bool = True) -> np.ndarray:
    """Render every planned image not yet on disk; returns each image's mean brightness in [0, 1]."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    brightness = np.empty(len(plan), dtype=np.float64)
    rows = plan.itertuples(index=False)
    for i, row in enumerate(tqdm(rows, total=len(plan), desc="rendering images", unit="img",
                                 disable=not progress, mininterval=0.5)):
        path = image_path(root, row.sample_id)
        img = render(SceneSpec(row.true_label, row.time_of_day, row.weather, int(row.render_seed)))
        brightness[i] = float(np.asarray(img.convert("L"), dtype=np.float32).mean() / 255.0)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            img.save(tmp, format="JPEG", quality=92)
            tmp.replace(path)
    return brightness


def manifest_frame(plan: pd.DataFrame, brightness: np.ndarray) -> pd.DataFrame:
    """What the catalog gets: labels only for the labeled part; the pool's truth stays out."""
    return pd.DataFrame({
        "sample_id": plan["sample_id"],
        "path": "images/" + plan["sample_id"] + ".jpg",
        "label": plan["true_label"].where(plan["labeled"]).astype("string"),
        "split": plan["split"],
        "time_of_day": plan["time_of_day"],
        "weather": plan["weather"],
        "camera": plan["camera"],
        "captured_at": plan["captured_at"],
        "brightness": np.round(brightness, 4),
    })
