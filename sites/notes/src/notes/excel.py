"""Excel export (streamed, write-only) and import, in the admin and the CLI.

An import is read and checked in full first, without writing (and so without taking the
database's write lock); then every change is written in one short transaction. A row names an
existing note by ``id`` (a file exported here) or else by ``slug``, and updates it; other rows
create notes. Any bad row: nothing is written, and every problem is listed.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click
from flask import (
    Flask,
    Response,
    current_app,
    flash,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from . import revisions
from .admin import AdminOnly
from .extensions import db
from .markdown import FORMATS
from .models import Note, Tag, User, fold, join_tags, note_tags, plain_text, utcnow
from .search.tokens import index_text
from .services import (
    BODY_MAX,
    TITLE_MAX,
    clean_body,
    notes_query,
    parse_tags,
    slugify,
    taken_slugs,
    unique_slug,
)
from .text import Unfit, clean_text

# "version": the note's version when exported (notes.revisions): a row from an older export
# than the note's current version is a conflict, not applied
# "format": how body is written, html or markdown (its Markdown text, then); empty: html
COLUMNS = ("id", "title", "author", "published", "body", "slug", "created_at", "updated_at",
           "tags", "version", "format")
REQUIRED = ("title", "author", "body")
TRUE = {"true", "yes", "1", "y", "on"}
FALSE = {"false", "no", "0", "n", "off", ""}
CHUNK = 64 * 1024
# A spreadsheet evaluates a cell typed with these first characters (formula injection: OWASP's
# list, plus line feed and the full-width forms some spreadsheets also accept).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# A spreadsheet cell holds at most 32,767 characters (UTF-16 units; openpyxl truncates there):
# longer bodies continue in columns body_2, body_3… (kept well under, for astral characters).
CELL_MAX = 16_000
MAX_ID = 2**31 - 1
SHEET_ROWS = 1_048_576  # a spreadsheet's own limit: a sheet claiming more rows is not real
MAX_MEMBERS = 1000  # an .xlsx holds a few dozen files
SHOWN_PROBLEMS = 100
MAX_COLUMNS = 128  # cells of the header read (9 columns, and body_2… up to body_63)
EMPTY_ROWS = 10_000  # rows without a note an import reads besides its notes
BATCH = 500  # ids/slugs per IN (…) when matching rows to notes
WRITE_CHUNK = 1000  # notes per INSERT/UPDATE statement of an import


# -- export ----------------------------------------------------------------------------------


def _text(sheet: Any, value: str) -> Any:
    """A string cell that stays text: never a formula, also after editing in a spreadsheet."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    value = ILLEGAL_CHARACTERS_RE.sub("", value)  # XML cannot hold them
    if not value.startswith(FORMULA_START):
        return value
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"  # openpyxl would write "=…" as a live formula
    cell.quotePrefix = True  # the spreadsheet's own "typed with a leading '" mark
    return cell


def export(stmt: Any, out: IO[bytes], progress: Callable[[int], None] | None = None) -> int:
    """Write the notes of ``stmt`` to ``out`` as .xlsx in write-only mode; return the count.

    Times are in the site's time zone (``NOTES_TIMEZONE``), as everywhere on the site.
    """
    from openpyxl import Workbook  # here, not at the top: serving pages never loads openpyxl

    zone = ZoneInfo(current_app.config["NOTES_TIMEZONE"])
    longest = max(db.session.scalar(select(func.max(func.length(column)))) or 0
                  for column in (Note.body, Note.source))
    parts = max(1, -(-longest // CELL_MAX))
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("notes")
    sheet.append(COLUMNS + tuple(f"body_{n}" for n in range(2, parts + 1)))
    count = 0

    def when(value: datetime) -> datetime:
        return value.astimezone(zone).replace(tzinfo=None)

    for note in db.session.scalars(stmt.execution_options(yield_per=1000)):
        text = note.text
        body = [_text(sheet, text[i:i + CELL_MAX]) for i in range(0, max(len(text), 1), CELL_MAX)]
        sheet.append([
            note.id, _text(sheet, note.title), _text(sheet, note.author.email), note.published,
            body[0], _text(sheet, note.slug), when(note.created_at), when(note.updated_at),
            _text(sheet, ", ".join(note.tag_names)), note.version, note.format, *body[1:],
        ])
        count += 1
        if progress and count % 1000 == 0:
            progress(1000)
    workbook.save(out)
    if progress:
        progress(count % 1000)
    return count


def stream(stmt: Any) -> Iterator[bytes]:
    """The export as chunks, through a temporary file (memory stays bounded)."""
    with tempfile.TemporaryFile() as tmp:
        export(stmt, tmp)
        tmp.seek(0)
        while chunk := tmp.read(CHUNK):
            yield chunk


# -- import: read and check ------------------------------------------------------------------


@dataclass
class Problem:
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        if self.row == 0:  # the file as a whole
            return self.message
        return f"row {self.row}, column {self.column}: {self.message}"


class ImportFailed(Exception):
    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        total = len(problems) if total is None else total
        super().__init__(f"{total} problem(s); nothing was imported")
        self.problems = problems[:SHOWN_PROBLEMS]
        self.hidden = total - len(self.problems)


@dataclass(frozen=True)
class Limits:
    size: int  # bytes of the file
    rows: int  # notes
    unpacked: int  # bytes the file unpacks to, and characters of text read from it

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        return cls(config["NOTES_IMPORT_MAX_SIZE"], config["NOTES_IMPORT_MAX_ROWS"],
                   config["NOTES_IMPORT_MAX_UNPACKED"])


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.3g} MB"


def _fail(message: str) -> ImportFailed:
    return ImportFailed([Problem(0, "-", message)])


def _size(source: Path | IO[bytes]) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    source.seek(0, os.SEEK_END)
    size = source.tell()
    source.seek(0)
    return size


def _rows(source: Path | IO[bytes], limits: Limits) -> Iterator[tuple[Any, ...]]:
    """The first sheet's rows, after checking the file's size and what it unpacks to.

    zipfile never inflates a member past the size the archive declares for it (a lie ends in a
    CRC error), so the declared sizes bound what is read: a zip bomb is refused unopened.
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if _size(source) > limits.size:
        raise _fail(f"the file is larger than {_mb(limits.size)} (NOTES_IMPORT_MAX_SIZE)")
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise _fail(f"not a readable .xlsx file ({len(members)} parts)")
        if sum(m.file_size for m in members) > limits.unpacked:
            raise _fail(f"the file unpacks to more than {_mb(limits.unpacked)} "
                        "(NOTES_IMPORT_MAX_UNPACKED)")
        if not isinstance(source, Path):
            source.seek(0)
        workbook = load_workbook(source, read_only=True, data_only=True)
        try:
            yield from _visit(workbook.worksheets[0], limits)
        finally:
            workbook.close()
    except (InvalidFileException, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError,
            ValueError, IndexError, EOFError, SyntaxError) as e:
        # SyntaxError: expat's errors (malformed XML, entity expansion refused)
        raise _fail(f"not a readable .xlsx file ({type(e).__name__}: "
                    f"{str(e)[:200]})") from None


def _visit(sheet: Any, limits: Limits) -> Iterator[tuple[Any, ...]]:
    """The header (at most :data:`MAX_COLUMNS` cells), then every row as wide as the header.

    What the sheet declares of its size (``<dimension ref="A1:XFD1048576">``) is not
    trusted: openpyxl would pad every row to 16,384 cells and add rows up to the declared
    last one. Without it, rows past the declared size are read like the others, and the work
    is bounded by what is visited: at most ``limits.rows`` + :data:`EMPTY_ROWS` rows (empty
    ones count, and so do the gaps between row numbers) times the header's width.
    """
    sheet.reset_dimensions()
    header = next(sheet.iter_rows(max_row=1, max_col=MAX_COLUMNS, values_only=True), ())
    width = max((i + 1 for i, v in enumerate(header) if v is not None and str(v).strip()),
                default=0)
    yield tuple(header[:width])
    if not width:
        return
    most = limits.rows + EMPTY_ROWS
    for visited, row in enumerate(sheet.iter_rows(min_row=2, max_col=width, values_only=True),
                                  start=1):
        if visited > most:
            raise _fail(f"the sheet has more than {most} rows to read, empty ones included "
                        f"(NOTES_IMPORT_MAX_ROWS + {EMPTY_ROWS})")
        yield row


@dataclass
class Row:
    number: int
    title: str
    author_id: int
    body: str  # sanitised
    published: bool
    id: int | None = None
    slug: str | None = None
    tags: list[str] | None = None  # None: the file has no tags column (tags stay as they are)
    version: int | None = None  # the note's version when it was exported
    exported: datetime | None = None  # its updated_at then (files exported before versions)
    format: str = "html"
    source: str | None = None  # a Markdown note's text


@dataclass
class Plan:
    """What an import will write: checked, matched to notes, slugs chosen."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    update_tags: dict[int, list[str]] = field(default_factory=dict)
    skipped: int = 0


@dataclass
class Counts:
    created: int
    updated: int
    skipped: int

    def __str__(self) -> str:
        return (f"{self.created} created, {self.updated} updated, "
                f"{self.skipped} skipped (unchanged)")


def _whole(value: Any) -> int | None:
    """A cell holding a whole number (Excel may store 5 as 5.0); None if empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = int(str(value).strip()) if not isinstance(value, int) else value
    if not 1 <= number <= MAX_ID:
        raise ValueError
    return number


def read(source: Path | IO[bytes], limits: Limits) -> list[Row]:
    """Every row checked with the limits of the form and the API; ``ImportFailed`` lists every
    problem. Memory is bounded by ``limits`` (sizes are checked before values are kept)."""
    rows = _rows(source, limits)
    header = next(rows, None)
    if header is None:
        raise ImportFailed([Problem(1, "-", "the sheet is empty")])
    names = [str(h).strip().lower() if h is not None else "" for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ImportFailed([Problem(1, c, "column missing from the header row") for c in missing])
    index = {name: names.index(name) for name in COLUMNS if name in names}
    continued = sorted((int(name[5:]), i) for i, name in enumerate(names)
                       if re.fullmatch(r"body_[0-9]{1,3}", name))
    index.update((f"body_{n}", i) for n, i in continued)
    users: dict[str, int] = {email: user_id for email, user_id in db.session.execute(
        select(User.email, User.id))}
    problems: list[Problem] = []
    total = 0  # problems, shown or not
    found: list[Row] = []
    text = 0  # characters read, all cells together
    for number, row in enumerate(rows, start=2):
        if number > SHEET_ROWS + 1:
            raise _fail(f"the sheet has more than {SHEET_ROWS} rows: not a real spreadsheet")
        values = {name: row[i] if i < len(row) else None for name, i in index.items()}
        if all(v is None or str(v).strip() == "" for v in values.values()):
            continue
        if len(found) >= limits.rows:
            raise _fail(f"the file has more than {limits.rows} notes (NOTES_IMPORT_MAX_ROWS)")
        text += sum(len(v) for v in values.values() if isinstance(v, str))
        if text > limits.unpacked:
            raise _fail(f"the file holds more than {limits.unpacked} characters of text "
                        "(NOTES_IMPORT_MAX_UNPACKED)")

        def problem(column: str, message: str, number: int = number) -> None:
            nonlocal total
            total += 1
            if len(problems) < SHOWN_PROBLEMS:
                problems.append(Problem(number, column, message))

        title = clean_text(str(values.get("title") or "")).strip()
        if not title:
            problem("title", "empty")
        elif len(title) > TITLE_MAX:
            problem("title", f"longer than {TITLE_MAX} characters")
        author = clean_text(str(values.get("author") or "")).strip().lower()
        if author not in users:
            problem("author", f"no user with the email {author[:254]!r}")
        body = "".join("" if values.get(part) is None else str(values.get(part)) for part in
                       ["body", *(f"body_{n}" for n, _ in continued)])
        if len(body) > BODY_MAX:
            problem("body", f"longer than {BODY_MAX} characters")
            body = ""
        published_raw = values.get("published")
        published = False
        if isinstance(published_raw, bool):
            published = published_raw
        elif str(published_raw or "").strip().lower() in TRUE | FALSE:
            published = str(published_raw or "").strip().lower() in TRUE
        else:
            problem("published", f"{str(published_raw)[:50]!r} is not yes/no")
        try:
            note_id = _whole(values.get("id"))
        except ValueError:
            problem("id", f"{str(values.get('id'))[:50]!r} is not a note number")
            note_id = None
        slug = clean_text(str(values.get("slug") or "")).strip() or None
        if slug is not None and len(slug) > 220:
            problem("slug", "longer than 220 characters")
            slug = None
        tags = None
        if "tags" in index:
            try:
                tags = parse_tags(str(values.get("tags") or ""))
            except ValueError as e:
                problem("tags", str(e))
        try:
            version = _whole(values.get("version"))
        except ValueError:
            problem("version", f"{str(values.get('version'))[:50]!r} is not a version number")
            version = None
        exported = values.get("updated_at")
        written = str(values.get("format") or "").strip().lower() or "html"
        if written not in FORMATS:
            problem("format", f"{written[:20]!r} is not one of {', '.join(FORMATS)}")
        if total == 0:  # only rows that will be written are kept
            try:
                cleaned, markdown_text = clean_body(body, written)
            except Unfit as e:
                problem("body", str(e))
                continue
            found.append(Row(number, title, users[author], cleaned, published,
                             note_id, slug, tags, version,
                             exported if isinstance(exported, datetime) else None,
                             written, markdown_text))
    if total:
        raise ImportFailed(problems, total)
    return found


_NOTE = (Note.id, Note.slug, Note.title, Note.body, Note.published, Note.author_id,
         Note.published_at, Note.version, Note.updated_at, Note.deleted_at, Note.format,
         Note.source)


def _existing(column: Any, keys: Iterable[Any]) -> dict[Any, Any]:
    keys = list(dict.fromkeys(keys))
    found: dict[Any, Any] = {}
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        found.update((getattr(r, column.key), r) for r in db.session.execute(
            select(*_NOTE).where(column.in_(batch))))
    return found


def plan(rows: list[Row]) -> Plan:
    """Match rows to notes (by id, else by slug), choose new notes' slugs, drop unchanged rows.

    Only reads. Bodies of matched notes are read a batch at a time, so memory stays bounded.
    """
    by_id = _existing(Note.id, (r.id for r in rows if r.id is not None))
    by_slug = _existing(Note.slug, (r.slug for r in rows if r.slug is not None))
    tagged = _tag_names([n.id for n in (*by_id.values(), *by_slug.values())]) if any(
        r.tags is not None for r in rows) else {}
    problems: list[Problem] = []
    claimed: dict[int, int] = {}  # note id -> row number
    result = Plan()
    new: list[Row] = []
    now = utcnow()
    for row in rows:
        note = by_id.get(row.id) if row.id is not None else None
        if note is not None and row.slug and row.slug != note.slug and row.slug in by_slug:
            problems.append(Problem(row.number, "slug", f"id {row.id} and slug {row.slug!r} "
                                    "name two different notes"))
            continue
        if note is None and row.slug is not None:
            note = by_slug.get(row.slug)
        if note is None:
            new.append(row)
            continue
        if note.id in claimed:
            problems.append(Problem(row.number, "id", f"the same note as row {claimed[note.id]}"))
            continue
        claimed[note.id] = row.number
        if note.deleted_at is not None:
            problems.append(Problem(row.number, "id", f"note {note.id} is in its author's "
                                    "trash: restore it first, or remove the row"))
            continue
        retag = row.tags is not None and row.tags != tagged.get(note.id, [])
        same = (note.title, note.body, note.published, note.author_id, note.format,
                note.source) == (row.title, row.body, row.published, row.author_id, row.format,
                                 row.source)
        stale = _stale(row, note) if retag or not same else None  # (unchanged: no conflict)
        if stale:
            problems.append(Problem(row.number, "version", stale))
            continue
        if retag:
            result.update_tags[note.id] = row.tags or []
        if same:
            if retag:
                result.updates.append({"id": note.id, "updated_at": now,
                                       "version": note.version})
            else:
                result.skipped += 1
            continue
        published_at = note.published_at
        if row.published and published_at is None:
            published_at = now
        elif not row.published:
            published_at = None
        result.updates.append({
            "id": note.id, "title": row.title, "body": row.body, "body_text": plain_text(row.body),
            "search_text": index_text(row.title, plain_text(row.body)),
            "published": row.published, "author_id": row.author_id, "published_at": published_at,
            "format": row.format, "source": row.source,
            "updated_at": now, "version": note.version,  # (checked, then raised: see write)
        })
    if problems:
        raise ImportFailed(problems)
    for row in new:
        result.inserts.append({
            "number": row.number, "wanted": row.slug, "title": row.title, "body": row.body,
            "body_text": plain_text(row.body), "published": row.published, "tags": row.tags,
            "search_text": index_text(row.title, plain_text(row.body)),
            "author_id": row.author_id, "published_at": now if row.published else None,
            "format": row.format, "source": row.source, "created_at": now, "updated_at": now,
        })
    _choose_slugs(result.inserts)
    return result


def _stale(row: Row, note: Any) -> str | None:
    """Why ``row`` would undo a newer change of ``note`` (an edit conflict), if it would.

    The row's version says which version of the note the file was exported from; a file
    exported before notes had versions says it by the note's ``updated_at`` then. Emptying
    both cells imports the row over the newer version deliberately."""
    if row.version is not None:
        if row.version == note.version:
            return None
        return (f"conflict: note {note.id} was changed after this file was exported (it is at "
                f"version {note.version}, the file has version {row.version}): export it "
                "again, or empty this row's version cell to overwrite the newer version")
    if row.exported is not None:
        zone = ZoneInfo(current_app.config["NOTES_TIMEZONE"])
        current = note.updated_at.astimezone(zone).replace(tzinfo=None)
        if (current - row.exported).total_seconds() > 1:  # cells keep whole seconds
            return (f"conflict: note {note.id} was changed after this file was exported "
                    f"({current:%Y-%m-%d %H:%M:%S}, the file has "
                    f"{row.exported:%Y-%m-%d %H:%M:%S}): export it again, or empty this row's "
                    "updated_at cell to overwrite the newer version")
    return None


def _choose_slugs(inserts: list[dict[str, Any]], fresh: bool = False) -> None:
    """A free slug per new note: the one the row names if it is free and well formed (a file
    from another site keeps its links), else one from its title."""
    if not inserts:
        return
    taken = taken_slugs()  # folded, old slugs included: they keep redirecting to their note
    for record in inserts:
        wanted = record["wanted"]
        if wanted and slugify(wanted) == wanted and fold(wanted) not in taken and not fresh:
            record["slug"] = wanted
        else:  # after a race, a random suffix, so that this import cannot keep losing
            title = f"{record['title']} {secrets.token_hex(3)}" if fresh else record["title"]
            record["slug"] = unique_slug(title, taken=taken)
        taken.add(fold(record["slug"]))


def _tag_names(note_ids: list[int]) -> dict[int, list[str]]:
    """The tag names of these notes, in the order a note lists them (its tags text)."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(note_ids), BATCH):
        stmt = select(Note.id, Note.tags_text).where(Note.id.in_(note_ids[start:start + BATCH]))
        for note_id, names in db.session.execute(stmt):
            if names:
                found[note_id] = names.split("\n")
    return found


def _write_tags(todo: Plan) -> None:
    """The tags of the rows that named them, in the write's transaction."""
    wanted = dict(todo.update_tags)
    new = {r["slug"]: r["tags"] for r in todo.inserts if r.get("tags") is not None}
    slugs = list(new)
    for start in range(0, len(slugs), BATCH):
        for note_id, slug in db.session.execute(select(Note.id, Note.slug).where(
                Note.slug.in_(slugs[start:start + BATCH]))):
            wanted[note_id] = new[slug]
    if not wanted:
        return
    known = {fold(t.name): t for t in db.session.scalars(select(Tag))}
    for name in {n for names in wanted.values() for n in names}:
        if fold(name) not in known:
            known[fold(name)] = tag = Tag(name=name)
            db.session.add(tag)
    db.session.flush()
    ids = list(wanted)
    for start in range(0, len(ids), BATCH):
        db.session.execute(delete(note_tags).where(
            note_tags.c.note_id.in_(ids[start:start + BATCH])))
    links = {(note_id, known[fold(n)].id) for note_id, names in wanted.items() for n in names}
    if links:
        db.session.execute(insert(note_tags), [{"note_id": n, "tag_id": t} for n, t in links])
    # what the ORM's flush would have kept (models._keep_tags_text): the names pages show
    # (the table, not the mapper: these rows' versions were checked and raised in write())
    table = Note.__table__
    db.session.execute(
        update(table).where(table.c.id == bindparam("b_id")).values(tags_text=bindparam("b_tags")),
        [{"b_id": note_id, "b_tags": join_tags(known[fold(n)].name for n in names)}
         for note_id, names in wanted.items()])


# -- import: write ---------------------------------------------------------------------------


def write(todo: Plan, attempts: int = 3, by: User | None = None) -> Counts:
    """All changes in one transaction: the write lock is held only for these statements.

    A note created meanwhile with a slug chosen here makes the database refuse the write: the
    slugs are chosen again (with random suffixes) and the write retried.
    """
    columns = ("title", "slug", "body", "body_text", "search_text", "published", "author_id",
               "published_at", "format", "source", "created_at", "updated_at")
    for attempt in range(attempts):
        try:
            # in chunks: each statement's parameters stay small whatever the file's size; by
            # primary key, each WHERE version = the one planned on (the mapper's
            # version_id_col): a note changed since is a StaleDataError, nothing written
            for start in range(0, len(todo.updates), WRITE_CHUNK):
                db.session.execute(update(Note), todo.updates[start:start + WRITE_CHUNK])
            ids = [u["id"] for u in todo.updates]
            for start in range(0, len(ids), BATCH):
                db.session.execute(update(Note.__table__).where(
                    Note.__table__.c.id.in_(ids[start:start + BATCH])).values(
                    version=Note.__table__.c.version + 1))
            for start in range(0, len(todo.inserts), WRITE_CHUNK):
                db.session.execute(insert(Note), [{c: r[c] for c in columns}
                                                  for r in todo.inserts[start:start + WRITE_CHUNK]])
            _write_tags(todo)
            revisions.record_rows(_written_ids(todo), by, "import")
            db.session.commit()
            return Counts(len(todo.inserts), len(todo.updates), todo.skipped)
        except StaleDataError:
            db.session.rollback()
            raise _fail("a note named in the file was changed during the import (an edit "
                        "conflict): nothing was imported; try again") from None
        except IntegrityError as e:
            db.session.rollback()
            message = str(e.orig).lower()
            if ("slug" not in message and "tags" not in message) or attempt == attempts - 1:
                raise
            _choose_slugs(todo.inserts, fresh=True)
    raise AssertionError("unreachable")


def _written_ids(todo: Plan) -> list[int]:
    """The notes this import changed or created (each gets a revision)."""
    ids = [u["id"] for u in todo.updates]
    slugs = [r["slug"] for r in todo.inserts]
    for start in range(0, len(slugs), BATCH):
        ids.extend(db.session.scalars(select(Note.id).where(
            Note.slug.in_(slugs[start:start + BATCH]))))
    return ids


def import_file(source: Path | IO[bytes], limits: Limits, by: User | None = None) -> Counts:
    """Read, check and match everything (no lock held), then one short write, recorded as
    revisions by ``by`` (None: the command line)."""
    try:
        rows = read(source, limits)
        todo = plan(rows)
    finally:
        db.session.rollback()  # end the read transaction before writing
    del rows
    return write(todo, by=by)


# -- admin -----------------------------------------------------------------------------------


class ImportForm(FlaskForm):
    file = FileField(_l("Excel file (.xlsx)"), validators=[FileRequired()])


class ExcelView(AdminOnly, BaseView):
    @expose("/")
    def index(self) -> Any:
        return self.page()

    def page(self, problems: list[Problem] | None = None, hidden: int = 0) -> Any:
        return self.render("admin/excel.html", form=ImportForm(), problems=problems,
                           hidden=hidden, limits=Limits.from_config(current_app.config),
                           title_max=TITLE_MAX, body_max=BODY_MAX)

    @expose("/export")
    def download(self) -> Response:
        query = {
            "author": request.args.get("author") or None,
            "q": request.args.get("q") or None,
            "published": {"yes": True, "no": False}.get(request.args.get("published", "")),
        }
        return Response(
            stream_with_context(stream(notes_query(query, everything=True))),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": "attachment; filename=notes.xlsx"},
        )

    @expose("/import", methods=["POST"])
    def upload(self) -> Any:
        limits = Limits.from_config(current_app.config)
        slack = 64 * 1024  # the multipart envelope and the form's other fields
        if (request.content_length or 0) > limits.size + slack:
            failed = _fail(f"the file is larger than {_mb(limits.size)} (NOTES_IMPORT_MAX_SIZE)")
            return self.page(failed.problems), 413
        request.max_content_length = limits.size + slack
        form = ImportForm()
        if not form.validate_on_submit():
            flash(_("Choose an .xlsx file to import."), "error")
            return redirect(url_for("excel.index"))
        try:
            counts = import_file(form.file.data.stream, limits,
                                 by=current_user._get_current_object())
        except ImportFailed as e:
            return self.page(e.problems, e.hidden), 422
        except IntegrityError as e:
            current_app.logger.warning("import refused by the database: %s", e.orig)
            failed = _fail("a user or note named in the file changed during the import; "
                           "nothing was imported: try again")
            return self.page(failed.problems), 409
        flash(_("Imported: %(created)s created, %(updated)s updated, %(skipped)s skipped "
                "(unchanged).", created=counts.created, updated=counts.updated,
                skipped=counts.skipped), "success")
        return redirect(url_for("excel.index"))


# -- CLI -------------------------------------------------------------------------------------

notes_cli = click.Group("notes", help="Export and import notes as Excel files.")


@notes_cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--author", help="Only this author's notes (email).")
@click.option("--published/--unpublished", default=None, help="Only (un)published notes.")
@click.option("--q", help="Only notes whose title or text contains this.")
def export_command(file: Path, author: str | None, published: bool | None, q: str | None) -> None:
    """Export notes to FILE (.xlsx)."""
    stmt = notes_query({"author": author, "published": published, "q": q}, everything=True)
    tmp = file.with_name(f".{file.name}.tmp")
    with click.progressbar(length=0, label="exporting", show_pos=True) as bar, open(tmp, "wb") as f:
        count = export(stmt, f, progress=bar.update)
    os.replace(tmp, file)
    click.echo(f"exported {count} notes to {file}")


@notes_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Import notes from FILE (.xlsx): rows naming a note (id or slug) update it, others create
    notes; if any row is bad, nothing is written."""
    try:
        counts = import_file(file, Limits.from_config(current_app.config))
    except ImportFailed as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        if e.hidden:
            click.echo(f"… and {e.hidden} more", err=True)
        raise click.ClickException(str(e)) from None
    click.echo(f"imported from {file}: {counts}")


def admin_view() -> ExcelView:
    """The admin's "Export / import" page (given to :func:`notes.admin.init_app`)."""
    return ExcelView(name=_l("Export / import"), endpoint="excel", url="/admin/excel")


def init_app(app: Flask) -> None:
    app.cli.add_command(notes_cli)
