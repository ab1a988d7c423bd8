"""MariaDB/MySQL: an InnoDB ``FULLTEXT`` index on ``notes.search_text``, asked in boolean mode
(every term required). Its parser splits the tokens exactly as they were made (plain letters
and digits), and none is shorter than its minimum or one of its stopwords.

InnoDB's full-text search hands back every match, unordered, before the newest are sorted out:
a word in most notes would cost what the number of notes costs. So the newest notes are first
read newest first along the primary key, each matched by its tokens (``LIKE``, the same tokens
the index holds), stopping at the ``limit``-th match: the newest :data:`FIRST`, then, if their
matches promise ``limit`` in :data:`RECENT`, the rest of the newest :data:`RECENT`. Only when
that finds fewer is the full-text index asked, and then the query's words are rare enough
(fewer than ``limit`` in :data:`RECENT` notes, about) that their matches are few.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, select
from sqlalchemy.dialects.mysql import match

from ..extensions import db
from ..models import Note
from .query import Query
from .rows import details

RECENT = 5000  # the newest notes read one by one before the full-text index is asked
FIRST = 1000  # read first: when they hold too few matches to promise enough, the index is asked


def against(query: Query) -> str:
    return " ".join(f"+{t.token}" + ("*" if t.prefix else "") for t in query.terms)


class MariaDB:
    def _match(self, query: Query) -> ColumnElement[float]:
        return match(Note.__table__.c.search_text, against=against(query), in_boolean_mode=True)

    def condition(self, query: Query) -> ColumnElement[bool]:
        return self._match(query) > 0

    def candidates(self, query: Query, where: ColumnElement[bool], limit: int) -> list[Any]:
        return details(self._ids(query, where, limit))

    def _ids(self, query: Query, where: ColumnElement[bool], limit: int) -> list[int]:
        top = db.session.scalar(select(func.max(Note.id)))
        if top is None:
            return []
        # the tokens are letters and digits between spaces: no LIKE wildcard among them; and
        # compared byte for byte (a collation's comparison costs ten times more)
        spaced = func.concat(" ", Note.search_text, " ")
        holds = and_(*(spaced.op("LIKE BINARY")(
            literal(f"% {t.token}%" if t.prefix else f"% {t.token} %")) for t in query.terms))

        def newest(low: int, high: int, count: int) -> list[int]:
            return list(db.session.scalars(
                select(Note.id).where(Note.id > low, Note.id <= high, holds, where)
                .order_by(Note.id.desc()).limit(count)))

        # the newest FIRST notes, then, if their matches promise enough, the rest of RECENT
        found, read = newest(top - FIRST, top, limit), FIRST
        if len(found) < limit and len(found) * RECENT >= limit * FIRST and top > FIRST:
            found += newest(top - RECENT, top - FIRST, limit - len(found))
            read = RECENT
        if len(found) >= limit or top <= read:
            return found  # the newest matches, or every match (every note was read)
        return list(db.session.scalars(select(Note.id).where(self.condition(query), where)
                                       .order_by(Note.id.desc()).limit(limit)))
