"""Export page: compose a recipe, preview the batch it picks, record it and download it in a
labeling provider's format; the batch history with re-downloads and statuses."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import replace

import pandas as pd
import streamlit as st

from al_core import embeddings, export
from al_core.errors import AlExplorerError
from al_core.export import charts
from al_core.strategies.recipes import NAMES, STRATEGIES, Recipe, RecipeError, select_batch
from pages._ui.gallery import gallery
from pages._ui.labels_back import labels_back_view
from pages._ui.shell import catalog, empty_state
from pages._ui.sidebar import sidebar_filter
from pages._ui.text import plain

DEFAULT_PARTS = pd.DataFrame({"strategy": ["hybrid", "class-balance", "random"], "share": [0.5, 0.3, 0.2],
                              "parameters": ["top_m = 1000", "", ""]})
NO_SET = "(no embedding set)"
MIME = {".json": "application/json", ".xml": "application/xml", ".ndjson": "application/x-ndjson",
        ".csv": "text/csv", ".jsonl": "application/jsonl"}


def _recipe(parts: pd.DataFrame, dedupe: float | None) -> Recipe:
    """The recipe the table describes; parameters are TOML (``top_m = 1000``, ``tag = "x"``)."""
    rows = []
    for n, row in enumerate(parts.dropna(subset=["strategy"]).to_dict("records"), start=1):
        try:
            params = tomllib.loads(row.get("parameters") or "")
        except tomllib.TOMLDecodeError as err:
            raise RecipeError(f"part {n}: parameters are not TOML ({err})") from None
        rows.append({"strategy": row["strategy"], "share": float(row["share"] or 0) or None, **params})
    return Recipe.from_dict({"part": rows, "dedupe": dedupe if dedupe else False}, "the recipe")


def _downloads(batch: export.Batch, fmt: str, prefix: str | None, key: str) -> None:
    """A download button per file of the batch in ``fmt``, with each file's SHA-256."""
    stem = f"batch-{batch.batch_id}"
    for suffix, data in export.render(batch, fmt, prefix or None).items():
        name = stem + (suffix or export.EXTENSIONS[fmt])
        st.download_button(f"Download {name}", data, file_name=name, key=f"{key}_{suffix or 'main'}",
                           mime=MIME.get("." + name.rsplit(".", 1)[-1], "application/octet-stream"),
                           icon=":material/download:")
        st.caption(f"{len(data):,} bytes · sha256 `{hashlib.sha256(data).hexdigest()}`")


def _compose(cat, flt) -> None:  # noqa: ANN001
    sets = [s.name for s in embeddings.list_sets(cat)]
    left, mid, right = st.columns(3)
    left.number_input("Budget (samples)", 1, 100_000, 100, key="ex_budget")
    chosen = mid.selectbox("Embedding set", [NO_SET, *sets], index=len(sets), key="ex_set",
                           help="For diversity, seeded and TypiClust parts and in-batch de-duplication")
    set_name = None if chosen == NO_SET else chosen
    right.number_input("Seed", 0, 2**31 - 1, 0, key="ex_seed")
    st.caption("Parts are filled in order without overlap; " + "; ".join(
        f"**{n}**: {STRATEGIES[n][2]}" for n in NAMES))
    parts = st.data_editor(DEFAULT_PARTS, key="ex_parts", num_rows="dynamic", hide_index=True, width="stretch",
                           column_config={"strategy": st.column_config.SelectboxColumn(options=list(NAMES), required=True),
                                          "share": st.column_config.NumberColumn(min_value=0.0, max_value=1.0,
                                                                                 format="percent"),
                                          "parameters": st.column_config.TextColumn(help='TOML: top_m = 1000, tag = "x"')})
    st.slider("Drop in-batch near-duplicates at cosine ≥", 0.80, 1.0, 0.97, 0.01, key="ex_dedupe",
                       disabled=set_name is None)
    st.button("Preview the batch", key="ex_preview", type="primary", icon=":material/visibility:",
              on_click=_make_preview, args=(cat, flt, parts, set_name))
    if "_ex_error" in st.session_state:  # until the next preview
        st.error(plain(st.session_state["_ex_error"]))
    if "_ex_preview" in st.session_state:
        _preview(cat, flt)


def _make_preview(cat, flt, parts: pd.DataFrame, set_name: str | None) -> None:  # noqa: ANN001
    """The button's callback (before the rerun): pick the batch the table describes."""
    state = st.session_state
    state.pop("_ex_error", None)
    try:
        recipe = _recipe(parts, state["ex_dedupe"] if set_name else None)
        picked = select_batch(cat, recipe, int(state["ex_budget"]), run=flt.run, set_name=set_name,
                              seed=int(state["ex_seed"]), flt=flt)
    except AlExplorerError as err:
        state["_ex_error"] = str(err)
        state.pop("_ex_preview", None)
        return
    state["_ex_preview"] = (recipe, picked, int(state["ex_budget"]), int(state["ex_seed"]), set_name)


def _preview(cat, flt) -> None:  # noqa: ANN001
    recipe, picked = st.session_state["_ex_preview"][:2]
    st.subheader(f"Preview: {len(picked):,} samples ({export.describe(recipe)})")
    fields = [f for f in cat.metadata_fields() if not f.startswith("q_")]
    left, right = st.columns(2)
    by = left.selectbox("Composition by", ["predicted class", *fields], key="ex_comp_by",
                        help="The batch by the run's predicted class (or a field), beside the labeled set")
    comp = export.composition(cat, picked, flt.run, None if by == "predicted class" else by)
    left.dataframe(comp, hide_index=True, width="stretch", key="ex_comp", column_config={
        "batch_share": st.column_config.NumberColumn(format="percent"),
        "labeled_share": st.column_config.NumberColumn(format="percent")})
    right.plotly_chart(charts.score_histograms(picked), key="ex_scores")
    st.dataframe(picked, hide_index=True, width="stretch", key="ex_picked")
    gallery(cat, replace(flt, ids=tuple(picked["sample_id"])), flt.run, key="ex_gallery",
            url_page="ex_page", listed="batch order")
    fmt_col, prefix_col = st.columns(2)
    fmt_col.selectbox("Format", export.FORMATS, key="ex_format")
    prefix_col.text_input("Image prefix (blank: absolute paths; file:// for file URIs)", key="ex_prefix")
    st.button("Record the batch and prepare its files", key="ex_create", icon=":material/outbox:",
              on_click=_record, args=(cat, flt.run))


def _record(cat, run) -> None:  # noqa: ANN001
    """The button's callback: record the previewed batch; its files are offered above."""
    state = st.session_state
    recipe, picked, budget, seed, set_name = state.pop("_ex_preview")
    state["_ex_made"] = export.create_batch(cat, picked, recipe=recipe, budget=budget, seed=seed, run=run,
                                            set_name=set_name, fmt=state["ex_format"],
                                            image_prefix=state.get("ex_prefix") or None)


def _mark(cat, batch_id: int) -> None:  # noqa: ANN001
    export.set_status(cat, batch_id, st.session_state[f"ex_status_{batch_id}"])


def _history(cat) -> None:  # noqa: ANN001
    batches = export.list_batches(cat)
    if batches.empty:
        st.info("No batch exported yet.")
        return
    st.dataframe(batches, hide_index=True, width="stretch", key="ex_history")
    ids = batches["batch_id"].tolist()
    left, mid, right = st.columns(3)
    chosen = left.selectbox("Batch", ids, key="ex_hist_batch")
    batch = export.get_batch(cat, int(chosen))
    fmt = mid.selectbox("Format", export.FORMATS, index=export.FORMATS.index(batch.format or "csv"),
                        key="ex_hist_format")
    right.selectbox("Status", export.STATUSES, index=export.STATUSES.index(batch.status),
                    key=f"ex_status_{chosen}", on_change=_mark, args=(cat, int(chosen)),
                    help="sent: with the provider; labeled: labels are back; cancelled: frees its samples")
    _downloads(batch, fmt, None, f"ex_hist_dl_{chosen}")


cat = catalog()
st.title("Export")
if not empty_state(cat):
    flt = sidebar_filter(cat)
    if "_ex_made" in st.session_state:
        made = export.get_batch(cat, st.session_state["_ex_made"])
        st.success(f"Batch {made.batch_id} recorded: {len(made.items):,} samples. Its files:")
        _downloads(made, made.format or "csv", None, "ex_made_dl")
    new, history, back = st.tabs(["New batch", "History", "Labels back"])
    with new:
        _compose(cat, flt)
    with history:
        _history(cat)
    with back:
        labels_back_view(cat)
