"""Search words marked in a note's title and text, as the search matched them: a query word at
the start of a word (anywhere in scripts written without spaces), ignoring case and accents.

An excerpt costs what it shows, not what the note holds: the first match is looked for chunk by
chunk, then within the chunk that holds it piece by piece (each folded whole, which is fast),
and characters are compared one by one only in the piece that holds it and in the excerpt
itself (a results page of long notes, or of a million notes, costs what a page of short ones
does).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

from markupsafe import Markup, escape

from .query import parse
from .tokens import fold, unspaced

EXCERPT_CHUNK = 512  # characters folded at a time while looking for the first match
PIECE = 64  # then, within the chunk that holds it
MARGIN = 16  # characters read before a window: whether a match starts a word, a mark's letter

Span = tuple[int, int]  # [start, end) of marked characters


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
    out = ["…"] if start else []  # (plain strings, every piece of text escaped: one Markup)
    pos = start
    for s, e in _spans(text[low:high], words, _before(text, low)):
        s, e = max(s + low, start), min(e + low, end)
        if e <= s:
            continue
        out.append(f"{escape(text[pos:s])}<mark>{escape(text[s:e])}</mark>")
        pos = e
    out.append(escape(text[pos:end]))
    if end < len(text):
        out.append("…")
    return Markup("".join(out))


def _first(text: str, words: Sequence[str]) -> int | None:
    """Where in ``text`` the first match of ``words`` starts (``None``: nowhere)."""
    overlap = max((len(w) for w in words), default=0) + MARGIN  # a word across an edge
    for chunk in range(0, len(text), EXCERPT_CHUNK):
        if not _holds(text[chunk:chunk + EXCERPT_CHUNK + overlap], words):
            continue
        for at in range(chunk, min(len(text), chunk + EXCERPT_CHUNK), PIECE):
            piece = text[at:at + PIECE + overlap]
            if _holds(piece, words):  # (perhaps not at a word's start)
                spans = _spans(piece, words, _before(text, at))
                if spans:
                    return at + spans[0][0]
    return None


def _holds(text: str, words: Sequence[str]) -> bool:
    folded = fold(text)
    return any(word in folded for word in words)


def _before(text: str, pos: int) -> str:
    """The folded character before ``text[pos]`` (a space at the start): whether a match at
    ``pos`` starts a word."""
    return fold(text[max(0, pos - MARGIN):pos])[-1:] or " "


# one character folded: what _spans asks for each character of a text that is not ASCII
_fold_char = functools.lru_cache(maxsize=8192)(fold)


def _spans(text: str, words: Sequence[str], before: str = " ") -> list[Span]:
    """Where ``text`` holds matches of ``words``: its marked runs, in order, apart (``before``:
    the folded character before ``text``). A combining mark after a match is part of it."""
    owner: Sequence[int]  # owner[i]: the index in text of folded character i
    ascii_only = text.isascii()
    if ascii_only:  # folding is lowering, character for character
        haystack, owner = text.lower(), range(len(text))
    else:
        folded = list(map(_fold_char, text))
        haystack = "".join(folded)
        if len(haystack) == len(text) and "" not in folded:  # one for one (most scripts)
            owner = range(len(text))
        else:  # a character folded to several ("ß": "ss") or to none (a combining mark)
            owner = [pos for pos, f in enumerate(folded) for _ in f]
    found: list[Span] = []
    for word in words:
        at = haystack.find(word)
        while at != -1:
            prev = haystack[at - 1] if at else before
            # the start of a word, or anywhere in a script written without spaces
            if not prev.isalnum() or unspaced(prev) or unspaced(word[0]):
                s, e = owner[at], owner[at + len(word) - 1] + 1
                while not ascii_only and e < len(text) and unicodedata.combining(text[e]):
                    e += 1
                found.append((s, e))
            at = haystack.find(word, at + 1)
    found.sort()
    merged: list[Span] = []
    for s, e in found:  # overlapping or touching runs are one
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged
