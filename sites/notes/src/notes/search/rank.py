"""Relevance, computed in Python from what every database stores alike (a note's title and its
index tokens, ``search_text``), so that the same query ranks the same notes in the same order on
SQLite, PostgreSQL and MariaDB.

A note's score is the sum, over the query's index terms, of how often the note holds the term
(saturating as BM25 does, and relative to the note's length), plus :data:`TITLE` for each query
word found in its title. Only the first :data:`RANK_CHARS` characters of ``search_text`` are
counted, so a very long note costs no more to rank than a long one.
"""

from __future__ import annotations

import re

from .query import Query
from .tokens import UNSPACED, fold, unspaced

K1, B = 1.2, 0.75  # BM25's usual saturation and length weight
TYPICAL = 150  # the length of a typical note, in index tokens
TITLE = 2.0  # a query word in the title counts as much as the word many times in the text
RANK_CHARS = 10_000  # of a note's search_text counted (about 1,000 words)


class Scorer:
    """The score of a note for one query: ``Scorer(query)(title, search_text)``."""

    def __init__(self, query: Query) -> None:
        # an exact term is the token between spaces; a prefix, a token starting with it
        self.terms = [(f" {t.token}", None) if t.prefix else
                      (f" {t.token} ", re.compile(f" {t.token}(?= )")) for t in query.terms]
        self.title = [re.compile(re.escape(word) if unspaced(word[0]) else
                                 f"(?<![^\\W_{UNSPACED}]){re.escape(word)}")
                      for word in query.words]

    def __call__(self, title: str, search_text: str) -> float:
        text = search_text[:RANK_CHARS]
        if len(search_text) >= RANK_CHARS and " " in text:  # no token cut short
            text = text[:text.rindex(" ")]
        text = f" {text} "
        length = text.count(" ") - 1
        norm = K1 * (1 - B + B * length / TYPICAL)
        score = 0.0
        for needle, exact in self.terms:
            tf = len(exact.findall(text)) if exact else text.count(needle)
            score += tf * (K1 + 1) / (tf + norm)
        if title:
            folded = title.lower() if title.isascii() else fold(title)
            score += TITLE * sum(1 for word in self.title if word.search(folded))
        return score
