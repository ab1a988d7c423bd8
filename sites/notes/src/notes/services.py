"""Note operations shared by the web pages, the admin, the API and the Excel import.

Every write of note HTML goes through :func:`clean_html`, and every title gets a unique slug.
"""

from __future__ import annotations

import functools
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nh3
from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, bindparam, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, joinedload, lazyload
from sqlalchemy.orm.exc import StaleDataError

from . import images, markdown, revisions, search
from .extensions import db
from .models import ApiToken, Note, OldSlug, Tag, User, fold, live, public, utcnow
from .text import Unfit, check_markup, clean_text


@dataclass(frozen=True)
class Allow:
    """What one element may carry: attributes, inline style properties, classes."""

    attributes: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()


# What a note may contain, declared once: the sanitiser keeps exactly this and CKEditor's
# allowedContent (built by editor_config, read by static/editor.js) offers exactly this, so
# what an author sees in the editor is what gets published (image alignment and size, the
# Marker highlight) and nothing the toolbar cannot make survives.
CONTENT: dict[str, Allow] = {
    **{tag: Allow() for tag in (
        "p", "h1", "h2", "h3", "pre", "br", "hr", "strong", "em", "b", "i", "s", "code",
        "kbd", "blockquote", "ol", "ul", "li", "caption", "thead", "tbody", "tr")},
    "a": Allow(attributes=("href", "target")),
    "img": Allow(attributes=("src", "alt", "width", "height"),
                 styles=("float", "width", "height")),
    "span": Allow(classes=("marker",)),
    "table": Allow(attributes=("border", "cellpadding", "cellspacing", "summary"),
                   styles=("width",)),
    "th": Allow(attributes=("colspan", "rowspan", "scope")),
    "td": Allow(attributes=("colspan", "rowspan")),
}
GLOBAL_ATTRIBUTES = ("lang", "dir")
# read in a style (older notes, other editors) but stored as attributes (images.fit): the
# editor is offered the attributes only, so it writes those
AS_ATTRIBUTES = {"img": ("width", "height")}
FORMAT_TAGS = ("p", "h1", "h2", "h3", "pre")  # the editor's Format menu
STYLES = (  # the editor's Styles menu: each must be allowed by CONTENT
    {"name": "Marker", "element": "span", "attributes": {"class": "marker"}},
    {"name": "Computer Code", "element": "code"},
    {"name": "Keyboard Phrase", "element": "kbd"},
)
URL_SCHEMES = {"http", "https", "mailto"}
# a style value is a length, a percentage or a float side: no url(), expression(), quotes
STYLE_VALUE = re.compile(r"(?:left|right|none|\d{1,5}(?:\.\d{1,3})?(?:px|%|em|rem)?)")

TITLE_MAX = 200
BODY_MAX = 1_000_000  # characters of HTML, in every way in: form, API, admin, Excel import
CLEAN_MAX = 2 * BODY_MAX  # characters of sanitised HTML stored (closing tags, entities added)
GROWTH = 3  # and at most this many times the HTML it was cleaned from (+ 1000)
SLUG_MAX = 200
TAG_MAX = 50
TAGS_PER_NOTE = 20
# set by save_note when concurrent writers keep taking the same next free slug
_contended: ContextVar[bool] = ContextVar("slug_contended", default=False)


def _keep_style(element: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: only declared style properties with plain values survive."""
    if attribute != "style":
        return value
    allowed = CONTENT.get(element, Allow()).styles
    kept = []
    for declaration in value.split(";"):
        name, _, val = declaration.partition(":")
        name, val = name.strip().lower(), val.strip().lower()
        if name in allowed and STYLE_VALUE.fullmatch(val):
            kept.append(f"{name}:{val}")
    return ";".join(kept) or None


_cleaner = nh3.Cleaner(
    tags=set(CONTENT),
    attributes={
        "*": set(GLOBAL_ATTRIBUTES),
        **{tag: set(rule.attributes) | ({"style"} if rule.styles else set())
           for tag, rule in CONTENT.items() if rule.attributes or rule.styles},
    },
    allowed_classes={tag: set(rule.classes) for tag, rule in CONTENT.items() if rule.classes},
    attribute_filter=_keep_style,
    url_schemes=URL_SCHEMES,
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def clean_html(html: str, alt_required: bool = True) -> str:
    """Keep what :data:`CONTENT` declares; drop scripts, handlers, bad URLs and styles; size
    images so they keep their ratio, with their smaller copies (:func:`notes.images.fit`).

    ``Unfit`` (one line) if the markup would cost the sanitiser more than linear work
    (:func:`~notes.text.check_markup`, before it runs), or if what it makes is longer than
    :data:`CLEAN_MAX` or :data:`GROWTH` times the input, or (``alt_required``) if an image
    has no description. Control characters go first (:func:`~notes.text.clean_text`).
    """
    html = clean_text(html, multiline=True)
    check_markup(html)
    cleaned = _cleaner.clean(html)
    if len(cleaned) > CLEAN_MAX:
        raise Unfit(_("the text is longer than %(count)s characters once cleaned",
                      count=CLEAN_MAX))
    if len(cleaned) > GROWTH * len(html) + 1000:
        raise Unfit(_("the text grows more than %(count)s-fold once cleaned (bold or italic "
                      "left open, reopened in every paragraph?)", count=GROWTH))
    if "<img" not in cleaned:
        return cleaned
    if alt_required:
        check_alt(cleaned)
    return images.fit(cleaned)


def check_alt(html: str) -> None:
    """``Unfit`` naming the first image of (sanitised) ``html`` that has no alt text."""
    for image in images.images_in(html):
        if not image.get("alt", "").strip():
            src = image.get("src", "")
            shown = src if len(src) <= 80 else src[:77] + "..."
            raise Unfit(_("the image %(image)s has no description (alt text): describe every "
                          "image for people who cannot see it", image=repr(shown)))


def clean_body(text: str, format: str = "html",
               alt_required: bool = True) -> tuple[str, str | None]:
    """A note's text as stored: its sanitised HTML and, for Markdown, its source (cleaned of
    control characters). ``Unfit`` for a format that is not one of
    :data:`notes.markdown.FORMATS`; ``alt_required``: see :func:`clean_html`."""
    if format == "html":
        return clean_html(text, alt_required), None
    if format != "markdown":
        raise Unfit(_("the format %(format)s is not one of %(formats)s",
                      format=repr(format[:20]), formats=", ".join(markdown.FORMATS)))
    source = clean_text(text, multiline=True)
    return clean_html(markdown.render(source), alt_required), source


def set_text(note: Note, text: str, format: str, alt_required: bool = True) -> None:
    """Give ``note`` this text in this format (see :func:`clean_body`)."""
    note.body, note.source = clean_body(text, format, alt_required)
    note.format = format


def schedule(note: Note, published: bool, at: datetime | None) -> None:
    """Publish ``note`` now (``at`` None), at a time (a future one: scheduled), or make it a
    draft. A note that becomes public loses its preview link (see views.preview)."""
    if not published:
        note.published, note.published_at = False, None
        return
    if at is not None:
        note.published_at = at
    elif not note.published or note.published_at is None:
        note.published_at = utcnow()
    note.published = True
    if note.published_at <= utcnow():
        note.preview_token = None


def clean_title(title: str) -> str:
    """A title as stored: one line, no control characters; ``Unfit`` if nothing is left."""
    title = clean_text(title).strip()
    if not title:
        raise Unfit(_("the title is empty"))
    return title


def editor_config() -> dict[str, Any]:
    """CKEditor's settings derived from :data:`CONTENT` (``allowedContent`` rules)."""
    rules = []
    for tag, rule in CONTENT.items():
        text = tag + "[" + ",".join((*rule.attributes, *GLOBAL_ATTRIBUTES)) + "]"
        styles = [name for name in rule.styles if name not in AS_ATTRIBUTES.get(tag, ())]
        if styles:
            text += "{" + ",".join(styles) + "}"
        if rule.classes:
            text += "(" + ",".join(rule.classes) + ")"
        rules.append(text)
    return {"allowedContent": "; ".join(rules), "format_tags": ";".join(FORMAT_TAGS),
            "stylesSet": list(STYLES)}


# Characters that show nothing (Unicode's Default_Ignorable_Code_Point, plus the blank
# Braille pattern and the Hangul fillers): kept in a slug, ``a\u200db`` would be another
# address that reads exactly as ``ab``. They are dropped.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
# Scripts whose letters a reader can take for Latin ones (a Cyrillic "paypal")
_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _slug_char(ch: str) -> str:
    """One character of a slug: Latin letters lose their accents (``ç`` -> ``c``), letters,
    digits and marks of other scripts and emoji stay as they are; anything else separates."""
    if ch.isascii():
        return ch if ch.isalnum() else "-"
    if INVISIBLE.match(ch):
        return ""
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base.isascii() and base.isalnum():
        return base
    category = unicodedata.category(ch)
    if category[0] in "LNM" or (category == "So" and ord(ch) >= 0x2000):
        return ch
    return "-"


def slugify(text: str) -> str:
    """``"Hello, World!"`` -> ``"hello-world"``, ``"Ελληνικά νέα"`` -> ``"ελληνικά-νέα"``;
    never empty: a title with no visible letter or digit gets ``note``. Unicode slugs rather
    than a transliteration: readable in the address bar in the writer's own script, and no
    guessing of a language's romanisation. Invisible characters never make it into a slug."""
    text = unicodedata.normalize("NFKC", INVISIBLE.sub("", text)).lower()
    slug = re.sub(r"-{2,}", "-", "".join(_slug_char(c) for c in text)).strip("-")
    return slug[:SLUG_MAX].strip("-") or "note"


def mixed_scripts(slug: str) -> list[str]:
    """The words of ``slug`` that mix Latin, Cyrillic or Greek letters (a Cyrillic "paypal"
    with a Latin l): look-alikes of another address. They are kept (a word can mix scripts
    honestly) and reported."""
    mixed = []
    for word in slug.split("-"):
        scripts = {name for ch in word if ch.isalpha()
                   for name in _LOOKALIKE_SCRIPTS if unicodedata.name(ch, "").startswith(name)}
        if len(scripts) > 1:
            mixed.append(word)
    return mixed


def unique_slug(title: str, exclude_id: int | None = None, taken: set[str] | None = None) -> str:
    """A slug for ``title`` that no other note has or had (``-2``, ``-3``… on collision).

    Slugs that differ only in case or accents count as taken (MariaDB's collation would
    call them equal: the same answer on every database). ``taken``: the :func:`folded
    <notes.models.fold>` slugs in use when the caller knows them all (a bulk import, see
    :func:`taken_slugs`), instead of asking the database.
    """
    base = slugify(title)
    if mixed_scripts(base) and has_app_context():
        current_app.logger.warning("a note's address %r mixes scripts in a word (%s): a "
                                   "look-alike of another address?", base,
                                   ", ".join(mixed_scripts(base)))
    if _contended.get():  # step aside from the writers racing for -2, -3…
        base = f"{base[:SLUG_MAX - 7]}-{secrets.token_hex(3)}"
    if taken is None:
        prefix = base[:3]  # a LIKE prefix that matches whatever the collation
        taken = set()
        for model in (Note, OldSlug):
            owner = model.id if model is Note else model.note_id
            stmt = select(owner, model.slug).where(model.slug.like(f"{prefix}%"))
            taken |= {fold(slug) for note_id, slug in db.session.execute(stmt)
                      if exclude_id is None or note_id != exclude_id}
    if fold(base) not in taken:
        return base
    n = 2
    while fold(f"{base}-{n}") in taken:
        n += 1
    return f"{base}-{n}"


def taken_slugs() -> set[str]:
    """Every slug in use or kept for a redirect, folded (for :func:`unique_slug`)."""
    current = db.session.scalars(select(Note.slug))
    old = db.session.scalars(select(OldSlug.slug))
    return {fold(slug) for slugs in (current, old) for slug in slugs}


# Pages that show notes run the same few statements on every request. Each is built once:
# building a statement and its cache key costs SQLAlchemy about as much as running it.

# How pages load the notes they show: the author (the byline) joined in the same query, not
# the tags (their names are in Note.tags_text) nor the folded search text (as long as the
# note: only searched, never shown).
SHOWN = (joinedload(Note.author), lazyload(Note.tags), defer(Note.search_text))


@functools.cache
def _note_at() -> Select[Note]:
    return select(Note).options(*SHOWN).where(Note.slug == bindparam("slug"), live())


@functools.cache
def _old_slug() -> Select[OldSlug]:
    return select(OldSlug).where(OldSlug.slug == bindparam("slug"))


def find_note(slug: str) -> tuple[Note | None, bool]:
    """The note at ``slug`` (with its author) and whether ``slug`` is one of its old slugs
    (answer a redirect)."""
    note = db.session.scalar(_note_at(), {"slug": slug})
    if note is not None and note.slug == slug:  # exact, whatever the collation
        return note, False
    old = db.session.scalar(_old_slug(), {"slug": slug})
    if old is not None and old.slug == slug and not old.note.in_trash:
        return old.note, True
    return None, False


def retitle(note: Note, title: str) -> None:
    """Set the title; the slug follows and the previous one is kept as an old slug."""
    note.title = clean_title(title)
    slug = unique_slug(note.title, exclude_id=note.id)
    previous = inspect(note).committed_state.get("slug", note.slug) if note.id else None
    if previous and slug != previous:
        # the note takes back one of its own old slugs: it is current again
        note.old_slugs = [o for o in note.old_slugs if o.slug != slug]
        if previous not in {o.slug for o in note.old_slugs}:
            note.old_slugs.append(OldSlug(slug=previous))
    note.slug = slug


def parse_tags(raw: str | Iterable[str] | None) -> list[str]:
    """Tag names from ``"a, b"`` or a list: lower case, spaces collapsed, no URL
    punctuation, no duplicates. ``ValueError`` (one line) if one is too long or too many."""
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names: list[str] = []
    for item in items:
        name = unicodedata.normalize("NFC", clean_text(str(item)))
        name = " ".join(re.sub(r"[/?#%\\<>\"]", " ", name).split()).lower().strip(" .")
        if not name or name in names:
            continue
        if len(name) > TAG_MAX:
            raise ValueError(_("the tag %(name)s… is longer than %(count)s characters",
                               name=repr(name[:20]), count=TAG_MAX))
        names.append(name)
    if len(names) > TAGS_PER_NOTE:
        raise ValueError(_("a note has at most %(count)s tags", count=TAGS_PER_NOTE))
    return names


def set_tags(note: Note, names: list[str]) -> None:
    """Give ``note`` exactly these tags, creating the new ones (the caller commits).

    Names that differ only in accents are one tag (the first one written), as MariaDB's
    collation would have it: the same on every database. (All names are read: a site has
    hundreds of tags, not millions.)
    """
    if not names:
        note.tags = []
        return
    known = {fold(t.name): t for t in db.session.scalars(select(Tag))}
    tags: list[Tag] = []
    for name in names:
        tag = known.setdefault(fold(name), known.get(fold(name)) or Tag(name=name))
        if tag not in tags:
            tags.append(tag)
    note.tags = tags


def notes_query(
    query: dict[str, Any], viewer: User | None = None, everything: bool = False
) -> Select[tuple[Note]]:
    """Notes filtered by ``author`` (email), ``author_id``, ``tag``, ``published`` and ``q``
    (text), oldest first.

    Only published notes and ``viewer``'s own, unless ``everything`` (admins' export); never
    notes in the trash.
    """
    stmt = (select(Note).join(Note.author).options(lazyload(Note.tags))  # see tags_text
            .where(live()))
    if not everything:
        visible: ColumnElement[bool] = public()
        if viewer is not None:
            visible = visible | (Note.author_id == viewer.id)
        stmt = stmt.where(visible)
    if query.get("author"):
        stmt = stmt.where(User.email == query["author"].strip().lower())
    if query.get("author_id"):
        stmt = stmt.where(Note.author_id == query["author_id"])
    if query.get("tag"):
        stmt = stmt.where(Note.tags.any(Tag.name == query["tag"].strip().lower()))
    if query.get("published") is not None:
        stmt = stmt.where(Note.published.is_(query["published"]))
    if query.get("q"):
        stmt = stmt.where(search.condition(query["q"]))
    return stmt.order_by(Note.id)


def create_note(author: User, title: str, body: str, published: bool = False,
                tags: list[str] | None = None, *, by: User | None = None, via: str = "editor",
                format: str = "html", publish_at: datetime | None = None,
                language: str | None = None) -> Note:
    """Add a note to the session, with its first revision (the caller commits). ``by``: who
    writes it (default: ``author``), ``via``: how (see :data:`notes.revisions.VIA`);
    ``format``: how ``body`` is written (html or markdown); ``publish_at``: when a published
    note becomes public (default: now)."""
    title = clean_title(title)
    html, source = clean_body(body, format)  # refused before a note exists
    note = Note(author=author, title=title, slug=unique_slug(title), body=html, source=source,
                format=format, published=False, language=language or None)
    schedule(note, published, publish_at)
    set_tags(note, tags or [])
    db.session.add(note)
    db.session.flush()
    revisions.record(note, None, by or author, via)
    return note


def update_note(
    note: Note,
    *,
    title: str | None = None,
    body: str | None = None,
    published: bool | None = None,
    tags: list[str] | None = None,
    base: int | None = None,
    by: User | None = None,
    via: str = "editor",
    format: str | None = None,
    publish_at: datetime | None = None,
    language: str | None = None,
) -> Note:
    """Change the given fields and record the change as a revision (the caller commits). The
    slug follows the title; the old one keeps answering (a permanent redirect). ``format``
    without ``body``: the note's text is taken as written in the new format (HTML is valid
    Markdown; a Markdown note becomes its rendered HTML). ``publish_at``: the time a published
    note becomes public (``published`` not False).

    ``base``: the version the writer started from; if the note has changed since,
    :class:`notes.revisions.Conflict` is raised and nothing is changed.
    """
    revisions.check(note, base)
    before = revisions.state(note)
    if title is not None and clean_title(title) != note.title:
        retitle(note, title)
    if tags is not None:
        set_tags(note, tags)
    if body is not None or (format is not None and format != note.format):
        wanted = format or note.format
        if body is None:
            body = note.body if wanted == "html" else note.text
        # (a restored version is taken as it was, described or not)
        set_text(note, body, wanted, alt_required=via != "restore")
    if publish_at is not None and published is not False:
        schedule(note, True, publish_at)
    elif published is not None and published != note.published:
        schedule(note, published, None)
    if language is not None:
        note.language = language or None
    revisions.record(note, before, by, via)
    db.session.flush()
    return note


def save_note(write: Callable[[], Note], attempts: int = 6) -> Note:
    """Run ``write`` (a :func:`create_note` or :func:`update_note`) and commit.

    Two writers can pick the same free slug at once (on every replica); the database's unique
    constraint stops the second, which is rolled back and run again with the next free slug —
    from the third attempt on, with a random suffix, so that it cannot keep losing.

    Another writer saving the same note at the same instant (the database finds the version
    changed under it): :class:`notes.revisions.Conflict`, nothing saved.
    """
    for attempt in range(attempts):
        contended = _contended.set(attempt >= 2)
        try:
            note = write()
            db.session.commit()
            return note
        except StaleDataError:
            db.session.rollback()
            raise revisions.Conflict(0, None) from None
        except IntegrityError as e:
            db.session.rollback()
            message = str(e.orig).lower()
            # a slug or a new tag taken meanwhile by another writer: run again
            if ("slug" not in message and "tags" not in message) or attempt == attempts - 1:
                raise
        finally:
            _contended.reset(contended)
    raise AssertionError("unreachable")


def issue_token(user: User, name: str) -> str:
    """Create a token for ``user``; the token itself is returned once and stored hashed."""
    token = "nt_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, name=clean_text(name).strip()[:100] or "token",
                            token_hash=ApiToken.hash(token), prefix=token[:10]))
    db.session.commit()
    return token
