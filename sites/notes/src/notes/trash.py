"""The trash: deleting a note (the editor, the API, the admin, deleting its author) moves it
here; it keeps its id, slug, tags and revisions, and its author can restore it.

A note in the trash is not :func:`~notes.models.live`: no public page, feed, sitemap, search or
other user's API answer shows it. After ``NOTES_TRASH_DAYS`` the site purges it by itself (each
worker looks at most every :data:`PURGE_EVERY` seconds, before a request: no cron job), and
the uploads only it (or its revisions) showed are deleted with it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import click
from babel.dates import format_skeleton
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_babel import get_locale
from sqlalchemy import Select, select, update

from . import images
from .extensions import db
from .models import Note, NoteRevision, User, utcnow

log = logging.getLogger(__name__)
PURGE_EVERY = 600  # seconds between two looks for expired notes, per worker


def move(note: Note) -> None:
    """Move ``note`` to the trash (the caller commits)."""
    if note.deleted_at is None:
        note.deleted_at = utcnow()


def restore(note: Note) -> None:
    """Take ``note`` out of the trash: the same id, address, tags and history."""
    note.deleted_at = None


def purge(note: Note) -> None:
    """Delete ``note`` for good, with its revisions (the caller commits); its images go once
    nothing else shows them."""
    bodies = [note.body, *db.session.scalars(
        select(NoteRevision.body).where(NoteRevision.note_id == note.id))]
    images.forget_later(bodies)
    db.session.delete(note)


def of(user: User) -> Select[Note]:
    """``user``'s notes in the trash, the most recently deleted first."""
    return (select(Note).where(Note.author_id == user.id, Note.deleted_at.is_not(None))
            .order_by(Note.deleted_at.desc(), Note.id.desc()))


def get(user: User, note_id: int) -> Note | None:
    """``user``'s note ``note_id`` if it is in the trash."""
    found = db.session.get(Note, note_id)
    if found is None or found.author_id != user.id or found.deleted_at is None:
        return None
    return found


def expires(note: Note) -> str:
    """When the note will be purged, as a date."""
    assert note.deleted_at is not None
    days = current_app.config["NOTES_TRASH_DAYS"]
    return format_skeleton("yMMMd", note.deleted_at + timedelta(days=days),
                           locale=get_locale() or "en")


def purge_expired(batch: int = 100) -> int:
    """Purge the notes that have been in the trash longer than ``NOTES_TRASH_DAYS``."""
    cutoff = utcnow() - timedelta(days=current_app.config["NOTES_TRASH_DAYS"])
    purged = 0
    while True:
        found = db.session.scalars(select(Note).where(Note.deleted_at < cutoff)
                                   .order_by(Note.id).limit(batch)).all()
        if not found:
            return purged
        for note in found:
            purge(note)
        db.session.commit()
        images.delete_unreferenced()
        purged += len(found)


def hand_over(user: User, heir: User, to_trash: bool) -> int:
    """Before ``user`` is deleted: their notes become ``heir``'s — with ``to_trash``, in
    ``heir``'s trash (the admin deleting the account), who can still restore them until they
    are purged. Returns how many notes ``user`` had."""
    mine = update(Note).where(Note.author_id == user.id)
    if to_trash:
        db.session.execute(mine.where(Note.deleted_at.is_(None)).values(deleted_at=utcnow()))
    moved = db.session.execute(mine.values(author_id=heir.id))
    return int(getattr(moved, "rowcount", 0) or 0)


def init_app(app: Flask) -> None:
    app.cli.add_command(trash_cli)

    @app.before_request
    def purge_now_and_then() -> None:
        now, last = time.monotonic(), app.extensions.get("notes_trash_purged")
        if last is not None and now - last < PURGE_EVERY:
            return
        app.extensions["notes_trash_purged"] = now  # (per worker: workers are processes)
        try:
            count = purge_expired()
        except Exception as e:  # never fail a reader's request over housekeeping
            db.session.rollback()
            app.logger.warning("trash: purging expired notes failed: %s", e)
            return
        if count:
            app.logger.info("trash: purged %d note(s) older than %d days", count,
                            app.config["NOTES_TRASH_DAYS"])

    @app.teardown_request
    def forget_images(exc: BaseException | None) -> None:
        if exc is None and db.session.info.get("forget_now"):
            try:
                images.delete_unreferenced()
            except Exception as e:  # the answer is made: log, and the next purge retries
                app.logger.warning("deleting unreferenced uploads failed: %s", e)


trash_cli = click.Group("trash", help="The notes trash.")


@trash_cli.command("purge")
@with_appcontext
def purge_command() -> None:
    """Purge the notes in the trash for longer than NOTES_TRASH_DAYS now (the site also does
    it by itself)."""
    click.echo(f"purged {purge_expired()} notes")
