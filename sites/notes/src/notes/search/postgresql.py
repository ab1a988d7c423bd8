"""PostgreSQL: ``notes.search_vector``, a ``tsvector`` generated from ``search_text`` with the
``simple`` configuration (the tokens are made in Python: no stemming, no stopwords), and a GIN
index on it.

Told nothing, the planner finds a query's newest matches one of two ways, each dear for some
words: along the primary key, newest first, checking each note's ``tsvector`` (about 4 µs a
note: it is stored out of line), which costs ``limit / share`` notes; or every note the GIN
index holds for the words, each read from the table and sorted, which costs ``share * notes``.
It prices a word's start (``word:*``, how every query word is asked) dear in the index and the
check cheap, so at a million notes it read 54,000 notes along the primary key for a word in
0.4 % of them, and all of them for a word in none.

So the share of the notes holding each term is taken from PostgreSQL's own statistics of the
column (``pg_stats.most_common_elems``, gathered by ``ANALYZE`` and autovacuum; read once per
process every :data:`STATS_SECONDS`: :func:`shares`), and a query's share estimated as the
planner does (the terms' shares multiplied):

* among the common elements: the query is asked within a window of the newest ids wide enough
  to hold ``limit`` matches, :data:`SPARE` times over (``id > newest - window``), followed by
  windows :data:`STEP` times wider while too few are found. The window is read by bitmap scans
  (the GIN index's notes intersected with the window's range of the primary key: only the
  window's matches are read from the table) unless reading it along the primary key costs less
  (a word in most notes: :data:`WALK`);
* rarer than the least common element (or a window as wide as the table): the GIN index's
  notes, sorted (at most ``least share * notes`` of them). A word in :data:`COMMON` of the
  notes or more beside a rarer one is not asked of the index (its start's bitmap would be
  most notes'): the rarer words' notes are, each checked for the whole query.

Statements that must use bitmaps run with ``enable_seqscan`` and ``enable_indexscan`` off for
that statement (``SET LOCAL``, restored after it); the query and the bounds are written into
the statement rather than passed as parameters, so that a statement prepared by psycopg is not
planned once for every query (a generic plan cannot know how common the words are).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, literal_column, select, text

from ..extensions import db
from ..models import Note
from .query import Query, Term
from .rows import details

vector: ColumnElement[Any] = literal_column("notes.search_vector")

SPARE = 1.5  # a window is this many times as wide as should hold the matches asked for
STEP = 4  # a window that held too few is followed by one this many times wider
# a note read from the table (along the primary key, its tsvector checked, or found by a
# bitmap) costs about as much as this many notes of a word's start in the GIN index
WALK = 8
BITMAPS = "/* bitmap scans */"  # marks a statement run with enable_seqscan/indexscan off
SCANS = ("enable_seqscan", "enable_indexscan")  # off for such a statement
STATS_SECONDS = 300  # how long the statistics read from pg_stats are used before read again
# a word in this share of the notes or more is not asked of the index beside a rarer one
COMMON = 0.1
_AFTER = "{"  # after every character of a token ([0-9a-z]): the end of a token's range


def fixed(value: int) -> ColumnElement[int]:
    """``value`` written into the statement (see :meth:`PostgreSQL._query`)."""
    return literal(value, literal_execute=True)


def tsquery(query: Query | list[Term]) -> str:
    terms = query if isinstance(query, list) else query.terms
    return " & ".join(t.token + (":*" if t.prefix else "") for t in terms)


class Shares:
    """The share of the notes holding each of the column's most common elements, as
    ``ANALYZE`` last counted them in its sample (``pg_stats``)."""

    def __init__(self, elements: list[str], freqs: list[float]) -> None:
        pairs = sorted(zip(elements, freqs[:len(elements)], strict=True))
        self.elements = [e for e, _ in pairs]
        self.freqs = [f for _, f in pairs]
        # (after the elements' own: the least and the greatest of them, the share of nulls)
        self.least = freqs[len(elements)] if len(freqs) > len(elements) else min(self.freqs)

    def term(self, term: Term) -> float | None:
        """About how many of the notes hold ``term``; ``None`` when it is not among the
        common elements. A word's start: the shares of the words it begins, added (at most
        all notes)."""
        start = bisect.bisect_left(self.elements, term.token)
        if not term.prefix:
            found = start < len(self.elements) and self.elements[start] == term.token
            return self.freqs[start] if found else None
        end = bisect.bisect_left(self.elements, term.token + _AFTER, start)
        return min(1.0, sum(self.freqs[start:end])) if end > start else None

    def share(self, query: Query) -> float | None:
        """About how many of the notes hold every term (as if they were independent, as the
        planner estimates); ``None`` when fewer than the least common element."""
        share = 1.0
        for term in query.terms:
            found = self.term(term)
            if found is None:
                return None
            share *= found
        return share if share >= self.least else None


_read: dict[str, tuple[float, Shares | None]] = {}  # database: (when read, its statistics)
_lock = threading.Lock()


def shares() -> Shares | None:
    """The statistics of ``notes.search_vector`` (``None`` before it is first analyzed), read
    once per process every :data:`STATS_SECONDS`."""
    key = db.engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    cached = _read.get(key)
    if cached is not None and now - cached[0] < STATS_SECONDS:
        return cached[1]
    row = db.session.execute(text(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'notes' "
        "AND attname = 'search_vector'")).first()
    found = Shares(list(row[0]), list(row[1])) if row is not None and row[0] else None
    with _lock:
        _read[key] = (now, found)
    return found


def forget() -> None:
    """Read the statistics again at the next search (after ``ANALYZE``)."""
    with _lock:
        _read.clear()


class PostgreSQL:
    def _query(self, query: Query | list[Term]) -> ColumnElement[object]:
        # written into the statement, not a parameter: psycopg prepares a statement run five
        # times, and PostgreSQL may then plan it once for any query (a generic plan)
        return func.to_tsquery(literal_column("'simple'::regconfig"),
                               literal(tsquery(query), literal_execute=True))

    def condition(self, query: Query) -> ColumnElement[bool]:
        return vector.op("@@")(self._query(query))

    def candidates(self, query: Query, where: ColumnElement[bool], limit: int) -> list[Any]:
        return details(self._ids(query, where, limit))

    def _ids(self, query: Query, where: ColumnElement[bool], limit: int) -> list[int]:
        matching = self.condition(query)

        def newest(*bounds: ColumnElement[bool], count: int, bitmaps: bool) -> list[int]:
            stmt = (select(Note.id).where(matching, where, *bounds)
                    .order_by(Note.id.desc()).limit(fixed(count)))
            if not bitmaps:
                return list(db.session.scalars(stmt))
            # the GIN index's notes (within the window), whatever the planner thinks (see
            # above); for this statement only
            session = db.session
            session.execute(text("; ".join(f"SET LOCAL {s} = off" for s in SCANS)))
            found = list(session.scalars(stmt.prefix_with(BITMAPS)))
            session.execute(text("; ".join(f"SET LOCAL {s} = DEFAULT" for s in SCANS)))
            return found

        stats = shares()
        if stats is None:  # never analyzed: the planner's own choice
            return newest(count=limit, bitmaps=False)
        share = stats.share(query)
        if share is None:  # a rare word: the index's notes, sorted
            rare = [t for t in query.terms if (stats.term(t) or 0) < COMMON]
            if len(rare) < len(query.terms):
                # the index asked for the rarer words only (a common word's start is the
                # bitmap of most notes), each of their notes checked for the whole query
                matching = and_(vector.op("@@")(self._query(rare)),
                                func.ts_match_vq(vector, self._query(query)))
            return newest(count=limit, bitmaps=True)
        top = db.session.scalar(select(func.max(Note.id))) or 0
        width = math.ceil(limit / share * SPARE)
        if width >= top:  # (few notes: all of them)
            return newest(count=limit, bitmaps=True)
        # by bitmaps (the word's notes in the GIN index, then the window's matches read from
        # the table) unless reading the window along the primary key costs less
        bitmaps = share * top + limit * SPARE * WALK < limit / share * WALK
        found = newest(Note.id > fixed(top - width), count=limit, bitmaps=bitmaps)
        high = top - width
        while len(found) < limit and high > 0:
            width *= STEP
            low = top - width
            bounds = [Note.id <= fixed(high)] + ([Note.id > fixed(low)] if low > 0 else [])
            found += newest(*bounds, count=limit - len(found), bitmaps=bitmaps)
            high = low
        return found
