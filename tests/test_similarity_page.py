"""AppTest: the Similarity page (queries by a sample within the sidebar filter, by text, by an
uploaded image, with a clear error for a non-image) and the Embedding map page."""

from __future__ import annotations

import io
import re
from pathlib import Path

from conftest import APP, APP_TIMEOUT, direct
from PIL import Image
from streamlit.testing.v1 import AppTest

CLIP = "demo CLIP"


def _page(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _text(value: str) -> str:
    """What the user reads of text shown through ``plain()`` (escapes and entities undone)."""
    return re.sub(r"\\(.)", r"\1", value).replace("&#58;\u2060", ":").replace("\u2060", "")


def _card_ids(at: AppTest) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", c.value).split(" · ")[0] for c in at.caption if " · " in c.value]


def test_query_by_a_sample_returns_k_results_all_passing_the_filter(app_catalog: Path) -> None:
    like = direct(app_catalog, "SELECT sample_id FROM samples WHERE weather = 'fog' ORDER BY sample_id LIMIT 1")[0][0]
    at = _page("pages/similarity.py", like=like, set=CLIP, k="12", labeled="unlabeled",
               **{"f.time_of_day": "night"})
    ids = _card_ids(at)
    assert len(ids) == 12 and like not in ids
    quoted = ", ".join(f"'{i}'" for i in ids)
    passing = direct(app_catalog, f"SELECT count(*) FROM samples WHERE sample_id IN ({quoted}) "
                                  "AND label IS NULL AND time_of_day = 'night'")[0][0]
    assert passing == 12
    scores = [float(re.search(r"similarity (-?[\d.]+)", c.value).group(1)) for c in at.caption
              if " · " in c.value]
    # the grid is read column by column (6 columns): put the cards back in page order
    in_page = [0.0] * 12
    for j, score in enumerate(scores):  # 12 cards: column c holds cards c and c + 6
        in_page[(j % 2) * 6 + j // 2] = score
    assert in_page == sorted(scores, reverse=True)


def test_text_query_on_the_demo_clip(app_catalog: Path) -> None:
    at = _page("pages/similarity.py", set=CLIP, text="a green traffic cone at night")
    assert len(_card_ids(at)) == 24
    assert at.radio(key="sim_kind").value == "Text"


def test_an_uploaded_non_image_gives_a_clear_error_and_an_image_works(app_catalog: Path) -> None:
    at = _page("pages/similarity.py", set=CLIP)
    at.radio(key="sim_kind").set_value("Image").run()
    at.file_uploader(key="sim_upload").upload("notes.txt", b"just some text", "text/plain").run()
    assert not at.exception
    assert any("notes.txt: not an image" in _text(e.value) for e in at.error), [e.value for e in at.error]
    assert _card_ids(at) == []
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (20, 30, 40)).save(buf, format="PNG")
    at.file_uploader(key="sim_upload").upload("dark.png", buf.getvalue(), "image/png").run()
    assert not at.error and len(_card_ids(at)) == 24


def test_examples_without_vectors_say_so(app_catalog: Path) -> None:
    at = _page("pages/similarity.py", set=CLIP, like="no-such-sample")
    assert any("'no-such-sample'" in _text(e.value) and "no vector" in _text(e.value) for e in at.error)


def test_outliers_and_near_duplicates_views(app_catalog: Path) -> None:
    at = _page("pages/similarity.py", set=CLIP, sim="outliers")
    assert len(_card_ids(at)) == 24 and at.dataframe[0].value["samples"].sum() > 0
    at = _page("pages/similarity.py", set=CLIP, sim="duplicates")
    assert not at.error


def test_the_map_shows_pca_at_once(app_catalog: Path) -> None:
    at = _page("pages/embedding_map.py", set=CLIP)
    assert len(at.get("plotly_chart")) == 1
    runs = direct(app_catalog, "SELECT method, n FROM embedding_map_runs")
    n = direct(app_catalog, "SELECT count(*) FROM samples")[0][0]
    assert ("pca", n) in runs


def test_a_second_similar_link_in_the_same_session_replaces_the_query(app_catalog: Path) -> None:
    first, second = (r[0] for r in direct(app_catalog, "SELECT sample_id FROM samples ORDER BY sample_id LIMIT 2"))
    at = _page("pages/similarity.py", like=first, set=CLIP)
    assert at.text_area(key="sim_like").value == first
    at.query_params["like"] = second  # what the next card's "Similar" link does
    at.run()
    assert at.text_area(key="sim_like").value == second
    ids = _card_ids(at)
    assert len(ids) == 24 and second not in ids
