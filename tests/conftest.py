"""Shared fixtures: a fresh catalog per test and small real image files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from al_core.db.catalog import Catalog, snapshot


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(tmp_path / "catalog.duckdb")
    yield cat
    cat.close()


def make_image(path: Path, size: tuple[int, int] = (16, 12), color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """``images/{cat,dog}/*.png`` plus two unlabeled images at the top level."""
    root = tmp_path / "images"
    for i in range(3):
        make_image(root / "cat" / f"c{i}.png", (10 + i, 8))
        make_image(root / "dog" / f"d{i}.jpg", (20, 10 + i), (10, 200, 10))
    make_image(root / "u0.png", (5, 5))
    make_image(root / "u1.png", (6, 6))
    return root


@pytest.fixture
def manifest_frame(image_dir: Path) -> pd.DataFrame:
    """Four images with typed metadata; paths relative to the images folder's parent."""
    return pd.DataFrame({
        "path": ["images/cat/c0.png", "images/cat/c1.png", "images/dog/d0.jpg", "images/u0.png"],
        "sample_id": ["a", "b", "c", "d"],
        "label": ["cat", "cat", "dog", None],
        "split": ["train", "val", "train", "unlabeled"],
        "weather": ["sun", "rain", "sun", "fog"],
        "brightness": [0.1, 0.5, 0.9, 0.3],
        "frame_no": [1, 2, 3, 4],
        "captured_at": pd.to_datetime(["2024-01-01 08:00", "2024-01-02 09:30",
                                       "2024-03-01 22:00", "2024-05-05 12:00"]),
    })


def write_manifest(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` in the format given by ``path``'s extension."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        raise ValueError(path)
    return path


def content(cat: Catalog) -> dict[str, pd.DataFrame]:
    """The catalog's content, for before/after comparisons."""
    return snapshot(cat)


def assert_same_content(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for table in before:
        pd.testing.assert_frame_equal(before[table], after[table], obj=table)


DEMO_SIZE = 1000
DEMO_EPOCHS = 20


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory):
    """A small demo catalog built once per test session: ``(catalog path, report)``."""
    from al_core.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "catalog.duckdb"
    report = build_demo(path, size=DEMO_SIZE, seed=3, epochs=DEMO_EPOCHS, progress=False, echo=False)
    return path, report


APP = str(Path(__file__).resolve().parent.parent / "app.py")
APP_TIMEOUT = 90  # AppTest: the pages import torch through al_core


@pytest.fixture
def app_catalog(demo_build: tuple[Path, object], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the demo catalog that the app under test opens."""
    import shutil

    path = tmp_path / "app.duckdb"
    shutil.copy(demo_build[0], path)
    monkeypatch.setenv("AL_EXPLORER_CATALOG", str(path))
    yield path


def direct(path: Path, query: str) -> list[tuple]:
    """Plain SQL, written in the test, on the app's file (through the catalog's read connection:
    in the app's process a second raw connection to the file would conflict with it)."""
    return Catalog(path).query_rows(query)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Close what the app cached (DuckDB connections) so the interpreter exits cleanly."""
    import gc
    import sys

    if "streamlit" in sys.modules:
        import streamlit as st

        st.cache_resource.clear()
    gc.collect()


def user_fields(cat: Catalog) -> dict[str, str]:
    """The catalog's fields without the built-in image-quality ones (``q_...``)."""
    return {n: t for n, t in cat.metadata_fields().items() if not n.startswith("q_")}
