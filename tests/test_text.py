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
