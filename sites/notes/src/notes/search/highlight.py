"""Search words marked in a note's title and text, as the search matched them: a query word at
the start of a word (anywhere in scripts written without spaces), ignoring case and accents."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from markupsafe import Markup, escape

from .query import parse
from .tokens import fold, unspaced


def highlight(text: str, query: str, width: int | None = None) -> Markup:
    """``text`` escaped, with the words of ``query`` in ``<mark>`` (as the search matched
    them); with ``width``, only an excerpt of about that many characters around the first one."""
    words = list(parse(query).words)
    offset = 0
    if width is not None and len(text) > width:
        # find the first match by chunks (folding whole strings is fast), then mark only
        # around it: a note of a million characters costs milliseconds, not seconds
        at = _first_chunk(text, words)
        offset = max(0, at - width)
        text = text[offset:at + EXCERPT_CHUNK + 2 * width]
    marked = _marks(text, words)
    start, end = 0, len(text)
    if width is not None and (offset or len(text) > width):
        first = marked.index(True) if True in marked else 0
        start = max(0, first - width // 3)
        end = min(len(text), start + width)
    out = [Markup("…")] if start + offset else []
    pos = start
    while pos < end:
        stop = pos
        while stop < end and marked[stop] == marked[pos]:
            stop += 1
        piece = escape(text[pos:stop])
        out.append(Markup("<mark>%s</mark>") % piece if marked[pos] else piece)
        pos = stop
    if end < len(text):
        out.append(Markup("…"))
    return Markup("").join(out)


EXCERPT_CHUNK = 1024


def _first_chunk(text: str, words: list[str]) -> int:
    """Where the chunk holding the first match of ``words`` starts (0 if none)."""
    for at in range(0, len(text), EXCERPT_CHUNK):
        piece = fold(text[at:at + EXCERPT_CHUNK + 100])  # overlap: a word across the edge
        if any(word in piece for word in words):
            return at
    return 0


def _marks(text: str, words: list[str]) -> list[bool]:
    """For each character of ``text``, whether it is part of a match of one of ``words``."""
    owner: Sequence[int]  # owner[i]: the index in text of folded character i
    if text.isascii():  # folding is lowering, character for character
        haystack, owner = text.lower(), range(len(text))
    else:
        folded: list[str] = []
        owned: list[int] = []
        for pos, ch in enumerate(text):
            f = ch.lower() if ch.isascii() else fold(ch)
            folded.append(f)
            owned.extend([pos] * len(f))
        haystack, owner = "".join(folded), owned
    marked = [False] * len(text)
    for word in words:
        at = haystack.find(word)
        while at != -1:
            before = haystack[at - 1] if at else " "
            # the start of a word, or anywhere in a script written without spaces
            if not before.isalnum() or unspaced(before) or unspaced(word[0]):
                for i in range(at, at + len(word)):
                    marked[owner[i]] = True
            at = haystack.find(word, at + 1)
    for pos in range(1, len(text)):  # a combining mark belongs to the letter before it
        if marked[pos - 1] and unicodedata.combining(text[pos]):
            marked[pos] = True
    return marked
