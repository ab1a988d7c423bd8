"""Note operations shared by the web pages, the admin, the API and the Excel import.

Every write of note HTML goes through :func:`clean_html`, and every title gets a unique slug.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import nh3
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import ApiToken, Note, User, utcnow

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span",
    "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir"},
    "a": {"href", "name", "target"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "table": {"border", "cellpadding", "cellspacing", "summary"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
}
URL_SCHEMES = {"http", "https", "mailto"}

TITLE_MAX = 200
BODY_MAX = 1_000_000  # characters of HTML, in every way in: form, API, admin, Excel import
SLUG_MAX = 200
# set by save_note when concurrent writers keep taking the same next free slug
_contended: ContextVar[bool] = ContextVar("slug_contended", default=False)


def clean_html(html: str) -> str:
    """Keep formatting, lists, tables, links and images; drop scripts, handlers, bad URLs."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def slugify(text: str) -> str:
    """``"Hello, World!"`` -> ``"hello-world"``; never empty."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text[:SLUG_MAX].strip("-") or "note"


def unique_slug(title: str, exclude_id: int | None = None, taken: set[str] | None = None) -> str:
    """A slug for ``title`` not used by any other note (``-2``, ``-3``… on collision).

    ``taken``: the slugs in use, when the caller knows them all (a bulk import), instead of
    asking the database.
    """
    base = slugify(title)
    if _contended.get():  # step aside from the writers racing for -2, -3…
        base = f"{base[:SLUG_MAX - 7]}-{secrets.token_hex(3)}"
    if taken is None:
        stmt = select(Note.id, Note.slug).where(Note.slug.like(f"{base}%"))
        taken = {slug for note_id, slug in db.session.execute(stmt) if note_id != exclude_id}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def search(query: str) -> ColumnElement[bool]:
    """Notes whose title or text (not its markup) contains ``query``; LIKE metacharacters are
    literal."""
    needle = query.lower()
    return or_(
        func.lower(Note.title).contains(needle, autoescape=True),
        func.lower(Note.body_text).contains(needle, autoescape=True),
    )


def notes_query(
    query: dict[str, Any], viewer: User | None = None, everything: bool = False
) -> Select[tuple[Note]]:
    """Notes filtered by ``author`` (email), ``published`` and ``q`` (text), oldest first.

    Only published notes and ``viewer``'s own, unless ``everything`` (admins' export).
    """
    stmt = select(Note).join(Note.author)
    if not everything:
        visible: ColumnElement[bool] = Note.published.is_(True)
        if viewer is not None:
            visible = visible | (Note.author_id == viewer.id)
        stmt = stmt.where(visible)
    if query.get("author"):
        stmt = stmt.where(User.email == query["author"].strip().lower())
    if query.get("published") is not None:
        stmt = stmt.where(Note.published.is_(query["published"]))
    if query.get("q"):
        stmt = stmt.where(search(query["q"]))
    return stmt.order_by(Note.id)


def create_note(author: User, title: str, body: str, published: bool = False) -> Note:
    """Add a note to the session (the caller commits)."""
    note = Note(
        author=author,
        title=title.strip(),
        slug=unique_slug(title),
        body=clean_html(body),
        published=published,
        published_at=utcnow() if published else None,
    )
    db.session.add(note)
    db.session.flush()
    return note


def update_note(
    note: Note,
    *,
    title: str | None = None,
    body: str | None = None,
    published: bool | None = None,
) -> Note:
    """Change the given fields (the caller commits). The slug follows the title."""
    if title is not None and title.strip() != note.title:
        note.title = title.strip()
        note.slug = unique_slug(note.title, exclude_id=note.id)
    if body is not None:
        note.body = clean_html(body)
    if published is not None and published != note.published:
        note.published = published
        note.published_at = utcnow() if published else None
    db.session.flush()
    return note


def save_note(write: Callable[[], Note], attempts: int = 6) -> Note:
    """Run ``write`` (a :func:`create_note` or :func:`update_note`) and commit.

    Two writers can pick the same free slug at once (on every replica); the database's unique
    constraint stops the second, which is rolled back and run again with the next free slug —
    from the third attempt on, with a random suffix, so that it cannot keep losing.
    """
    for attempt in range(attempts):
        contended = _contended.set(attempt >= 2)
        try:
            note = write()
            db.session.commit()
            return note
        except IntegrityError as e:
            db.session.rollback()
            if "slug" not in str(e.orig).lower() or attempt == attempts - 1:
                raise
        finally:
            _contended.reset(contended)
    raise AssertionError("unreachable")


def issue_token(user: User, name: str) -> str:
    """Create a token for ``user``; the token itself is returned once and stored hashed."""
    token = "nt_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, name=name.strip()[:100] or "token",
                            token_hash=ApiToken.hash(token), prefix=token[:10]))
    db.session.commit()
    return token
