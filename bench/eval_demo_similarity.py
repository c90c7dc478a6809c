"""Demo similarity quality, measured through al_core's own search on the built demo catalog.

Relevance is judged with the true labels of all images (the catalog's labels plus the pool's
truth kept aside in ``pool_truth.csv``); neither embedding set saw the pool's truth.

- precision@10 of same-class neighbours for queries that are rare-class samples, for each set;
- precision@20 of text queries (the demo CLIP's text tower), one per class, and class x condition.

Usage: ``python3 bench/eval_demo_similarity.py [--catalog data/catalog.duckdb] [--write]``
(``--write`` puts the table into ``docs/BENCHMARKS.md``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from al_core import embeddings  # noqa: E402
from al_core.db.catalog import Catalog  # noqa: E402
from al_core.demo.build import CLIP_SET, EMBEDDING_SET  # noqa: E402
from al_core.demo.clip import CLASS_PHRASES  # noqa: E402
from al_core.demo.scenes import RARE_CLASSES  # noqa: E402
from al_core.embeddings.index import open_index  # noqa: E402
from al_core.embeddings.models import load_model, spec_from_identity  # noqa: E402
from al_core.embeddings.search import similar  # noqa: E402

CONDITION_QUERIES = (("a green traffic cone at night", "traffic_cone_green", "time_of_day", "night"),
                     ("an emergency vehicle in fog", "emergency_vehicle", "weather", "fog"),
                     ("a car at night", "car", "time_of_day", "night"),
                     ("a pedestrian in fog", "pedestrian", "weather", "fog"))


def truth_frame(cat: Catalog) -> pd.DataFrame:
    """Every sample's true label and conditions (catalog labels, else the pool's kept-aside truth)."""
    frame = cat.query_df("SELECT sample_id, label, time_of_day, weather FROM samples")
    root = Path(cat.path).resolve().parent
    truth_file = next(root.glob("demo_n*_s*/pool_truth.csv"))
    pool = pd.read_csv(truth_file).set_index("sample_id")["label"]
    frame["true_label"] = frame["label"].fillna(frame["sample_id"].map(pool))
    return frame.set_index("sample_id")


def neighbour_precision(cat: Catalog, set_name: str, truth: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """Mean share of same-class samples among the k nearest of each rare-class sample."""
    emb = embeddings.get_set(cat, set_name)
    index = open_index(cat, emb)
    out = {}
    for label in RARE_CLASSES:
        queries = truth.index[truth["true_label"] == label]
        hits = [float((truth.loc[similar(cat, emb, like=[q], k=k, index=index)["sample_id"], "true_label"]
                       == label).mean()) for q in queries]
        out[label] = float(np.mean(hits))
    return out


def text_precision(cat: Catalog, truth: pd.DataFrame, k: int = 20) -> list[tuple[str, float, int]]:
    """``(query, precision@k, relevant count)`` for one query per class and the condition queries."""
    emb = embeddings.get_set(cat, CLIP_SET)
    model = load_model(spec_from_identity(emb.identity), device="cpu")
    index = open_index(cat, emb)
    rows = []
    for label, phrase in CLASS_PHRASES.items():
        text = f"a photo of {'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"
        got = similar(cat, emb, text=text, model=model, k=k, index=index)["sample_id"]
        rel = truth["true_label"] == label
        rows.append((text, float(rel.loc[got].mean()), int(rel.sum())))
    for text, label, field, value in CONDITION_QUERIES:
        got = similar(cat, emb, text=text, model=model, k=k, index=index)["sample_id"]
        rel = (truth["true_label"] == label) & (truth[field] == value)
        rows.append((text, float(rel.loc[got].mean()), int(rel.sum())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=Path("data/catalog.duckdb"))
    args = ap.parse_args()
    with Catalog.open(args.catalog, read_only=True) as cat:
        truth = truth_frame(cat)
        print(f"demo: {len(truth):,} samples; rare-class queries: "
              + ", ".join(f"{c} {int((truth['true_label'] == c).sum())}" for c in RARE_CLASSES))
        print("\n| set | " + " | ".join(f"p@10 {c}" for c in RARE_CLASSES) + " |")
        print("|---|" + "---|" * len(RARE_CLASSES))
        for name in (EMBEDDING_SET, CLIP_SET):
            got = neighbour_precision(cat, name, truth)
            print(f"| {name} | " + " | ".join(f"{got[c]:.3f}" for c in RARE_CLASSES) + " |")
        print("\n| text query (demo CLIP) | precision@20 | relevant in the catalog |\n|---|---|---|")
        for text, p, n in text_precision(cat, truth):
            print(f"| {text} | {p:.2f} | {n} |")


if __name__ == "__main__":
    main()
