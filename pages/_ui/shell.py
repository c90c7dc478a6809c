"""The app shell: routing pages through app.py, the catalog handle, cached calls, busy catalogs."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import streamlit as st

from al_core import curation, diagnostics, overview, quality, view
from al_core.db.catalog import Catalog, resolve_catalog_path
from al_core.errors import CatalogBusyError, CatalogError
from pages._ui import detail, url
from pages._ui.text import plain

#: How long a page waits for a writer (a CLI import, say) before it shows "catalog busy".
APP_WAIT_S = 3.0
BUSY_RETRY_S = 1.0

_run = threading.local()


def run_page(page: Any, batch_page: Any = None) -> None:
    """Run the selected page inside the shell; while the catalog is busy, say so and retry.

    With ``batch_page`` (the Next batch page), every page's sidebar shows the batch's size.
    """
    _run.shell = True
    detail.new_run()
    _run.page = getattr(page, "url_path", "")
    try:
        if batch_page is not None:
            _cart_badge(batch_page)
        page.run()
        _detail_from_link()
    except CatalogBusyError as err:
        st.warning("The catalog is busy; this page retries by itself in a moment.",
                   icon=":material/hourglass_top:")
        st.text(str(err))  # as text: it names files and ids a user wrote
        time.sleep(BUSY_RETRY_S)
        st.rerun()
    except CatalogError as err:  # e.g. the file was deleted or replaced under the app
        st.error("The catalog cannot be read.")
        st.text(str(err))
    finally:
        _run.shell = False


def _cart_badge(batch_page: Any) -> None:
    """The next batch's size at the top of every page's sidebar, linking to its page."""
    cat = catalog()
    n = curation.draft_size(cat)
    st.sidebar.page_link(batch_page, label=f"Next batch: {n:,} sample{'s' if n != 1 else ''}",
                         icon=":material/shopping_cart:")


def _detail_from_link() -> None:
    """A link naming a sample on a page without a gallery on screen still opens its detail."""
    if url.get(detail.URL_SAMPLE) and not detail.shown_this_run():
        st.session_state.pop(detail.OPEN, None)
        detail.show_open_detail(catalog(), None)


def first_paint_pending() -> bool:
    """True on a browser session's first run, until :func:`paint_first` has had the rest asked for."""
    if st.session_state.get(_PAINTED) or "_flt_state" in st.session_state:  # not the session's first page
        return False
    return bool(st.context.headers.get("User-Agent"))


def paint_first() -> None:
    """Stop a browser session's first run here, and have the browser ask for the rest.

    A new tab then shows what is above (the numbers) as soon as it arrives, instead of after
    the browser has drawn everything below (a dozen Plotly charts take it seconds). The rest is
    requested by a fragment's timer, which runs in the browser once it has rendered this, and
    costs one more (cached) run. Without a browser (AppTest, scripts), the page runs through.
    """
    if not first_paint_pending():
        return

    @st.fragment(run_every=0.05)
    def _ask_for_the_rest() -> None:
        if st.session_state.get(_ASKED):  # the browser's timer: it has rendered the first part
            st.session_state[_PAINTED] = True
            st.rerun()
        st.session_state[_ASKED] = True
        st.caption("Loading charts…")

    _ask_for_the_rest()
    st.stop()


_PAINTED, _ASKED = "_painted", "_paint_asked"


def current_page() -> str:
    """The URL path of the page this run shows (set by :func:`run_page`)."""
    return getattr(_run, "page", "")


def _ensure_shell() -> None:
    """Route a page that Streamlit ran directly back through app.py.

    With a ``pages/`` folder beside the entry script, Streamlit runs the requested page file
    itself (its older multipage mode) until app.py has called ``st.navigation`` once in this
    server. That would drop the shell's navigation, so switch the mode off and rerun.
    """
    if getattr(_run, "shell", False):
        return
    try:  # an internal of Streamlit's; if it moves, pages still work, only without the shell
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    PagesManager.uses_pages_directory = False
    st.rerun()


@st.cache_resource(show_spinner=False)
def _open_catalog(path: str) -> Catalog:
    url = os.environ.get("AL_EXPLORER_URL")
    return Catalog.open(path, role="app", url=url, wait=APP_WAIT_S)


def catalog() -> Catalog:
    """The app's catalog handle (it holds no connection), or a clear stop if it cannot be used."""
    _ensure_shell()
    path = str(resolve_catalog_path().resolve())
    try:
        return _open_catalog(path)
    except CatalogBusyError:
        raise  # run_page shows it and retries
    except CatalogError as err:
        st.error("The catalog cannot be opened.")
        st.text(str(err))
        st.stop()
        raise


def empty_state(cat: Catalog) -> bool:
    """Show how to fill an empty catalog; True if it is empty."""
    if view.sample_count(cat):
        return False
    st.info(f"The catalog {plain(cat.path)} has no samples yet. Fill it with the demo "
            "(`al-explorer demo`) or your own data (`al-explorer ingest PATH`), then reload.")
    return True


#: The libraries whose results pages cache (a whitelist: a page names one by key).
CACHED_MODULES = {"overview": overview, "diagnostics": diagnostics, "quality": quality}


@st.cache_data(show_spinner=False, max_entries=512)
def cached(module: str, func: str, path: str, version: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
    """Run ``al_core.<module>.<func>(cat, *args, **kwargs)``, cached per (catalog, version, args)."""
    del version  # part of the cache key only
    return getattr(CACHED_MODULES[module], func)(_open_catalog(path), *args, **kwargs)


def call(cat: Catalog, func: str, *args: Any, module: str = "overview", **kwargs: Any) -> Any:
    """``al_core.<module>.<func>(cat, *args, **kwargs)``, computed once per catalog data version:
    a rerun for a click elsewhere on the page reads it from the cache."""
    # the file's identity too: a catalog rebuilt at the same path may reach the same data version
    try:
        identity = (cat.path.stat().st_ino, cat.data_version())
    except FileNotFoundError:
        raise CatalogError(f"The catalog {cat.path} no longer exists.") from None
    return cached(module, func, str(cat.path.resolve()), identity, *args, **kwargs)
