"""Diagnostics page: a model run against the ground truth on the filtered labeled samples; every
number drills down to the images behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st

from al_core import curation, diagnostics, embeddings, view
from al_core.db.catalog import Catalog
from al_core.diagnostics import charts
from al_core.view.filters import Condition, Filter, drill_spec
from pages._ui import url
from pages._ui.detail import open_sample
from pages._ui.drill import DrillDown
from pages._ui.embeddings import outliers_view, pick_set
from pages._ui.gallery import gallery
from pages._ui.shell import call, catalog, empty_state
from pages._ui.sidebar import sidebar_filter
from pages._ui.text import plain

DRILL = DrillDown("diagnostics", "dx")
VIEWS = ["Per class", "Confusion", "Slices", "Calibration", "Label errors", "Outliers", "Compare runs"]
REVIEW_TAG = "review-label"


def _dx(cat: Catalog, func: str, flt: Filter, **kwargs: object) -> Any:
    """``al_core.diagnostics.<func>(cat, run, flt, ...)`` for the filter's run, cached per data version."""
    return call(cat, func, flt.run, flt, module="diagnostics", **kwargs)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _headline(ev: diagnostics.Evaluation) -> None:
    cols = st.columns(8)
    for col, (label, value) in zip(cols, [
            ("Evaluated", f"{ev.n:,}"), ("Accuracy", _pct(ev.accuracy)),
            ("Balanced accuracy", _pct(ev.balanced_accuracy)), ("Macro F1", _pct(ev.macro["f1"])),
            ("Weighted F1", _pct(ev.weighted["f1"])), ("Top-2 accuracy", _pct(ev.top2_accuracy)),
            ("Log loss", "–" if ev.log_loss is None else f"{ev.log_loss:.3f}"),
            ("ECE (15 bins)", "–" if ev.ece is None else f"{ev.ece:.3f}")], strict=True):
        col.metric(label, value)
    for note in ev.notes:
        st.caption(plain(note))


PERCENT = {c: st.column_config.NumberColumn(format="percent") for c in
           ("precision", "recall", "f1", "accuracy", "ci_low", "ci_high", "gap")}


def _table_drill(frame: pd.DataFrame, key: str, spec_of: Callable[[int], str]) -> None:
    """A table whose selected row opens its drill-down (handled once per selection)."""
    event = st.dataframe(frame, key=DRILL.key(key), hide_index=True, on_select="rerun",
                         selection_mode="single-row", width="stretch", column_config=PERCENT)
    rows = event.selection.get("rows", []) if event else []
    if rows and st.session_state.get(f"_{key}_picked") != (DRILL.key(key), rows[0]):
        st.session_state[f"_{key}_picked"] = (DRILL.key(key), rows[0])
        DRILL.set(spec_of(rows[0]))


def _per_class(ev: diagnostics.Evaluation) -> None:
    table = ev.per_class.sort_values("f1").reset_index(drop=True)
    st.caption("Worst F1 first; select a row for that class's labeled samples.")
    _table_drill(table, "dx_classes", lambda i: drill_spec(f"labeled {table['class'][i]}",
                                                           Condition("label", table["class"][i])))


def _slices(cat: Catalog, flt: Filter) -> None:
    frame = _dx(cat, "slices", flt, min_n=st.session_state.get("dx_min_n", 30))
    frame = diagnostics.informative(frame)
    st.number_input("Smallest slice ranked", 1, 10_000, 30, key="dx_min_n", width=220,
                    help="Slices with fewer samples are listed after the ranked ones: their accuracy means little.")
    shown = frame.drop(columns="conditions")
    st.caption("Worst first among slices with enough samples; accuracy with its Wilson 95% interval, "
               "gap = accuracy − overall. Select a row for its samples.")
    _table_drill(shown, "dx_slices", lambda i: drill_spec(
        f"slice {frame['field'][i]} = {frame['value'][i]}", *frame["conditions"][i]))


def _calibration(cat: Catalog, flt: Filter) -> None:
    mass = st.segmented_control("Bins", ["equal width", "equal mass"], default="equal width",
                                key="dx_bins") == "equal mass"
    bins, ece = _dx(cat, "calibration", flt, equal_mass=mass)
    st.metric(f"Expected calibration error ({'equal mass' if mass else 'equal width'}, {len(bins)} bins)",
              f"{ece:.3f}")
    left, right = st.columns(2)
    left.plotly_chart(charts.reliability_figure(bins), key="dx_reliability")
    if not mass:
        right.plotly_chart(charts.confidence_histogram(bins), key="dx_conf_hist")


def _tag_issues(cat: Catalog, ids: list[str]) -> None:
    done = curation.tag(cat, REVIEW_TAG, curation.Selection.of_ids(ids))
    added = curation.add_to_batch(cat, curation.Selection.of_ids(ids))
    st.session_state["_dx_flash"] = f"{done.describe()}; {added:,} added to the next batch."


def _label_errors(cat: Catalog, flt: Filter) -> None:
    issues = _dx(cat, "label_issues", flt)
    if issues.empty:
        st.info(plain(issues.attrs.get("reason") or "No likely label errors in this view."))
        return
    top = st.number_input("Top", 1, max(1, len(issues)), min(50, len(issues)), key="dx_issue_top", width=220)
    head = issues.head(int(top))
    st.button(f"Tag these {len(head):,} '{REVIEW_TAG}' and add them to the next batch", key="dx_issue_tag",
              on_click=_tag_issues, args=(cat, head["sample_id"].tolist()), icon=":material/sell:")
    st.caption(f"{len(issues):,} samples whose label the model contradicts with confidence (per-class "
               "thresholds, confident learning), likeliest first. Select a row to open the sample; "
               f"the tag `{REVIEW_TAG}` filters them in any gallery.")
    _open_on_select(head, "dx_issues")


def _compare(cat: Catalog, flt: Filter, runs: dict) -> None:
    others = [name for name in runs if name != flt.run.name]
    if not others:
        st.info("Only one model run in the catalog: import another to compare.")
        return
    other = st.selectbox("Compare with", others, key="dx_other")
    res = call(cat, "compare", flt.run, runs[other][0], flt, module="diagnostics")
    a, b, c, d = st.columns(4)
    a.metric("Both evaluated", f"{res['n']:,}")
    b.metric("Accuracy change", f"{res['accuracy_delta']:+.1%}")
    c.metric(f"Fixed (wrong in {other})", f"{res['fixed']:,}")
    d.metric(f"Broken (right in {other})", f"{res['broken']:,}")
    st.dataframe(res["per_class"].sort_values("f1_delta"), key="dx_compare_classes", hide_index=True,
                 width="stretch")
    what = st.segmented_control("Samples", ["fixed", "broken"], default="fixed", key="dx_cmp_what") or "fixed"
    ids = [r[0] for r in cat.query_rows(res[f"{what}_query"])]
    if not ids:
        st.info(f"No sample was {what} between the two runs in this view.")
        return
    gallery(cat, replace(flt, ids=tuple(ids)), flt.run, key="dx_cmp", url_page="dx_cmp_page",
            listed="id")


def _outliers(cat: Catalog, flt: Filter) -> None:
    if not embeddings.list_sets(cat):
        st.info("Outlier scores come from an embedding set: this catalog has none yet "
                "(`al-explorer embed`, or the Similarity page's Embed images panel).")
        return
    emb = pick_set(cat, "dx_set")
    if emb is not None:
        outliers_view(cat, emb, replace(flt, labeled="labeled"), "dx_outliers")


def _open_on_select(frame: pd.DataFrame, key: str) -> None:
    """A table of samples; the selected row's sample opens in its detail (once per selection)."""
    event = st.dataframe(frame, key=key, hide_index=True, on_select="rerun", selection_mode="single-row",
                         width="stretch", column_config=PERCENT)
    rows = event.selection.get("rows", []) if event else []
    if rows and st.session_state.get(f"_{key}_open") != rows[0]:
        st.session_state[f"_{key}_open"] = rows[0]
        open_sample(str(frame["sample_id"].iloc[rows[0]]), None, None)


cat = catalog()
st.title("Diagnostics")
if not empty_state(cat):
    flt = sidebar_filter(cat)
    runs = view.list_runs(cat)
    if flt.run is None:
        st.info("No model run in the catalog yet: import predictions (`al-explorer import-predictions`).")
        st.stop()
    st.caption(f"Run **{plain(flt.run.name)}** against the ground truth of the labeled samples the sidebar "
               "filter selects (pick the run and the split there).")
    if "_dx_flash" in st.session_state:
        st.toast(plain(st.session_state.pop("_dx_flash")), icon=":material/check_circle:")
    try:
        ev = _dx(cat, "evaluate", flt)
    except diagnostics.DiagnosticsError as err:
        st.info(plain(str(err)))
        st.stop()
    _headline(ev)
    if not flt.splits:  # the run learned from its train split: scored on it, it looks better than it is
        st.warning("This evaluates every labeled sample, training data included. For an honest "
                   "estimate, pick the test (or val) split in the sidebar.", icon=":material/warning:")
    drill_box = st.container()
    shown = st.segmented_control("View", VIEWS, default=url.get("view") if url.get("view") in VIEWS else VIEWS[0],
                                 key="dx_view") or VIEWS[0]
    url.put("view", None if shown == VIEWS[0] else shown)
    if shown == "Per class":
        _per_class(ev)
    elif shown == "Confusion":
        norm = st.segmented_control("Cells", ["count", "row share"], default="count", key="dx_norm") == "row share"
        DRILL.chart(charts.confusion_matrix_figure(ev.confusion, ev.classes, norm), "dx_confusion")
        st.caption("Click a cell for exactly its samples.")
    elif shown == "Slices":
        _slices(cat, flt)
    elif shown == "Calibration":
        _calibration(cat, flt)
    elif shown == "Label errors":
        _label_errors(cat, flt)
    elif shown == "Outliers":
        _outliers(cat, flt)
    else:
        _compare(cat, flt, runs)
    DRILL.show(drill_box, cat, flt, flt.run, cat.metadata_fields())
