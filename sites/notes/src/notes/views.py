"""Public pages (list, search, note, author, tag, feed, sitemap) and the signed-in author's
pages (write, edit, upload)."""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_sqlalchemy.pagination import Pagination
from flask_wtf import FlaskForm
from markupsafe import escape
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    false,
    func,
    select,
    true,
    type_coerce,
)
from sqlalchemy.orm import lazyload
from wtforms import (  # type: ignore[attr-defined]  # (SelectChoice: the stubs describe 3.2)
    BooleanField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length

from . import images, lists, revisions, search, trash
from .errors import disk_full
from .extensions import db
from .i18n import html_lang, language_names, localtime
from .models import Note, Tag, User, live, note_tags, public, utcnow
from .services import (
    BODY_MAX,
    TITLE_MAX,
    clean_body,
    clean_title,
    create_note,
    editor_config,
    find_note,
    parse_tags,
    save_note,
    update_note,
)
from .text import Unfit, check_markup, xml_safe

bp = Blueprint("views", __name__)

def _tags(form: FlaskForm, field: StringField) -> None:
    try:
        parse_tags(field.data)
    except ValueError as e:
        raise ValidationError(str(e).capitalize() + ".") from None


def _title(form: FlaskForm, field: StringField) -> None:
    try:
        clean_title(field.data or "")
    except Unfit as e:
        raise ValidationError(str(e).capitalize() + ".") from None


def _markup(form: Any, field: TextAreaField) -> None:  # (a NoteForm, declared below)
    if form.format.data == form.shown_format.data == "markdown":
        return  # Markdown: its rendered HTML is checked when saved (services.clean_body)
    try:
        check_markup(field.data or "")
    except Unfit as e:
        raise ValidationError(str(e).capitalize() + ".") from None


LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">, to the minute


def local_input(value: datetime | None) -> str:
    """``value`` as the editor's publication time shows it (the site's time zone)."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(current_app.config["NOTES_TIMEZONE"])).strftime(LOCAL_INPUT)


def parse_local(raw: str) -> datetime:
    """The editor's publication time (the site's time zone, seconds optional), in UTC;
    ``ValueError`` if it is no such time."""
    raw = raw.strip()
    for pattern in (LOCAL_INPUT, LOCAL_INPUT + ":%S", "%Y-%m-%d %H:%M"):
        try:
            value = datetime.strptime(raw, pattern)
        except ValueError:
            continue
        if not 1970 <= value.year <= 9998:
            raise ValueError(_("a publication time is between the years 1970 and 9998"))
        return value.replace(tzinfo=ZoneInfo(current_app.config["NOTES_TIMEZONE"])
                             ).astimezone(UTC)
    raise ValueError(_("%(value)s is not a date and time like 2030-01-31T09:30",
                       value=repr(raw[:30])))


def _when(form: FlaskForm, field: StringField) -> None:
    if (field.data or "").strip():
        try:
            parse_local(field.data or "")
        except (ValueError, OverflowError) as e:
            raise ValidationError(str(e).capitalize() + ".") from None


class NoteForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=TITLE_MAX), _title])
    format = SelectField(_l("Written in"), choices=[SelectChoice("html", _l("Rich text")),
                                                    SelectChoice("markdown", _l("Markdown"))],
                         default="html")
    # the format the text in the form was written in (see _convert)
    shown_format = HiddenField(default="html")
    body = TextAreaField(_l("Text"), validators=[Length(max=BODY_MAX), _markup])
    tags = StringField(_l("Tags"), validators=[Length(max=2000), _tags],
                       description=_l("Separated by commas, e.g. travel, recipes"))
    language = SelectField(_l("Language of the note"), choices=[],
                           description=_l("For readers' browsers, screen readers and feeds."))
    published = BooleanField(_l("Published"))
    publish_at = StringField(_l("Publish at"), validators=[Length(max=40), _when],
                             render_kw={"type": "datetime-local"},
                             description=_l("Empty: when you publish it. A time to come "
                                            "schedules it: nobody sees it before."))
    # the version of the note the editor was opened on (see notes.revisions)
    version = HiddenField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = language_names(html_lang().replace("-", "_"))
        if not self.language.data:
            self.language.data = current_app.config["NOTES_LANGUAGE"]
        if self.language.data not in {value for value, _ in choices}:  # set through the API
            choices = [(self.language.data, self.language.data), *choices]
        self.language.choices = choices

    def base(self) -> int | None:
        raw = self.version.data
        return int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 10 else None


PAGE = re.compile(r"[1-9][0-9]{0,8}")


def paginate(stmt: Select[Any]) -> Pagination:
    """``?page=`` of ``stmt`` (an author's own notes; public lists: :mod:`.lists`): a page
    that is not a plain positive number, or past the last
    one, is a 404 (an empty list has its page 1)."""
    raw = request.args.get("page", "1")
    if not PAGE.fullmatch(raw):
        abort(404)
    page = db.paginate(stmt, page=int(raw), per_page=current_app.config["NOTES_PER_PAGE"],
                       error_out=False, count=False)
    if not page.items and page.page > 1:
        abort(404)
    if len(page.items) < page.per_page:  # the last page: its items tell the total
        page.total = (page.page - 1) * page.per_page + len(page.items)
    else:
        counted = stmt.options(lazyload("*")).order_by(None).subquery()
        page.total = db.session.scalar(select(func.count()).select_from(counted)) or 0
    if page.page > max(page.pages, 1):
        abort(404)
    return page


def public_list(author_id: int | None = None) -> lists.Listing:
    """Public notes, newest published first: all of them along ``ix_notes_public_order``, a
    page's place found by their count per day; or an author's, along
    ``ix_notes_author_order``. (The time is no bound of the index: a page's place is, see
    public().)"""
    if author_id is None:
        return lists.Listing((public(by_time_index=False),), lists.BY_PUBLISHED,
                             place=lists.by_days, index="ix_notes_public_order")
    return lists.Listing((public(by_time_index=False), Note.author_id == author_id),
                         lists.BY_PUBLISHED, index="ix_notes_author_order")


@bp.route("/")
def index() -> str:
    q = request.args.get("q", "").strip()[:search.QUERY_MAX]
    if q:
        page = lists.numbered(search.ranked(q, public()), lists.shown)
    else:
        page = lists.window(public_list())
    first_visit = not q and page.first and not page.items and db.session.scalar(
        select(User.id).where(User.is_admin.is_(True)).limit(1)) is None
    return render_template("index.html", page=page, q=q, first_visit=first_visit)


@bp.route("/n/<slug>")
def note(slug: str) -> ResponseReturnValue:
    found, moved = find_note(slug)
    mine = (current_user.is_authenticated and found is not None
            and found.author_id == current_user.id)
    if found is None or not (found.is_public or mine):
        abort(404)
    if moved:  # retitled: the old address keeps working, and says where the note is now
        return redirect(url_for("views.note", slug=found.slug), 301)
    return render_template("note.html", note=found, image=_first_image(found.body),
                           url=absolute("views.note", slug=found.slug),
                           description=describe(found.body_text) or found.title)


def _first_image(body: str) -> str | None:
    """The first image of a note, as an absolute URL (Open Graph's preview image)."""
    match = re.search(r'<img[^>]*\ssrc="([^"]+)"', body)
    return urljoin(absolute("views.index"), match.group(1)) if match else None


def _author(user_id: int) -> User:
    person = db.session.get(User, user_id)
    if person is None or not person.active:
        abort(404)
    return person


@bp.route("/a/<int(max=2147483647):user_id>")
def author(user_id: int) -> str:
    person = _author(user_id)
    page = lists.window(public_list(person.id))
    return render_template("author.html", person=person, page=page)


def _tag(name: str) -> Tag:
    found: Tag | None = db.session.scalar(select(Tag).where(Tag.name == name))
    if found is None or found.name != name:
        abort(404)
    return found


def _tag_listing(found: Tag) -> lists.Listing:
    """Newest written first, along the tag's links (ix_note_tags_tag_note): a page reads only
    the notes it shows, however few of all notes carry the tag; a page by its number finds
    its place by the tag's notes counted per block of ids (lists.by_tag_blocks)."""
    return lists.Listing((note_tags.c.tag_id == found.id, public(by_time_index=False)),
                         lists.Key((note_tags.c.note_id,), lambda n: (n.id,), (False,)),
                         join=(note_tags, note_tags.c.note_id == Note.id),
                         place=lists.by_tag_blocks(found.id))


@bp.route("/t/<name>")
def tag(name: str) -> str:
    found = _tag(name)
    return render_template("tag.html", tag=found, page=lists.window(_tag_listing(found)))


FEED_SIZE = 20


@bp.route("/feed.xml")
def feed() -> ResponseReturnValue:
    """Atom: the latest published notes, with their tags as categories. (``?tag=``, as feed
    readers guess it: the tag's own feed.)"""
    if request.args.get("tag"):
        return redirect(url_for("views.tag_feed", name=_tag(request.args["tag"]).name), 301)
    notes = public_list().notes().order_by(*lists.BY_PUBLISHED.newest())
    return _atom(notes, config_title(), "views.feed", "views.index", {})


@bp.route("/t/<name>/feed.xml")
def tag_feed(name: str) -> ResponseReturnValue:
    """Atom: the latest notes carrying a tag (in the tag page's order)."""
    found = _tag(name)
    notes = _tag_listing(found).notes().order_by(note_tags.c.note_id.desc())
    return _atom(notes, f"#{found.name} · {config_title()}", "views.tag_feed", "views.tag",
                 {"name": found.name})


@bp.route("/a/<int(max=2147483647):user_id>/feed.xml")
def author_feed(user_id: int) -> ResponseReturnValue:
    """Atom: an author's latest notes."""
    person = _author(user_id)
    notes = public_list(person.id).notes().order_by(
        *lists.BY_PUBLISHED.newest())
    return _atom(notes, f"{person.public_name} · {config_title()}", "views.author_feed",
                 "views.author", {"user_id": person.id})


def config_title() -> str:
    title: str = current_app.config["NOTES_SITE_TITLE"]
    return title


def _atom(stmt: Select[Any], title: str, endpoint: str, page: str, args: dict[str, Any]
          ) -> ResponseReturnValue:
    notes: list[Note] = list(db.session.scalars(stmt.limit(FEED_SIZE)))
    updated = max((n.updated_at for n in notes), default=None)
    # whatever was stored before text was cleaned on the way in, the feed stays XML
    xml = xml_safe(render_template("feed.xml", notes=notes, updated=updated, title=title,
                                   self_url=absolute(endpoint, **args),
                                   page_url=absolute(page, **args)))
    return current_app.response_class(xml, mimetype="application/atom+xml")


# an attribute holding an address, in sanitised HTML (nh3 writes them in double quotes)
_ADDRESS = re.compile(r'(\s(?:src|href)=")([^"]*)"')


_SRCSET = re.compile(r'(\ssrcset=")([^"]*)"')


def absolute_html(body: str, base: str) -> str:
    """``body`` with every relative address (``/media/…``, ``other-note``, each candidate of
    a ``srcset``) made absolute on ``base``: feed readers show an entry away from the site,
    often ignoring xml:base."""
    body = _ADDRESS.sub(lambda m: f'{m.group(1)}{urljoin(base, m.group(2))}"', body)

    def candidates(m: re.Match[str]) -> str:
        absolute = []
        for candidate in m.group(2).split(","):
            address, _sep, size = candidate.strip().partition(" ")
            absolute.append(f"{urljoin(base, address)} {size}".strip())
        return f'{m.group(1)}{", ".join(absolute)}"'

    return _SRCSET.sub(candidates, body)


# The sitemap protocol allows 50,000 addresses a file; a part here holds the notes of a range
# of SITEMAP_PART ids (at most that many addresses, fewer where notes are unpublished or
# deleted), and the index lists ranges up to the highest id, so every published note is in one
# part whatever the number of notes. The size keeps a part as cheap at a million notes as a
# site's only part is at a thousand: an address costs about 6 µs (most of it SQLite reading the
# note's row; the rows read as plain tuples, the time cut from its stored text, a slug quoted
# only when it must be: see sitemap_part), so a part of 2,500 costs under 20 ms, where one of
# 10,000 cost 150 ms (15 µs an address, most of it parsing and formatting times). A million
# notes make an index of about 400 parts (it may list 50,000: 125 million ids), which crawlers fetch
# one by one as they would any page.
SITEMAP_PART = 2500
SITEMAP_BATCH = 2500  # rows read and written as one chunk (of a larger part, several)
SITEMAP_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
                '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n')
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote() keeps as it is (and XML too)


def _lastmod(column: Any) -> tuple[ColumnElement[str], Callable[[str], str]]:
    """``column`` (naive UTC, as every database here stores times) read as text, and what
    makes of that text the form :func:`isotime` writes. Parsing a time and formatting it in
    Python was most of the cost of an address; SQLite's ``strftime`` costs as much, so there
    the stored text (``YYYY-MM-DD HH:MM:SS[.ffffff]``) is cut; the others format it."""
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        return func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS"Z"', type_=String), str
    if dialect in ("mysql", "mariadb"):
        return func.date_format(column, "%Y-%m-%dT%H:%i:%sZ", type_=String), str
    return type_coerce(column, String), lambda t: f"{t[:10]}T{t[11:19]}Z"


@bp.route("/sitemap.xml")
def sitemap() -> ResponseReturnValue:
    """A sitemap index: the site's own pages, then the notes by ranges of ids."""
    top = db.session.scalar(select(func.max(Note.id))) or 0
    # a part's address built once, its number put in for each (hundreds of url_for)
    before, _, after = str(escape(absolute("views.sitemap_part", part=0))).rpartition("0")
    xml = render_template("sitemap_index.xml", before=before, after=after,
                          parts=range(top // SITEMAP_PART + 2))
    return current_app.response_class(xml, mimetype="application/xml")


@bp.route("/sitemap-<int(max=2147483647):part>.xml")
def sitemap_part(part: int) -> ResponseReturnValue:
    """Part 0: the site's own pages. Part n: the public notes whose ids fall in its range,
    read and written :data:`SITEMAP_BATCH` at a time (a part is never held in memory whole)."""
    low = (part - 1) * SITEMAP_PART
    if part and low > (db.session.scalar(select(func.max(Note.id))) or 0):
        abort(404)

    # a note's address built once, its slug put in for each (url_for per note was most of
    # the cost of a part); each batch of rows written as one chunk (a chunk per address was
    # a write per address through uWSGI); the rows read as plain tuples (no ORM), the time
    # already as text, a slug quoted only when it needs to be
    before, _, after = str(escape(absolute("views.note", slug="0"))).rpartition("0")
    visible = public(by_time_index=False)  # (built once: the same time for every batch)
    lastmod, iso = _lastmod(Note.updated_at)
    safe = _URL_SAFE.fullmatch

    def chunks() -> Iterator[str]:
        yield SITEMAP_HEAD
        if not part:
            yield f"  <url><loc>{escape(absolute('views.index'))}</loc></url>\n"
        high = low + SITEMAP_PART
        for start in range(low, high, SITEMAP_BATCH) if part else ():
            rows = db.session.connection().execute(
                select(Note.slug, lastmod).where(
                    Note.id > start, Note.id <= min(start + SITEMAP_BATCH, high), visible)
                .order_by(Note.id)).all()
            yield "".join(
                f"  <url><loc>{before}{slug if safe(slug) else quote(slug)}{after}</loc>"
                f"<lastmod>{iso(updated)}</lastmod></url>\n" for slug, updated in rows)
        yield "</urlset>\n"

    return current_app.response_class(stream_with_context(chunks()), mimetype="application/xml")


@bp.route("/robots.txt")
def robots() -> ResponseReturnValue:
    text = ("User-agent: *\nDisallow: /admin/\nDisallow: /my\nDisallow: /notes/\n"
            "Disallow: /account\nDisallow: /api/\nDisallow: /p/\n"
            f"Sitemap: {absolute('views.sitemap')}\n")
    return current_app.response_class(text, mimetype="text/plain")


@bp.route("/favicon.ico")
def favicon() -> ResponseReturnValue:
    """For clients that ask for the classic address (pages link the SVG icon)."""
    return redirect(url_for("static", filename="favicon.svg"))


# "My notes" filters: which of the writer's notes each shows
MY_STATES = ("draft", "scheduled", "published", "trash")


def _my_state(state: str) -> ColumnElement[bool]:
    now = utcnow()
    if state == "trash":
        return Note.deleted_at.is_not(None)
    if state == "draft":
        return and_(live(), Note.published == false())
    if state == "scheduled":
        return and_(live(), Note.published == true(), Note.published_at > now)
    if state == "published":
        return and_(live(), Note.published == true(), Note.published_at <= now)
    return live()


@bp.route("/my")
@login_required
def my_notes() -> str:
    """The writer's notes, last changed first; ``?state=`` one of :data:`MY_STATES`, ``?q=``
    words (most relevant first)."""
    q = request.args.get("q", "").strip()[:search.QUERY_MAX]
    state = request.args.get("state", "")
    state = state if state in MY_STATES else ""
    mine = and_(Note.author_id == current_user.id, _my_state(state))
    page: Pagination | lists.Window
    if q:
        page = lists.numbered(search.ranked(q, mine), lists.shown)
    else:
        page = paginate(select(Note).where(mine).order_by(Note.updated_at.desc(), Note.id.desc()))
    now = utcnow()
    counts = db.session.execute(select(*(
        func.coalesce(func.sum(case((condition, 1), else_=0)), 0) for condition in (
            Note.published == false(), Note.published_at > now,
            and_(Note.published == true(), Note.published_at <= now))))
        .where(Note.author_id == current_user.id, live())).one()
    trashed = db.session.scalar(select(func.count()).select_from(Note).where(
        Note.author_id == current_user.id, Note.deleted_at.is_not(None)))
    return render_template("my_notes.html", page=page, q=q, state=state,
                           counts=dict(zip(MY_STATES, (*counts, trashed), strict=True)),
                           expires=trash.expires)


def me() -> User:
    user = current_user._get_current_object()
    assert isinstance(user, User)
    return user


def own_note(note_id: int) -> Note:
    """The signed-in author's note ``note_id`` (not in the trash), else 404 or 403."""
    found = db.session.get(Note, note_id)
    if found is None or found.in_trash:
        abort(404)
    if found.author_id != current_user.id:
        abort(403)
    return found


@bp.route("/notes/new", methods=["GET", "POST"])
@login_required
def new_note() -> ResponseReturnValue:
    form = NoteForm()
    if request.method == "GET":
        _pending_form(form)
    if form.validate_on_submit():
        if "preview" in request.form:
            return _preview(form, None)
        try:
            _convert(form)
            created = save_note(lambda: create_note(me(), form.title.data or "",
                                                    form.body.data or "",
                                                    bool(form.published.data),
                                                    parse_tags(form.tags.data),
                                                    format=form.format.data or "html",
                                                    publish_at=_publish_at(form, None),
                                                    language=form.language.data))
        except Unfit as e:
            return _unfit(form, e, None)
        _saved()
        return redirect(url_for("views.note", slug=created.slug))
    return _editor(form, None)


def _convert(form: NoteForm) -> None:
    """The text in the form as written in the format chosen: switched from Markdown to rich
    text, it becomes its rendered HTML (HTML is Markdown already: it stays)."""
    if form.shown_format.data == "markdown" and form.format.data == "html":
        # (an image not described yet is left for the save to ask about)
        form.body.data = clean_body(form.body.data or "", "markdown", alt_required=False)[0]
    form.shown_format.data = form.format.data


def _publish_at(form: NoteForm, found: Note | None) -> datetime | None:
    """The publication time the editor asks for: None when it is left as it was (or empty:
    when published); a scheduled note whose time is emptied is published now."""
    raw = (form.publish_at.data or "").strip()
    if not form.published.data:
        return None
    if not raw:
        return utcnow() if found is not None and found.is_scheduled else None
    if found is not None and found.published and raw == local_input(found.published_at):
        return None
    return parse_local(raw)


def _preview(form: NoteForm, found: Note | None) -> ResponseReturnValue:
    """The editor again, unsaved, with the text as it would be published (and in the format
    chosen: the way to switch formats)."""
    try:
        _convert(form)
        shown = clean_body(form.body.data or "", form.format.data or "html",
                           alt_required=False)[0]
    except Unfit as e:
        return _unfit(form, e, found)
    return render_template("edit.html", form=form, note=found, conflict=None, preview=shown)


def _unfit(form: NoteForm, e: Unfit, found: Note | None) -> ResponseReturnValue:
    """A note the form's checks let through but the save refused (its cleaned text too long)."""
    db.session.rollback()
    form.body.errors = [*form.body.errors, str(e).capitalize() + "."]
    return _editor(form, found)


def _editor(form: NoteForm, found: Note | None, conflict: revisions.ConflictView | None = None
            ) -> ResponseReturnValue:
    status = 409 if conflict else 422 if form.errors else 200
    return render_template("edit.html", form=form, note=found, conflict=conflict), status


def _saved() -> None:
    """Say so, and tell the page to drop this editor's local draft (static/editor.js)."""
    flash(_("Note saved."), "info")
    flash(request.path, "draft-saved")


EDITOR_FIELDS = ("title", "format", "shown_format", "body", "tags", "language", "published",
                 "publish_at", "version")


def keep_form() -> str | None:
    """A form posted to an editor after its session ended (idle timeout, or logged out in
    another tab): keep what was typed in the (new) session, to show again, filled, right
    after signing in. Returns the editor's address, or None if this is no editor post."""
    if request.endpoint not in ("views.new_note", "views.edit_note"):
        return None
    session["pending_form"] = {"path": request.path,
                               "fields": {k: request.form.get(k, "") for k in EDITOR_FIELDS}}
    return request.path


def _pending_form(form: NoteForm) -> bool:
    """Fill ``form`` with the text kept by :func:`keep_form` for this editor, if any."""
    pending = session.get("pending_form")
    if not isinstance(pending, dict) or pending.get("path") != request.path:
        return False
    session.pop("pending_form")
    fields = pending.get("fields") or {}
    for name in EDITOR_FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            if name == "published":
                form.published.data = value in ("y", "on", "1", "true")
            else:
                getattr(form, name).data = value
    flash(_("Your session had ended before this was saved: here is your text again. It is not "
            "saved yet: save it now."), "info")
    return True


@bp.route("/notes/<int(max=2147483647):note_id>/edit", methods=["GET", "POST"])
@login_required
def edit_note(note_id: int) -> ResponseReturnValue:
    found = own_note(note_id)
    form = NoteForm(obj=found)
    if request.method == "GET":
        form.tags.data = ", ".join(found.tag_names)
        form.version.data = str(found.version)
        form.body.data = found.text
        form.shown_format.data = found.format
        form.publish_at.data = local_input(found.published_at) if found.published else ""
        _pending_form(form)
    if form.validate_on_submit():
        if "preview" in request.form:
            return _preview(form, found)
        base = form.base()
        if request.form.get("overwrite") == str(found.version):  # "save mine anyway"
            base = found.version
        try:
            _convert(form)
            save_note(lambda: update_note(found, title=form.title.data, body=form.body.data or "",
                                          published=bool(form.published.data),
                                          tags=parse_tags(form.tags.data), base=base, by=me(),
                                          format=form.format.data or "html",
                                          publish_at=_publish_at(form, found),
                                          language=form.language.data))
        except revisions.Conflict:
            mine = revisions.State((form.title.data or "").strip(), form.body.data or "",
                                   "\n".join(sorted(set(parse_tags(form.tags.data)))),
                                   bool(form.published.data), form.format.data or "html")
            return _editor(form, found, revisions.conflict(found, base, mine))
        except Unfit as e:
            return _unfit(form, e, found)
        _saved()
        return redirect(url_for("views.note", slug=found.slug))
    return _editor(form, found)


@bp.route("/notes/<int(max=2147483647):note_id>/publish", methods=["POST"])
@login_required
def publish_note(note_id: int) -> ResponseReturnValue:
    """Publish or unpublish: the form says which (``published=1/0``), so a page opened
    before another change cannot flip the note back."""
    found = own_note(note_id)
    wanted = request.form.get("published")
    target = not found.published if wanted not in ("0", "1") else wanted == "1"
    save_note(lambda: update_note(found, published=target, by=me(), via="publish"))
    flash(_("Note published.") if found.published else _("Note unpublished."), "info")
    return redirect(url_for("views.my_notes"))


@bp.route("/notes/<int(max=2147483647):note_id>/preview-link", methods=["POST"])
@login_required
def preview_link(note_id: int) -> ResponseReturnValue:
    """Make (``action=create``) or revoke (``revoke``) the note's private preview link."""
    found = own_note(note_id)
    if request.form.get("action") == "revoke":
        found.preview_token = None
        flash(_("The preview link is revoked: it shows nothing any more."), "info")
    elif found.is_public:
        flash(_("This note is published: its own address is the link to share."), "info")
    else:
        found.preview_token = found.preview_token or secrets.token_urlsafe(24)
        flash(_("Anyone with the preview link can now read this note until you revoke it or "
                "it is published."), "info")
    db.session.commit()
    return redirect(url_for("views.edit_note", note_id=found.id))


TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


@bp.route("/p/<token>")
def preview(token: str) -> ResponseReturnValue:
    """A draft (or scheduled note) as saved, for whoever has its preview link: never cached
    nor indexed, and its address is not sent on to the sites it links to. Once the note is
    public the link leads to it; revoked (or the note in the trash), it is a 404."""
    found = db.session.scalar(select(Note).where(Note.preview_token == token, live())
                              ) if TOKEN.fullmatch(token) else None
    if found is None or found.preview_token != token:
        abort(404)
    if found.is_public:
        return redirect(url_for("views.note", slug=found.slug))
    response = current_app.make_response(render_template(
        "note.html", note=found, image=None, url=absolute("views.note", slug=found.slug),
        description=describe(found.body_text) or found.title, preview=True))
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/notes/<int(max=2147483647):note_id>/delete", methods=["POST"])
@login_required
def delete_note(note_id: int) -> ResponseReturnValue:
    found = own_note(note_id)
    trash.move(found)
    db.session.commit()
    flash(_("“%(title)s” is in the trash: you can restore it there for %(days)s days.",
            title=found.title, days=current_app.config["NOTES_TRASH_DAYS"]), "info")
    return redirect(url_for("views.my_notes"))


@bp.route("/trash")
@login_required
def trash_list() -> str:
    return render_template("trash.html", page=paginate(trash.of(me())), expires=trash.expires)


def _trashed(note_id: int) -> Note:
    found = trash.get(me(), note_id)
    if found is None:
        abort(404)
    return found


@bp.route("/trash/<int(max=2147483647):note_id>/restore", methods=["POST"])
@login_required
def trash_restore(note_id: int) -> ResponseReturnValue:
    found = _trashed(note_id)
    trash.restore(found)
    db.session.commit()
    flash(_("“%(title)s” is restored.", title=found.title), "info")
    return redirect(url_for("views.my_notes"))


@bp.route("/trash/<int(max=2147483647):note_id>/purge", methods=["POST"])
@login_required
def trash_purge(note_id: int) -> ResponseReturnValue:
    found = _trashed(note_id)
    title = found.title
    trash.purge(found)
    db.session.commit()
    flash(_("“%(title)s” is deleted for good.", title=title), "info")
    return redirect(url_for("views.trash_list"))


@bp.route("/notes/<int(max=2147483647):note_id>/history")
@login_required
def history(note_id: int) -> str:
    """The note's revisions, newest first, and the difference between two of them
    (``?a=&b=``; by default the latest and the one before)."""
    found = own_note(note_id)
    kept = list(db.session.scalars(revisions.history(found)))
    by_id = {r.id: r for r in kept}
    newer = by_id.get(request.args.get("b", type=int) or 0) or (kept[0] if kept else None)
    older = by_id.get(request.args.get("a", type=int) or 0) or (
        kept[1] if len(kept) > 1 else newer)
    changes = (revisions.diff(revisions.state(older), revisions.state(newer))
               if older is not None and newer is not None else None)
    return render_template("history.html", note=found, revisions=kept, older=older,
                           newer=newer, changes=changes)


@bp.route("/notes/<int(max=2147483647):note_id>/history/<int(max=2147483647):rev>/restore",
          methods=["POST"])
@login_required
def history_restore(note_id: int, rev: int) -> ResponseReturnValue:
    found = own_note(note_id)
    revision = revisions.get(found, rev)
    if revision is None:
        abort(404)
    save_note(lambda: (revisions.restore(found, revision, me()), found)[1])
    flash(_("Version %(old)s is restored (as version %(new)s).", old=revision.version,
            new=found.version), "info")
    return redirect(url_for("views.history", note_id=found.id))


@bp.route("/session/alive")
@login_required
def session_alive() -> ResponseReturnValue:
    """An open editor asks now and then while its writer is active: the session stays alive
    (any signed-in request refreshes it; this one costs nothing else)."""
    response = current_app.response_class(status=204)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _upload_error(message: str, status: int = 400) -> ResponseReturnValue:
    return jsonify(uploaded=0, error={"message": message}), status


@bp.route("/upload", methods=["POST"])
@login_required
def upload() -> ResponseReturnValue:
    """CKEditor image upload: decoded and written anew (:mod:`notes.images`), no larger than
    NOTES_IMAGE_SIDE, with its smaller copies, under a random name."""
    file = request.files.get("upload")
    if file is None:
        return _upload_error(_("No file was sent."))
    limit = current_app.config["NOTES_MAX_IMAGE"]
    data = file.read(limit + 1)
    if len(data) > limit:
        return _upload_error(_("The image is too large: at most %(size)s. Make it smaller and "
                               "upload it again.", size=megabytes(limit)), 413)
    try:
        image = images.reencode(data, current_app.config["NOTES_MAX_IMAGE_PIXELS"],
                                current_app.config["NOTES_IMAGE_SIDE"])
    except images.Refused as e:
        return _upload_error(str(e), e.status)
    stem = secrets.token_urlsafe(16)
    name = f"{stem}.{image.ext}"
    folder = Path(current_app.config["NOTES_DATA_DIR"]) / "uploads"
    # the smaller copies first, the image last: once it is there, they all are
    files = [(f"{stem}-{width}w.{image.ext}", copy) for width, copy in image.copies]
    files.append((name, image.data))
    written: list[Path] = []
    try:  # each under its final name complete, or nothing (a full disk fails the write)
        for file_name, content in files:
            tmp = folder / f".{file_name}.tmp"
            written.append(tmp)
            with open(tmp, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(folder / file_name)
            written[-1] = folder / file_name
    except OSError as e:
        for path in written:
            path.unlink(missing_ok=True)
        current_app.logger.error("upload not stored: %s", e)
        if disk_full(e):
            return _upload_error(_("The server's storage is full: the image was not saved."),
                                 507)
        return _upload_error(_("The image could not be stored. Please try again."), 503)
    return jsonify(uploaded=1, fileName=name, url=url_for("views.media", name=name),
                   width=image.width, height=image.height)


# What the app serves from the uploads folder is an image and nothing else: no sniffing it into
# HTML, and if opened as a document, no scripts, plugins or forms. In production Nginx serves
# /media/ itself, with the same policy (the kit's `untrusted` static mapping).
MEDIA_CSP = ("default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
             "sandbox")


@bp.route("/media/<path:name>")
def media(name: str) -> ResponseReturnValue:
    """Uploaded images (Nginx serves /media/ itself; this is for running without it)."""
    if any(part.startswith(".") for part in name.split("/")):
        abort(404)  # files being written (.name.tmp) and other hidden files
    response = send_from_directory(Path(current_app.config["NOTES_DATA_DIR"]) / "uploads", name,
                                   max_age=7 * 86400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = MEDIA_CSP
    return response


def absolute(endpoint: str, **values: Any) -> str:
    """An absolute URL: on NOTES_SITE_URL when set, else on the address the request came to."""
    base: str = current_app.config.get("NOTES_SITE_URL") or ""
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


@functools.lru_cache(maxsize=256)
def _link(script_root: str, endpoint: str, filename: str | None) -> str:
    return url_for(endpoint, filename=filename) if filename else url_for(endpoint)


def link(endpoint: str, filename: str | None = None) -> str:
    """``url_for`` for the addresses every page carries (home, feed, sign-in, static files),
    built once per script root: werkzeug's URL building was a good part of rendering a page."""
    return _link(request.script_root, endpoint, filename)


def isotime(value: datetime | None) -> str:
    """RFC 3339 in UTC, for feeds and sitemaps."""
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.3g} MB"


def describe(text: str, length: int = 160) -> str:
    """A meta description: the first words of ``text``, cut at a word, about ``length`` long."""
    text = " ".join(text.split())
    if len(text) <= length:
        return text
    return text[:length].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_filter(localtime)
    app.cli.add_command(images.uploads_cli)
    app.add_template_filter(isotime)
    app.add_template_filter(megabytes)
    app.add_template_filter(describe)
    app.add_template_filter(absolute_html)
    app.add_template_global(search.highlight)
    app.jinja_env.globals["via_names"] = revisions.VIA_NAMES
    app.add_template_global(editor_config)
    app.add_template_global(absolute)
    app.add_template_global(link)
