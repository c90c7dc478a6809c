"""Next batch page: the samples collected for labeling (the open draft batch), to review and prune."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from al_core import curation
from al_core.db.catalog import Catalog
from pages._ui.gallery import gallery
from pages._ui.shell import catalog, empty_state
from pages._ui.sidebar import sidebar_filter


def _empty(cat: Catalog) -> None:
    st.session_state[EMPTIED] = curation.clear_batch(cat)


EMPTIED = "_batch_emptied"
cat = catalog()
st.title("Next batch")
if EMPTIED in st.session_state:
    st.toast(f"Emptied the next batch ({st.session_state.pop(EMPTIED):,} samples).")
st.caption("Samples collected from any gallery with *Add to next batch*: a draft, which keeps no sample "
           "from other strategies until it is exported. The sidebar filter narrows what is shown here.")
if not empty_state(cat):
    flt = sidebar_filter(cat)
    n = curation.draft_size(cat)
    if n == 0:
        st.info("The next batch is empty. Select samples in any gallery (tick them, or select all "
                "in a view) and press *Add to next batch*.")
    else:
        parts = curation.draft_composition(cat)
        left, right = st.columns([4, 1], vertical_alignment="center")
        by_part = parts.groupby("part")["n"].sum()
        left.markdown(f"**{n:,} samples**: {int(by_part.get('unlabeled', 0)):,} unlabeled, "
                      f"{int(by_part.get('labeled', 0)):,} labeled (to relabel)")
        with right.popover("Empty the batch", icon=":material/remove_shopping_cart:"):
            st.button(f"Yes, take all {n:,} samples out", key="batch_clear", type="primary",
                      on_click=_empty, args=(cat,))
        with st.expander("By predicted class (newest run)"):
            st.dataframe(parts, hide_index=True, width="stretch")
        if flt.batch == "out":
            st.caption("The sidebar's *Next batch: not in it* does not apply on this page.")
        gallery(cat, replace(flt, batch="in"), flt.run, key="batch")
