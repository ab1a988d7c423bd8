"""Highlighting in search results (notes.search.highlight): an excerpt costs what it shows,
and still marks what the search matched, in any script, wherever it is in a long note."""

from __future__ import annotations

import unicodedata

import pytest

from notes.search import highlight
from notes.search.highlight import EXCERPT_CHUNK
from notes.search.tokens import fold


def marked(html: str) -> list[str]:
    return [part.split("</mark>")[0] for part in html.split("<mark>")[1:]]


def reference_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@pytest.mark.parametrize("text", [
    "Plain ASCII, with Punctuation & CAPITALS\t\n", "Café CRÈME", "Straße", "ΝΈΑ Ελληνικά",
    "Ёлка", "Cafe\u0301 de\u0301ja\u0300", "中文筆記", "ﬁ ① Ⅻ", "İstanbul", "", "Ǆ ǅ ǆ",
])
def test_fold_gives_what_it_always_gave(text: str) -> None:
    """(The index's tokens are made with it: a faster fold must fold alike.)"""
    assert fold(text) == reference_fold(text)


def test_a_match_near_the_end_of_a_long_note_in_any_script() -> None:
    for filler, word, query in [("Lorem ipsum dolor sit amet. ", "Crème", "creme"),
                                ("這是一段很長的中文文字\uff0c", "筆記本", "筆記"),
                                ("Στην Αθήνα και αλλού. ", "ΝΈΑ", "νεα")]:
        text = filler * 20_000 + f"Last: {word} at the end."
        excerpt = highlight(text, query, 200)
        assert excerpt.startswith("…") and "at the end." in excerpt, query
        assert marked(excerpt) and fold(marked(excerpt)[0]).startswith(fold(query)), excerpt
        assert len(excerpt.striptags()) < 260


def test_combining_accents_are_marked_with_their_letter() -> None:
    text = "Before. Cafe\u0301 noir, de\u0301ja\u0300 vu."  # accents as separate marks
    html = highlight(text, "CAFE deja")
    assert marked(html) == ["Cafe\u0301", "de\u0301ja\u0300"]
    long = "word " * 1000 + text
    assert marked(highlight(long, "café", 200)) == ["Cafe\u0301"]


def test_chinese_matches_anywhere_in_a_word_and_every_word_is_marked() -> None:
    text = "我們今天在台北的咖啡館寫筆記\uff0c然後去看電影。" * 3
    html = highlight(text, "咖啡 筆記")
    assert marked(html) == ["咖啡", "筆記"] * 3
    excerpt = highlight("很長的開頭。" * 2000 + text, "咖啡", 50)
    assert marked(excerpt)[0] == "咖啡" and excerpt.startswith("…")


def test_the_first_match_is_found_past_words_that_only_contain_it() -> None:
    """``cafe`` inside ``decafe`` is no match (a word's start only): the excerpt goes on to
    the real one, chunks away."""
    text = "decafe " * (3 * EXCERPT_CHUNK) + "the café itself."
    excerpt = highlight(text, "cafe", 100)
    assert marked(excerpt) == ["café"] and "itself." in excerpt


def test_a_match_across_a_chunk_edge_and_a_word_cut_by_the_excerpt() -> None:
    text = "x" * (EXCERPT_CHUNK - 3) + " cafeteria " + "y " * 500
    assert marked(highlight(text, "cafeteria", 80)) == ["cafeteria"]
    cut = highlight("a b " * 100 + "supercalifragilistic", "supercalifragilistic", 20)
    assert marked(cut) and marked(cut)[0].startswith("supercal")
