"""User text in Markdown: every character that could start markup is escaped, nothing else changes."""

from __future__ import annotations

import re

import pytest

from pages._ui.text import plain

J = "\u2060"


@pytest.mark.parametrize("raw, shown", [
    ("cone", "cone"),
    ("green cone 2", "green cone 2"),
    ("![x](http://h/p.png)", f"\\!\\[x\\]\\(http&#58;{J}//h/p\\.png\\)"),
    ("<img src=x>", "\\<img src\\=x\\>"),
    ("`a` **b** _c_", "\\`a\\` \\*\\*b\\*\\* \\_c\\_"),
    (":red[x] $y$", f"&#58;{J}red\\[x\\] \\$y\\$"),
    ("a@b www.c", f"a{J}@b w{J}ww\\.c"),
    ("two\nlines\ttab", "two lines tab"),
    (3.5, "3\\.5"),
])
def test_plain_escapes_markup(raw: object, shown: str) -> None:
    assert plain(raw) == shown


@pytest.mark.parametrize("raw", ["# h", "- item", "1. x", "> quote", "| a | b |", "[a]: http://x", "~~s~~", "&amp;"])
def test_no_markup_character_is_left_unescaped(raw: str) -> None:
    out = plain(raw)
    unescaped = re.sub(r"\\.|&#58;", "", out)  # drop what is escaped
    assert not re.search(r"[#\-.>|\[\]()~&*_`!<$:]", unescaped), out


HTML_CLASS = '<a href="http://127.0.0.1:9/">a</a> & <b>b</b>'


def test_charts_escape_user_text_plotly_would_render_but_keep_drills_raw() -> None:
    """Plotly draws <a href>, <b>, <br> in labels: every user text in a figure is escaped, while
    the drill-down each mark carries keeps the raw value (it is data, bound in SQL)."""
    import html

    import pandas as pd

    from al_core.overview import charts
    from al_core.view.filters import parse_drill

    frame = pd.DataFrame({"class": [HTML_CLASS, "car"], "labeled": [3, 5], "predicted_in_pool": [1, 2]})
    split = pd.DataFrame({"split": [HTML_CLASS, "train"], "label": [HTML_CLASS, "car"], "n": [2, 4]})
    for fig in (charts.class_bars(frame, log=False), charts.split_bars(split, log=True)):
        for trace in fig.data:
            assert HTML_CLASS not in list(trace.x) and html.escape(HTML_CLASS, quote=False) in list(trace.x)
            assert all("<a " not in t for t in trace.text or [])
            assert "<a " not in (trace.name or "")
        drills = [parse_drill(d[0]) for t in fig.data for d in t.customdata if d[0]]
        assert any(c.value == HTML_CLASS for _, conds in drills for c in conds)
        assert "<a " not in str(fig.layout.xaxis.categoryarray)
