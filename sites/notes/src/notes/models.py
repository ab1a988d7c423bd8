"""Database models. Times are stored in UTC (naive in the database, aware in Python)."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    event,
    func,
    inspect,
    text,
    true,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .extensions import db
from .search.tokens import fold, index_text

__all__ = ["fold"]  # (where it has always been imported from)


def utcnow() -> datetime:
    return datetime.now(UTC)


# inline elements end no word: "<strong>more</strong>." reads "more.", not "more ."
_INLINE_TAG = re.compile(r"</?(?:a|b|strong|em|i|s|code|kbd|span|mark|small|sub|sup|u)\b[^>]*>",
                         re.IGNORECASE)


def plain_text(body: str) -> str:
    """The words of a note's (sanitised) HTML, for search and excerpts: tags, entities and
    runs of space go (block elements separate words, inline ones do not)."""
    body = _INLINE_TAG.sub("", body or "")
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", body)).split())


# A note's HTML and text: up to 1,000,000 characters. MariaDB/MySQL's TEXT holds 64 KiB.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")




class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, hand back aware UTC, on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    # shown on public pages instead of the e-mail address, which stays private
    display_name: Mapped[str] = mapped_column(String(80), nullable=False, default="",
                                              server_default="")
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # part of the id Flask-Login keeps in sessions and remember-me cookies: raising it ends
    # every session of the user at once (see auth.end_sessions)
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                 server_default="0")
    # the interface language the user chose (a tag such as zh-Hant); None: the browser's
    locale: Mapped[str | None] = mapped_column(String(35), nullable=True)

    notes: Mapped[list[Note]] = relationship(
        back_populates="author", cascade="all, delete-orphan", passive_deletes=True
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def get_id(self) -> str:  # Flask-Login: checked on every request by auth.load_user
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"

    def __str__(self) -> str:  # how the admin shows a note's author
        return self.email

    @property
    def public_name(self) -> str:
        return self.display_name or f"author {self.id}"


note_tags = Table(
    "note_tags",
    db.metadata,
    Column("note_id", ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
    Index("ix_note_tags_tag_note", "tag_id", "note_id"),  # a tag's notes, newest first
)


class Tag(db.Model):  # type: ignore[name-defined,misc]
    """A tag: its name is its address (``/t/<name>``), lower case, any script."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)

    def __str__(self) -> str:
        return self.name


class Note(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "notes"
    # public lists in their order (see public()); the full-text index of search_text is made
    # by migration 0008 (notes.search)
    __table_args__ = (
        Index("ix_notes_public_order", "published", "published_at", "id", "deleted_at"),
        Index("ix_notes_author_order", "author_id", "published", "published_at", "id",
              "deleted_at"),
        Index("ix_notes_preview_token", "preview_token", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(220), unique=True, nullable=False)
    body: Mapped[str] = mapped_column(LongText, nullable=False, default="")  # sanitised HTML
    body_text: Mapped[str] = mapped_column(LongText, nullable=False, default="")  # for search
    search_text: Mapped[str] = mapped_column(  # its words as index tokens: notes.search
        LongText, nullable=False, default="", server_default=text("''"))
    published: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )
    # when it is (or will be: scheduled) public; see public()
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # how it is written: "html" (CKEditor) or "markdown" (notes.markdown); a Markdown note
    # keeps its text in ``source`` and its rendered, sanitised HTML in ``body`` (what pages,
    # feeds, search and excerpts use)
    format: Mapped[str] = mapped_column(String(10), nullable=False, default="html",
                                        server_default="html")
    source: Mapped[str | None] = mapped_column(LongText, nullable=True)
    # a draft's private preview link (/p/<token>): readable without signing in until it is
    # revoked (set to None) or the note is public
    preview_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the names of its tags as pages show them (see join_tags), written whenever the tags
    # change: showing a note, or a page of them, needs no query for their tags
    tags_text: Mapped[str] = mapped_column(Text, nullable=False, default="",
                                           server_default=text("''"))
    # raised by every saved change (notes.revisions): editors, the API (ETag) and exports carry
    # the version they started from, and a change based on an older one is refused; the
    # database checks it too (UPDATE … WHERE version = the one read), so two writers at the
    # same instant cannot both win
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    # set when the note is moved to the trash (notes.trash); see live()
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # the language it is written in (a tag such as el); None: the site's (NOTES_LANGUAGE)
    language: Mapped[str | None] = mapped_column(String(35), nullable=True)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

    author: Mapped[User] = relationship(back_populates="notes")
    tags: Mapped[list[Tag]] = relationship(secondary=note_tags, order_by=Tag.name, lazy="selectin")
    old_slugs: Mapped[list[OldSlug]] = relationship(
        back_populates="note", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Note {self.slug}>"

    @property
    def is_public(self) -> bool:
        """Whether anyone may read it: :func:`public` for a loaded note."""
        return (self.published and self.deleted_at is None and self.published_at is not None
                and self.published_at <= utcnow())

    @property
    def is_scheduled(self) -> bool:
        """Published for a time still to come: nobody but its author sees it yet."""
        return (self.published and self.published_at is not None
                and self.published_at > utcnow())

    @property
    def text(self) -> str:
        """What its writer writes: the Markdown source, or the HTML."""
        return self.source if self.format == "markdown" and self.source is not None else self.body

    @property
    def lang(self) -> str:
        """The language it is written in: its own, else the site's (``NOTES_LANGUAGE``)."""
        from flask import current_app

        return self.language or str(current_app.config["NOTES_LANGUAGE"])

    @property
    def tag_names(self) -> list[str]:
        return self.tags_text.split("\n") if self.tags_text else []

    @property
    def in_trash(self) -> bool:
        return self.deleted_at is not None

    @property
    def etag(self) -> str:
        """The HTTP entity tag of this version of the note (the API's ETag/If-Match)."""
        return f'"{self.id}-{self.version}"'


def live() -> ColumnElement[bool]:
    """THE condition for a note that exists for readers: not in the trash. Every query that
    shows notes (pages, feed, sitemap, search, the API, exports) filters with it; only the
    trash itself, slug reservation and the admin's counts look past it."""
    return Note.deleted_at.is_(None)


class NoteRevision(db.Model):  # type: ignore[name-defined,misc]
    """A saved state of a note (see notes.revisions): written by every saved change."""

    __tablename__ = "note_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(
        ForeignKey("notes.id", ondelete="CASCADE"), nullable=False, index=True
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(LongText, nullable=False, default="")
    tags_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    published: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # the note's format then: ``body`` is its Markdown source when "markdown"
    format: Mapped[str] = mapped_column(String(10), nullable=False, default="html",
                                        server_default="html")
    # who saved it: kept by name too, so the history still says it once the account is gone
    by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    by_name: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    via: Mapped[str] = mapped_column(String(20), nullable=False, default="")  # editor, api…
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    @property
    def tag_names(self) -> list[str]:
        return self.tags_text.split("\n") if self.tags_text else []


def public(by_time_index: bool = True) -> ColumnElement[bool]:
    """The notes anyone may read, in every public list, search, feed and sitemap: the one
    place to add a condition (e.g. not in the trash). The list indexes (migration 0008)
    start with its columns, and the trash's condition (:func:`live`) filters what they
    find. (``= true``: MariaDB uses no index for ``IS true``.) A note scheduled for later
    (``published_at`` still to come) is not public yet: the time is taken when the
    statement is built, i.e. per request. ``by_time_index=False``: for a list read along
    another index (a tag's links), the time is compared in a form no index serves, so the
    planner keeps to that index rather than range-scan the public order and sort; and for a
    list entered at a place of its own (a page by its link, ``published_at <= K``): given
    two upper bounds of one column as parameters, SQLite enters the index at the first (the
    time) and skips every note down to the other (170 ms at a million notes)."""
    now = utcnow()
    due = (Note.published_at <= now if by_time_index
           else func.coalesce(Note.published_at, now) <= now)
    return and_(Note.published == true(), due, live())


def counted() -> ColumnElement[bool]:
    """The notes :class:`NoteDay` counts (its triggers say the same in SQL): :func:`public`
    without the time, so scheduled notes too."""
    return and_(Note.published == true(), Note.published_at.is_not(None), live())


def next_scheduled() -> ColumnElement[bool]:
    """The notes published for a time still to come (see notes.caching: no shared cache
    keeps a page past the next of them)."""
    return and_(Note.published == true(), Note.published_at > utcnow(), live())


class NoteDay(db.Model):  # type: ignore[name-defined,misc]
    """How many notes are published (with a time, not in the trash) under each day (UTC) of
    their publication: written by triggers on notes (migration 0012), whoever writes them;
    an old ``?page=N`` address finds its place by them (notes.lists). Scheduled notes count
    too: they are the newest."""

    __tablename__ = "note_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    notes: Mapped[int] = mapped_column(Integer, nullable=False)


class NoteBlock(db.Model):  # type: ignore[name-defined,misc]
    """How many notes are published and not in the trash in each block of :data:`BLOCK`
    ids (``id // BLOCK``): written by triggers on notes (migration 0013), whoever writes
    them; an old ``?page=N`` of the API's list (in id order) finds its place by them
    (notes.api). Scheduled notes count too (the API takes them away)."""

    __tablename__ = "note_blocks"
    BLOCK = 1000  # (the migration's triggers say the same)

    block: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    notes: Mapped[int] = mapped_column(Integer, nullable=False)


class TagBlock(db.Model):  # type: ignore[name-defined,misc]
    """How many notes carrying a tag are published and not in the trash in each block of
    :attr:`NoteBlock.BLOCK` ids: written by triggers on ``note_tags`` and ``notes``
    (migration 0014), whoever writes them; an old ``?page=N`` of a tag's page, and of the
    API's list with ``tag=``, finds its place by them (notes.lists). Scheduled notes count
    too (the readers take them away)."""

    __tablename__ = "tag_blocks"

    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"),
                                        primary_key=True, autoincrement=False)
    block: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    notes: Mapped[int] = mapped_column(Integer, nullable=False)


class AuthorBlock(db.Model):  # type: ignore[name-defined,misc]
    """How many of an author's notes are published and not in the trash in each block of
    :attr:`NoteBlock.BLOCK` ids: written by triggers on notes (migration 0015); an old
    ``?page=N`` of the API's list with ``author=`` finds its place by them (notes.lists).
    Scheduled notes count too (the readers take them away)."""

    __tablename__ = "author_blocks"

    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                           primary_key=True, autoincrement=False)
    block: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    notes: Mapped[int] = mapped_column(Integer, nullable=False)


class OldSlug(db.Model):  # type: ignore[name-defined,misc]
    """A slug a note had before it was retitled: its address answers a permanent redirect,
    and no other note can take it (a link, once published, keeps meaning the same note)."""

    __tablename__ = "note_slugs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(
        ForeignKey("notes.id", ondelete="CASCADE"), nullable=False, index=True
    )
    slug: Mapped[str] = mapped_column(String(220), unique=True, nullable=False)

    note: Mapped[Note] = relationship(back_populates="old_slugs")


@event.listens_for(Note.body, "set")
def _keep_body_text(target: Note, value: str, _old: Any, _initiator: Any) -> None:
    """Whoever writes the body (pages, admin, API, import), its plain text follows."""
    target.body_text = plain_text(value)
    target.search_text = index_text(target.title or "", target.body_text)


@event.listens_for(Note.title, "set")
def _keep_search_text(target: Note, value: str, _old: Any, _initiator: Any) -> None:
    target.search_text = index_text(value or "", target.body_text or "")


def join_tags(names: Iterable[str]) -> str:
    """:attr:`Note.tags_text`: the names sorted by code point (the same order on every
    database), one per line (a tag's name has no line break: see services.parse_tags)."""
    return "\n".join(sorted(set(names)))


@event.listens_for(Session, "before_flush")
def _keep_tags_text(session: Session, _context: Any, _instances: Any) -> None:
    """Whoever changes a note's tags through the ORM (pages, admin, API), its tags
    text follows in the same flush. (The Excel import, which writes links in bulk, writes it
    too.)"""
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Note) and inspect(obj).attrs.tags.history.has_changes():
            obj.tags_text = join_tags(t.name for t in obj.tags)


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """A personal API token. Only a SHA-256 of the token is stored; it is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(12), nullable=False)  # shown in lists
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


class LoginFailure(db.Model):  # type: ignore[name-defined,misc]
    """One failed login, by address and by account: the rate limit works across replicas."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
