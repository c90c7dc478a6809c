"""Importers: image folders, manifests (CSV/Parquet/JSONL), COCO classification JSON, predictions."""

from al_core.ingest.coco import ingest_coco
from al_core.ingest.folder import ingest_folder
from al_core.ingest.manifest import ImportResult, ingest_frame, ingest_manifest
from al_core.ingest.predictions import PredictionResult, import_predictions

__all__ = [
    "ImportResult",
    "PredictionResult",
    "import_predictions",
    "ingest_coco",
    "ingest_folder",
    "ingest_frame",
    "ingest_manifest",
]
