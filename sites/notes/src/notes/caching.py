"""The HTTP cache policy: which answers a shared cache (the kit's Nginx) may keep, and for
how long; those are compressed here, once, so the cache keeps and serves the compressed copy
instead of compressing it again for every reader.

And purging: every committed change to a note, a tag or a user purges the public pages it
affects from the kit's cache (:mod:`flaskstack.purge`), from the session's own events, so
every write path (pages, admin, API, import, trash, restore) purges without knowing of it.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable
from typing import Any

from flask import Response, current_app, request
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstanceState, ORMExecuteState, Session

from .extensions import db
from .models import Note, Tag, User, next_scheduled, utcnow

# cacheable for anonymous readers
PUBLIC_ENDPOINTS = frozenset({"views.index", "views.note", "views.author", "views.tag",
                              "views.feed", "views.tag_feed", "views.author_feed",
                              "views.sitemap", "views.robots"})
UNSCHEDULED = frozenset({"views.robots"})  # and a note's page that is found (below)
STATIC_ENDPOINTS = frozenset({"static", "views.media", "admin.static"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CACHED_STATUSES = frozenset({200, 404})
COMPRESSED_TYPES = frozenset({"text/html", "text/plain", "text/xml", "application/xml",
                              "application/atom+xml", "application/json"})
STALE_IF_ERROR = 300  # seconds the shared cache may cover for an unreachable app
SMALLEST_COMPRESSED = 256  # bytes: below this gzip's own header and trailer outweigh the gain


def public_read() -> bool:
    return request.method in SAFE_METHODS and request.endpoint in PUBLIC_ENDPOINTS


def cache_policy(response: Response, personal: bool) -> None:
    """Anonymous public pages may be shared by caches for ``NOTES_CACHE_SECONDS``; anything that
    could differ per user (a session, a cookie sent or set, a token) is ``private, no-store``."""
    if request.endpoint in STATIC_ENDPOINTS:
        return
    config = current_app.config
    personal = personal or "Set-Cookie" in response.headers or "Authorization" in request.headers
    cookies = (config["SESSION_COOKIE_NAME"], config["REMEMBER_COOKIE_NAME"])
    personal = personal or any(name in request.cookies for name in cookies)
    if personal:
        response.headers["Cache-Control"] = "private, no-store"
    elif (public_read() and response.status_code in CACHED_STATUSES
          and config["NOTES_CACHE_SECONDS"]):
        # max-age=0: browsers revalidate (after signing in they must not show the anonymous
        # page); s-maxage: a shared cache may serve it to other anonymous readers for N seconds.
        # A 404 too: a shared cache that holds the page keeps serving its stale copy while its
        # refreshed answer (the note unpublished or deleted) is not cacheable.
        # must-revalidate: browsers never show their expired copy (nor take the
        # stale-while-revalidate meant for the shared cache); stale-while-revalidate: the
        # shared cache serves its expired copy at most this much longer while one request
        # refreshes it; stale-if-error: while the app cannot be reached at all.
        # A note scheduled within that time: the shared cache keeps the page no longer than
        # until then, and serves no expired copy after (stale-while-revalidate=0), so no reader
        # waits for the note longer than the cache bound (nor sees it early: it is not on the
        # page before its time).
        # (A note's own page, found, does not change when another note is published.)
        seconds = stale = config["NOTES_CACHE_SECONDS"]
        unchanged = request.endpoint in UNSCHEDULED or (
            request.endpoint == "views.note" and response.status_code == 200)
        due = None if unchanged else until_scheduled(seconds)
        if due is not None:
            seconds, stale = due, 0
        response.headers["Cache-Control"] = (
            f"public, max-age=0, must-revalidate, s-maxage={seconds}, "
            f"stale-while-revalidate={stale}, stale-if-error={STALE_IF_ERROR}")
        compress(response)


def until_scheduled(within: int) -> int | None:
    """Whole seconds (rounded down) until the next scheduled note becomes public, if that is
    within ``within`` seconds."""
    now = utcnow()
    try:
        at = db.session.scalar(select(Note.published_at).where(next_scheduled())
                               .order_by(Note.published_at).limit(1))
    except SQLAlchemyError as e:  # the page is made: it is sent, not kept
        log.warning("the next scheduled note is not known (%s): the page is not cached", e)
        db.session.rollback()
        return 0
    if at is None or (at - now).total_seconds() >= within:
        return None
    return max(0, int((at - now).total_seconds()))


def compress(response: Response) -> None:
    """gzip ``response`` in place when the client accepts it and it is worth it."""
    response.vary.add("Accept-Encoding")
    if (not request.accept_encodings["gzip"] or response.direct_passthrough
            or response.is_streamed or "Content-Encoding" in response.headers
            or response.mimetype not in COMPRESSED_TYPES):
        return
    data = response.get_data()
    if len(data) < SMALLEST_COMPRESSED:
        return
    response.set_data(gzip.compress(data, compresslevel=6, mtime=0))
    response.headers["Content-Encoding"] = "gzip"


# -- purging ------------------------------------------------------------------------------

log = logging.getLogger(__name__)
ALL = "*"
EVERYWHERE = ("/", "/feed.xml", "/sitemap.xml")  # pages listing the newest notes
PURGED_TABLES = frozenset({"notes", "note_tags", "tags", "users"})
PENDING = "notes_purge"  # session.info key: the paths the transaction's changes affect


def note_paths(note: Note) -> set[str]:
    """The public pages showing ``note`` as it is and as it was before this flush: its address
    (old slug too), its author's page, its tags' pages, and the lists of newest notes."""
    state: InstanceState[Note] = inspect(note)
    paths = set(EVERYWHERE)
    slugs = {note.slug, *state.attrs.slug.history.deleted}
    authors = {note.author_id, *state.attrs.author_id.history.deleted}
    tags = {note.tags_text or "", *state.attrs.tags_text.history.deleted}
    tags.update(t.name for t in state.attrs.tags.history.deleted if isinstance(t, Tag))
    tags.update(t.name for t in state.attrs.tags.history.added if isinstance(t, Tag))
    paths.update(f"/n/{slug}" for slug in slugs if slug)
    paths.update(f"/a/{a}{feed}" for a in authors if a for feed in ("", "/feed.xml"))
    paths.update(f"/t/{name}{feed}" for text in tags for name in (text or "").split("\n")
                 if name for feed in ("", "/feed.xml"))
    return paths


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    pending: set[str] = session.info.setdefault(PENDING, set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Note):
            pending.update(note_paths(obj))
        elif obj in session.new:
            continue  # a new tag comes with a note (above); a new user is on no page yet
        elif isinstance(obj, Tag) or (isinstance(obj, User) and (
                obj in session.deleted or _public_change(obj))):
            pending.add(ALL)  # a name shown on many pages, or notes gone with their author


def _public_change(user: User) -> bool:
    state: InstanceState[User] = inspect(user)
    return any(state.attrs[name].history.has_changes() for name in ("display_name", "active"))


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> None:
    """Statements that write many rows at once (the Excel import): everything."""
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in PURGED_TABLES:
            state.session.info.setdefault(PENDING, set()).add(ALL)


@event.listens_for(Session, "after_commit")
def _purge(session: Session) -> None:
    paths = session.info.pop(PENDING, None)
    if paths:
        send(ALL if ALL in paths else paths)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)


def send(paths: Iterable[str] | str) -> None:
    """Purge ``paths`` (or :data:`ALL`) from the kit's cache; problems are logged, never
    raised (the change itself is committed)."""
    from flaskstack import purge

    for problem in purge.send([paths] if isinstance(paths, str) else sorted(paths)):
        log.warning("cache purge failed: %s", problem)
