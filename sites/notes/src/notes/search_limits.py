"""What one search may ask: the words of a query, bounded (pages, API, admin export, and
whatever engine runs them).

A substring search (``LIKE '%word%'``) costs, in the worst case, the length of the text
searched times the length of the word: a word of 199 ``a`` then ``b`` over notes of ``a``
compares about 200 characters at every position. The bound per query is therefore
``QUERY_MAX`` characters read, at most ``WORDS_MAX`` words of at most ``WORD_MAX``
characters each: at most ``WORDS_MAX * WORD_MAX`` (120) character comparisons per character
of searched text, against 200 before (1 word of 200), and a full-text index (which does not
compare at every position) costs per word looked up instead.
"""

from __future__ import annotations

from .models import fold
from .text import clean_text

QUERY_MAX = 200  # characters of the query read (the rest is ignored)
WORDS_MAX = 5  # words used (more are ignored)
WORD_MAX = 24  # characters of a word used (a longer word is searched by its beginning)


def query_words(query: str) -> list[str]:
    """The words ``query`` searches for, as :func:`~notes.models.fold` compares them: at most
    :data:`WORDS_MAX`, each at most :data:`WORD_MAX` characters, no duplicates."""
    words: list[str] = []
    for word in fold(clean_text(query[:QUERY_MAX])).split():
        word = word[:WORD_MAX]
        if word not in words:
            words.append(word)
        if len(words) == WORDS_MAX:
            break
    return words
