"""Selecting samples in a gallery, and acting on them: tag, untag, the next batch, undo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from al_core import curation, view
from al_core.db.catalog import Catalog
from al_core.errors import AlExplorerError
from al_core.view.filters import Filter
from pages._ui.text import plain

_FLASH = "_sel_flash"


def _state(key: str) -> dict[str, Any]:
    """The gallery's selection: ``ids`` ticked (in order); or ``all`` = the filter key of the view
    whose every sample is selected, but for the ``except`` ones unticked since."""
    return st.session_state.setdefault(f"{key}_selection", {"ids": {}, "all": None, "except": {}})


def _every(key: str, flt: Filter) -> bool:
    return _state(key)["all"] == flt.key()


def _box_key(key: str, sample_id: str) -> str:
    return f"{key}_tick:{sample_id}"  # no button key has this form, whatever the id


def _toggle(key: str, sample_id: str, flt: Filter) -> None:
    state = _state(key)
    ticked = bool(st.session_state.get(_box_key(key, sample_id)))
    if _every(key, flt):  # all in the view selected: an untick is an exception
        if ticked:
            state["except"].pop(sample_id, None)
        else:
            state["except"][sample_id] = True
        return
    state["all"] = None
    if ticked:
        state["ids"][sample_id] = True
    else:
        state["ids"].pop(sample_id, None)


def checkbox(key: str, sample_id: str, flt: Filter) -> None:
    """The card's "select" tick, in step with the gallery's selection."""
    state = _state(key)
    box = _box_key(key, sample_id)
    every = _every(key, flt) and sample_id not in state["except"]
    st.session_state[box] = every or sample_id in state["ids"]
    st.checkbox(f"select {plain(sample_id)}", key=box, on_change=_toggle, args=(key, sample_id, flt),
                label_visibility="collapsed")


def _select_page(key: str, ids: list[str]) -> None:
    state = _state(key)
    state["all"], state["except"] = None, {}
    state["ids"].update(dict.fromkeys(ids, True))


def _select_all(key: str, flt: Filter) -> None:
    _state(key).update({"all": flt.key(), "ids": {}, "except": {}})


def _clear(key: str) -> None:
    _state(key).update({"ids": {}, "all": None, "except": {}})


def _target(key: str, flt: Filter) -> curation.Selection | None:
    state = _state(key)
    if _every(key, flt):
        return curation.Selection.of_filter(flt, flt.run, exclude=list(state["except"]))
    return curation.Selection.of_ids(list(state["ids"])) if state["ids"] else None


def _act(cat: Catalog, key: str, flt: Filter, action: Callable[[curation.Selection], str]) -> None:
    """Run one write on the selection and leave its outcome for the next render."""
    target = _target(key, flt)
    if target is None:
        st.session_state[_FLASH] = ("warning", "Select samples first (tick them, or select all).")
        return
    try:
        st.session_state[_FLASH] = ("success", action(target))
    except AlExplorerError as err:  # a bad tag, unknown ids, a busy catalog: said, nothing written
        st.session_state[_FLASH] = ("error", str(err))


def _tag_name(key: str) -> str:
    return st.session_state.get(f"{key}_tag") or ""


def _tag(cat: Catalog, key: str, flt: Filter, op: str) -> None:
    if not _tag_name(key):
        st.session_state[_FLASH] = ("warning", "Pick a tag or type a new one in the Tag box first.")
        return

    def run(target: curation.Selection) -> str:
        func = curation.tag if op == "add" else curation.untag
        done = func(cat, _tag_name(key), target)
        return done.describe()[0].upper() + done.describe()[1:] + "."
    _act(cat, key, flt, run)


def _batch(cat: Catalog, key: str, flt: Filter, op: str) -> None:
    def run(target: curation.Selection) -> str:
        if op == "add":
            n = curation.add_to_batch(cat, target)
            return f"Added {n:,} samples to the next batch (now {curation.draft_size(cat):,})."
        n = curation.remove_from_batch(cat, target)
        if flt.batch == "in":  # they left this view: a selection of unseen samples would mislead
            _clear(key)
        return f"Removed {n:,} samples from the next batch (now {curation.draft_size(cat):,})."
    _act(cat, key, flt, run)


def _undo(cat: Catalog, action_id: int) -> None:
    try:
        done = curation.undo_tag_action(cat, action_id)
        st.session_state[_FLASH] = ("success", f"Undone: {done.describe()}.")
    except AlExplorerError as err:
        st.session_state[_FLASH] = ("error", str(err))


def _flash() -> None:
    kind, message = st.session_state.pop(_FLASH, (None, None))
    if kind == "success":
        st.toast(plain(message), icon=":material/check_circle:")  # a tag a user wrote, as text
    elif kind:
        getattr(st, kind)(plain(message))


def action_bar(cat: Catalog, key: str, flt: Filter, total: int, page_ids: list[str]) -> None:
    """How many are selected, how to select more, and what to do with them."""
    state = _state(key)
    every = _every(key, flt)
    n = total - len(state["except"]) if every else len(state["ids"])
    unseen = 0 if every or not state["ids"] else len(state["ids"]) - curation.count_in_view(
        cat, list(state["ids"]), flt)
    _flash()
    with st.container(border=True):
        info, page, every_col, clear = st.columns([3, 2, 2, 1], vertical_alignment="center")
        note = (" (every sample in this view" + (f" but {len(state['except']):,})" if state["except"] else ")")
                if every else f" ({unseen:,} of them not in this view)" if unseen else "")
        info.markdown(f"**{n:,} selected**{note}")
        page.button("Select this page", key=f"{key}_sel_page", on_click=_select_page,
                    args=(key, page_ids), width="stretch")
        every_col.button(f"Select all {total:,}", key=f"{key}_sel_all", on_click=_select_all,
                         args=(key, flt), width="stretch", disabled=total == 0)
        clear.button("Clear", key=f"{key}_sel_clear", on_click=_clear, args=(key,),
                     width="stretch", disabled=n == 0)
        name, add, remove, to_batch, from_batch = st.columns([3, 1, 1, 2, 2], vertical_alignment="bottom")
        name.selectbox("Tag", view.list_tags(cat), index=None, key=f"{key}_tag", accept_new_options=True,
                       placeholder="a tag: pick one or type a new one")
        none = n == 0
        add.button("Tag", key=f"{key}_tag_add", on_click=_tag, args=(cat, key, flt, "add"),
                   disabled=none, width="stretch")
        remove.button("Untag", key=f"{key}_tag_remove", on_click=_tag, args=(cat, key, flt, "remove"),
                      disabled=none, width="stretch")
        to_batch.button("Add to next batch", key=f"{key}_batch_add", on_click=_batch,
                        args=(cat, key, flt, "add"), disabled=none, width="stretch",
                        icon=":material/add_shopping_cart:")
        from_batch.button("Remove from batch", key=f"{key}_batch_remove", on_click=_batch,
                          args=(cat, key, flt, "remove"), disabled=none, width="stretch")
        last = curation.last_tag_action(cat)
        if last is not None:
            text, undo = st.columns([6, 1], vertical_alignment="center")
            when = f" at {last.created_at:%H:%M}" if last.created_at else ""
            by = {"app": "in the app", "cli": "by the CLI"}.get(last.origin or "", "")
            text.caption(f"Last tag action ({by}{when}): {plain(last.describe())}" if by or when
                         else f"Last tag action: {plain(last.describe())}")
            undo.button("Undo", key=f"{key}_undo", on_click=_undo, args=(cat, last.action_id),
                        icon=":material/undo:", width="stretch")
