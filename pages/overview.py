"""Overview page: counts, class imbalance, metadata distributions, slices; every mark drills down."""

from __future__ import annotations

import streamlit as st

from al_core import overview
from al_core.overview import charts
from al_core.quality.sql import is_built_in
from al_core.view.filters import drill_spec, field_kind
from pages._ui.drill import DrillDown
from pages._ui.shell import call, catalog, empty_state, first_paint_pending, paint_first
from pages._ui.sidebar import link_filter, sidebar_filter
from pages._ui.text import plain

DRILL = DrillDown("overview", "ov")


def _chart(fig: object, name: str) -> None:
    DRILL.chart(fig, name)


def _on_slice_select() -> None:
    rows = (st.session_state.get(DRILL.key("ov_slices")) or {}).get("selection", {}).get("rows", [])
    frame = st.session_state.get("_ov_slice_frame")
    if rows and frame is not None:
        rec = frame.iloc[rows[0]]
        DRILL.set(drill_spec(f"slice {rec['slice']}", *rec["conditions"]))


def _class_table(classes: object) -> None:
    """Classes with exact counts; a selected row or count opens its samples (handled once per
    selection, from the returned state, so a later chart click is not overridden by it)."""
    key = DRILL.key("ov_class_table")
    event = st.dataframe(classes.rename(columns=charts.CLASS_TABLE), key=key, hide_index=True, on_select="rerun",
                         selection_mode=["single-row", "single-cell"], width="stretch")
    sel = event.selection if event else {}
    picked = [(c[0], c[1]) for c in sel.get("cells", [])] or [(r, None) for r in sel.get("rows", [])]
    if picked and st.session_state.get("_ov_class_picked") != (key, picked[0]):
        st.session_state["_ov_class_picked"] = (key, picked[0])
        DRILL.set(charts.class_table_drill(classes, *picked[0]))
    st.caption("Select a row (its labeled samples) or a count (those samples) to open them.")


cat = catalog()
st.title("Overview")
if empty_state(cat):
    st.stop()
flt = link_filter(cat) if first_paint_pending() else sidebar_filter(cat)  # the sidebar comes second
run = flt.run

c = call(cat, "counts", flt)
for col, (label, key) in zip(st.columns(7), [("Samples", "samples"), ("Labeled", "labeled"), ("Unlabeled", "unlabeled"),
                                             ("Classes", "classes"), ("Splits", "splits"), ("Model runs", "model_runs"),
                                             ("Embedding sets", "embedding_sets")], strict=True):
    col.metric(label, overview.format_count(c[key]), help=f"{c[key]:,}" if c[key] >= 1_000_000 else None)

drill_box = st.container()
paint_first()  # a new tab shows the numbers at once, then the charts

classes = call(cat, "class_distribution", flt, run)
bal = overview.class_balance(classes, run is not None)
a, b, _ = st.columns([1, 1, 2])
log = a.segmented_control("Scale", ["linear", "log"], default="linear", key="ov_scale") == "log"
as_table = b.segmented_control("Classes as", ["chart", "table"], default="chart", key="ov_class_view") == "table"
left, right = st.columns([3, 1])
with left:
    if classes.empty:
        st.info(charts.no_data("no labeled samples, and no pool predictions"))
    elif as_table:
        _class_table(classes)
    else:
        _chart(charts.class_bars(classes, log), "ov_classes")
with right:
    st.metric("Largest / smallest class", bal.ratio_text, help="Count of the largest class over the smallest's, "
              f"measured on {bal.base_text or 'nothing'}. Empty classes do not count.")
    st.caption(plain(bal.caption))  # it names classes: user text
    st.metric("Normalized entropy", bal.entropy_text, help="Entropy of the class shares over log(classes), "
              f"on {bal.base_text or 'nothing'}: 1 = perfectly balanced, 0 = a single class.")
    if run:
        st.caption(f"Pool predictions from run **{plain(run.name)}**.")
splits = call(cat, "split_distribution", flt)
if splits.empty:
    st.info(charts.no_data("no labeled samples to count per split"))
else:
    _chart(charts.split_bars(splits, log), "ov_splits")

st.subheader("Metadata")
share = st.segmented_control("Bars show", ["share within group", "counts"], default="share within group",
                             key="ov_field_mode") != "counts"
st.caption("Labeled samples (blue) beside the unlabeled pool (orange). *Share within group* compares them "
           "at a glance whatever their sizes; a value rare among the labeled but common in the pool is "
           "where labels are missing. Click a bar (or anywhere in its column) for its samples.")
fields = cat.metadata_fields()


def _field_charts(names: list[str], offset: int) -> None:
    grid = st.columns(2)
    for i, name in enumerate(names):
        kind, frame = call(cat, "field_distribution", flt, name)
        if kind:
            with grid[i % 2]:
                if frame.empty:
                    st.info(charts.no_data(f"none has a value for {plain(name)}"))
                else:
                    _chart(charts.field_chart(name, kind, frame, share, log and not share),
                           f"ov_field_{offset + i}")


user_fields = [n for n in fields if not is_built_in(n)]
_field_charts(user_fields, 0)
quality_fields = [n for n in fields if is_built_in(n)]
if quality_fields and st.toggle("Show image-quality signals and flags (q_…)", key="ov_quality_fields"):
    _field_charts(quality_fields, len(user_fields))

categorical = sorted((n for n, t in fields.items() if field_kind(t) == "categorical"),
                     key=is_built_in)  # the user's fields first
if categorical:
    a, b = st.columns([2, 1])
    heat_field = a.selectbox("Class × field", categorical, key="ov_heat_field")
    cell_share = b.segmented_control("Cells", ["count", "row share"], default="row share",
                                     key="ov_heat_mode") == "row share"
    heat = call(cat, "class_field_heatmap", flt, heat_field)
    if heat.empty:
        st.info(charts.no_data("no labeled samples for the class × field grid"))
    else:
        _chart(charts.heatmap(heat, heat_field, cell_share), "ov_heatmap")

st.subheader("Under-represented slices")
st.caption("Combinations of metadata values (and class: the label, or the model's prediction in the pool) "
           "whose share of the labeled set is far below their share of the unlabeled pool. Select a row "
           "to see its samples.")
slices = call(cat, "under_represented_slices", flt, run)
st.session_state["_ov_slice_frame"] = slices
st.dataframe(slices.drop(columns="conditions"), key=DRILL.key("ov_slices"), on_select=_on_slice_select,
             selection_mode="single-row", hide_index=True, width="stretch", height=320,
             column_config={"labeled_share": st.column_config.NumberColumn(format="percent"),
                            "pool_share": st.column_config.NumberColumn(format="percent"),
                            "ratio": st.column_config.NumberColumn(format="%.2f")})

DRILL.show(drill_box, cat, flt, run, fields)
