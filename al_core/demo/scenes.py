"""Deterministic synthetic road scenes: a long-tailed set of objects under rare conditions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 64

#: Class frequencies: a long tail (largest / smallest = 0.34 / 0.015 ≈ 23).
CLASS_WEIGHTS: dict[str, float] = {
    "car": 0.34,
    "pedestrian": 0.17,
    "truck": 0.12,
    "cyclist": 0.09,
    "traffic_cone_orange": 0.09,
    "bus": 0.075,
    "motorcycle": 0.075,
    "traffic_cone_green": 0.015,
    "emergency_vehicle": 0.015,
}
RARE_CLASSES = ("traffic_cone_green", "emergency_vehicle")
TIME_OF_DAY = {"day": 0.72, "dusk": 0.16, "night": 0.12}
WEATHER = {"clear": 0.62, "cloudy": 0.2, "rain": 0.11, "fog": 0.07}
CAMERAS = ("front_wide", "front_narrow", "rear", "side_left")

_SKY = {"day": (135, 190, 235), "dusk": (200, 120, 110), "night": (15, 20, 45)}
_CAR_COLORS = [(180, 30, 30), (30, 60, 160), (220, 220, 220), (40, 40, 40), (90, 120, 60), (150, 150, 160)]


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render one image; rendering is a pure function of this."""

    label: str
    time_of_day: str
    weather: str
    seed: int


def _box(d: ImageDraw.ImageDraw, cx: float, base: float, w: float, h: float, color: tuple) -> None:
    d.rectangle([cx - w / 2, base - h, cx + w / 2, base], fill=color)


def _wheels(d: ImageDraw.ImageDraw, xs: list[float], base: float, r: float) -> None:
    for x in xs:
        d.ellipse([x - r, base - r, x + r, base + r], fill=(15, 15, 15))


def _person(d: ImageDraw.ImageDraw, cx: float, base: float, s: float, color: tuple) -> None:
    d.ellipse([cx - 2.5 * s, base - 20 * s, cx + 2.5 * s, base - 15 * s], fill=(230, 190, 160))
    d.rectangle([cx - 2.5 * s, base - 15 * s, cx + 2.5 * s, base - 7 * s], fill=color)
    d.line([cx, base - 7 * s, cx - 3 * s, base], fill=(30, 30, 60), width=max(1, int(2 * s)))
    d.line([cx, base - 7 * s, cx + 3 * s, base], fill=(30, 30, 60), width=max(1, int(2 * s)))


def _cone(d: ImageDraw.ImageDraw, cx: float, base: float, s: float, color: tuple) -> None:
    d.polygon([(cx - 7 * s, base), (cx + 7 * s, base), (cx, base - 20 * s)], fill=color)
    d.rectangle([cx - 8 * s, base - 1.5 * s, cx + 8 * s, base + 1 * s], fill=color)
    d.line([cx - 4 * s, base - 9 * s, cx + 4 * s, base - 9 * s], fill=(235, 235, 235), width=max(1, int(2 * s)))


def _draw_object(d: ImageDraw.ImageDraw, label: str, rng: np.random.Generator) -> None:
    s = float(rng.uniform(0.85, 1.2))
    cx = float(rng.uniform(24, 40))
    base = float(rng.uniform(50, 56))
    body = _CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))]
    if label == "car":
        _box(d, cx, base - 3 * s, 26 * s, 9 * s, body)
        _box(d, cx, base - 12 * s, 15 * s, 6 * s, tuple(int(c * 0.7) for c in body))
        _wheels(d, [cx - 8 * s, cx + 8 * s], base - 3 * s, 3 * s)
    elif label == "emergency_vehicle":
        _box(d, cx, base - 3 * s, 28 * s, 12 * s, (240, 240, 240))
        _box(d, cx, base - 15 * s, 16 * s, 3 * s, (200, 20, 20))
        _box(d, cx + 4 * s, base - 15 * s, 6 * s, 3 * s, (20, 60, 230))
        d.line([cx - 12 * s, base - 8 * s, cx + 12 * s, base - 8 * s], fill=(200, 20, 20), width=2)
        _wheels(d, [cx - 9 * s, cx + 9 * s], base - 3 * s, 3 * s)
    elif label == "truck":
        _box(d, cx - 4 * s, base - 3 * s, 26 * s, 20 * s, (200, 200, 190))
        _box(d, cx + 13 * s, base - 3 * s, 9 * s, 12 * s, body)
        _wheels(d, [cx - 12 * s, cx + 2 * s, cx + 13 * s], base - 3 * s, 3.5 * s)
    elif label == "bus":
        color = [(230, 180, 20), (30, 110, 200), (200, 40, 40)][int(rng.integers(3))]
        _box(d, cx, base - 3 * s, 40 * s, 17 * s, color)
        for k in range(5):
            x = cx - 16 * s + k * 8 * s
            d.rectangle([x, base - 17 * s, x + 5 * s, base - 12 * s], fill=(60, 80, 100))
        _wheels(d, [cx - 13 * s, cx + 13 * s], base - 3 * s, 3.5 * s)
    elif label == "pedestrian":
        _person(d, cx, base, s * 1.4, body)
    elif label == "cyclist":
        _wheels(d, [cx - 8 * s, cx + 8 * s], base - 4 * s, 4.5 * s)
        d.ellipse([cx - 6 * s, base - 7 * s, cx - 4 * s, base - 5 * s], fill=(200, 200, 200))
        d.line([cx - 8 * s, base - 4 * s, cx + 8 * s, base - 4 * s], fill=(200, 200, 200), width=1)
        _person(d, cx, base - 5 * s, s * 1.1, body)
    elif label == "motorcycle":
        _wheels(d, [cx - 9 * s, cx + 9 * s], base - 4 * s, 4 * s)
        _box(d, cx, base - 5 * s, 16 * s, 5 * s, body)
        _person(d, cx, base - 9 * s, s, (30, 30, 30))
    elif label == "traffic_cone_orange":
        _cone(d, cx, base, s, (245, 120, 20))
    elif label == "traffic_cone_green":
        _cone(d, cx, base, s, (60, 190, 60))
    else:
        raise ValueError(f"unknown demo class {label!r}")


def render(spec: SceneSpec) -> Image.Image:
    """Render one 64x64 RGB road scene for ``spec`` (same spec, same pixels)."""
    rng = np.random.default_rng(spec.seed)
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), _SKY[spec.time_of_day])
    d = ImageDraw.Draw(img)
    horizon = int(rng.integers(24, 32))
    road = (90, 90, 95) if spec.time_of_day != "night" else (35, 35, 40)
    d.polygon([(0, IMAGE_SIZE), (IMAGE_SIZE, IMAGE_SIZE), (40, horizon), (24, horizon)], fill=road)
    d.rectangle([0, horizon, 24, IMAGE_SIZE], fill=(70, 110, 60))
    d.rectangle([40, horizon, IMAGE_SIZE, IMAGE_SIZE], fill=(70, 110, 60))
    d.line([32, horizon, 32, IMAGE_SIZE], fill=(220, 220, 200), width=1)
    _draw_object(d, spec.label, rng)
    pixels = np.asarray(img, dtype=np.float32)
    if spec.time_of_day == "night":
        pixels *= 0.32
        pixels[..., 2] *= 1.3  # a blue cast: colours are harder to tell apart at night
    elif spec.time_of_day == "dusk":
        pixels *= np.array([1.0, 0.8, 0.75], dtype=np.float32)
    if spec.weather == "cloudy":
        pixels = 0.8 * pixels + 0.2 * 150
    elif spec.weather == "fog":
        pixels = 0.45 * pixels + 0.55 * 185
    pixels += rng.normal(0, 6, pixels.shape)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if spec.weather == "rain":
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(70, 110))):
            x, y = rng.integers(0, IMAGE_SIZE, 2)
            d.line([int(x), int(y), int(x) - 3, int(y) + 7], fill=(150, 160, 185), width=1)
        img = img.filter(ImageFilter.GaussianBlur(1.3))
    return img
