"""SQLite: FTS5 over ``notes.search_text`` (external content: the text is stored once)."""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
)

from ..models import Note
from .query import Query

fts = table("notes_fts", column("rowid", Integer))


def match(query: Query) -> str:
    return " ".join(f'"{t.token}"' + ("*" if t.prefix else "") for t in query.terms)


class SQLite:
    def _match(self, query: Query) -> ColumnElement[bool]:
        return literal_column("notes_fts").op("MATCH")(literal(match(query)))

    def condition(self, query: Query) -> ColumnElement[bool]:
        return Note.id.in_(select(fts.c.rowid).where(self._match(query)))

    def ranked(self, query: Query, where: ColumnElement[bool], limit: int
               ) -> Executable:
        score = -func.bm25(literal_column("notes_fts"))  # bm25(): lower is better
        return (select(fts.c.rowid, score, Note.published_at)
                .join(Note, Note.id == fts.c.rowid)
                .where(self._match(query), where)
                .order_by(fts.c.rowid.desc()).limit(limit))
