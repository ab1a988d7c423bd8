"""What search compares: a note's words as index tokens, made in Python, the same for every
database.

Text is :func:`fold`-ed (case folded, accents dropped, in any script) and cut into words (runs
of letters and digits). A word of a script written without spaces (Chinese, Japanese, Thai…)
becomes its overlapping pairs of characters plus its last character, so any part of it can be
found. Each token is spelled with ``a``-``z`` and ``0``-``9`` only (other characters as ``x`` and
four base-36 digits, a code in which no spelling is the start of another) behind the marker
``qq``: every database's full-text parser then sees the same plain words, at least three
characters long (MariaDB's shortest) and never one of its stopwords. A query word matches the
words of a note that start with it.
"""

from __future__ import annotations

import re
import unicodedata

MARK = "qq"
TOKEN_MAX = 80  # MariaDB indexes words of up to 84 characters: longer ones are cut here
# scripts written without spaces between words (a character class: rank.py matches by it too)
UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff"
            "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f")
_WORD = re.compile(r"[^\W_]+")
_PIECE = re.compile(f"([{UNSPACED}]+)")
_PLAIN = frozenset("abcdefghijklmnopqrstuvwyz0123456789")


def fold(text: str) -> str:
    """Text as search compares it: case folded, accents and other combining marks dropped
    (``"Ελληνικά"`` and ``"ελληνικα"`` fold alike)."""
    if text.isascii():  # (case folding is lowering there, and nothing decomposes)
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    # the marks among the characters present, each asked once (not once per character)
    marks = [c for c in set(decomposed) if unicodedata.combining(c)]
    return decomposed.translate(dict.fromkeys(map(ord, marks))) if marks else decomposed


def spell(word: str) -> str:
    """``word`` as an index token (see the module's docstring)."""
    out = [MARK]
    for ch in word:
        if ch in _PLAIN:
            out.append(ch)
        else:
            n = ord(ch)
            digits = ""
            for _ in range(4):
                n, r = divmod(n, 36)
                digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
            out.append("x" + digits)
    return "".join(out)[:TOKEN_MAX]


def unspaced(ch: str) -> bool:
    return _PIECE.fullmatch(ch) is not None


def pieces(word: str) -> list[tuple[str, bool]]:
    """A word cut into runs of spaced and unspaced scripts: ``[(text, unspaced), …]``."""
    return [(p, i % 2 == 1) for i, p in enumerate(_PIECE.split(word)) if p]


def words(text: str) -> list[str]:
    """The folded words of ``text``."""
    return _WORD.findall(fold(text))


def index_text(title: str, body_text: str) -> str:
    """:attr:`Note.search_text <notes.models.Note.search_text>`: the tokens of a note."""
    out: list[str] = []
    for word in words(f"{title}\n{body_text}"):
        for piece, cjk in pieces(word):
            if cjk:
                out.extend(spell(piece[i:i + 2]) for i in range(len(piece) - 1))
                out.append(spell(piece[-1]))
            else:
                out.append(spell(piece))
    return " ".join(out)
