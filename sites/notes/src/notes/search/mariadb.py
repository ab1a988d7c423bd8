"""MariaDB/MySQL: an InnoDB ``FULLTEXT`` index on ``notes.search_text``, asked in boolean mode
(every term required). Its parser splits the tokens exactly as they were made (plain letters
and digits), and none is shorter than its minimum or one of its stopwords."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Executable, select
from sqlalchemy.dialects.mysql import match

from ..models import Note
from .query import Query


def against(query: Query) -> str:
    return " ".join(f"+{t.token}" + ("*" if t.prefix else "") for t in query.terms)


class MariaDB:
    def _match(self, query: Query) -> ColumnElement[float]:
        return match(Note.__table__.c.search_text, against=against(query), in_boolean_mode=True)

    def condition(self, query: Query) -> ColumnElement[bool]:
        return self._match(query) > 0

    def candidates(self, query: Query, where: ColumnElement[bool], limit: int
                   ) -> Executable:
        return (select(Note.id).where(self.condition(query), where)
                .order_by(Note.id.desc()).limit(limit))
