"""MariaDB/MySQL: an InnoDB ``FULLTEXT`` index on ``notes.search_text``, asked in boolean mode
(every term required). Its parser splits the tokens exactly as they were made (plain letters
and digits), and none is shorter than its minimum or one of its stopwords.

InnoDB's full-text search hands back every note holding a term, unordered, before the newest
are sorted out: it costs what the number of those notes costs (about as much per note as
reading a note's text). So the newest notes are first read newest first along the primary
key, each matched by its tokens (``LIKE``, the same tokens the index holds), stopping at the
``limit``-th match: the newest :data:`FIRST`, then windows :data:`STEP` times wider, up to
:data:`CAP` notes in all. Before each wider window the two costs are weighed from what was
read: the notes still to read to find ``limit`` matches at the rate seen so far, against the
notes the index would hand back (the rarest term's rate in the notes read, times the notes
written). The index is asked when it is the cheaper (a rare word), or when :data:`CAP` notes
are read; and then for the rarest term only, each of its notes checked for the other terms
(not for its own: the index holds the same tokens): a query that adds a rare word to a word in
every note costs what the rare word costs.

Reading on costs ``limit / rate`` notes, the index ``rate * notes``: the cheaper of the two
never exceeds ``sqrt(limit * notes)`` notes' worth (14,000 at a million notes and a
``limit`` of 200), whatever the word, wherever the estimate is right.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.dialects.mysql import match

from ..extensions import db
from ..models import Note
from .query import Query, Term
from .rows import details

FIRST = 300  # the newest notes read first, one by one (a rare word reads no more)
STEP = 4  # each further window of notes read is this many times wider than all read before
CAP = 50_000  # the most notes read one by one before the full-text index is asked


def against(terms: tuple[Term, ...] | list[Term]) -> str:
    return " ".join(f"+{t.token}" + ("*" if t.prefix else "") for t in terms)


class MariaDB:
    def _match(self, query: Query) -> ColumnElement[float]:
        return match(Note.__table__.c.search_text, against=against(query.terms),
                     in_boolean_mode=True)

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

        def has(term: Term) -> ColumnElement[bool]:
            pattern = f"% {term.token}%" if term.prefix else f"% {term.token} %"
            return spaced.op("LIKE BINARY")(literal(pattern))

        holds = and_(*(has(t) for t in query.terms))

        def newest(low: int, high: int, count: int) -> list[int]:
            return list(db.session.scalars(
                select(Note.id).where(Note.id > low, Note.id <= high, holds, where)
                .order_by(Note.id.desc()).limit(count)))

        read = min(FIRST, top)
        found = newest(top - read, top, limit) if read else []
        rarest, rate = query.terms[0], -1.0  # the term to ask the index for; its rate
        if len(query.terms) > 1 and len(found) < limit and 0 < read < top:
            # how often each term is in the newest notes: the rarest is asked
            counts = db.session.execute(select(*(
                func.sum(case((has(t), 1), else_=0)) for t in query.terms
            )).where(Note.id > top - read)).one()
            least, rarest = min(zip((int(c or 0) for c in counts), query.terms, strict=True),
                                key=lambda pair: pair[0])
            rate = least / read
        while len(found) < limit and read < top:
            if not read or read >= CAP:
                break
            # the notes the index would hand back, about, against the notes still to read
            handed = (rate if rate >= 0 else len(found) / read) * top
            to_read = (limit - len(found)) * read / len(found) if found else top - read
            if handed <= min(to_read, top - read):
                break  # the index is the cheaper
            wider = min(read * STEP, top, CAP)
            found += newest(top - wider, top - read, limit - len(found))
            read = wider
        else:
            return found  # the newest matches, or every match (every note was read)
        # the index, for the rarest term only; its notes checked for the other terms (the
        # index holds the same tokens: its own term needs no check)
        asked = match(Note.__table__.c.search_text, against=against([rarest]),
                      in_boolean_mode=True)
        others = [has(t) for t in query.terms if t is not rarest]
        return list(db.session.scalars(select(Note.id).where(asked > 0, *others, where)
                                       .order_by(Note.id.desc()).limit(limit)))
