"""What ranking reads of each candidate note (:mod:`.rank`): its id, title, the start of its
index tokens and its time of publication (as the database hands it: only compared with the
others')."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, func, select, type_coerce

from ..extensions import db
from ..models import Note
from .rank import RANK_CHARS

COLUMNS = (Note.id, Note.title, func.substr(Note.search_text, 1, RANK_CHARS),
           type_coerce(Note.published_at, String))


def details(ids: list[int]) -> list[Any]:
    """:data:`COLUMNS` of these notes, read by their primary key."""
    if not ids:
        return []
    stmt = select(*COLUMNS).where(Note.id.in_(ids))
    for dialect in ("mysql", "mariadb"):  # (it reads the table whole when the ids are many)
        stmt = stmt.with_hint(Note, "FORCE INDEX (PRIMARY)", dialect)
    return list(db.session.execute(stmt).all())
