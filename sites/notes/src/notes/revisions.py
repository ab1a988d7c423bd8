"""Revisions and edit conflicts: every saved change of a note, whoever makes it.

Every write path (the editor, the API, the admin, the Excel import, a restore) calls
:func:`record` after changing a note and before committing: the note's ``version`` goes up by
one and its new state (title, text, tags, published; who, when, through what) is kept as a
:class:`~notes.models.NoteRevision`. The oldest revisions beyond ``NOTES_REVISIONS_KEEP`` per
note are dropped in the same transaction (their images go once nothing refers to them: see
:func:`notes.images.forget_later`).

A change is based on the version its writer saw (the editor form's hidden field, the API's
``If-Match``, the export's ``version`` column); :func:`check` refuses one based on an older
version with :class:`Conflict`. The database checks it too, at the same instant (the mapper's
``version_id_col``): of two writers saving the same version at once, the second gets a
:class:`Conflict` as well.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, case, delete, func, insert, literal, select

from . import images
from .extensions import db
from .models import Note, NoteRevision, User, join_tags, plain_text, utcnow

# every way a change is made, as the history shows it
VIA = ("editor", "api", "admin", "import", "restore", "publish", "migration")
# ... and in the reader's language
VIA_NAMES = {"editor": _l("editor"), "api": _l("API"), "admin": _l("admin"),
             "import": _l("import"), "restore": _l("restore"), "publish": _l("publish"),
             "migration": _l("migration")}


class Conflict(Exception):
    """A change based on an older version than the note's current one: not saved."""

    def __init__(self, note_id: int, base: int | None) -> None:
        super().__init__(f"note {note_id} changed since version {base}")
        self.note_id, self.base = note_id, base


@dataclass(frozen=True)
class State:
    """What a revision keeps of a note."""

    title: str
    body: str  # as written: the HTML, or the Markdown source of a Markdown note
    tags_text: str
    published: bool
    format: str = "html"

    @property
    def tag_names(self) -> list[str]:
        return self.tags_text.split("\n") if self.tags_text else []


def state(note: Note | NoteRevision) -> State:
    tags = (join_tags(t.name for t in note.tags) if isinstance(note, Note)
            else note.tags_text)
    body = note.text if isinstance(note, Note) else note.body
    return State(note.title, body, tags, bool(note.published), note.format or "html")


def check(note: Note, base: int | None) -> None:
    """Refuse a change based on version ``base`` when the note has moved on (``None``: the
    writer named no version, e.g. an API request without ``If-Match``: last write wins)."""
    if base is not None and base != note.version:
        raise Conflict(note.id, base)


def record(note: Note, before: State | None, by: User | None, via: str) -> NoteRevision | None:
    """After ``note`` was changed from ``before`` (``None``: it was just created), raise its
    version and keep its new state as a revision; nothing when nothing changed. The caller
    commits."""
    if note.id is None:
        db.session.flush()
    after = state(note)
    if before is not None:
        if after == before:
            return None
        note.version = note.version + 1
    note.tags_text = after.tags_text  # (models keeps it in step too, at the flush)
    revision = NoteRevision(
        note_id=note.id, version=note.version, title=after.title, body=after.body,
        tags_text=after.tags_text, published=after.published, format=after.format,
        by_id=by.id if by is not None else None,
        by_name=by.public_name if by is not None else "", via=via, created_at=utcnow())
    db.session.add(revision)
    trim([note.id])
    return revision


def record_rows(note_ids: list[int], by: User | None, via: str) -> None:
    """:func:`record` for notes written in bulk (the Excel import), whose ``version`` was
    already raised: their current rows are copied as revisions in one statement per batch."""
    now = utcnow()
    for start in range(0, len(note_ids), 500):
        batch = note_ids[start:start + 500]
        db.session.execute(insert(NoteRevision).from_select(
            ["note_id", "version", "title", "body", "tags_text", "published", "format",
             "by_id", "by_name", "via", "created_at"],
            select(Note.id, Note.version, Note.title,
                   case((Note.format == "markdown", func.coalesce(Note.source, Note.body)),
                        else_=Note.body),
                   Note.tags_text, Note.published, Note.format,
                   literal(by.id if by else None), literal(by.public_name if by else ""),
                   literal(via), literal(now, NoteRevision.created_at.type))
            .where(Note.id.in_(batch))))
        keep = current_app.config["NOTES_REVISIONS_KEEP"]
        over = db.session.scalars(
            select(NoteRevision.note_id).where(NoteRevision.note_id.in_(batch))
            .group_by(NoteRevision.note_id).having(func.count() > keep)).all()
        trim(list(over))


def trim(note_ids: Iterable[int]) -> None:
    """Drop the revisions of these notes beyond ``NOTES_REVISIONS_KEEP`` (oldest first);
    their images are checked once the transaction is committed."""
    keep = current_app.config["NOTES_REVISIONS_KEEP"]
    with db.session.no_autoflush:
        for note_id in note_ids:
            pending = sum(1 for o in db.session.new
                          if isinstance(o, NoteRevision) and o.note_id == note_id)
            old = db.session.scalars(
                select(NoteRevision.id).where(NoteRevision.note_id == note_id)
                .order_by(NoteRevision.id.desc()).offset(max(0, keep - pending))).all()
            if not old:
                continue
            images.forget_later(db.session.scalars(
                select(NoteRevision.body).where(NoteRevision.id.in_(old))))
            db.session.execute(delete(NoteRevision).where(NoteRevision.id.in_(old)))


def history(note: Note) -> Select[NoteRevision]:
    """A note's revisions, newest first."""
    return (select(NoteRevision).where(NoteRevision.note_id == note.id)
            .order_by(NoteRevision.id.desc()))


def get(note: Note, revision_id: int) -> NoteRevision | None:
    found = db.session.get(NoteRevision, revision_id)
    return found if found is not None and found.note_id == note.id else None


def at_version(note: Note, version: int) -> NoteRevision | None:
    return db.session.scalar(select(NoteRevision).where(
        NoteRevision.note_id == note.id, NoteRevision.version == version
    ).order_by(NoteRevision.id.desc()).limit(1))


def restore(note: Note, revision: NoteRevision, by: User | None) -> NoteRevision | None:
    """Make ``revision``'s title, text and tags the note's again (itself a new revision).
    The published state stays as it is now: restoring old words does not republish them."""
    from .services import update_note  # services calls this module on every write

    update_note(note, title=revision.title, body=revision.body, tags=revision.tag_names,
                format=revision.format or "html", by=by, via="restore")
    return at_version(note, note.version)


# -- differences, as people read them ---------------------------------------------------------

BLOCK_END = re.compile(
    r"(?i)<br\s*/?>|</(?:p|h[1-6]|li|pre|blockquote|div|tr|figcaption|td|th)>")
IMAGE = re.compile(r'(?i)<img\b[^>]*?\balt="([^"]*)"[^>]*>|<img\b[^>]*>')


def lines(body: str, format: str = "html") -> list[str]:
    """The text of a note's HTML as lines (a paragraph, heading or list item each); an image
    is shown as ``[image: its alt text]``. Markdown: its own lines."""
    if format == "markdown":
        return [line.rstrip() for line in body.splitlines() if line.strip()]
    body = IMAGE.sub(lambda m: f" [image: {html.unescape(m.group(1) or '')}] ", body or "")
    return [text for text in (plain_text(block) for block in BLOCK_END.split(body)) if text]


@dataclass(frozen=True)
class Line:
    kind: str  # "same", "removed", "added", "skipped"
    text: str


@dataclass(frozen=True)
class Diff:
    """What changed between two states: fields one by one, the text line by line."""

    fields: list[tuple[Any, Any, Any]]  # (name, before, after) of the fields that changed
    text: list[Line]

    @property
    def empty(self) -> bool:
        return not self.fields and not any(line.kind in ("removed", "added")
                                           for line in self.text)


CONTEXT = 2  # unchanged lines shown around a change


def diff(old: State, new: State) -> Diff:
    fields = []
    if old.title != new.title:
        fields.append((_l("Title"), old.title, new.title))
    if old.tags_text != new.tags_text:
        fields.append((_l("Tags"), ", ".join(old.tag_names) or _l("(none)"),
                       ", ".join(new.tag_names) or _l("(none)")))
    if old.published != new.published:
        fields.append((_l("State"), _l("published") if old.published else _l("draft"),
                       _l("published") if new.published else _l("draft")))
    if old.format != new.format:
        fields.append((_l("Format"), old.format, new.format))
    a, b = lines(old.body, old.format), lines(new.body, new.format)
    out: list[Line] = []
    if a != b:
        groups = list(difflib.SequenceMatcher(a=a, b=b, autojunk=False)
                      .get_grouped_opcodes(CONTEXT))
        for number, group in enumerate(groups):
            if number or group[0][1] > 0:
                out.append(Line("skipped", "…"))
            for tag, i1, i2, j1, j2 in group:
                if tag == "equal":
                    out.extend(Line("same", t) for t in a[i1:i2])
                    continue
                out.extend(Line("removed", t) for t in a[i1:i2])
                out.extend(Line("added", t) for t in b[j1:j2])
        if groups and groups[-1][-1][2] < len(a):
            out.append(Line("skipped", "…"))
    return Diff(fields, out)


@dataclass(frozen=True)
class ConflictView:
    """What the editor shows when a save is refused: what changed since the writer's version
    (or, when that revision is no longer kept, how theirs differs from the writer's text)."""

    current: NoteRevision | None
    since: Diff
    base_kept: bool


def conflict(note: Note, base: int | None, mine: State) -> ConflictView:
    theirs = state(note)
    old = at_version(note, base) if base is not None else None
    current = at_version(note, note.version)
    since = diff(state(old), theirs) if old is not None else diff(mine, theirs)
    return ConflictView(current, since, old is not None)


def describe(revision: NoteRevision) -> dict[str, Any]:
    """A revision as the API lists it."""
    return {"id": revision.id, "version": revision.version, "created_at": revision.created_at,
            "author": revision.by_name or None, "title": revision.title, "via": revision.via}
