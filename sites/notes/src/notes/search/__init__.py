"""Full-text search: one interface (:func:`ranked`, :func:`condition`), a backend per database.

What matches is decided in Python, the same on every database (:mod:`.tokens`, :mod:`.query`):
a note matches when, for every word of the query, one of its words (in its title or text)
starts with it, ignoring case and accents in any script; in scripts written without spaces,
any part of a word matches. Each database only looks the tokens up in its own full-text index:

* SQLite: an FTS5 table over ``notes.search_text`` (``notes_fts``, kept by triggers);
* PostgreSQL: a ``tsvector`` column generated from ``search_text`` with a GIN index;
* MariaDB/MySQL: an InnoDB ``FULLTEXT`` index on ``search_text``.

Each follows every write of ``search_text`` by itself (triggers, a generated column, the index):
whatever writes a note (pages, admin, API, import, a restore) keeps it searchable.

Ranking: the database hands the newest :data:`CANDIDATES` matching notes, read along its index
newest first; they are ranked in Python (:mod:`.rank`, the same on every database), ties broken
by recency. The cap bounds the cost of a word found in most notes.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

from sqlalchemy import ColumnElement, false

from ..extensions import db
from .highlight import highlight
from .query import QUERY_MAX, WORDS_MAX, Query, Term, parse
from .rank import Scorer

__all__ = [
    "CANDIDATES",
    "QUERY_MAX",
    "WORDS_MAX",
    "Backend",
    "Query",
    "Term",
    "condition",
    "highlight",
    "outside_models",
    "parse",
    "ranked",
]

CANDIDATES = 200  # the newest matching notes a search ranks
# what migrations 0008 and 0011 make for each database, beside the models (see migrations/env.py)
INDEX_OBJECTS = ("notes_fts", "search_vector", "ix_notes_search_vector", "ix_notes_search_text",
                 "search_words")


def outside_models(name: str | None) -> bool:
    """Whether ``name`` is part of a database's full-text index (FTS5 keeps shadow tables
    ``notes_fts_*``), which the models do not declare."""
    return name is not None and (name in INDEX_OBJECTS or name.startswith("notes_fts_"))


class Backend(Protocol):
    def condition(self, query: Query) -> ColumnElement[bool]:
        """Notes matching every term of ``query`` (a WHERE clause on ``notes``)."""

    def candidates(self, query: Query, where: ColumnElement[bool], limit: int) -> list[Any]:
        """The ``limit`` newest (by id) notes matching ``query`` and ``where``, as
        :data:`.rows.COLUMNS`."""


@functools.cache
def backend(dialect: str) -> Backend:
    if dialect == "sqlite":
        from .sqlite import SQLite
        return SQLite()
    if dialect == "postgresql":
        from .postgresql import PostgreSQL
        return PostgreSQL()
    if dialect in ("mysql", "mariadb"):
        from .mariadb import MariaDB
        return MariaDB()
    raise LookupError(f"no full-text search for the {dialect} database")


def _current() -> Backend:
    return backend(db.engine.dialect.name)


def condition(query: Query | str) -> ColumnElement[bool]:
    """Notes matching ``query`` (unranked, unbounded: for the Excel export)."""
    query = parse(query) if isinstance(query, str) else query
    return _current().condition(query) if query else false()


def ranked(query: Query | str, where: ColumnElement[bool], limit: int | None = None
           ) -> list[int]:
    """The ids of the notes matching ``query`` and ``where``: the newest ``limit`` of them,
    most relevant first (:mod:`.rank`), then most recently published (``limit``: at most
    :data:`CANDIDATES`)."""
    query = parse(query) if isinstance(query, str) else query
    if not query:
        return []
    rows = _current().candidates(query, where, limit or CANDIDATES)
    score = Scorer(query)
    # most relevant first, then most recently published (unpublished last), then newest
    rows.sort(key=lambda r: (score(r[1] or "", r[2] or ""), r[3] is not None, r[3] or "",
                             r[0]), reverse=True)
    return [int(r[0]) for r in rows]


