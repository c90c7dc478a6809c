"""A page's drill-down: a clicked chart mark or table row opens a gallery of exactly its samples."""

from __future__ import annotations

from typing import Any

import streamlit as st
import streamlit.components.v1 as components

from al_core.db.catalog import Catalog
from al_core.view import RunRef
from al_core.view.filters import Filter, drill_from_link
from pages._ui import url
from pages._ui.gallery import gallery
from pages._ui.text import plain

#: URL keys of the open drill-down and its gallery page (one drill-down per page).
URL_DRILL, URL_DRILL_PAGE = "drill", "drill_page"


class DrillDown:
    """The drill-down of one page. Marks carry a spec (:func:`al_core.view.filters.drill_spec`)
    in ``customdata``; the chosen spec is kept in the session and the URL, so a link reopens it.

    ``name`` prefixes its session keys, ``prefix`` its widget keys (``<prefix>_drill_close``,
    ``<prefix>_drill_gallery``).
    """

    def __init__(self, name: str, prefix: str) -> None:
        self.state, self.scroll, self.gen = f"{name}_drill", f"{name}_scroll", f"{name}_chart_gen"
        self.prefix = prefix

    def set(self, spec: str) -> None:
        st.session_state.pop(f"{self.prefix}_drill_gallery_page", None)  # a new one starts on page 1
        url.put(URL_DRILL_PAGE, None)
        st.session_state[self.state] = spec
        st.session_state[self.scroll] = True
        url.put(URL_DRILL, spec)

    def close(self) -> None:
        st.session_state.pop(self.state, None)
        st.session_state[self.gen] = st.session_state.get(self.gen, 0) + 1  # charts: selection cleared
        url.put(URL_DRILL, None)
        url.put(URL_DRILL_PAGE, None)

    def key(self, name: str) -> str:
        """A chart's or table's widget key; it changes when the drill-down closes."""
        return f"{name}_{st.session_state.get(self.gen, 0)}"

    def _on_select(self, chart_key: str) -> None:
        points = (st.session_state.get(chart_key) or {}).get("selection", {}).get("points", [])
        data = points[0].get("customdata") if points else None
        spec = data[0] if isinstance(data, list) and data else data
        if isinstance(spec, str) and spec:
            self.set(spec)

    def chart(self, fig: Any, name: str) -> None:
        """A Plotly chart whose clicked mark opens its drill-down."""
        key = self.key(name)
        st.plotly_chart(fig, key=key, on_select=lambda: self._on_select(key), selection_mode="points",
                        config={"displaylogo": False})

    def show(self, box: Any, cat: Catalog, flt: Filter, run: RunRef | None, fields: dict[str, str]) -> None:
        """The open drill-down's gallery in ``box`` (from a click, or a link that names one)."""
        drill = drill_from_link(st.session_state.get(self.state) or url.get(URL_DRILL), fields)
        if not drill:
            return
        title, conditions = drill
        with box.container(border=True):
            head, close = st.columns([5, 1])
            head.subheader(f"Drill-down: {plain(title)}")
            close.button("Close", key=f"{self.prefix}_drill_close", on_click=self.close)
            gallery(cat, flt.narrowed(*conditions), run, key=f"{self.prefix}_drill_gallery",
                    url_page=URL_DRILL_PAGE)
        if st.session_state.pop(self.scroll, False):
            _scroll_to_drill()


def _scroll_to_drill() -> None:
    """Bring the drill-down into view: it opens at the top, the click was further down."""
    components.html("<script>const h = [...window.parent.document.querySelectorAll('h3')]"
                    ".find(e => e.innerText.startsWith('Drill-down'));"
                    "if (h) h.scrollIntoView({block: 'start'});</script>", height=0)
