"""`al-explorer demo`: render the dataset, import it, train the baseline, import its outputs.

Every step reuses what an earlier run with the same size and seed left on disk, so a second
run is quick. The pool's true labels go to ``pool_truth.csv`` beside the images, never into
the catalog's ground truth.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from al_core.db import sql as db_sql
from al_core.db.catalog import Catalog
from al_core.demo import dataset, model
from al_core.demo.scenes import CLASS_WEIGHTS, RARE_CLASSES
from al_core.embeddings import embedding_count, find_set, store_embeddings
from al_core.embeddings.models import file_sha256
from al_core.errors import CatalogError
from al_core.ingest import ingest_manifest
from al_core.ingest import sql as ingest_sql
from al_core.ingest.predictions import import_predictions_frame

RUN_NAME = "baseline-cnn"
EMBEDDING_SET = "baseline model embeddings"
CLIP_SET = "demo CLIP"
#: Training epochs of the demo's CLIP (version in its weights' file name: a change retrains).
CLIP_EPOCHS = 20
CLIP_VERSION = 1
BUILD_VERSION = 2  # 2: the test split is curated for slice diagnostics


@dataclass
class DemoReport:
    """What the build produced and how the baseline does overall and on the long tail."""

    root: Path
    size: int
    seed: int
    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    reused: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"demo: {self.size} images, seed {self.seed}, in {self.root} ({self.seconds:.0f} s)"]
        if self.reused:
            out.append(f"demo: reused {', '.join(self.reused)} from an earlier run")
        out.append("demo: baseline accuracy on the unlabeled pool (true labels kept aside):")
        out += [f"  {k:32s} {v:6.1%}" for k, v in self.accuracy.items()]
        return out


def demo_root(catalog_path: Path, size: int, seed: int) -> Path:
    return catalog_path.resolve().parent / f"demo_n{size}_s{seed}"


def slice_accuracy(plan: pd.DataFrame, predicted: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Accuracy overall and on rare classes and conditions, over the rows in ``mask``."""
    correct = predicted == plan["true_label"].to_numpy()
    slices = {"overall": mask}
    slices["rare classes (" + ", ".join(RARE_CLASSES) + ")"] = mask & plan["true_label"].isin(RARE_CLASSES).to_numpy()
    for label in RARE_CLASSES:
        slices[f"class {label}"] = mask & (plan["true_label"] == label).to_numpy()
    for col, value in (("time_of_day", "night"), ("weather", "rain"), ("weather", "fog")):
        slices[f"{col} = {value}"] = mask & (plan[col] == value).to_numpy()
    slices["day & clear"] = mask & ((plan["time_of_day"] == "day") & (plan["weather"] == "clear")).to_numpy()
    return {name: float(correct[m].mean()) for name, m in slices.items() if m.any()}


def _check_catalog(cat: Catalog, stamp: str) -> None:
    current = cat.scalar(db_sql.get_info("demo_build"))
    if current and current != stamp:
        raise CatalogError(f"{cat.path} already holds another demo build ({current}); use "
                           "--catalog with a new file, or delete this one to rebuild.")
    if not current and cat.scalar(db_sql.COUNT_SAMPLES):
        raise CatalogError(f"{cat.path} already holds other data; build the demo into its own "
                           "catalog with --catalog data/demo.duckdb")


def _manifest_matches(manifest: Path, plan: pd.DataFrame) -> bool:
    """Whether an earlier run's manifest holds this plan's samples, splits and labels (a demo
    directory left by an older version of the plan gets a new manifest and pool truth)."""
    if not manifest.exists():
        return False
    old = pd.read_csv(manifest, usecols=["sample_id", "split", "label"], dtype=str, keep_default_na=False)
    label = plan["true_label"].where(plan["labeled"], "")
    return (len(old) == len(plan) and old["sample_id"].tolist() == plan["sample_id"].tolist()
            and old["split"].tolist() == plan["split"].tolist() and old["label"].tolist() == label.tolist())


def _images_and_manifest(plan: pd.DataFrame, root: Path, report: DemoReport, progress: bool) -> Path:
    manifest = root / "manifest.csv"
    if _manifest_matches(manifest, plan) and all(dataset.image_path(root, s).exists() for s in plan["sample_id"]):
        report.reused.append("images")
        return manifest
    brightness = dataset.write_images(plan, root, progress=progress)
    dataset.manifest_frame(plan, brightness).to_csv(manifest, index=False)
    truth = plan.loc[~plan["labeled"], ["sample_id", "true_label"]].rename(columns={"true_label": "label"})
    truth.to_csv(root / "pool_truth.csv", index=False)
    return manifest


def _baseline(plan: pd.DataFrame, root: Path, seed: int, report: DemoReport, progress: bool,
              epochs: int) -> tuple[model.SmallCNN, list[str]]:
    # named by the train split too, so weights trained on another plan's split are never reused
    train_key = hashlib.sha1(" ".join(plan.loc[plan["split"] == "train", "sample_id"]).encode()).hexdigest()[:10]
    weights = root / f"baseline_e{epochs}_{train_key}.pt"
    if weights.exists():
        report.reused.append("the trained baseline")
        return model.load(weights)
    classes = list(CLASS_WEIGHTS)
    train_rows = plan[plan["split"] == "train"]
    images = model.load_images([dataset.image_path(root, s) for s in train_rows["sample_id"]])
    labels = train_rows["true_label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    net = model.train(images, labels, len(classes), seed=seed, epochs=epochs, progress=progress)
    model.save(net, weights, classes)
    return net, classes


def _demo_clip(plan: pd.DataFrame, root: Path, seed: int, report: DemoReport, progress: bool,
               epochs: int) -> tuple[Path, Path]:
    """The demo's CLIP (model config, weights), trained on the labeled train and val images only,
    with captions from their labels and conditions: the pool's truth never enters it."""
    from al_core.demo import clip

    config = clip.write_config(root)
    rows = plan[plan["split"].isin(["train", "val"])]
    key = hashlib.sha1((" ".join(rows["sample_id"]) + " ".join(rows["true_label"])).encode()).hexdigest()[:10]
    weights = root / f"demo_clip_v{CLIP_VERSION}_e{epochs}_{key}.pt"
    if weights.exists():
        report.reused.append("the trained demo CLIP")
        return config, weights
    images = model.load_images([dataset.image_path(root, s) for s in rows["sample_id"]])
    captions = [clip.caption(r.true_label, r.time_of_day, r.weather, variant=i)
                for i, r in enumerate(rows.itertuples(index=False))]
    clip.save(clip.train(images, captions, seed=seed, epochs=epochs, progress=progress), weights)
    return config, weights


def _embed_with_clip(cat: Catalog, config: Path, weights: Path, progress: bool) -> None:
    """Embed the demo through the same job (and loading path) as any pretrained open_clip model."""
    from al_core.demo import clip
    from al_core.embeddings.job import embed_catalog
    from al_core.embeddings.models import ModelSpec

    spec = ModelSpec(arch=clip.ARCH, weights=weights, model_config=config)
    existing = find_set(cat, CLIP_SET)
    if existing is not None and existing.identity.get("weights_sha256") != file_sha256(weights):
        raise CatalogError(f"{cat.path} holds a {CLIP_SET!r} set of other weights than {weights}; "
                           "build the demo into a new catalog (--catalog) or delete this one")
    embed_catalog(cat, spec, CLIP_SET, batch_size=256, progress=progress)


def build_demo(catalog_path: Path, *, size: int = 5000, seed: int = 0, epochs: int = 12,
               clip_epochs: int = CLIP_EPOCHS, progress: bool = True, echo: bool = True) -> DemoReport:
    """Build (or reuse) the demo dataset, catalog, baseline predictions and embeddings, and the
    demo CLIP's embedding set (text search on the demo)."""
    t0 = time.perf_counter()
    root = demo_root(catalog_path, size, seed)
    root.mkdir(parents=True, exist_ok=True)
    report = DemoReport(root=root, size=size, seed=seed)
    stamp = json.dumps({"size": size, "seed": seed, "epochs": epochs, "v": BUILD_VERSION})
    plan = dataset.plan_dataset(size, seed)
    with Catalog.open(catalog_path) as cat:
        _check_catalog(cat, stamp)
        manifest = _images_and_manifest(plan, root, report, progress)
        ingest_manifest(cat, manifest, label_source="demo ground truth", progress=progress)
        net, classes = _baseline(plan, root, seed, report, progress, epochs)
        if cat.scalar(ingest_sql.count_predictions(RUN_NAME)) == size and embedding_count(
                cat, EMBEDDING_SET) == size:
            report.reused.append("predictions and embeddings")
            probs = cat.query_df(ingest_sql.predicted_labels(RUN_NAME))
            predicted = plan[["sample_id"]].merge(probs, on="sample_id")["pred_label"].to_numpy()
        else:
            paths = [dataset.image_path(root, s) for s in plan["sample_id"]]
            probs_arr, feats = model.predict(net, paths, progress=progress)
            frame = pd.DataFrame({"sample_id": plan["sample_id"], "probs": list(probs_arr)})
            import_predictions_frame(cat, frame, RUN_NAME, source="demo baseline", classes=classes)
            store_embeddings(cat, EMBEDDING_SET, f"al-explorer demo SmallCNN (seed {seed}, "
                             f"{epochs} epochs), penultimate layer", plan["sample_id"].tolist(), feats)
            predicted = np.array(classes)[probs_arr.argmax(axis=1)]
        config, weights = _demo_clip(plan, root, seed, report, progress, clip_epochs)
        _embed_with_clip(cat, config, weights, progress)
        if cat.scalar(db_sql.get_info("demo_build")) != stamp:
            with cat.transaction("record the demo build") as cur:
                cur.execute(*db_sql.set_info("demo_build", stamp))
    report.accuracy = slice_accuracy(plan, predicted, ~plan["labeled"].to_numpy())
    report.seconds = time.perf_counter() - t0
    if echo:
        print("\n".join(report.lines()), flush=True)
    return report
