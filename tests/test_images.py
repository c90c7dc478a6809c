"""Image probe and thumbnails: EXIF sizes, the pixel cap, corrupt files, bounded decodes, column cap."""

from __future__ import annotations

import struct
import threading
import warnings
import zlib
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import make_image, user_fields, write_manifest
from PIL import Image, ImageFile

from al_core import thumbnails
from al_core.db.catalog import Catalog
from al_core.errors import IngestError
from al_core.ingest import files, images, ingest_folder, ingest_manifest
from al_core.ingest.images import probe_one


def _chunk(kind: bytes, data: bytes, *, crc_ok: bool = True) -> bytes:
    crc = zlib.crc32(kind + data) ^ (0 if crc_ok else 1)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(path: Path, width: int, height: int, idat: bytes | None = None, *,
              crc_ok: bool = True, pieces: int = 1) -> Path:
    """An RGB PNG written by hand: real pixel data (split in ``pieces`` IDAT chunks) or ``idat``."""
    if idat is None:
        idat = zlib.compress((b"\x00" + b"\x7f" * (width * 3)) * height)
    step = -(-len(idat) // pieces)
    body = b"".join(_chunk(b"IDAT", idat[i:i + step], crc_ok=crc_ok) for i in range(0, len(idat), step))
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + body + _chunk(b"IEND", b""))
    return path


def write_rotated_jpeg(path: Path, size: tuple[int, int], orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", size, (10, 120, 200)).save(path, exif=exif)
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny JPEG whose frame header claims ``width`` x ``height`` (its data stays tiny)."""
    data = bytearray((make_image(path.with_suffix(".src.jpg"), (8, 8))).read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------------------- EXIF sizes

@pytest.mark.parametrize(("orientation", "expected"), [(1, (40, 20)), (3, (40, 20)), (5, (20, 40)),
                                                       (6, (20, 40)), (7, (20, 40)), (8, (20, 40))])
def test_exif_orientation_gives_the_displayed_size(
        tmp_path: Path, orientation: int, expected: tuple[int, int]) -> None:
    path = write_rotated_jpeg(tmp_path / "r.jpg", (40, 20), orientation)
    result = probe_one(1, "r", str(path))
    assert result.problem is None
    assert (result.width, result.height) == expected


def test_ingested_size_of_a_rotated_jpeg_is_as_displayed(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    write_rotated_jpeg(tmp_path / "imgs" / "r.jpg", (40, 20), 6)
    ingest_folder(catalog, tmp_path / "imgs", progress=False)
    assert catalog.query_rows("SELECT width, height FROM samples") == [(20, 40)]


# ---------------------------------------------------------------------------- pixel cap

def test_image_above_the_cap_is_refused_naming_file_size_and_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = make_image(tmp_path / "big.png", (20, 10))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded it"))
    result = probe_one(3, "big", str(path))
    assert result.width is None and result.content_hash is None
    assert str(path) in result.problem and "refused" in result.problem
    assert "20x10 = 200 pixels" in result.problem and "cap of 100 pixels" in result.problem


def test_huge_png_header_is_refused_not_decoded(tmp_path: Path) -> None:
    path = write_png(tmp_path / "bomb.png", 20_000, 20_000, idat=zlib.compress(b"\x00" * 100))
    result = probe_one(1, "bomb", str(path))
    assert str(path) in result.problem
    assert "400,000,000 pixels" in result.problem
    assert f"cap of {images.MAX_PIXELS:,} pixels" in result.problem


def test_huge_jpeg_header_is_refused_not_decoded(tmp_path: Path) -> None:
    path = jpeg_claiming(tmp_path / "bomb.jpg", 16_000, 12_500)
    result = probe_one(1, "bomb", str(path))
    assert str(path) in result.problem and "200,000,000 pixels" in result.problem
    assert f"{images.MAX_PIXELS:,}" in result.problem


def test_between_pillows_warning_and_error_the_cap_still_refuses_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow only warns from 89.5 MP to 178.9 MP: a lower cap still refuses, undecoded, no warning."""
    monkeypatch.setattr(images, "MAX_PIXELS", 100_000_000)
    path = write_png(tmp_path / "wide.png", 12_000, 10_000, idat=zlib.compress(b"\x00" * 100))
    with warnings.catch_warnings(record=True) as caught:  # the filters in force, recorded
        result = probe_one(1, "wide", str(path))
    assert "refused" in result.problem and "12000x10000 = 120,000,000 pixels" in result.problem
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_refusal_reaches_the_import_error(
        catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    make_image(tmp_path / "imgs" / "big.png", (20, 10))
    with pytest.raises(IngestError, match=r"big\.png: refused, the image has 20x10 = 200 pixels"):
        ingest_folder(catalog, tmp_path / "imgs", progress=False)
    assert catalog.scalar("SELECT count(*) FROM samples") == 0


# ---------------------------------------------------------------------------- corrupt files

def _corrupt_files(tmp_path: Path) -> list[Path]:
    good_png = make_image(tmp_path / "good.png", (30, 20)).read_bytes()
    good_jpg = make_image(tmp_path / "good.jpg", (40, 30)).read_bytes()
    flipped = bytearray(write_png(tmp_path / "src.png", 30, 20).read_bytes())
    flipped[60] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
    out = {
        "truncated.png": good_png[: len(good_png) // 2],
        "cut_chunk.png": good_png[:-14],
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "flipped.png": bytes(flipped),
        "garbage.png": b"\x89PNG\r\n\x1a\nnot really",
        "garbage.jpg": b"\xff\xd8\xff\xe0 nothing else",
    }
    paths = [tmp_path / name for name in out]
    for path in paths:
        path.write_bytes(out[path.name])
    paths.append(write_png(tmp_path / "bad_zlib.png", 30, 20, idat=b"\x78\x9c" + b"\xff" * 50))
    pixels = zlib.compress((b"\x00" + bytes(x * 7 % 256 for x in range(90))) * 20)
    paths.append(write_png(tmp_path / "half_zlib.png", 30, 20, idat=pixels[: len(pixels) // 2]))
    return paths


def test_corrupt_and_truncated_images_are_still_reported(tmp_path: Path) -> None:
    for path in _corrupt_files(tmp_path):
        result = probe_one(1, path.stem, str(path))
        assert result.problem is not None, path.name
        assert str(path) in result.problem and "unreadable or corrupt" in result.problem, path.name


def test_missing_file_is_reported(tmp_path: Path) -> None:
    assert probe_one(1, "x", str(tmp_path / "nope.png")).problem.endswith("file does not exist")


def test_good_png_in_many_chunks_passes_the_streamed_check(tmp_path: Path) -> None:
    path = write_png(tmp_path / "many.png", 300, 200, pieces=7)
    result = probe_one(1, "many", str(path))
    assert result.problem is None and (result.width, result.height) == (300, 200)
    no_iend = tmp_path / "no_iend.png"  # sloppy but whole: Pillow decodes it, so do we
    no_iend.write_bytes(path.read_bytes()[:-12])
    assert probe_one(1, "no_iend", str(no_iend)).problem is None
    images.check_png(str(make_image(tmp_path / "pillow.png", (64, 64))))


# ---------------------------------------------------------------------------- decode budget

def test_decode_budget_never_holds_more_than_its_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "DECODE_BUDGET_BYTES", 100)
    budget, lock, state = images._Budget(), threading.Lock(), {"now": 0, "max": 0}

    def work(cost: int) -> None:
        with budget.hold(cost):
            with lock:
                state["now"] += min(cost, 100)
                state["max"] = max(state["max"], state["now"])
            threading.Event().wait(0.01)
            with lock:
                state["now"] -= min(cost, 100)

    threads = [threading.Thread(target=work, args=(c,)) for c in [40, 40, 250, 40, 10, 60] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < state["max"] <= 100 and state["now"] == 0


def test_decode_cost_counts_a_progressive_jpegs_coefficients(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    Image.new("RGB", (800, 600)).save(path, progressive=True)
    with Image.open(path) as img:
        full = img.size
        img.draft("RGB", (64, 64))
        assert img.size == (100, 75)
        assert images.decode_cost(img, full) == 100 * 75 * 4 + 800 * 600 * 6


# ---------------------------------------------------------------------------- thumbnails

def test_thumbnail_above_the_cap_is_none_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = make_image(tmp_path / "big.jpg", (20, 10))
    assert thumbnails.thumbnail(str(path), None, tmp_path / "thumbs") is None
    assert not (tmp_path / "thumbs").exists()


def test_thumbnail_of_a_huge_header_is_none(tmp_path: Path) -> None:
    path = write_png(tmp_path / "bomb.png", 20_000, 20_000, idat=zlib.compress(b"\x00" * 100))
    assert thumbnails.thumbnail(str(path), None, tmp_path / "thumbs") is None


@pytest.mark.parametrize("bad_hash", ["../../escape", "/etc/evil", "..", "ab/../../x", "A" * 40])
def test_thumbnail_is_never_written_outside_its_folder(tmp_path: Path, bad_hash: str) -> None:
    image = make_image(tmp_path / "src" / "a.png", (30, 20))
    folder = tmp_path / "cache" / "thumbs"
    path = thumbnails.thumbnail(str(image), bad_hash, folder)
    assert path is not None and path.exists()
    assert path.resolve().is_relative_to(folder.resolve())
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(written) == sorted([image, path])


def test_thumbnail_keeps_a_plain_content_hash_as_its_name(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.png", (30, 20))
    key = images.file_hash(str(image))
    path = thumbnails.thumbnail(str(image), key, tmp_path / "thumbs")
    assert path == tmp_path / "thumbs" / key[:2] / f"{key}_160.jpg"


def test_thumbnail_is_upright_and_small(tmp_path: Path) -> None:
    rotated = write_rotated_jpeg(tmp_path / "r.jpg", (400, 200), 6)
    big = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (5, 5, 5)).save(big)
    palette = tmp_path / "p.png"
    Image.new("P", (600, 300)).save(palette)
    sizes = {}
    for src in (rotated, big, palette):
        out = thumbnails.thumbnail(str(src), None, tmp_path / "thumbs")
        with Image.open(out) as thumb:
            sizes[src.name] = (thumb.size, thumb.mode)
    assert sizes == {"r.jpg": ((80, 160), "RGB"), "big.jpg": ((160, 120), "RGB"),
                     "p.png": ((160, 80), "RGB")}


# ---------------------------------------------------------------------------- column cap

def test_manifest_with_too_many_columns_is_refused_before_reading(
        catalog: Catalog, tmp_path: Path) -> None:
    n = files.MAX_COLUMNS + 1
    header = ["path", *(f"f{i}" for i in range(n - 1))]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(header) + "\n" + "".join(
        ",".join([f"img/{r}.jpg", *("1" * (n - 1))]) + "\n" for r in range(3)))
    with pytest.raises(IngestError) as err:
        ingest_manifest(catalog, path, probe=False, progress=False)
    message = str(err.value)
    assert str(path) in message and f"has {n:,} columns" in message
    assert f"more than the {files.MAX_COLUMNS:,}" in message
    assert catalog.scalar("SELECT count(*) FROM samples") == 0
    assert user_fields(catalog) == {}


def test_parquet_with_too_many_columns_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    n = files.MAX_COLUMNS + 1
    frame = pd.DataFrame({"path": ["a.jpg"], **{f"f{i}": [i] for i in range(n - 1)}})
    path = write_manifest(frame, tmp_path / "wide.parquet")
    with pytest.raises(IngestError, match=f"has {n:,} columns"):
        ingest_manifest(catalog, path, probe=False, progress=False)
    assert catalog.scalar("SELECT count(*) FROM samples") == 0


def test_raw_column_names_read_headers_of_each_format(tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "x": [1, 2], "y": ["s", "t"]})
    tsv = tmp_path / "m.tsv"
    frame.to_csv(tsv, sep="\t", index=False)
    semi = tmp_path / "m.txt"
    semi.write_text('"path";"a;b";c\n"x.jpg";1;2\n')
    cur = duckdb.connect()
    names = {p.name: files.raw_column_names(cur, p, files.detect_format(p)) for p in [
        write_manifest(frame, tmp_path / "m.csv"), tsv, semi,
        write_manifest(frame, tmp_path / "m.parquet"), write_manifest(frame, tmp_path / "m.jsonl")]}
    assert names == {"m.csv": ["path", "x", "y"], "m.tsv": ["path", "x", "y"],
                     "m.txt": ["path", "a;b", "c"], "m.parquet": ["path", "x", "y"],
                     "m.jsonl": ["path", "x", "y"]}
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(IngestError, match="bad.parquet: cannot be read as parquet"):
        files.check_header(cur, tmp_path / "bad.parquet", "parquet")
