"""SQLite: FTS5 over ``notes.search_text`` (external content: the text is stored once).

FTS5 reads a whole token's notes newest first and stops at the ``LIMIT``; a prefix query
(``"word"*``) first merges, in memory, every note holding any token that starts with it, which
costs what the number of such notes costs. So a query word that may be the start of longer
words is looked up in ``search_words`` (every token of the index, kept by triggers: migration
0011) and asked as those whole words, ``("word" OR "words" OR …)``, when they are at most
:data:`EXPANSIONS`; only a shorter start of more words than that is asked as a prefix.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    column,
    literal,
    literal_column,
    select,
    table,
)

from ..extensions import db
from ..models import Note
from .query import Query, Term
from .rows import COLUMNS

fts = table("notes_fts", column("rowid", Integer))
words = table("search_words", column("word"))
EXPANSIONS = 64  # whole words a query word's start is asked as, at most
_AFTER = "{"  # after every character of a token ([0-9a-z]): the end of a token's range


def match(query: Query) -> str:
    return " ".join(f'"{t.token}"' + ("*" if t.prefix else "") for t in query.terms)


def expand(term: Term) -> str:
    """``term`` for FTS5's MATCH: its whole words when they are few enough."""
    if not term.prefix:
        return f'"{term.token}"'
    found = list(db.session.scalars(
        select(words.c.word).where(words.c.word >= term.token,
                                   words.c.word < term.token + _AFTER)
        .order_by(words.c.word).limit(EXPANSIONS + 1)))
    if len(found) > EXPANSIONS:
        return f'"{term.token}"*'
    # no word starts with it: the token itself, which finds nothing either
    return "(" + " OR ".join(f'"{word}"' for word in found or [term.token]) + ")"


class SQLite:
    def _match(self, text: str) -> ColumnElement[bool]:
        return literal_column("notes_fts").op("MATCH")(literal(text))

    def condition(self, query: Query) -> ColumnElement[bool]:
        return Note.id.in_(select(fts.c.rowid).where(self._match(match(query))))

    def candidates(self, query: Query, where: ColumnElement[bool], limit: int) -> list[Any]:
        text = " AND ".join(expand(term) for term in query.terms)
        return list(db.session.execute(
            select(*COLUMNS).select_from(fts).join(Note, Note.id == fts.c.rowid)
            .where(self._match(text), where).order_by(fts.c.rowid.desc()).limit(limit)).all())
