"""Image-quality signals and flags: formulas, flags on images built here, thresholds, duplicates, CLI."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from al_core import quality
from al_core.cli import main
from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import ingest_manifest
from al_core.quality import signals as sig
from al_core.quality import sql as qsql
from al_core.view import Filter, count_filtered
from al_core.view.filters import Condition


def scene(seed: int = 1, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A sharp synthetic photo: coloured rectangles on a coloured ground."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(30):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        w, h = (int(v) for v in rng.integers(10, 150, 2))
        draw.rectangle([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def reencoded(img: Image.Image, quality_: int = 75) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality_)
    buf.seek(0)
    return Image.open(buf)


# ------------------------------------------------------------- formulas, checked independently
def test_brightness_contrast_chroma_match_an_independent_computation() -> None:
    img = scene(3, (96, 64))
    s = sig.measure(img)
    # the analysis image is at most 64 px a side: 96x64 -> 64x43 (area average)
    small = img.resize((64, 43), Image.Resampling.BOX)
    px = np.asarray(small, dtype=np.float64)
    sample = px[::2, ::2]  # brightness and colour: every other pixel each way
    levels = np.rint(np.sqrt(0.241 * sample[..., 0] ** 2 + 0.691 * sample[..., 1] ** 2
                             + 0.068 * sample[..., 2] ** 2)).ravel()
    ordered = np.sort(levels)
    assert s.brightness == pytest.approx(levels.mean() / 255, abs=1e-9)
    assert s.brightness_p99 == ordered[int(np.ceil(0.99 * levels.size)) - 1] / 255  # nearest rank
    assert s.brightness_p05 == ordered[int(np.ceil(0.05 * levels.size)) - 1] / 255
    full = np.asarray(img, dtype=np.float64)
    exact = np.sqrt(0.241 * full[..., 0] ** 2 + 0.691 * full[..., 1] ** 2 + 0.068 * full[..., 2] ** 2) / 255
    assert abs(s.brightness - exact.mean()) < 0.02  # reduction and sampling barely move it
    gray = np.asarray(small.convert("L"), dtype=np.float64)
    assert s.contrast == pytest.approx(gray.std() / 255, abs=1e-9)
    assert s.chroma == pytest.approx((sample.max(axis=2) - sample.min(axis=2)).mean() / 255, abs=1e-9)


def test_entropy_and_sharpness_match_an_independent_computation() -> None:
    img = scene(4, (64, 64))
    s = sig.measure(img)
    gray = np.asarray(img.convert("L"), dtype=np.float64)
    counts = np.bincount(gray.astype(int).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    assert s.entropy == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-9)
    kernel = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)
    edges = np.clip(ndimage.convolve(gray, kernel, mode="nearest"), 0, 255)[1:-1, 1:-1]
    assert s.sharpness == pytest.approx(1 - np.exp(-0.01 * edges.std()), abs=2e-3)


def test_phash_matches_the_textbook_definition() -> None:
    img = scene(5, (200, 150))
    gray = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    n = 32
    basis = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * np.arange(n)[:, None] / (2 * n))
    block = (basis @ gray @ basis.T)[:8, :8]  # DCT-II up to a constant factor
    bits = "".join("1" if v > np.median(block) else "0" for v in block.ravel())
    expected = int(bits, 2)
    assert sig.phash(img.convert("L")) & ((1 << 64) - 1) == expected
    assert sig.hamming(expected, expected ^ 0b1011) == 3


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK"])
def test_every_image_mode_measures(mode: str) -> None:
    img = scene(6, (40, 30)).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img, dtype=np.uint16) * 257)
    s = sig.measure(img)
    assert 0 <= s.brightness <= 1 and 0 <= s.sharpness <= 1 and 0 <= s.entropy <= 8


# ------------------------------------------------------------- flags on a catalog of built images
@pytest.fixture
def quality_catalog(tmp_path: Path, catalog: Catalog) -> tuple[Catalog, Path]:
    d = tmp_path / "imgs"
    d.mkdir()
    sharp = scene(1)
    sharp.save(d / "sharp.jpg", quality=92)
    sharp.filter(ImageFilter.GaussianBlur(12)).save(d / "blurred.jpg", quality=92)
    Image.new("RGB", (200, 150), (0, 0, 0)).save(d / "black.png")
    Image.new("RGB", (200, 150), (255, 255, 255)).save(d / "white.png")
    Image.new("RGB", (200, 150), (90, 140, 60)).save(d / "constant.png")
    scene(2, (1000, 100)).save(d / "wide.png")
    scene(7).convert("L").convert("RGB").save(d / "gray_as_rgb.jpg", quality=92)
    shutil.copy(d / "sharp.jpg", d / "sharp_copy.jpg")
    reencoded(sharp, 75).save(d / "sharp_reencoded.png")
    scene(8, (16, 12)).save(d / "tiny.png")
    for i in range(3):
        scene(20 + i).save(d / f"normal{i}.jpg", quality=90)
    names = sorted(p.name for p in d.iterdir())
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": [f"imgs/{n}" for n in names], "sample_id": [n.split(".")[0] for n in names],
                  "label": ["a" if i % 2 else None for i in range(len(names))]}).to_csv(manifest, index=False)
    ingest_manifest(catalog, manifest, progress=False)
    return catalog, d


def flags_of(cat: Catalog) -> dict[str, set[str]]:
    return {flag: set(quality.flagged_ids(cat, flag)) for flag in quality.FLAGS}


def test_flags_on_built_images(quality_catalog: tuple[Catalog, Path]) -> None:
    cat, _ = quality_catalog
    f = flags_of(cat)
    assert "black" in f["dark"] and "white" not in f["dark"] and "sharp" not in f["dark"]
    assert "white" in f["light"] and "black" not in f["light"] and "sharp" not in f["light"]
    assert "blurred" in f["blurry"] and "sharp" not in f["blurry"]
    rows = dict(cat.query_rows("SELECT sample_id, q_sharpness FROM samples"))
    assert rows["blurred"] < rows["sharp"]
    assert {"constant", "black", "white"} <= f["low_information"] and "sharp" not in f["low_information"]
    assert f["odd_aspect_ratio"] == {"wide"}
    assert "tiny" in f["odd_size"] and "sharp" not in f["odd_size"]
    assert "gray_as_rgb" in f["grayscale"] and "sharp" not in f["grayscale"]
    assert f["exact_duplicate"] == {"sharp", "sharp_copy"}
    assert "sharp_reencoded" in f["near_duplicate"]
    assert not f["near_duplicate"] & {"black", "white"}  # flat images: same hash, not the same image
    exact = quality.duplicate_sets(cat, "exact")
    assert exact == [["sharp", "sharp_copy"]]
    near = quality.duplicate_sets(cat, "near")
    assert any("sharp_reencoded" in s and "sharp" in s for s in near)


def test_flags_are_fields_every_filter_reads(quality_catalog: tuple[Catalog, Path]) -> None:
    cat, _ = quality_catalog
    fields = cat.metadata_fields()
    assert all(fields[f"q_{flag}"] == "BOOLEAN" for flag in quality.FLAGS)
    assert all(fields[name] == "DOUBLE" for name in qsql.SIGNALS)
    assert not set(qsql.INTERNAL) & set(fields)
    dark = Filter(categorical=(("q_dark", ("true",)),))
    assert count_filtered(cat, dark, None) == len(quality.flagged_ids(cat, "dark"))
    assert count_filtered(cat, Filter().narrowed(Condition("q_blurry", "true")), None) == \
        len(quality.flagged_ids(cat, "blurry"))
    bright = Filter(numeric=(("q_brightness", (0.99, 1.0)),))
    assert count_filtered(cat, bright, None) == 1  # white


def test_changing_a_threshold_reflags_without_reading_images(quality_catalog: tuple[Catalog, Path]) -> None:
    cat, folder = quality_catalog
    before = flags_of(cat)
    shutil.rmtree(folder)  # no image can be read again
    t = quality.set_thresholds(cat, {"dark": 0.999})
    assert t["dark"] == 0.999 and quality.thresholds(cat)["dark"] == 0.999
    after = flags_of(cat)
    assert before["dark"] < after["dark"] and "white" not in after["dark"]
    quality.set_thresholds(cat, {}, reset=True)
    assert flags_of(cat) == before and quality.thresholds(cat) == quality.DEFAULTS


@pytest.mark.parametrize(("changes", "message"), [
    ({"dark": "nan"}, "between 0 and 1"), ({"dark": 2}, "between 0 and 1"),
    ({"dark": "x"}, "must be a number"), ({"nope": 1}, "is not a quality flag"), ({"exact_duplicate": 1}, "has no threshold"),
    ({"near_duplicate": 1.5}, "whole number"), ({"odd_size": 0.5}, "between 1 and"),
])
def test_bad_thresholds_are_refused_and_nothing_changes(
        quality_catalog: tuple[Catalog, Path], changes: dict, message: str) -> None:
    cat, _ = quality_catalog
    version = cat.data_version()
    with pytest.raises(quality.QualityError, match=message):
        quality.set_thresholds(cat, {"light": 0.2, **changes})
    assert cat.data_version() == version and quality.thresholds(cat) == quality.DEFAULTS


def _insert_hashes(catalog: Catalog, hashes: list[int], brightness: list[float]) -> dict[int, str]:
    frame = pd.DataFrame({"sample_id": [f"s{i:05d}" for i in range(len(hashes))],
                          "q_phash": pd.array(hashes, dtype="Int64"), "q_brightness": brightness})
    with catalog.transaction("test hashes") as cur:
        cur.register("hashes", frame)
        cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at, q_phash, q_brightness) "
                    "SELECT sample_id, '/x/' || sample_id, 'train', now()::TIMESTAMP, q_phash, q_brightness "
                    "FROM hashes")
        return dict(cur.execute("SELECT sample_key, sample_id FROM samples").fetchall())


@pytest.mark.parametrize("max_distance", [0, 1, 2, 4, 6])
def test_near_duplicate_sets_equal_brute_force(catalog: Catalog, max_distance: int) -> None:
    """Banded candidate pairs over (hash, brightness band) nodes give exactly the connected
    components of the documented rule, checked pair by pair."""
    rng = np.random.default_rng(max_distance)
    base = rng.integers(-(2**63), 2**63 - 1, size=40, dtype=np.int64)
    hashes = [int(h) for h in base]
    for h in base[:30]:  # neighbours at 0..8 flipped bits, some of them twice
        for _ in range(int(rng.integers(1, 3))):
            flipped = int(h) & ((1 << 64) - 1)
            for b in rng.choice(64, size=int(rng.integers(0, 9)), replace=False):
                flipped ^= 1 << int(b)
            hashes.append(flipped - (1 << 64) if flipped >= 1 << 63 else flipped)
    brightness = [float(v) for v in rng.choice([0.05, 0.12, 0.25, 0.5, 0.55], size=len(hashes))]
    keys = _insert_hashes(catalog, hashes, brightness)
    with catalog.transaction("test sets") as cur:
        found = quality._near_sets(cur, max_distance)
    band = [int(np.floor(b / qsql.BRIGHTNESS_BAND)) for b in brightness]
    oracle = quality._Sets()
    for i in range(len(hashes)):
        oracle.find(i)
        for j in range(i + 1, len(hashes)):
            if sig.hamming(hashes[i], hashes[j]) <= max_distance and abs(band[i] - band[j]) <= 1:
                oracle.union(i, j)
    groups: dict[int, set[str]] = {}
    for i, root in oracle.labels().items():
        groups.setdefault(root, set()).add(f"s{i:05d}")
    expected = {frozenset(g) for g in groups.values() if len(g) > 1}
    got: dict[int, set[str]] = {}
    for key, set_id in found.items():
        got.setdefault(set_id, set()).add(keys[key])
    assert {frozenset(g) for g in got.values()} == expected
    assert expected  # the case is not empty


def test_thousands_of_identical_images_stay_cheap(catalog: Catalog) -> None:
    """Blank frames share one hash: one node, no pairs (not n² of them)."""
    n = 20_000
    _insert_hashes(catalog, [7] * n + [7], [0.5] * n + [0.95])
    with catalog.transaction("test sets") as cur:
        pairs = cur.execute(*qsql.near_node_pairs(0)).fetchall()
        found = quality._near_sets(cur, 0)
    assert pairs == []  # the bright one is two bands away: not a neighbour
    assert len(found) == n and len(set(found.values())) == 1


def test_user_columns_may_not_use_the_reserved_prefix(tmp_path: Path, catalog: Catalog) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,Q_dark\na.png,1\n")
    with pytest.raises(IngestError, match="'Q_dark': names starting with 'q_' are reserved"):
        ingest_manifest(catalog, tmp_path / "m.csv", progress=False)
    assert catalog.scalar("SELECT count(*) FROM samples") == 0


def test_no_probe_leaves_signals_missing_and_recompute_fills_them_resumably(
        tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(7):
        scene(30 + i, (64, 48)).save(tmp_path / f"i{i}.png")
    Image.new("RGB", (64, 48)).save(tmp_path / "dark.png")
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    (tmp_path / "m.csv").write_text("path\n" + "\n".join(names) + "\n")
    ingest_manifest(catalog, tmp_path / "m.csv", probe=False, progress=False)
    assert quality.missing_count(catalog) == 8
    assert quality.flagged_ids(catalog, "dark") == []  # not measured: not flagged
    calls = {"n": 0}
    real_store = quality._store

    def interrupted(cat: Catalog, results: list, problems: list[str]) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_store(cat, results, problems)

    monkeypatch.setattr(quality, "_store", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quality.recompute(catalog, progress=False, chunk=3)
    assert quality.missing_count(catalog) == 5  # the first chunk was committed
    monkeypatch.setattr(quality, "_store", real_store)
    measured, problems = quality.recompute(catalog, progress=False, chunk=3)
    assert (measured, problems) == (5, [])
    assert quality.missing_count(catalog) == 0
    assert catalog.scalar("SELECT count(*) FROM samples") == 8
    assert quality.flagged_ids(catalog, "dark") == ["dark.png"]
    # sizes and hashes a --no-probe ingest left out are filled too, so size flags work
    assert catalog.scalar("SELECT count(*) FROM samples WHERE width = 64 AND height = 48 "
                          "AND content_hash IS NOT NULL AND q_odd_size IS NOT NULL") == 8
    # a file changed since it was ingested is named, not measured
    with catalog.transaction("forget one") as cur:
        cur.execute("UPDATE samples SET q_brightness = NULL WHERE sample_id = 'i0.png'")
    scene(99, (64, 48)).save(tmp_path / "i0.png")
    measured, problems = quality.recompute(catalog, progress=False)
    assert measured == 0 and len(problems) == 1 and "'i0.png': its file changed" in problems[0]


def test_migration_adds_the_fields_to_an_older_catalog(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old = Catalog(path)
    old.migrate(target=4)
    with old.transaction("old rows") as cur:
        cur.execute("INSERT INTO samples (sample_id, uri, width, height, split, ingested_at) "
                    "VALUES ('a', '/x/a.png', 400, 40, 'train', now()::TIMESTAMP)")
    with Catalog.open(path) as cat:
        assert cat.schema_version() >= 5
        assert set(cat.metadata_fields()) >= {"q_dark", "q_brightness", "q_near_duplicate"}
        assert cat.query_rows("SELECT q_aspect_ratio, q_pixels, q_brightness FROM samples") == [(10.0, 16000.0, None)]
        assert quality.missing_count(cat) == 1


def test_cli_quality_json_and_thresholds(quality_catalog: tuple[Catalog, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cat, _ = quality_catalog
    assert main(["quality", "--catalog", str(cat.path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["counts"]) == set(quality.FLAGS)
    assert rep["counts"]["dark"] == len(rep["flagged"]["dark"]) > 0
    assert {"kind": "exact", "sample_ids": ["sharp", "sharp_copy"]} in rep["duplicate_sets"]
    assert main(["quality", "--catalog", str(cat.path), "--set", "dark=0.999", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["thresholds"]["dark"] == 0.999
    assert main(["quality", "--catalog", str(cat.path), "--set", "dark=7"]) == 1
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["quality", "--catalog", str(cat.path), "--reset"]) == 0
    out = capsys.readouterr().out
    assert "dark" in out and "exact duplicate sets: 1" in out


def test_cli_ingest_without_probe_says_how_to_measure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    catalog = tmp_path / "c.duckdb"
    assert main(["ingest", str(tmp_path), "--catalog", str(catalog), "--no-probe", "--no-progress"]) == 0
    assert "1 sample(s) have no image-quality signals" in capsys.readouterr().err
    assert main(["quality", "--catalog", str(catalog)]) == 0
    assert "al-explorer quality --recompute" in capsys.readouterr().out
    assert main(["quality", "--catalog", str(catalog), "--recompute", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing_signals"] == 0


def test_upgrade_keeps_user_fields_named_like_built_ins(tmp_path: Path) -> None:
    """Before the prefix was reserved a user could add q_dark or q_score: the upgrade renames a
    clash (user_q_dark) and keeps the rest; both keep importing."""
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,q_dark,q_score\na.png,yes,0.5\n")
    path = tmp_path / "old.duckdb"
    old = Catalog(path)
    old.migrate(target=4)
    with old.transaction("v4 fields") as cur:
        cur.execute("ALTER TABLE samples ADD COLUMN q_dark VARCHAR")
        cur.execute("ALTER TABLE samples ADD COLUMN q_score DOUBLE")
        cur.execute("INSERT INTO metadata_fields VALUES ('q_dark', 'VARCHAR', 1, now()::TIMESTAMP), "
                    "('q_score', 'DOUBLE', 2, now()::TIMESTAMP)")
        cur.execute("INSERT INTO samples (sample_id, uri, width, height, split, ingested_at, q_dark, q_score) "
                    f"VALUES ('a.png', '{tmp_path / 'a.png'}', 8, 8, 'train', now()::TIMESTAMP, 'yes', 0.5)")
    cat = Catalog.open(path)
    fields = cat.metadata_fields()
    assert fields["user_q_dark"] == "VARCHAR" and fields["q_dark"] == "BOOLEAN" and fields["q_score"] == "DOUBLE"
    assert cat.query_rows("SELECT user_q_dark, q_score, q_aspect_ratio FROM samples") == [("yes", 0.5, 1.0)]
    # the upgrade derives what sizes and hashes already tell; signals stay missing, not flagged
    assert cat.query_rows("SELECT q_odd_aspect_ratio, q_odd_size, q_dark FROM samples") == [(False, False, None)]
    assert "user_q_dark" in cat.scalar("SELECT value FROM catalog_info WHERE key = 'v5_renamed_fields'")
    (tmp_path / "m2.csv").write_text("path,sample_id,user_q_dark,q_score\na.png,a.png,dim,0.7\n")
    ingest_manifest(cat, tmp_path / "m2.csv", progress=False)
    assert cat.query_rows("SELECT user_q_dark, q_score FROM samples") == [("dim", 0.7)]
    with pytest.raises(IngestError, match="'q_dark': names starting with 'q_' are reserved"):
        ingest_manifest(cat, tmp_path / "m.csv", progress=False)  # the built-in one: never from a file


@pytest.mark.parametrize(("image", "dark"), [
    (Image.fromarray(np.full((40, 40), 200, dtype=np.uint16)), True),  # 16-bit: 200 of 65535 is black
    (Image.fromarray(np.full((40, 40), 50000, dtype=np.uint16)), False),
    (Image.fromarray(np.full((40, 40), 0.8, dtype=np.float32)), False),  # float 0-1: bright
    (Image.fromarray(np.full((40, 40), 0.05, dtype=np.float32)), True),
])
def test_wide_grayscale_is_scaled_by_its_type(image: Image.Image, dark: bool) -> None:
    assert (sig.measure(image).brightness_p99 < quality.DEFAULTS["dark"]) is dark


def test_remote_samples_are_not_counted_as_missing(catalog: Catalog) -> None:
    with catalog.transaction("test: a remote and a local sample") as cur:
        cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at) VALUES "
                    "('r', 'https://example.com/r.jpg', 'train', now()::TIMESTAMP), "
                    "('l', '/nowhere/l.jpg', 'train', now()::TIMESTAMP)")
    assert quality.missing_count(catalog) == 1  # recompute can measure only the local one
