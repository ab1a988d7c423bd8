"""PostgreSQL: ``notes.search_vector``, a ``tsvector`` generated from ``search_text`` with the
``simple`` configuration (the tokens are made in Python: no stemming, no stopwords), and a GIN
index on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal, literal_column, select

from ..extensions import db
from ..models import Note
from .query import Query
from .rows import details

vector: ColumnElement[Any] = literal_column("notes.search_vector")


def tsquery(query: Query) -> str:
    return " & ".join(t.token + (":*" if t.prefix else "") for t in query.terms)


class PostgreSQL:
    def _query(self, query: Query) -> ColumnElement[object]:
        return func.to_tsquery(literal_column("'simple'::regconfig"), literal(tsquery(query)))

    def condition(self, query: Query) -> ColumnElement[bool]:
        return vector.op("@@")(self._query(query))

    def candidates(self, query: Query, where: ColumnElement[bool], limit: int) -> list[Any]:
        return details(list(db.session.scalars(select(Note.id).where(self.condition(query), where)
                                               .order_by(Note.id.desc()).limit(limit))))
