"""Image quality page: how many samples each flag marks, the gallery of one flag (worst first), duplicates."""

from __future__ import annotations

import streamlit as st

from al_core import curation, quality
from al_core.db.catalog import Catalog
from al_core.view.filters import Condition, Filter
from pages._ui import url
from pages._ui.gallery import gallery
from pages._ui.shell import call, catalog, empty_state
from pages._ui.sidebar import sidebar_filter
from pages._ui.text import plain
from pages._ui.thumbs import thumbnail_strip

URL_FLAG, URL_PAGE = "flag", "quality_page"
EXCLUDE_TAG = "exclude"
SETS_SHOWN = 12


def _flag_from_url() -> None:
    if "q_flag" not in st.session_state:
        found = url.get(URL_FLAG)
        st.session_state["q_flag"] = found if found in quality.FLAGS else quality.FLAGS[0]


def _on_flag_change() -> None:
    flag = st.session_state["q_flag"]
    url.put(URL_FLAG, flag)
    url.put(URL_PAGE, None)
    st.session_state.pop("quality_page", None)
    _preset_sort(flag)


def _preset_sort(flag: str) -> None:
    """The flag's gallery opens worst first (darkest, blurriest...), by its signal."""
    info = quality.FLAG_INFO[flag]
    if info.sort_field:
        prefix = "field_desc:" if info.worst_first_desc else "field:"
        st.session_state["quality_sort"] = prefix + info.sort_field
    else:  # set, not dropped: a dropped widget value lingers in the browser and comes back
        st.session_state["quality_sort"] = "id"


def _tag_exclude(cat: Catalog, flt: Filter, ids: list[str] | None = None) -> None:
    try:
        target = curation.Selection.of_ids(ids) if ids is not None else curation.Selection.of_filter(flt)
        action = curation.tag(cat, EXCLUDE_TAG, target)
    except curation.CurationError as err:
        st.session_state["_q_flash"] = str(err)
        return
    st.session_state["_q_flash"] = f"Tagged {action.n:,} sample(s) `{EXCLUDE_TAG}` (undo in any gallery)."


def _apply_thresholds(cat: Catalog) -> None:
    """Store the thresholds changed here (only those: one changed meanwhile elsewhere, by the
    CLI or another tab, is not overwritten with what this page showed)."""
    seeds = st.session_state.get(_SEEDS, {})
    changes = {flag: st.session_state[f"q_t_{flag}"] for flag in _TUNABLE
               if f"q_t_{flag}" in st.session_state and st.session_state[f"q_t_{flag}"] != seeds.get(flag)}
    try:
        now = quality.set_thresholds(cat, changes)
    except quality.QualityError as err:
        st.session_state["_q_flash"] = str(err)
        return
    for flag in _TUNABLE:  # show what is stored now, changes from elsewhere included
        st.session_state[f"q_t_{flag}"] = seeds[flag] = float(now[flag])
    st.session_state[_SEEDS] = seeds
    st.session_state["_q_flash"] = "Thresholds applied: every sample re-flagged from its stored signals."


def _reset_thresholds(cat: Catalog) -> None:
    quality.set_thresholds(cat, {}, reset=True)
    for flag in _TUNABLE:
        st.session_state.pop(f"q_t_{flag}", None)
    st.session_state.pop(_SEEDS, None)
    st.session_state["_q_flash"] = "Thresholds reset to the defaults."


_TUNABLE = [f for f in quality.FLAGS if f != "exact_duplicate"]
_SEEDS = "_q_t_seeds"  # the thresholds the widgets were given: Apply stores only what differs


def _thresholds(cat: Catalog) -> None:
    """Every threshold; *Apply* re-flags from the stored signals (no image is read)."""
    now = quality.thresholds(cat)
    with st.expander("Thresholds", icon=":material/tune:"):
        st.caption("Applying re-flags every sample from its stored signals at once; no image is read "
                   "again. Defaults follow CleanVision where it has the same measure (README, *Image quality*).")
        cols = st.columns(4)
        seeds = st.session_state.setdefault(_SEEDS, {})
        for i, flag in enumerate(_TUNABLE):
            info, key = quality.FLAG_INFO[flag], f"q_t_{flag}"
            stored = float(now[flag])
            if key not in st.session_state or (seeds.get(flag) != stored and st.session_state[key] == seeds.get(flag)):
                st.session_state[key] = seeds[flag] = stored  # new, or changed elsewhere and not edited here
            whole = flag == "near_duplicate"
            cols[i % 4].number_input(flag, min_value=float(info.low), max_value=float(info.high),
                                     step=1.0 if whole or flag == "odd_size" else 0.01,
                                     format="%.0f" if whole else "%.2f", key=key, help=info.rule)
        apply, reset, _ = st.columns([1, 1, 3])
        apply.button("Apply", key="q_t_apply", type="primary", on_click=_apply_thresholds, args=(cat,))
        reset.button("Reset to defaults", key="q_t_reset", on_click=_reset_thresholds, args=(cat,))


def _duplicate_sets(cat: Catalog, kind: str) -> None:
    sets = quality.duplicate_sets(cat, kind)
    if not sets:
        return
    st.subheader(f"{kind.capitalize()} duplicate sets")
    left, right = st.columns([3, 2], vertical_alignment="center")
    left.caption(f"{len(sets):,} sets, {sum(map(len, sets)):,} samples; the largest sets first, "
                 "each side by side.")
    if kind == "exact":  # identical files or pixels: keeping one loses nothing
        extra = [sid for ids in sets for sid in ids[1:]]
        right.button(f"Tag the {len(extra):,} extra copies `{EXCLUDE_TAG}`", key="q_dup_tag_exact",
                     on_click=_tag_exclude, args=(cat, Filter(), extra),
                     help="All but the first (by id) of each set.")
    else:
        right.caption("Near duplicates look alike to a perceptual hash, which ignores colour: "
                      "look before excluding any.")
    pages = (len(sets) + SETS_SHOWN - 1) // SETS_SHOWN
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Sets page (of {pages:,})", 1, pages, key=f"q_sets_page_{kind}"))
    for ids in sets[(page - 1) * SETS_SHOWN: page * SETS_SHOWN]:
        thumbnail_strip(cat, ids)


cat = catalog()
st.title("Image quality")
st.caption("Signals measured once at ingest (brightness, contrast, sharpness, entropy, colour, size, "
           "perceptual hash) and the flags they raise. Every flag is also a sidebar filter "
           "(*Image quality*) and a field in the Overview and Diagnostics slices.")
if "_q_flash" in st.session_state:
    st.toast(st.session_state.pop("_q_flash"))
if not empty_state(cat):
    flt = sidebar_filter(cat)
    missing = quality.missing_count(cat)
    if missing:
        st.warning(f"{missing:,} sample(s) have no quality signals (ingested with `--no-probe`, or by "
                   "an older al-explorer); they count as not measured. Compute them with "
                   "`al-explorer quality --recompute`.")
    counts = call(cat, "flag_counts", flt, module="quality")
    st.dataframe(counts, hide_index=True, width="stretch", key="q_counts",
                 column_config={"labeled_share": st.column_config.NumberColumn("labeled %", format="percent"),
                                "pool_share": st.column_config.NumberColumn("pool %", format="percent")})
    st.caption(f"{counts.attrs['samples']:,} samples in the sidebar's view, {counts.attrs['measured']:,} "
               "measured. Shares are of the measured labeled samples and of the measured pool.")
    _thresholds(cat)
    _flag_from_url()
    head, tag = st.columns([3, 2], vertical_alignment="bottom")
    flag = head.selectbox("Flag", quality.FLAGS, key="q_flag", on_change=_on_flag_change,
                          help="The gallery shows the samples it marks, worst first.")
    url.put(URL_FLAG, flag)
    if "quality_sort" not in st.session_state:
        _preset_sort(flag)
    flagged = flt.narrowed(Condition(quality.flag_column(flag), "true"))
    st.caption(plain(quality.FLAG_INFO[flag].rule))
    if not int(counts.set_index("flag").loc[flag, "total"]):
        st.info(f"No sample in this view is flagged {flag}" + (" (the sidebar filter narrows it)."
                if flt.to_query_params() else "."))
    else:
        if flag not in ("exact_duplicate", "near_duplicate"):  # for those: the extra copies only, below
            tag.button(f"Tag all `{EXCLUDE_TAG}`", key="q_tag_all", on_click=_tag_exclude, args=(cat, flagged),
                       help="Export leaves samples tagged exclude out of labeling batches.")
        sort_field = quality.FLAG_INFO[flag].sort_field
        gallery(cat, flagged, flt.run, key="quality", url_page=URL_PAGE, show=[sort_field] if sort_field else [])
        if flag in ("exact_duplicate", "near_duplicate"):
            _duplicate_sets(cat, flag.removesuffix("_duplicate"))
