"""Search words marked in a note's title and text, as the search matched them: a query word at
the start of a word (anywhere in scripts written without spaces), ignoring case and accents.

An excerpt costs what it shows, not what the note holds: the first match is looked for chunk by
chunk (each folded whole, which is fast), and characters are compared one by one only in the
chunk that holds it and in the excerpt itself (a results page of long notes, or of a million
notes, costs what a page of short ones does).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

from markupsafe import Markup, escape

from .query import parse
from .tokens import fold, unspaced

EXCERPT_CHUNK = 512  # characters folded at a time while looking for the first match
MARGIN = 16  # characters read before a window: whether a match starts a word, a mark's letter


def highlight(text: str, query: str, width: int | None = None) -> Markup:
    """``text`` escaped, with the words of ``query`` in ``<mark>`` (as the search matched
    them); with ``width``, only an excerpt of about that many characters around the first one."""
    words = parse(query).words
    start, end = 0, len(text)
    if width is not None and len(text) > width:
        first = _first(text, words)
        start = max(0, first - width // 3) if first is not None else 0
        end = min(len(text), start + width)
    # marked around the excerpt only: a margin before it (is a match the start of a word?),
    # and after it the longest word (a match cut by the excerpt's end is marked as far as shown)
    low = max(0, start - MARGIN)
    high = min(len(text), end + max((len(w) for w in words), default=0))
    marked = _marks(text[low:high], words, _before(text, low))
    out = [Markup("…")] if start else []
    pos = start
    while pos < end:
        stop = pos
        while stop < end and marked[stop - low] == marked[pos - low]:
            stop += 1
        piece = escape(text[pos:stop])
        out.append(Markup("<mark>%s</mark>") % piece if marked[pos - low] else piece)
        pos = stop
    if end < len(text):
        out.append(Markup("…"))
    return Markup("").join(out)


def _first(text: str, words: Sequence[str]) -> int | None:
    """Where in ``text`` the first match of ``words`` starts (``None``: nowhere)."""
    overlap = max((len(w) for w in words), default=0) + MARGIN  # a word across a chunk's edge
    for at in range(0, len(text), EXCERPT_CHUNK):
        piece = text[at:at + EXCERPT_CHUNK + overlap]
        folded = fold(piece)
        if any(word in folded for word in words):  # (perhaps not at a word's start)
            low = max(0, at - MARGIN)
            marked = _marks(text[low:at + EXCERPT_CHUNK + overlap], words, _before(text, low))
            if True in marked:
                return low + marked.index(True)
    return None


def _before(text: str, pos: int) -> str:
    """The folded character before ``text[pos]`` (a space at the start): whether a match at
    ``pos`` starts a word."""
    return fold(text[max(0, pos - MARGIN):pos])[-1:] or " "


# one character folded: what _marks asks for each character of a text that is not ASCII
_fold_char = functools.lru_cache(maxsize=8192)(fold)


def _marks(text: str, words: Sequence[str], before: str = " ") -> list[bool]:
    """For each character of ``text``, whether it is part of a match of one of ``words``
    (``before``: the folded character before ``text``)."""
    owner: Sequence[int]  # owner[i]: the index in text of folded character i
    ascii_only = text.isascii()
    if ascii_only:  # folding is lowering, character for character
        haystack, owner = text.lower(), range(len(text))
    else:
        folded: list[str] = []
        owned: list[int] = []
        for pos, ch in enumerate(text):
            f = _fold_char(ch)
            folded.append(f)
            owned.extend([pos] * len(f))
        haystack, owner = "".join(folded), owned
    marked = [False] * len(text)
    for word in words:
        at = haystack.find(word)
        while at != -1:
            prev = haystack[at - 1] if at else before
            # the start of a word, or anywhere in a script written without spaces
            if not prev.isalnum() or unspaced(prev) or unspaced(word[0]):
                for i in range(at, at + len(word)):
                    marked[owner[i]] = True
            at = haystack.find(word, at + 1)
    if not ascii_only:
        for pos in range(1, len(text)):  # a combining mark belongs to the letter before it
            if marked[pos - 1] and unicodedata.combining(text[pos]):
                marked[pos] = True
    return marked
