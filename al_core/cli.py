"""The `al-explorer` command: demo, ingest, import-predictions, info, select, report, quality,
embed, import-embeddings, similar, export, batches, import-labels, conflicts and serve."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from al_core import __version__
from al_core.db import sql as db_sql
from al_core.db.catalog import ENV_CATALOG, Catalog, resolve_catalog_path
from al_core.embeddings.models import DEFAULT_ARCH, DEFAULT_PRETRAINED
from al_core.embeddings.search import UNLIKE_WEIGHT
from al_core.errors import AlExplorerError, CatalogError
from al_core.export.formats import WRITERS
from al_core.strategies.recipes import NAMES as STRATEGY_NAMES

EXPORT_FORMATS = tuple(WRITERS)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
APP_FILE = Path(__file__).resolve().parent.parent / "app.py"
STOP_GRACE_S = 10.0  # how long a stopped app may take to exit before it is killed
SIGHUP = getattr(signal, "SIGHUP", None)
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE
EXIT_INTERRUPTED = 128 + 2  # ... and by SIGINT


def _add_catalog(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", help=f"catalog file (default: ${ENV_CATALOG} or data/catalog.duckdb)")


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="al-explorer", description=__doc__)
    parser.add_argument("--version", action="version", version=f"al-explorer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build the demo catalog (images, labels, a trained model) and serve the app")
    _add_catalog(demo)
    _add_serve(demo)
    demo.add_argument("--size", type=int, default=5000, help="number of images (default 5000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-serve", action="store_true", help="build only, do not start the app")

    ingest = sub.add_parser("ingest", help="import images: a folder, a manifest (csv/parquet/jsonl) or COCO json")
    _add_catalog(ingest)
    ingest.add_argument("source", help="image folder, manifest file or COCO classification JSON")
    ingest.add_argument("--kind", choices=["auto", "folder", "manifest", "coco"], default="auto")
    ingest.add_argument("--path-column")
    ingest.add_argument("--id-column")
    ingest.add_argument("--label-column")
    ingest.add_argument("--split-column")
    ingest.add_argument("--split", help="split for every image of a COCO file")
    ingest.add_argument("--image-root", help="folder COCO file names are relative to")
    ingest.add_argument("--label-source", help="who labeled (recorded in label history)")
    ingest.add_argument("--batch-id", type=int, help="export batch these labels answer (label history)")
    ingest.add_argument("--no-probe", action="store_true",
                        help="do not open images (no size/hash/quality signals, no existence check)")
    ingest.add_argument("--skip-bad-images", action="store_true",
                        help="import the rest when some images are missing or corrupt (they are listed)")
    ingest.add_argument("--no-progress", action="store_true")

    preds = sub.add_parser("import-predictions", help="import a model run's predictions")
    _add_catalog(preds)
    preds.add_argument("source", help="predictions file (csv/parquet/jsonl)")
    preds.add_argument("--run", required=True, help="model run name")
    preds.add_argument("--classes", help="class names in order, comma-separated")
    preds.add_argument("--id-column")
    preds.add_argument("--no-progress", action="store_true", help="accepted for symmetry with ingest")
    preds.add_argument("--tolerance", type=float, default=1e-3,
                       help="allowed |sum(probs) - 1| (default 1e-3)")

    info = sub.add_parser("info", help="show what the catalog holds")
    _add_catalog(info)
    info.add_argument("--read-only", action="store_true")

    select = sub.add_parser(
        "select", help="list, count, tag or batch the samples an app URL's filter selects",
        description="QUERY is an app URL or its query string, e.g. 'f.time_of_day=night&outcome=wrong' "
                    "(the filter the app puts in its address bar; empty: every sample).")
    _add_catalog(select)
    select.add_argument("query", nargs="?", default="", help="app URL or query string")
    select.add_argument("--count", action="store_true", help="print only how many match")
    select.add_argument("--limit", type=int, help="list at most this many ids")
    group = select.add_mutually_exclusive_group()
    group.add_argument("--tag", metavar="NAME", help="give every match the tag NAME")
    group.add_argument("--untag", metavar="NAME", help="take the tag NAME off every match")
    group.add_argument("--add-to-batch", action="store_true", help="add every match to the next batch")
    group.add_argument("--remove-from-batch", action="store_true",
                       help="take every match out of the next batch")
    group.add_argument("--undo-tag", action="store_true",
                       help="undo the newest tag action (takes no QUERY)")
    select.add_argument("--force", action="store_true",
                        help="write even though part of QUERY was ignored (a wider selection)")

    report = sub.add_parser(
        "report", help="a model run against the ground truth: metrics, confusion, worst slices, label issues",
        description="Evaluate a model run on the labeled samples (of one split) it predicted.")
    _add_catalog(report)
    report.add_argument("--run", required=True, help="model run name")
    report.add_argument("--split", help="evaluate on this split only (default: every labeled sample)")
    report.add_argument("--compare", metavar="OTHER", help="also compare with this other run")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.add_argument("--min-n", type=int, default=30,
                        help="smallest slice listed among the worst slices (default 30)")

    quality = sub.add_parser(
        "quality", help="image-quality flags (dark, blurry, duplicates...): counts, thresholds, recompute",
        description="Print how many samples each image-quality flag marks. Flags come from "
                    "signals measured at ingest; changing a threshold re-flags without reading images.")
    _add_catalog(quality)
    quality.add_argument("--recompute", action="store_true",
                         help="measure the signals of samples that have none (ingested with "
                              "--no-probe or by an older al-explorer); resumable")
    quality.add_argument("--set", action="append", default=[], metavar="FLAG=VALUE",
                         help="change a flag's threshold (repeatable), stored in the catalog")
    quality.add_argument("--reset", action="store_true", help="restore the default thresholds")
    quality.add_argument("--json", action="store_true",
                         help="print one JSON object: counts, flagged ids, duplicate sets")

    embed = sub.add_parser(
        "embed", help="embed the catalog's images with an open_clip model (resumable)",
        description="Embed every local image not yet in the set with an open_clip image encoder: a "
                    "named architecture with a pretrained tag (downloaded or from the cache), or a "
                    "local weights file. Vectors are committed in chunks: run it again to resume.")
    _add_catalog(embed)
    embed.add_argument("--model", default=DEFAULT_ARCH, metavar="ARCH",
                       help=f"open_clip architecture (default {DEFAULT_ARCH})")
    source = embed.add_mutually_exclusive_group()
    source.add_argument("--pretrained", metavar="TAG",
                        help=f"open_clip pretrained tag (default {DEFAULT_PRETRAINED} when no --weights)")
    source.add_argument("--weights", metavar="FILE", help="local checkpoint file of the architecture")
    embed.add_argument("--model-config", metavar="FILE",
                       help="open_clip model-config JSON of a custom architecture (file stem = ARCH)")
    embed.add_argument("--cache-dir", metavar="DIR", help="where pretrained weights are cached")
    embed.add_argument("--set", metavar="NAME", help="embedding set name (default: ARCH and tag or file)")
    embed.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--workers", type=int, help="image decoding threads (default: min(8, cores))")
    embed.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                       help="CPU only: auto uses bf16 if it matches fp32 (cosine >= 0.99) and is faster")
    embed.add_argument("--no-progress", action="store_true")

    imp = sub.add_parser("import-embeddings", help="import precomputed vectors (Parquet or .npz) as a set")
    _add_catalog(imp)
    imp.add_argument("source", help="Parquet (sample_id, vector list) or .npz (ids, vectors)")
    imp.add_argument("--set", required=True, metavar="NAME", help="embedding set name")
    imp.add_argument("--model", metavar="TEXT", help="what made the vectors (kept with the set)")

    similar = sub.add_parser(
        "similar", help="nearest samples in an embedding set, by example, text or image",
        description="Print the samples nearest a query (cosine similarity, best first), never the "
                    f"query samples themselves. Several --like average their vectors; --unlike "
                    f"subtracts {UNLIKE_WEIGHT} x the mean of theirs.")
    _add_catalog(similar)
    similar.add_argument("--set", required=True, metavar="NAME", help="embedding set name")
    query = similar.add_mutually_exclusive_group(required=True)
    query.add_argument("--like", nargs="+", metavar="ID", help="example sample id(s)")
    query.add_argument("--text", help="a text prompt (sets made with a text tower)")
    query.add_argument("--image", metavar="FILE", help="an image file")
    similar.add_argument("--unlike", nargs="+", default=[], metavar="ID", help="negative example id(s)")
    similar.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    similar.add_argument("--split", help="only samples of this split")
    similar.add_argument("--unlabeled", action="store_true", help="only unlabeled samples")
    similar.add_argument("--json", action="store_true", help='print [{"sample_id", "score"}, ...]')

    export = sub.add_parser(
        "export", help="pick the next labeling batch with a strategy or recipe and write it for a provider",
        description="Create a batch (recorded in the catalog) and write it: --out is the main file; "
                    "companions go beside it with the same stem (Label Studio's .config.xml, "
                    "Labelbox's .predictions.ndjson). --batch-id re-exports a recorded batch.")
    _add_catalog(export)
    how = export.add_mutually_exclusive_group(required=True)
    how.add_argument("--strategy", choices=STRATEGY_NAMES, metavar="NAME",
                     help=f"one strategy for the whole budget: {', '.join(STRATEGY_NAMES)}")
    how.add_argument("--recipe", metavar="FILE.toml", help="a recipe: parts with shares and parameters")
    how.add_argument("--draft", action="store_true", help="the hand-picked next batch (the app's cart)")
    how.add_argument("--batch-id", type=int, metavar="ID", help="re-export a recorded batch")
    export.add_argument("--budget", type=int, help="how many samples to pick")
    export.add_argument("--run", metavar="NAME", help="model run (default: the newest)")
    export.add_argument("--set", metavar="NAME", help="embedding set (diversity, seeded, de-duplication)")
    export.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("--out", required=True, metavar="PATH", help="main output file")
    export.add_argument("--image-prefix", metavar="URL",
                        help="images as URL + their path below the imported folder (or file:// for "
                             "file URIs); default: absolute paths")

    batches = sub.add_parser("batches", help="list exported batches, or mark one sent/labeled/cancelled")
    _add_catalog(batches)
    batches.add_argument("--json", action="store_true", help="print a JSON list")
    batches.add_argument("--mark", nargs=2, metavar=("ID", "STATUS"),
                         help="set a batch's status: sent, labeled or cancelled (frees its samples)")

    labels = sub.add_parser(
        "import-labels", help="bring labels back from a labeling provider (Label Studio, Labelbox, CVAT, CSV)",
        description="New labels are applied with their batch and annotator; a label that disagrees "
                    "with the current one is kept as a conflict for review (al-explorer conflicts) "
                    "unless --on-conflict replace. Unknown ids or classes: nothing is imported.")
    _add_catalog(labels)
    labels.add_argument("file", help="Label Studio JSON export, Labelbox NDJSON export, CVAT XML, or CSV "
                                     "(sample_id, label[, annotator])")
    labels.add_argument("--format", default="auto", choices=("auto", "label-studio", "labelbox", "cvat", "csv"))
    labels.add_argument("--on-conflict", default="keep", choices=("keep", "replace"))

    conflicts = sub.add_parser("conflicts", help="returned labels that disagree with the current one")
    _add_catalog(conflicts)
    decide = conflicts.add_mutually_exclusive_group()
    decide.add_argument("--accept", type=int, metavar="SEQ", help="make that returned label current")
    decide.add_argument("--reject", type=int, metavar="SEQ", help="keep the current label")
    conflicts.add_argument("--json", action="store_true", help="print a JSON list")

    serve = sub.add_parser("serve", help="serve the app on an existing catalog")
    _add_catalog(serve)
    _add_serve(serve)
    return parser


def cmd_ingest(args: argparse.Namespace) -> int:
    from al_core import quality
    from al_core.ingest import ingest_coco, ingest_folder, ingest_manifest

    source = Path(args.source)
    kind = args.kind
    if kind == "auto":
        kind = "folder" if source.is_dir() else "coco" if source.suffix.lower() == ".json" else "manifest"
    options = {"probe": not args.no_probe, "skip_bad_images": args.skip_bad_images,
               "label_source": args.label_source, "batch_id": args.batch_id,
               "progress": not args.no_progress}
    with Catalog.open(args.catalog) as cat:
        if kind == "folder":
            result = ingest_folder(cat, source, **options)
        elif kind == "coco":
            result = ingest_coco(cat, source, image_root=args.image_root, split=args.split, **options)
        else:
            result = ingest_manifest(cat, source, path_column=args.path_column,
                                     id_column=args.id_column, label_column=args.label_column,
                                     split_column=args.split_column, **options)
        missing = quality.missing_count(cat) if args.no_probe else 0
    print(result.summary())
    if missing:
        print(f"{missing:,} sample(s) have no image-quality signals (--no-probe); measure them with "
              "`al-explorer quality --recompute`", file=sys.stderr)
    return 0


def cmd_import_predictions(args: argparse.Namespace) -> int:
    from al_core.ingest import import_predictions

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    with Catalog.open(args.catalog) as cat:
        result = import_predictions(cat, args.source, args.run, classes=classes,
                                    id_column=args.id_column, tolerance=args.tolerance)
    print(result.summary())
    return 0


def existing_catalog(value: str | None) -> Path:
    """The catalog path a command names (or the default), which must exist already."""
    path = resolve_catalog_path(value)
    if not path.exists():
        raise CatalogError(f"The catalog {path} does not exist. Run `al-explorer demo` or "
                           "`al-explorer ingest ...` to create it.")
    return path


def cmd_info(args: argparse.Namespace) -> int:
    path = existing_catalog(args.catalog)  # a look must not create a catalog where a path was mistyped
    with Catalog.open(path, read_only=args.read_only) as cat:
        counts = cat.query_df(db_sql.CATALOG_COUNTS).iloc[0].to_dict()
        print(f"catalog {cat.path} (schema v{cat.schema_version()}, data version {cat.data_version()})")
        for key, value in counts.items():
            print(f"  {key:15s} {value}")
        fields = cat.metadata_fields()
        if fields:
            print("  metadata       " + ", ".join(f"{k} ({v})" for k, v in fields.items()))
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from al_core import curation, view

    path = existing_catalog(args.catalog)
    writes = args.tag is not None or args.untag is not None or args.add_to_batch or args.remove_from_batch
    if (writes or args.undo_tag) and (args.count or args.limit is not None):
        raise CatalogError("--count and --limit only go with listing, not with a write")
    if args.undo_tag and args.query:
        raise CatalogError("--undo-tag takes no QUERY: it undoes the newest tag action")
    cat = Catalog.open(path)
    if args.undo_tag:
        last = curation.last_tag_action(cat)
        if last is None:
            raise curation.CurationError("There is no tag action to undo.")
        print(f"undone: {curation.undo_tag_action(cat, last.action_id).describe()}")
        return 0
    flt, ignored = view.filter_from_link(cat, args.query)
    for key in ignored:
        print(f"al-explorer: note: ignored {key} in the query", file=sys.stderr)
    if ignored and writes and not args.force:
        raise CatalogError("nothing was written: part of the query was ignored (see the notes above), "
                           "so it would select more than it says; fix it, or pass --force")
    selection = curation.Selection.of_filter(flt)
    if args.tag is not None or args.untag is not None:
        action = (curation.tag(cat, args.tag, selection) if args.tag is not None
                  else curation.untag(cat, args.untag, selection))
        print(action.describe())
    elif args.add_to_batch:
        n = curation.add_to_batch(cat, selection)
        print(f"added {n} samples to the next batch (now {curation.draft_size(cat)})")
    elif args.remove_from_batch:
        n = curation.remove_from_batch(cat, selection)
        print(f"removed {n} samples from the next batch (now {curation.draft_size(cat)})")
    elif args.count:
        print(view.count_filtered(cat, flt, flt.run))
    else:
        if args.limit is not None and args.limit < 0:
            raise CatalogError("--limit must be 0 or more")
        for sample_id in view.filtered_ids(cat, flt, args.limit):
            print(sample_id)
    return 0


def _report_text(rep: dict) -> str:
    """The report as a short readable text (the same numbers as ``--json``)."""
    def num(value: float | None, digits: int = 4) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [f"run {rep['run']!r}: {rep['n']:,} labeled samples evaluated",
             f"  accuracy {num(rep['accuracy'])}  balanced accuracy {num(rep['balanced_accuracy'])}  "
             f"log loss {num(rep['log_loss'])}  top-2 accuracy {num(rep['top2_accuracy'])}  "
             f"ECE {num(rep['ece'])}"]
    for name in ("macro", "weighted"):
        avg = rep[name]
        lines.append(f"  {name:9s} precision {num(avg['precision'])}  recall {num(avg['recall'])}  "
                     f"f1 {num(avg['f1'])}")
    width = max([5, *(len(c) for c in rep["classes"])])
    lines.append("")
    lines.append(f"  {'class':{width}s}  precision  recall     f1  support")
    for name, m in rep["per_class"].items():
        lines.append(f"  {name:{width}s}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:.4f}  "
                     f"{m['support']:7,}")
    lines.append("")
    lines.append("  confusion (rows truth, columns prediction, in the order above):")
    for name, row in zip(rep["classes"], rep["confusion"], strict=True):
        lines.append(f"  {name:{width}s}  " + " ".join(f"{v:6d}" for v in row))
    lines.append("")
    if rep["worst_slices"]:
        lines.append("  worst slices (accuracy, 95% interval):")
        for sl in rep["worst_slices"]:
            lines.append(f"    {sl['field']} = {sl['value']}: {sl['accuracy']:.4f} "
                         f"[{sl['ci_low']:.4f}, {sl['ci_high']:.4f}], n {sl['n']:,}")
    else:
        lines.append("  worst slices: none large enough")
    issues = rep["label_issues"]
    shown = ", ".join(issues[:10]) + (" ..." if len(issues) > 10 else "")
    lines.append(f"  label issues ({len(issues)} listed, likeliest first): {shown or 'none'}")
    if "compare" in rep:
        c = rep["compare"]
        lines.append(f"  against {c['run']!r}: fixed {c['fixed']:,}, broken {c['broken']:,}, "
                     f"accuracy {c['accuracy_delta']:+.4f}")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from al_core import diagnostics

    path = existing_catalog(args.catalog)
    if args.min_n < 1:
        raise diagnostics.DiagnosticsError(f"--min-n must be 1 or more, not {args.min_n}")
    with Catalog.open(path) as cat:
        rep = diagnostics.report(cat, args.run, split=args.split, compare=args.compare,
                                 min_n=args.min_n)
    print(json.dumps(rep) if args.json else _report_text(rep))
    return 0


def _threshold_changes(pairs: list[str]) -> dict[str, str]:
    from al_core.quality import QualityError

    changes = {}
    for pair in pairs:
        flag, sep, value = pair.partition("=")
        if not sep or not flag.strip():
            raise QualityError(f"--set expects FLAG=VALUE (e.g. dark=0.3), got {pair!r}")
        changes[flag.strip()] = value.strip()
    return changes


def _quality_text(rep: dict) -> str:
    from al_core.quality import FLAG_INFO

    lines = [f"{'flag':18s} {'samples':>8s}  threshold  rule"]
    for flag, n in rep["counts"].items():
        value = rep["thresholds"].get(flag) if flag != "exact_duplicate" else None
        shown = "" if value is None else f"{value:g}"
        lines.append(f"{flag:18s} {n:8,d}  {shown:>9s}  {FLAG_INFO[flag].rule}")
    sets = rep["duplicate_sets"]
    for kind in ("exact", "near"):
        mine = [s["sample_ids"] for s in sets if s["kind"] == kind]
        lines.append(f"{kind} duplicate sets: {len(mine):,}"
                     + (f" (largest: {', '.join(mine[0][:5])}{' ...' if len(mine[0]) > 5 else ''})"
                        if mine else ""))
    if rep["missing_signals"]:
        lines.append(f"{rep['missing_signals']:,} sample(s) have no signals (ingested with --no-probe "
                     "or by an older al-explorer): run `al-explorer quality --recompute`")
    return "\n".join(lines)


def cmd_quality(args: argparse.Namespace) -> int:
    import json

    from al_core import quality

    path = existing_catalog(args.catalog)
    changes = quality.checked_thresholds(_threshold_changes(args.set))  # before any long recompute
    with Catalog.open(path) as cat:
        if args.recompute:
            measured, problems = quality.recompute(cat, progress=not args.json)
            print(f"measured {measured:,} image(s); {len(problems):,} skipped", file=sys.stderr)
            for problem in problems[:20]:
                print(f"  {problem}", file=sys.stderr)
        if changes or args.reset:
            quality.set_thresholds(cat, changes, reset=args.reset)
        rep = quality.report(cat)
    print(json.dumps(rep) if args.json else _quality_text(rep))
    return 0


def serve(catalog: Path, host: str, port: int) -> int:
    """Run the Streamlit app on ``catalog`` in the foreground until it exits or is stopped."""
    env = dict(os.environ, **{ENV_CATALOG: str(catalog.resolve()),
                              "AL_EXPLORER_URL": f"http://{host}:{port}"})
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_FILE),
           "--server.address", host, "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal",  # a product, not a dev server: no Deploy button
           "--server.maxUploadSize", "20"]  # MB: a query image; refused before it is buffered
    print(f"al-explorer: serving {catalog} at http://{host}:{port} (Ctrl+C to stop)", flush=True)
    return run_foreground(cmd, env)


def _stop_signals() -> list[signal.Signals]:
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def _run_foreground_console(cmd: Sequence[str], env: dict[str, str] | None,
                            grace_s: float) -> int:
    """Windows: no process groups to manage; the console's Ctrl+C reaches the child itself."""
    child = subprocess.Popen(cmd, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return EXIT_INTERRUPTED


def run_foreground(cmd: Sequence[str], env: dict[str, str] | None = None,
                   grace_s: float = STOP_GRACE_S) -> int:
    """Run ``cmd`` as a child until it exits; SIGINT, SIGTERM and SIGHUP stop it too.

    On POSIX the child gets its own process group, so a terminal's Ctrl+C reaches only this
    process, which passes it on exactly once. A stop signal is forwarded to the child's group
    (SIGHUP as SIGTERM: Streamlit shuts down cleanly on SIGINT/SIGTERM only); if the child has
    not exited ``grace_s`` seconds later, its group is killed. Returns the child's exit status,
    or 128 + the signal number when a signal stopped it, as a shell would report it.
    """
    if os.name != "posix":
        return _run_foreground_console(cmd, env, grace_s)
    received: list[int] = []
    proc: subprocess.Popen[bytes] | None = None

    def forward(signum: int) -> None:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM if signum == SIGHUP else signum)

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        forward(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in _stop_signals()}
    try:
        proc = subprocess.Popen(cmd, env=env, process_group=0)
        for signum in received:  # arrived while the child was being started
            forward(signum)
        deadline: float | None = None
        while True:
            try:
                status = proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if received and deadline is None:
                    deadline = time.monotonic() + grace_s
                if deadline is not None and time.monotonic() >= deadline:
                    print(f"al-explorer: the app did not stop within {grace_s:g} s; killing it",
                          file=sys.stderr, flush=True)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    status = proc.wait()
                    break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the child left in its group goes too
    finally:
        if proc is not None and proc.returncode is None:  # unexpected error here: leave nothing
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return 128 + received[0]
    return status if status >= 0 else 128 - status


def cmd_embed(args: argparse.Namespace) -> int:
    from al_core.embeddings.job import embed_catalog
    from al_core.embeddings.models import ModelSpec

    path = existing_catalog(args.catalog)
    if args.batch_size < 1:
        raise CatalogError("--batch-size must be at least 1")
    if args.model_config and not (args.weights or args.pretrained):
        raise CatalogError("--model-config describes an architecture, not its weights: add "
                           "--weights FILE (or --pretrained TAG)")
    pretrained = args.pretrained or (None if args.weights else DEFAULT_PRETRAINED)
    spec = ModelSpec(arch=args.model, pretrained=pretrained,
                     weights=Path(args.weights) if args.weights else None,
                     model_config=Path(args.model_config) if args.model_config else None,
                     cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    with Catalog.open(path) as cat:
        report = embed_catalog(cat, spec, args.set, device=args.device, batch_size=args.batch_size,
                               workers=args.workers, precision=args.precision,
                               progress=not args.no_progress)
    print("\n".join(report.lines()))
    return 0


def cmd_import_embeddings(args: argparse.Namespace) -> int:
    from al_core.embeddings import import_embeddings

    path = existing_catalog(args.catalog)
    with Catalog.open(path) as cat:
        n = import_embeddings(cat, Path(args.source), args.set, model=args.model)
    print(f"imported {n:,} vectors into set {args.set!r} (L2-normalized)")
    return 0


def _open_image_arg(value: str, size: int):
    from al_core.embeddings.uploads import decode_upload

    file = Path(value)
    if not file.is_file():
        raise CatalogError(f"--image {file}: file not found")
    return decode_upload(file.read_bytes(), file.name, draft_size=size)


def cmd_similar(args: argparse.Namespace) -> int:
    from al_core.embeddings import get_set
    from al_core.embeddings.models import load_model, spec_from_identity
    from al_core.embeddings.search import similar
    from al_core.view.filters import Filter

    path = existing_catalog(args.catalog)
    if args.unlike and not args.like:
        raise CatalogError("--unlike goes with --like")
    with Catalog.open(path, read_only=True) as cat:
        emb = get_set(cat, args.set)
        model = None
        if args.text is not None or args.image:
            model = load_model(spec_from_identity(emb.identity), device="auto")
        image = _open_image_arg(args.image, model.image_size) if args.image else None
        flt = Filter(splits=(args.split,) if args.split else (),
                     labeled="unlabeled" if args.unlabeled else "all")
        found = similar(cat, emb, like=args.like or (), unlike=args.unlike, text=args.text,
                        image=image, model=model, k=args.k, flt=flt)
    rows = found.to_dict("records")
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['score']:.4f}  {row['sample_id']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from al_core import export, view
    from al_core.strategies.recipes import Recipe, select_batch

    path = existing_catalog(args.catalog)
    out = Path(args.out)
    with Catalog.open(path) as cat:
        if args.batch_id is not None:
            batch = export.get_batch(cat, args.batch_id)
        else:
            if args.budget is None:
                raise CatalogError("--budget N is needed to pick a new batch (or --batch-id to re-export)")
            if args.budget < 1:
                raise CatalogError(f"--budget must be at least 1, not {args.budget}")
            if args.recipe:
                recipe_path = Path(args.recipe)
                if not recipe_path.is_file():
                    raise CatalogError(f"--recipe {recipe_path}: no such file")
                recipe = Recipe.from_toml(recipe_path.read_text(encoding="utf-8"), str(recipe_path))
            else:
                recipe = Recipe.single("draft" if args.draft else args.strategy)
            runs = view.list_runs(cat)
            if args.run is not None and args.run not in runs:
                raise CatalogError(f"no model run {args.run!r}; runs: {', '.join(runs) or 'none'}")
            run = runs[args.run][0] if args.run else (next(iter(runs.values()))[0] if runs else None)
            picked = select_batch(cat, recipe, args.budget, run=run, set_name=args.set, seed=args.seed)
            batch_id = export.create_batch(cat, picked, recipe=recipe, budget=args.budget, seed=args.seed,
                                           run=run, set_name=args.set, fmt=args.format,
                                           image_prefix=args.image_prefix)
            batch = export.get_batch(cat, batch_id)
        written = export.write(batch, args.format, out, args.image_prefix)
    print(f"batch {batch.batch_id}: {len(batch.items)} samples ({batch.strategy}) -> "
          + ", ".join(str(p) for p in written))
    return 0


def cmd_batches(args: argparse.Namespace) -> int:
    from al_core import export

    path = existing_catalog(args.catalog)
    with Catalog.open(path, read_only=args.mark is None) as cat:
        if args.mark:
            batch_id, status = args.mark
            if not batch_id.isdigit():
                raise CatalogError(f"--mark: batch id must be a number, not {batch_id!r}")
            export.set_status(cat, int(batch_id), status)
        frame = export.list_batches(cat)
    rows = [{**r, "created_at": str(r["created_at"])} for r in frame.to_dict("records")]
    _print_rows(rows, args.json, "no exported batch yet", lambda r: (
        f"{r['batch_id']:>4}  {r['status']:<9} {r['size']:>6}  {r['format'] or '':<12} "
        f"{r['created_at'][:16]}  {r['recipe']}"))
    return 0


def _print_rows(rows: list[dict], as_json: bool, empty: str, line: Any) -> None:
    """A JSON list, or one line per row (``empty`` when there is none)."""
    if as_json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(line(r))
    if not rows:
        print(empty)


def cmd_import_labels(args: argparse.Namespace) -> int:
    from al_core.export.labels import import_labels

    path = existing_catalog(args.catalog)
    with Catalog.open(path) as cat:
        result = import_labels(cat, Path(args.file), args.format, args.on_conflict)
    print(result.describe())
    return 0


def cmd_conflicts(args: argparse.Namespace) -> int:
    from al_core.export.labels import conflicts, resolve_conflict

    path = existing_catalog(args.catalog)
    deciding = args.accept is not None or args.reject is not None
    with Catalog.open(path, read_only=not deciding) as cat:
        if deciding:
            resolve_conflict(cat, args.accept if args.accept is not None else args.reject, args.accept is not None)
        frame = conflicts(cat)
    rows = [{**r, "created_at": str(r["created_at"]),
             "batch_id": None if _missing(r["batch_id"]) else int(r["batch_id"])} for r in frame.to_dict("records")]
    _print_rows(rows, args.json, "no label conflicts", lambda r: (
        f"{r['label_seq']:>6}  {r['sample_id']}  {r['current']} -> {r['proposed']}  "
        f"(batch {r['batch_id']}, {r['annotator'] or 'annotator unknown'}, {r['source']})"))
    return 0


def _missing(value: object) -> bool:
    """None or NaN (a NULL integer read through pandas)."""
    return value is None or (isinstance(value, float) and value != value)


def cmd_serve(args: argparse.Namespace) -> int:
    catalog = resolve_catalog_path(args.catalog)
    Catalog.open(catalog).close()  # create/migrate now, and fail clearly if the file is busy
    return serve(catalog, args.host, args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from al_core.demo import build_demo

    catalog = resolve_catalog_path(args.catalog)
    build_demo(catalog, size=args.size, seed=args.seed)
    if args.no_serve:
        return 0
    return serve(catalog, args.host, args.port)


COMMANDS = {
    "demo": cmd_demo,
    "ingest": cmd_ingest,
    "import-predictions": cmd_import_predictions,
    "info": cmd_info,
    "select": cmd_select,
    "report": cmd_report,
    "quality": cmd_quality,
    "embed": cmd_embed,
    "import-embeddings": cmd_import_embeddings,
    "similar": cmd_similar,
    "export": cmd_export,
    "batches": cmd_batches,
    "import-labels": cmd_import_labels,
    "conflicts": cmd_conflicts,
    "serve": cmd_serve,
}


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at devnull so the exit-time flush cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stdout (tests): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # --help/--version/usage errors: their output may meet a closed pipe too
            sys.stdout.flush()
            raise
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
        return status
    except AlExplorerError as err:
        print(f"al-explorer: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `al-explorer info | head -1`: the reader has gone; stop quietly
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("al-explorer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
