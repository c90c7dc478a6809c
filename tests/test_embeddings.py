"""Embeddings: open_clip through the real loading path (a tiny architecture whose random weights
are saved and loaded back), the resumable job, imports that refuse bad vectors, the index (stale
detection, incremental adds, filtered hnswlib search equal to the exact oracle), queries."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_content, content, make_image

from al_core import embeddings
from al_core.cli import main
from al_core.db.catalog import Catalog
from al_core.embeddings import index as index_mod
from al_core.embeddings import neighbors, search
from al_core.embeddings.index import SetState, exact_search, open_index, staleness
from al_core.embeddings.job import embed_catalog
from al_core.embeddings.models import ModelLoadError, ModelSpec, load_model
from al_core.errors import IngestError
from al_core.ingest import ingest_folder
from al_core.view.filters import Filter

TINY = "al-test-tiny-clip"
TINY_CONFIG = {"embed_dim": 24,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
               "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    """A tiny open_clip architecture with random weights, saved as files (config + checkpoint)."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny_clip")
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    weights = folder / "weights.pt"
    torch.save(open_clip.create_model(TINY).state_dict(), weights)
    return ModelSpec(arch=TINY, weights=weights, model_config=config)


@pytest.fixture
def photo_catalog(tmp_path: Path, catalog: Catalog) -> Catalog:
    """Twelve small images of three colours (four each), ingested."""
    colours = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220)}
    rng = np.random.default_rng(0)
    for name, rgb in colours.items():
        for i in range(4):
            jitter = tuple(int(np.clip(c + rng.integers(-20, 20), 0, 255)) for c in rgb)
            make_image(tmp_path / "photos" / name / f"{name}{i}.jpg", (40 + i, 36), jitter)
    ingest_folder(catalog, tmp_path / "photos", progress=False)
    return catalog


def test_open_clip_loads_saved_weights_and_encodes_normalized_vectors(tiny_model: ModelSpec) -> None:
    from PIL import Image

    lm = load_model(tiny_model, device="cpu")
    assert lm.dim == 24 and lm.image_size == 32 and lm.has_text
    assert lm.identity["arch"] == TINY and len(lm.identity["weights_sha256"]) == 64
    image = lm.encode_images(lm.preprocess(Image.new("RGB", (50, 40), (9, 90, 200))).unsqueeze(0))
    text = lm.encode_text(["a red square", "a blue square"])
    assert image.shape == (1, 24) and text.shape == (2, 24)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([image, text]), axis=1), 1.0, rtol=1e-5)
    # the weights file really is what was loaded: the same vectors twice, others with other weights
    again = load_model(tiny_model, device="cpu").encode_text(["a red square"])
    np.testing.assert_allclose(again[0], text[0], atol=1e-6)


def test_missing_weights_say_where_we_looked_and_how_to_pass_a_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # fail at once, as offline does
    with pytest.raises(ModelLoadError) as err:
        load_model(ModelSpec("ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=tmp_path / "cache"))
    message = str(err.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert str(tmp_path / "cache") in message and "--weights FILE" in message
    with pytest.raises(ModelLoadError, match="weights file .*nope.pt not found"):
        load_model(ModelSpec("ViT-B-32", weights=tmp_path / "nope.pt"))
    with pytest.raises(ModelLoadError, match="has no pretrained tag 'no-such-tag'"):
        load_model(ModelSpec("ViT-B-32", pretrained="no-such-tag"))
    with pytest.raises(ModelLoadError, match="unknown open_clip architecture"):
        load_model(ModelSpec("No-Such-Arch"))


def test_a_failed_model_load_writes_nothing(photo_catalog: Catalog, tmp_path: Path) -> None:
    before = content(photo_catalog)
    with pytest.raises(ModelLoadError):
        embed_catalog(photo_catalog, ModelSpec("ViT-B-32", weights=tmp_path / "gone.pt"), progress=False)
    assert_same_content(before, content(photo_catalog))


def test_the_job_is_resumable_without_duplicates(photo_catalog: Catalog, tiny_model: ModelSpec) -> None:
    stop = threading.Event()

    def after_first_chunk(done: int, total: int) -> None:
        if done >= 4:
            stop.set()

    first = embed_catalog(photo_catalog, tiny_model, "tiny", batch_size=4, chunk=4, precision="fp32",
                          progress=False, on_progress=after_first_chunk, stop=stop)
    assert first.stopped and first.embedded == 4
    emb = embeddings.get_set(photo_catalog, "tiny")
    assert embeddings.embedding_count(photo_catalog, "tiny") == 4
    second = embed_catalog(photo_catalog, tiny_model, "tiny", batch_size=4, chunk=4, progress=False)
    assert (second.already, second.embedded, second.stopped) == (4, 8, False)
    rows = photo_catalog.query_rows(f"SELECT sample_id, count(*) FROM {emb.table} GROUP BY 1")
    assert len(rows) == 12 and {n for _, n in rows} == {1}
    keys, _, vectors = embeddings.load_vectors(photo_catalog, emb)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embed_catalog(photo_catalog, tiny_model, "tiny", progress=False).embedded == 0
    assert emb.has_text and emb.identity["decode"]


def test_an_unreadable_image_is_skipped_and_named(photo_catalog: Catalog, tiny_model: ModelSpec) -> None:
    uri = photo_catalog.scalar("SELECT uri FROM samples ORDER BY sample_id LIMIT 1")
    Path(uri).write_bytes(b"not an image any more")
    report = embed_catalog(photo_catalog, tiny_model, "tiny", progress=False)
    assert report.embedded == 11 and len(report.failed) == 1 and "cannot decode" in report.failed[0][1]


def test_two_models_never_share_a_set(photo_catalog: Catalog, tiny_model: ModelSpec, tmp_path: Path) -> None:
    import torch

    embed_catalog(photo_catalog, tiny_model, "tiny", progress=False)
    other = tmp_path / "other.pt"
    state = torch.load(tiny_model.weights, weights_only=True)
    torch.save({k: v + 0.01 for k, v in state.items()}, other)
    before = content(photo_catalog)
    with pytest.raises(IngestError, match="another model identity"):
        embed_catalog(photo_catalog, ModelSpec(TINY, weights=other, model_config=tiny_model.model_config),
                      "tiny", progress=False)
    assert_same_content(before, content(photo_catalog))


def _write_parquet(path: Path, ids: list[str], vectors: list) -> Path:
    pd.DataFrame({"sample_id": ids, "vector": vectors}).to_parquet(path)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p, ids: np.savez(p / "v.npz", ids=np.array(ids[:2]), vectors=np.ones((2, 3))) or p / "v.npz",
     "already holds 4-d vectors"),
    (lambda p, ids: np.savez(p / "v.npz", ids=np.array(ids[:2]), vectors=np.array([[1, 2, 3, 4], [0, np.inf, 0, 1]]))
     or p / "v.npz", r"\(row 1\) has NaN or infinite"),
    (lambda p, ids: np.savez(p / "v.npz", ids=np.array([ids[0], "nobody"]), vectors=np.ones((2, 4))) or p / "v.npz",
     "'nobody' is not in the catalog"),
    (lambda p, ids: _write_parquet(p / "v.parquet", ids[:2], [[1.0, 2, 3, 4], [1.0, 2]]), "has 2 values, expected 4"),
    (lambda p, ids: _write_parquet(p / "v.parquet", ids[:2], [[1.0, 2, 3, 4], [1.0, 2, 3, np.nan]]), "NaN"),
    (lambda p, ids: np.savez(p / "v.npz", idz=np.array(ids[:1]), vectors=np.ones((1, 4))) or p / "v.npz",
     "missing array 'ids'"),
    (lambda p, ids: (p / "v.csv").write_text("x") and p / "v.csv", "expected a .parquet file"),
])
def test_import_embeddings_refuses_bad_vectors_and_changes_nothing(photo_catalog: Catalog, tmp_path: Path,
                                                                   capsys, make, message) -> None:
    ids = [r[0] for r in photo_catalog.query_rows("SELECT sample_id FROM samples ORDER BY sample_id")]
    good = tmp_path / "good.npz"
    np.savez(good, ids=np.array(ids), vectors=np.random.default_rng(1).normal(size=(len(ids), 4)))
    catalog_arg = ["--catalog", str(photo_catalog.path)]
    assert main(["import-embeddings", str(good), "--set", "mine", *catalog_arg]) == 0
    before = content(photo_catalog)
    capsys.readouterr()
    assert main(["import-embeddings", str(make(tmp_path, ids)), "--set", "mine", *catalog_arg]) == 1
    err = capsys.readouterr().err
    assert pd.Series([err]).str.contains(message).all(), err
    assert_same_content(before, content(photo_catalog))
    # a re-run of the good import is idempotent
    assert main(["import-embeddings", str(good), "--set", "mine", *catalog_arg]) == 0
    assert embeddings.embedding_count(photo_catalog, "mine") == len(ids)


def _clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    points = centers[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    return embeddings.normalize(points.astype(np.float32))


def _synthetic_set(cat: Catalog, n: int, dim: int = 32, seed: int = 0) -> tuple[list[str], np.ndarray]:
    ids = [f"s{i:06d}" for i in range(n)]
    frame = pd.DataFrame({"sample_id": ids, "uri": [f"/x/{i}.png" for i in ids],
                          "split": np.where(np.arange(n) % 10 == 0, "test", "train"),
                          "label": np.where(np.arange(n) % 3 == 0, None, "a")})
    with cat.transaction() as cur:
        cur.register("f", frame)
        cur.execute("INSERT INTO samples (sample_id, uri, split, label, ingested_at) "
                    "SELECT sample_id, uri, split, label, now()::TIMESTAMP FROM f")
    vectors = _clustered(n, dim, 50, seed)
    embeddings.store_embeddings(cat, "syn", "synthetic", ids, vectors)
    return ids, vectors


def test_filtered_hnsw_search_equals_the_exact_oracle_with_high_recall(catalog: Catalog,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ids, vectors = _synthetic_set(catalog, 12_000)
    emb = embeddings.get_set(catalog, "syn")
    exact = open_index(catalog, emb)  # under the threshold: exact
    hnsw = open_index(catalog, emb, exact_threshold=1000)  # forced through hnswlib
    assert exact.hnsw_ is None and hnsw.hnsw_ is not None and hnsw.how_ == "built"
    queries = _clustered(200, 32, 50, seed=0)[:200]
    hits = 0
    for q in queries:
        got, _ = hnsw.search(q, 10)
        want, _ = exact.search(q, 10)
        hits += len(set(got) & set(want))
    assert hits / (10 * len(queries)) >= 0.95
    # filtered: the test split (10%), forced through the hnsw walk (no exact subset shortcut)
    monkeypatch.setattr(index_mod, "SUBSET_MAX", 0)
    monkeypatch.setattr(index_mod, "SUBSET_SHARE", 0.0)
    allowed = search.allowed_keys(catalog, Filter(splits=("test",)))
    assert len(allowed) == 1200
    for q in queries[:30]:
        got, scores = hnsw.search(q, 10, allowed=allowed)
        want, want_scores = exact.search(q, 10, allowed=allowed)
        assert len(got) == 10 and set(got) <= set(allowed.tolist())
        assert len(set(got) & set(want)) >= 9
        assert np.all(np.diff(scores) <= 1e-6)


@pytest.mark.parametrize("path", ["exact", "hnsw walk", "hnsw walk failing, exact fallback"])
def test_a_very_selective_filter_still_returns_k(catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
                                                 path: str) -> None:
    _synthetic_set(catalog, 3000)
    emb = embeddings.get_set(catalog, "syn")
    vi = open_index(catalog, emb, exact_threshold=10**6 if path == "exact" else 100)
    if path != "exact":  # no exact-subset shortcut: the filtered walk itself
        monkeypatch.setattr(index_mod, "SUBSET_MAX", 0)
        monkeypatch.setattr(index_mod, "SUBSET_SHARE", 0.0)
    if path.endswith("fallback"):
        class Failing:
            def __init__(self, real):
                self.real, self.calls = real, 0

            def set_ef(self, ef):
                self.real.set_ef(ef)

            def knn_query(self, *args, **kwargs):
                self.calls += 1
                raise RuntimeError("Cannot return the results in a contiguous 2D array")
        vi.hnsw_ = Failing(vi.hnsw_)
    few = search.keys_of(catalog, [f"s{i:06d}" for i in (5, 77, 1500, 2999)])
    got, _ = vi.search(np.ones(32, np.float32) / np.sqrt(32), 3, allowed=few)
    assert len(got) == 3 and set(got) <= set(few.tolist())
    got, _ = vi.search(np.ones(32, np.float32) / np.sqrt(32), 10, allowed=few)
    assert sorted(got) == sorted(few.tolist())  # fewer than k pass: all of them
    if path.endswith("fallback"):
        assert vi.hnsw_.calls == 8  # each search: widened three times, then the exact path answered


def test_stale_index_is_detected_updated_and_rebuilt(catalog: Catalog) -> None:
    ids, vectors = _synthetic_set(catalog, 3000)
    emb = embeddings.get_set(catalog, "syn")
    monkey = {"exact_threshold": 100}
    assert open_index(catalog, emb, **monkey).how_ == "built"
    assert open_index(catalog, emb, **monkey).how_ == "loaded"
    # new samples with vectors: detected, then added incrementally
    new_ids = [f"n{i}" for i in range(50)]
    with catalog.transaction() as cur:
        for sid in new_ids:
            cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at) VALUES (?, ?, 'train', "
                        "now()::TIMESTAMP)", [sid, f"/x/{sid}.png"])
    new_vectors = _clustered(50, 32, 5, seed=9)
    embeddings.store_embeddings(catalog, "syn", "synthetic", new_ids, new_vectors)
    index_mod_staleness = staleness(catalog, emb, 100)
    assert index_mod_staleness and "3000 vectors then, 3050 now" in index_mod_staleness
    vi = open_index(catalog, emb, **monkey)
    assert vi.how_ == "updated" and vi.size == 3050 and staleness(catalog, emb, 100) is None
    got, scores = vi.search(new_vectors[7], 1)
    assert search.ids_for_keys(catalog, got) == ["n7"] and scores[0] == pytest.approx(1.0, abs=1e-4)
    # a replaced vector is not a prefix any more: rebuilt, and the new vector is found
    moved = -vectors[0]
    embeddings.store_embeddings(catalog, "syn", "synthetic", [ids[0]], moved[None, :])
    vi = open_index(catalog, emb, **monkey)
    assert vi.how_ == "built"
    got, _ = vi.search(moved, 1)
    assert search.ids_for_keys(catalog, got) == [ids[0]]
    assert SetState.of(catalog, emb).count == 3050


def test_an_index_of_another_catalog_at_the_same_path_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    with Catalog.open(path) as cat:
        _synthetic_set(cat, 300, seed=1)
        emb = embeddings.get_set(cat, "syn")
        assert open_index(cat, emb, exact_threshold=100).how_ == "built"
    path.unlink()
    with Catalog.open(path) as cat:  # the same ids and counts, other vectors
        ids, vectors = _synthetic_set(cat, 300, seed=2)
        emb = embeddings.get_set(cat, "syn")
        assert staleness(cat, emb, 100) == "built for another catalog file at this path"
        vi = open_index(cat, emb, exact_threshold=100)
        assert vi.how_ == "built"
        got, score = vi.search(vectors[0], 1)
        assert search.ids_for_keys(cat, got) == [ids[0]] and score[0] == pytest.approx(1.0, abs=1e-4)


def test_queries_by_example_never_return_the_examples(catalog: Catalog) -> None:
    ids, vectors = _synthetic_set(catalog, 500)
    emb = embeddings.get_set(catalog, "syn")
    found = search.similar(catalog, emb, like=[ids[1], ids[2]], unlike=[ids[3]], k=20)
    assert len(found) == 20 and not {ids[1], ids[2], ids[3]} & set(found["sample_id"])
    q = embeddings.normalize((vectors[1] + vectors[2])[None] / 2 - search.UNLIKE_WEIGHT * vectors[3][None])[0]
    rows, scores = exact_search(vectors, q[None], 23)
    want = [ids[r] for r in rows[0] if r not in (1, 2, 3)][:20]
    assert found["sample_id"].tolist() == want
    np.testing.assert_allclose(found["score"], np.sort(found["score"])[::-1])
    unlabeled = search.similar(catalog, emb, like=[ids[1]], k=15, flt=Filter(labeled="unlabeled"))
    labels = dict(catalog.query_rows("SELECT sample_id, label FROM samples"))
    assert len(unlabeled) == 15 and all(labels[s] is None for s in unlabeled["sample_id"])
    with pytest.raises(search.QueryError, match="'zzz' have no vector"):
        search.similar(catalog, emb, like=["zzz"])
    with pytest.raises(search.QueryError, match="needs the set's model"):
        search.similar(catalog, emb, text="a cat")
    with pytest.raises(search.QueryError, match="exactly one query"):
        search.similar(catalog, emb, like=[ids[1]], text="a cat")


def test_near_duplicates_and_outliers_from_the_index(catalog: Catalog) -> None:
    ids, vectors = _synthetic_set(catalog, 800)
    emb = embeddings.get_set(catalog, "syn")
    twin = embeddings.normalize(vectors[10][None] + 1e-4)[0]
    far = embeddings.normalize(np.random.default_rng(5).normal(size=(1, 32)))[0]
    with catalog.transaction() as cur:
        for sid in ("twin", "far"):
            cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at) VALUES (?, ?, 'train', "
                        "now()::TIMESTAMP)", [sid, f"/x/{sid}.png"])
    embeddings.store_embeddings(catalog, "syn", "synthetic", ["twin", "far"], np.vstack([twin, far]))
    for threshold in (100, 10**6):  # hnsw and exact give the same answer here
        vi = open_index(catalog, emb, exact_threshold=threshold)
        pairs = neighbors.near_duplicate_pairs(catalog, vi, 0.9999)
        assert (ids[10], "twin") in set(zip(pairs["sample_a"], pairs["sample_b"], strict=True))
        scores = neighbors.outlier_scores(catalog, vi)
        assert scores["sample_id"].iloc[0] == "far"
        assert scores["outlier_score"].is_monotonic_decreasing


def test_migration_6_upgrades_a_catalog_with_an_embedding_set(tmp_path: Path) -> None:
    path = tmp_path / "v5.duckdb"
    old = Catalog(path)
    old.migrate(target=5)
    with old.transaction("a v5 set") as cur:  # as version 5 stored a set
        for sid in ("a", "b", "c"):
            cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at) VALUES (?, ?, 'train', "
                        "now()::TIMESTAMP)", [sid, f"/x/{sid}.png"])
        cur.execute("INSERT INTO embedding_sets VALUES (nextval('embedding_set_seq'), 'old', 'cnn', 2, "
                    "'embedding_vectors_1', now()::TIMESTAMP)")
        cur.execute("CREATE TABLE embedding_vectors_1 (sample_id VARCHAR PRIMARY KEY, vector FLOAT[2] NOT NULL)")
        cur.execute("INSERT INTO embedding_vectors_1 VALUES ('a', [3, 4]), ('b', [1, 0])")
    with Catalog.open(path) as cat:
        emb = embeddings.get_set(cat, "old")
        assert emb.identity == {"kind": "unknown", "model": "cnn"} and not emb.has_text
        keys, ids, vectors = embeddings.load_vectors(cat, emb)
        assert list(ids) == ["a", "b"] and vectors[0] == pytest.approx([0.6, 0.8])  # normalized on load
        embeddings.store_embeddings(cat, "old", "cnn", ["c"], np.array([[0.0, 2.0]]))
        assert SetState.of(cat, emb).generation == 1 and SetState.of(cat, emb).catalog
        found = search.similar(cat, emb, like=["a"], k=2)
        assert found["sample_id"].tolist() == ["c", "b"]


@pytest.mark.slow
def test_a_umap_map_is_stored_reused_and_goes_stale(catalog: Catalog) -> None:
    """UMAP through the job's own function: stored per sample, the same seed gives the same map,
    and a replaced vector makes the stored map stale."""
    from al_core.embeddings import maps

    ids, vectors = _synthetic_set(catalog, 120, dim=16, seed=3)
    emb = embeddings.get_set(catalog, "syn")
    assert maps.map_status(catalog, emb, "umap") == "missing"
    run = maps.compute_map(catalog, emb, "umap", seed=1)
    assert run["n"] == 120 and maps.map_status(catalog, emb, "umap") == "current"
    points = maps.map_points(catalog, emb, "umap").set_index("sample_id").loc[ids]
    assert np.isfinite(points[["x", "y"]].to_numpy()).all()
    again = maps.umap_2d(embeddings.load_vectors(catalog, emb)[2], seed=1)
    np.testing.assert_allclose(again, points[["x", "y"]].to_numpy(), atol=1e-4)  # seeded: reproducible
    embeddings.store_embeddings(catalog, "syn", "synthetic", ids[:1], vectors[1:2])
    assert maps.map_status(catalog, emb, "umap") == "stale"
