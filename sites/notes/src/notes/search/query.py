"""A search query parsed once, with its cost bounded: at most :data:`QUERY_MAX` characters,
:data:`WORDS_MAX` words and :data:`TERMS_MAX` index terms are used (the rest is ignored), and
a word of one letter matches only that word (as a prefix it would match most notes).

Every way in (the site's search box, the API's ``q``, the Excel export) parses here, so the
limits and the meaning of a query are the same everywhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .tokens import TOKEN_MAX, pieces, spell, words

QUERY_MAX = 200  # characters
WORDS_MAX = 10
TERMS_MAX = 16  # index terms: a word of Chinese of n characters is n - 1 of them


@dataclass(frozen=True)
class Term:
    """An index token, and whether words that start with it match too."""

    token: str
    prefix: bool


@dataclass(frozen=True)
class Query:
    text: str  # as typed, cut to QUERY_MAX
    words: tuple[str, ...]  # folded: what highlighting marks
    terms: tuple[Term, ...]  # what the index is asked: every one must match

    def __bool__(self) -> bool:
        return bool(self.terms)


@functools.lru_cache(maxsize=256)  # a results page parses its query once per title and excerpt
def parse(text: str | None) -> Query:
    text = (text or "").strip()[:QUERY_MAX]
    found = tuple(dict.fromkeys(words(text)))[:WORDS_MAX]
    terms: dict[str, Term] = {}
    for word in found:
        for piece, cjk in pieces(word):
            if cjk and len(piece) > 1:  # every pair of characters, as the note's index has
                pairs = (spell(piece[i:i + 2]) for i in range(len(piece) - 1))
                terms.update((t, Term(t, False)) for t in pairs)
            else:
                token = spell(piece)
                prefix = len(piece) > 1 or cjk or len(token) >= TOKEN_MAX
                terms[token] = Term(token, prefix or terms.get(token, Term("", False)).prefix)
    return Query(text, found, tuple(terms.values())[:TERMS_MAX])
