"""User text (ids, labels, metadata, file names) shown literally inside Streamlit's Markdown."""

from __future__ import annotations

import re
from typing import Any

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the ones
# that start Markdown, HTML, links, images, LaTeX ($), Streamlit's :color[...] and :icons:.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&\"'=])")


_JOINER = "\u2060"  # WORD JOINER: zero width, not a space
_WWW = re.compile(r"www", re.IGNORECASE)


def plain(value: Any) -> str:
    """``value`` as text that Markdown shows character for character and never renders.

    A label ``![x](http://host/p.png)`` stays those characters: no image is fetched, no link,
    no HTML, no formula. Newlines become spaces (a caption is one line).
    """
    escaped = _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    # Streamlit expands :icon: and :color[...]: shortcodes before Markdown sees the backslashes;
    # a character reference shows the colon and matches neither. Autolinks (http://, www., a@b)
    # are found in the text itself: an invisible word joiner keeps them from being links.
    escaped = escaped.replace(":", "&#58;" + _JOINER).replace("@", _JOINER + "@")
    return _WWW.sub(lambda m: m.group(0)[0] + _JOINER + m.group(0)[1:], escaped)
