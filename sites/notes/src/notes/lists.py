"""Public lists read a page at a time along an index, whatever their depth (keyset paging).

A list is a statement in a fixed order whose columns lead an index (migration 0008): the home
page, an author's and the feed by ``(published_at, id)``, a tag's by the note's id (its links'
index). A page is asked for relative to a note's place in that order — ``?before=K`` (older
than K) or ``?after=K`` (newer) — so page 5,000 costs what page 2 costs. No page counts its
list: a page knows whether there is a next one by asking for one note more than it shows.
The old ``?page=N`` addresses keep answering, with what ``OFFSET`` would show: the home page's
N-th page finds its place by the public notes counted per day of publication (``note_days``,
kept by triggers at every write, migration 0012) and skips only within that day; a tag's page
(newest written first, by id) by the tag's notes counted per block of 1,000 ids
(``tag_blocks``, kept by triggers on ``note_tags`` and ``notes``, migration 0014) and skips
only within that block (:func:`in_blocks`, :func:`by_tag_blocks`; the API's list in id order
finds its place the same way, by ``note_blocks``, ``tag_blocks`` or ``author_blocks``,
migration 0015); an author's page skips along its index alone (it holds every column its
condition reads, so no note is read). Then the page is read as any other. The counts hold
the notes published and not in the trash; those scheduled for later are taken away when a
place is looked for (they are few: past :data:`SCHEDULED_MAX` the list is skipped along
instead).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import abort, current_app, request
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select

from .extensions import db
from .models import (
    AuthorBlock,
    Note,
    NoteBlock,
    NoteDay,
    TagBlock,
    counted,
    live,
    next_scheduled,
    note_tags,
    public,
    utcnow,
)
from .services import SHOWN

PAGE = re.compile(r"[1-9][0-9]{0,8}")
CURSOR = re.compile(r"[0-9]{1,20}(?:-[0-9]{1,20})?")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Key:
    """A list's order: its columns, newest first, and how to read them from a note."""

    columns: tuple[Any, ...]
    values: Callable[[Note], tuple[Any, ...]]
    times: tuple[bool, ...]  # which columns are times (written as microseconds since 1970)

    def encode(self, note: Note) -> str:
        return "-".join(str((v - EPOCH) // timedelta(microseconds=1))
                        if isinstance(v, datetime) else str(v) for v in self.values(note))

    def decode(self, raw: str) -> tuple[Any, ...]:
        if not CURSOR.fullmatch(raw):
            abort(404)
        parts = [int(p) for p in raw.split("-")]
        if len(parts) != len(self.columns):
            abort(404)
        try:
            return tuple(EPOCH + timedelta(microseconds=p) if time else p
                         for p, time in zip(parts, self.times, strict=True))
        except OverflowError:
            abort(404)

    def beyond(self, key: tuple[Any, ...], older: bool) -> ColumnElement[bool]:
        """The notes past ``key`` in the list (older), or before it (newer). The first column
        is compared alone as well, so the index is entered there rather than scanned to it."""
        first: ColumnElement[Any] = self.columns[0]
        k = key[0]
        if len(self.columns) == 1:
            only: ColumnElement[bool] = first < k if older else first > k
            return only
        second: ColumnElement[Any] = self.columns[1]  # (two columns at most)
        k2 = key[1]
        if older:
            return and_(first <= k, or_(first < k, and_(first == k, second < k2)))
        return and_(first >= k, or_(first > k, and_(first == k, second > k2)))

    def newest(self) -> tuple[Any, ...]:
        return tuple(c.desc() for c in self.columns)

    def oldest(self) -> tuple[Any, ...]:
        return tuple(c.asc() for c in self.columns)


BY_PUBLISHED = Key((Note.published_at, Note.id), lambda n: (n.published_at or EPOCH, n.id),
                   (True, False))


@dataclass
class Window:
    """One page of a list: its notes, and the query arguments of the pages around it."""

    items: list[Note]
    newer: dict[str, Any] | None = None
    older: dict[str, Any] | None = None
    first: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def per_page() -> int:
    size: int = current_app.config["NOTES_PER_PAGE"]
    return size


@dataclass(frozen=True)
class Listing:
    """A list: which notes (conditions, and a table joined to find them) in which order."""

    where: tuple[ColumnElement[bool], ...]
    key: Key
    join: tuple[Any, Any] | None = None  # (table, on)
    # the key of the note at a place in the list (0: the newest), found without skipping
    # along the list (None: there is none; UNCOUNTED: skip along the index to it after all);
    # no place: skip along the index to it
    place: Callable[[int], tuple[Any, ...] | None] | None = None
    index: str | None = None  # the index of its order (MariaDB is told: see along())

    def _from(self, stmt: Select[Any]) -> Select[Any]:
        if self.join is not None:
            stmt = stmt.join(*self.join)
        if self.index is not None:
            stmt = along(stmt, self.index)
        return stmt.where(*self.where)

    def notes(self) -> Select[Any]:
        return self._from(select(Note).options(*SHOWN))

    def keys(self) -> Select[Any]:
        return self._from(select(*self.key.columns).select_from(Note))


def along(stmt: Select[Any], index: str) -> Select[Any]:
    """``stmt`` read along ``index`` of notes on MariaDB/MySQL: given the equality on
    ``published`` that leads the list indexes, its optimizer reads them from that column
    alone (``ref``) and filters every note up to the place a page starts (``?before=``:
    1,000 times slower at 100,000 notes) rather than enter them at that place (``range``),
    unless told which index to use (then it takes the range)."""
    hint = f"FORCE INDEX ({index})"
    return stmt.with_hint(Note, hint, "mysql").with_hint(Note, hint, "mariadb")


def window(listing: Listing, size: int | None = None) -> Window:
    """The page of ``stmt`` (ordered by ``key``, newest first) the request asks for; a page
    past the end, or an argument that is not one, is a 404 (an empty list has its first
    page)."""
    size = size or per_page()
    stmt, key = listing.notes(), listing.key
    before, after, page = (request.args.get(a) for a in ("before", "after", "page"))
    if page is not None and before is None and after is None:
        if not PAGE.fullmatch(page):
            abort(404)
        if page != "1":  # the place of the note before page N's first
            at = (int(page) - 1) * size - 1
            found = UNCOUNTED if listing.place is None else listing.place(at)
            if found == UNCOUNTED:
                row = db.session.execute(
                    listing.keys().order_by(*key.newest()).offset(at).limit(1)).first()
                found = None if row is None else tuple(row)
            if found is None:
                abort(404)
            return _older(stmt, key, found, size)
    if after is not None:
        rows = list(db.session.scalars(stmt.where(key.beyond(key.decode(after), older=False))
                                       .order_by(*key.oldest()).limit(size + 1)))
        if not rows:
            abort(404)
        more = len(rows) > size
        rows = rows[:size][::-1]
        return Window(rows, newer={"after": key.encode(rows[0])} if more else None,
                      older={"before": key.encode(rows[-1])}, first=not more)
    if before is not None:
        return _older(stmt, key, key.decode(before), size)
    rows = list(db.session.scalars(stmt.order_by(*key.newest()).limit(size + 1)))
    return Window(rows[:size], older={"before": key.encode(rows[size - 1])}
                  if len(rows) > size else None)


def by_days(at: int) -> tuple[Any, ...] | None:
    """The key of the public note at place ``at`` (0: the newest) of all, in
    :data:`BY_PUBLISHED` order, as ``OFFSET`` would find it: the days newer than its own
    are passed by their counts (:class:`~notes.models.NoteDay`), then the notes of its day are
    skipped along the index. Scheduled notes are counted (they are the newest): they are
    passed first."""
    ahead = db.session.scalar(select(func.count()).select_from(Note).where(
        counted(), Note.published_at > utcnow()))
    at += ahead or 0
    passed = 0
    days = db.session.execute(select(NoteDay.day, NoteDay.notes).where(NoteDay.notes > 0)
                              .order_by(NoteDay.day.desc())).all()
    for day, notes in days:
        if passed + notes > at:
            start = datetime.combine(day, time(), UTC)
            found = db.session.execute(along(
                select(*BY_PUBLISHED.columns).where(
                    counted(), Note.published_at >= start,
                    Note.published_at < start + timedelta(days=1)),
                "ix_notes_public_order")
                .order_by(*BY_PUBLISHED.newest()).offset(at - passed).limit(1)).first()
            return None if found is None else tuple(found)
        passed += notes
    return None


UNCOUNTED: tuple[Any, ...] = ()  # a place the counts cannot tell (see Listing.place)
SCHEDULED_MAX = 1000  # more notes scheduled for later, or drafts of a reader: skip to a place
OWN_MAX = 1000


def in_blocks(at: int, tag_id: int | None, newest_first: bool, reader: int | None = None,
              author_id: int | None = None, drafts: bool = True) -> tuple[int, ...] | None:
    """The block of ids (:attr:`NoteBlock.BLOCK`) holding place ``at`` (0: the first) of a
    list in id order, and the place within that block: the public notes, or the reader's
    (the public ones and their own not in the trash), all of them, a tag's (``tag_id``) or
    an author's (``author_id``; not both). The blocks before it are passed by the notes
    counted in each (:class:`NoteBlock`, :class:`TagBlock` for a tag, :class:`AuthorBlock`
    for an author: published and not in the trash), less those scheduled for
    later (found along the public order's index; the reader's own stay), plus the reader's
    own notes not published (along their author index; not with ``drafts`` false: a list of
    the published ones only). None: past the end; more scheduled
    notes or drafts than :data:`SCHEDULED_MAX`/:data:`OWN_MAX`: :data:`UNCOUNTED` (skip
    along the list)."""
    later = select(Note.id).where(next_scheduled())
    if reader is not None:
        later = later.where(Note.author_id != reader)
    if author_id is not None:
        later = later.where(Note.author_id == author_id)
    ids = list(db.session.scalars(later.limit(SCHEDULED_MAX + 1)))
    own: list[int] = []
    if drafts and reader is not None and author_id in (None, reader):
        own = list(db.session.scalars(select(Note.id).where(
            Note.author_id == reader, Note.published == false(), live()).limit(OWN_MAX + 1)))
    if len(ids) > SCHEDULED_MAX or len(own) > OWN_MAX:
        return UNCOUNTED
    size = NoteBlock.BLOCK
    if author_id is not None:
        blocks = select(AuthorBlock.block, AuthorBlock.notes).where(
            AuthorBlock.author_id == author_id, AuthorBlock.notes > 0)
    elif tag_id is None:
        blocks = select(NoteBlock.block, NoteBlock.notes).where(NoteBlock.notes > 0)
    else:
        blocks = select(TagBlock.block, TagBlock.notes).where(TagBlock.tag_id == tag_id,
                                                              TagBlock.notes > 0)
        if ids or own:  # only those of the tag
            tagged = set(db.session.scalars(select(note_tags.c.note_id).where(
                note_tags.c.tag_id == tag_id, note_tags.c.note_id.in_(ids + own))))
            ids, own = [i for i in ids if i in tagged], [i for i in own if i in tagged]
    notes = Counter(dict(db.session.execute(blocks).all()))
    notes.subtract(i // size for i in ids)
    notes.update(i // size for i in own)
    for block in sorted(notes, reverse=newest_first):
        if at < notes[block]:
            return block, at
        at -= max(notes[block], 0)
    return None


def links_first(stmt: Select[Any]) -> Select[Any]:
    """``stmt`` (a tag's links joined to their notes) read in the order written on
    MariaDB/MySQL: given a range of ids on the links, its optimizer may carry it over to the
    notes, read those first and sort the links (``filesort``)."""
    return (stmt.prefix_with("STRAIGHT_JOIN", dialect="mysql")
            .prefix_with("STRAIGHT_JOIN", dialect="mariadb"))


def tag_links(tag_id: int, *where: ColumnElement[bool]) -> Select[Any]:
    """The ids of a tag's notes (``where``), read along its links (``ix_note_tags_tag_note``)
    and only then their notes (:func:`links_first`)."""
    return (links_first(select(note_tags.c.note_id).join(Note, Note.id == note_tags.c.note_id))
            .where(note_tags.c.tag_id == tag_id, *where))


def by_tag_blocks(tag_id: int) -> Callable[[int], tuple[Any, ...] | None]:
    """:attr:`Listing.place` of a tag's page (newest written first): the block holding the
    place by :func:`in_blocks`, then the tag's notes skipped along its links' index from that
    block's end (fewer than the block holds). (The block's start is no bound in the statement:
    given both, MariaDB reads the notes of the range first and sorts.)"""
    def place(at: int) -> tuple[Any, ...] | None:
        found = in_blocks(at, tag_id, newest_first=True)
        if found is None or found == UNCOUNTED:
            return found
        block, skip = found
        size = NoteBlock.BLOCK
        row = db.session.execute(tag_links(
            tag_id, note_tags.c.note_id < (block + 1) * size, public(by_time_index=False))
            .order_by(note_tags.c.note_id.desc()).offset(skip).limit(1)).first()
        return None if row is None else tuple(row)
    return place


def _older(stmt: Select[Any], key: Key, at: tuple[Any, ...], size: int) -> Window:
    rows = list(db.session.scalars(stmt.where(key.beyond(at, older=True))
                                   .order_by(*key.newest()).limit(size + 1)))
    if not rows:
        abort(404)
    return Window(rows[:size], newer={"after": key.encode(rows[0])},
                  older={"before": key.encode(rows[size - 1])} if len(rows) > size else None,
                  first=False)


def numbered(ids: list[int], load: Callable[[list[int]], list[Note]], size: int | None = None
             ) -> Window:
    """A page of a list already found in full (a search's ranked ids, at most
    :data:`notes.search.CANDIDATES`), by ``?page=N``."""
    size = size or per_page()
    raw = request.args.get("page", "1")
    if not PAGE.fullmatch(raw):
        abort(404)
    page = int(raw)
    chosen = ids[(page - 1) * size:page * size]
    if not chosen and page > 1:
        abort(404)
    found = {n.id: n for n in load(chosen)} if chosen else {}
    return Window([found[i] for i in chosen if i in found],
                  newer={"page": page - 1} if page > 1 else None,
                  older={"page": page + 1} if len(ids) > page * size else None,
                  first=page == 1)


def shown(ids: list[int]) -> list[Note]:
    """These notes, loaded as pages show them."""
    return list(db.session.scalars(select(Note).options(*SHOWN).where(Note.id.in_(ids))))


