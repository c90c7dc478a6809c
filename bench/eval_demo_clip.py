"""Train (or load) the demo CLIP and measure text search and rare-class neighbours on the 5,000-image demo."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from al_core.demo import clip as demo_clip  # noqa: E402
from al_core.demo.model import load_images  # noqa: E402
from al_core.demo.scenes import RARE_CLASSES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "data" / "demo_n5000_s0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--weights", type=Path, help="load these weights instead of training")
    ap.add_argument("--save", type=Path, help="save trained weights (and the config beside them) here")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    manifest = pd.read_csv(args.root / "manifest.csv")
    truth = pd.read_csv(args.root / "pool_truth.csv").set_index("sample_id")["label"]
    manifest["true_label"] = manifest["label"].fillna(manifest["sample_id"].map(truth))
    assert manifest["true_label"].notna().all()
    paths = [args.root / p for p in manifest["path"]]

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            fit = manifest[manifest["split"].isin(["train", "val"]) & manifest["label"].notna()]
            caps = [demo_clip.caption(r.label, r.time_of_day, r.weather, variant=i) for i, r in enumerate(fit.itertuples())]
            images = load_images([args.root / p for p in fit["path"]])
            t0 = time.perf_counter()
            model = demo_clip.train(images, caps, seed=args.seed, epochs=args.epochs)
            print(f"trained on {len(fit)} images, {len(set(caps))} distinct captions, "
                  f"{args.epochs} epochs: {time.perf_counter() - t0:.1f} s wall "
                  f"({torch.get_num_threads()} threads)")
            weights = args.save or Path(tmp) / "weights.pt"
            demo_clip.save(model, weights)
        config = demo_clip.write_config(weights.parent if args.save or args.weights else Path(tmp))
        # load exactly as the repo's generic loader does
        open_clip.add_model_config(config)
        model, _, preprocess = open_clip.create_model_and_transforms(demo_clip.ARCH, pretrained=str(weights))
        tokenizer = open_clip.get_tokenizer(demo_clip.ARCH)
    model.eval()

    t0 = time.perf_counter()
    with torch.no_grad():
        feats = []
        for start in range(0, len(paths), 500):
            batch = torch.stack([preprocess(Image.open(p)) for p in paths[start:start + 500]])
            feats.append(torch.nn.functional.normalize(model.encode_image(batch), dim=-1))
        emb = torch.cat(feats).numpy()
        # the training pipeline's normalization gives the same vectors as preprocess
        check = torch.nn.functional.normalize(model.encode_image(demo_clip._normalize(
            load_images(paths[:64]))), dim=-1).numpy()
    print(f"embedded {len(paths)} images in {time.perf_counter() - t0:.1f} s; "
          f"min cosine(train pipeline, preprocess) = {(check * emb[:64]).sum(1).min():.6f}")

    labels = manifest["true_label"].to_numpy()
    night = (manifest["time_of_day"] == "night").to_numpy()
    fog = (manifest["weather"] == "fog").to_numpy()

    def text_p20(query: str, relevant: np.ndarray) -> float:
        with torch.no_grad():
            t = torch.nn.functional.normalize(model.encode_text(tokenizer([query])), dim=-1).numpy()[0]
        top = np.argsort(-(emb @ t), kind="stable")[:20]
        return float(relevant[top].mean())

    print("\ntext precision@20 (relevance from true labels over all 5,000 images)")
    queries = [(f"a photo of {'an' if p[0] in 'aeiou' else 'a'} {p}", labels == c)
               for c, p in demo_clip.CLASS_PHRASES.items()]
    queries += [("an emergency vehicle", labels == "emergency_vehicle"),
                ("a green traffic cone", labels == "traffic_cone_green"),
                ("a green traffic cone at night", (labels == "traffic_cone_green") & night),
                ("an emergency vehicle in fog", (labels == "emergency_vehicle") & fog),
                ("a car at night", (labels == "car") & night),
                ("a pedestrian in fog", (labels == "pedestrian") & fog)]
    for query, relevant in queries:
        print(f"  {text_p20(query, relevant):.2f}  {query!r} ({int(relevant.sum())} relevant)")

    print("\nimage neighbours: precision@10 of same-class neighbours for rare-class queries")
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    for cls in RARE_CLASSES:
        q = np.flatnonzero(labels == cls)
        nn_idx = np.argsort(-sims[q], axis=1, kind="stable")[:, :10]
        print(f"  {float((labels[nn_idx] == cls).mean()):.3f}  {cls} ({len(q)} queries)")
    q = np.flatnonzero(np.isin(labels, RARE_CLASSES))
    nn_idx = np.argsort(-sims[q], axis=1, kind="stable")[:, :10]
    print(f"  {float((labels[nn_idx] == labels[q][:, None]).mean()):.3f}  all rare ({len(q)} queries)")


if __name__ == "__main__":
    main()
