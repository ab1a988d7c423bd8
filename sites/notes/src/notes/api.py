"""REST API under /api: notes CRUD, personal API tokens, an OpenAPI spec at /openapi.json."""

from __future__ import annotations

import json
import re
from datetime import UTC
from typing import Any

import click
from apiflask import APIBlueprint, APIFlask, HTTPTokenAuth, Schema, abort
from apiflask.fields import AwareDateTime, Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from flask import request, url_for
from sqlalchemy import ColumnElement, Select, and_, false, select

from . import lists, revisions, search, trash
from .extensions import csrf, db
from .i18n import canonical, language_tags
from .markdown import FORMATS
from .models import (
    ApiToken,
    Note,
    NoteBlock,
    NoteRevision,
    Tag,
    User,
    live,
    note_tags,
    public,
    utcnow,
)
from .services import (
    BODY_MAX,
    SHOWN,
    TAG_MAX,
    TAGS_PER_NOTE,
    TITLE_MAX,
    create_note,
    issue_token,
    parse_tags,
    save_note,
    update_note,
)
from .text import Unfit

bp = APIBlueprint("api", __name__, url_prefix="/api", tag="Notes")
# (`auth_required(..., optional=True)` below carries a type: ignore: APIFlask annotates
# `optional` as str | None, while Flask-HTTPAuth, which receives it, takes a bool.)
token_auth = HTTPTokenAuth(scheme="Bearer", description="A personal API token (account page or "
                     "`flask --app notes tokens create EMAIL`).")


@token_auth.verify_token
def verify_token(token: str) -> User | None:
    if not token:
        return None
    found: ApiToken | None = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token)))
    if found is None or not found.user.active:
        return None
    found.last_used_at = utcnow()
    db.session.commit()
    return found.user


@bp.before_request
def refuse_malformed_json() -> None:
    """A JSON body Python's parser cannot read is a 400, whatever the reason: nested deeper
    than the interpreter recurses (``[[[…]]]`` 100,000 deep), an integer of more digits than
    ``int()`` converts (4,300), or not JSON at all. (webargs catches only the last.)"""
    if not request.is_json or not request.content_length:
        return
    try:
        json.loads(request.get_data(cache=True))
    except RecursionError:
        abort(400, "The JSON body nests too deep.")
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digits
        abort(400, f"The body is not valid JSON: {str(e)[:100]}")


def reader() -> User | None:
    """Who reads: the token's user, or nobody without a token. A token that is given but not
    valid (made up, revoked, its user disabled) is a 401, not an anonymous read: a client
    whose token ended learns it, as the README says."""
    user = token_auth.current_user
    if user is None and token_auth.get_auth() is not None:
        abort(401, "The token is not valid (revoked, or its user disabled).")
    return user if isinstance(user, User) else None


def _tags_field(**kwargs: Any) -> List[str]:
    return List(String(validate=Length(1, TAG_MAX)), validate=Length(0, TAGS_PER_NOTE),
                metadata={"description": "Tag names (stored in lower case)."}, **kwargs)


# a title keeps at least one character that is neither a space nor one the site removes
# (notes.text: control characters, non-characters): written for JSON Schema (ECMA) and Python
VISIBLE = (r"^[\s\S]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f"
           r"\u205f\u3000\ufdd0-\ufdef\ufffe\uffff]")


def _title(**kwargs: Any) -> String:
    return String(validate=[Length(1, TITLE_MAX),
                            Regexp(VISIBLE, error="The title has no visible character.")],
                  **kwargs)


def _format(**kwargs: Any) -> String:
    return String(validate=OneOf(FORMATS), metadata={
        "description": "How `body` is written: `html` (sanitised) or `markdown` (CommonMark "
        "with tables, rendered and sanitised the same way). Changed without `body`, the note's "
        "text is taken as written in the new format."}, **kwargs)


# the years a publication time may have (in the spec, so generated clients know)
PUBLISH_YEARS = r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"


def _publish_at(**kwargs: Any) -> AwareDateTime:
    return AwareDateTime(default_timezone=UTC, metadata={
        "description": "When the note becomes public (implies `published`): a time to come "
        "schedules it, nobody but you sees it before. Without an offset: UTC. Years 1970 "
        "to 9998.", "pattern": PUBLISH_YEARS}, **kwargs)


def _language(**kwargs: Any) -> String:
    # the spec lists them: every tag it allows is accepted, and only those
    return String(validate=OneOf(language_tags(), error="Not a language tag this site knows "
                                 "(such as en, el, zh-Hant or pt-BR)."),
                  metadata={"description": "The language the note is written in, a language "
                            "tag such as en, el or zh-Hant (its pages' lang attribute, its feed "
                            "entry); default: the site's (NOTES_LANGUAGE)."}, **kwargs)


class NoteIn(Schema):
    title = _title(required=True)
    body = String(load_default="", validate=Length(0, BODY_MAX))
    format = _format(load_default="html")
    published = Boolean(metadata={"description": "Default false."})
    publish_at = _publish_at()
    tags = _tags_field(load_default=[])
    language = _language()


class NotePatch(Schema):
    title = _title()
    body = String(validate=Length(0, BODY_MAX))
    format = _format()
    published = Boolean()
    publish_at = _publish_at()
    tags = _tags_field()
    language = _language()


class NoteOut(Schema):
    id = Integer()
    title = String()
    slug = String()
    body = String(metadata={"description": "Sanitised HTML (of a Markdown note: rendered)."})
    format = String(metadata={"description": "html or markdown."})
    source = String(allow_none=True, metadata={
        "description": "A Markdown note's text as written; null for HTML."})
    published = Boolean()
    scheduled = Boolean(attribute="is_scheduled", metadata={
        "description": "Published for a time still to come (published_at)."})
    author = String(attribute="author.public_name",
                    metadata={"description": "The author's display name."})
    author_id = Integer()
    tags = List(String(), attribute="tag_names")
    language = String(attribute="lang", metadata={
        "description": "The language the note is written in (a language tag)."})
    url = String()
    created_at = DateTime()
    updated_at = DateTime()
    published_at = DateTime(allow_none=True)
    version = Integer(metadata={"description": "Raised by every saved change; the ETag of "
                                "the note's own URL names it."})
    deleted_at = DateTime(allow_none=True, metadata={
        "description": "When it was moved to the trash (only in /api/trash)."})


class ETagHeader(Schema):
    ETag = String(metadata={"description": "This version of the note: send it back in "
                            "If-Match to change or delete only this version."})


class IfMatch(Schema):
    if_match = String(data_key="If-Match", metadata={
        "description": "The note's ETag as you last read it: if the note has changed since, "
        "the request is refused with 412 and nothing changes. Without it, the last write "
        "wins."})


PRECONDITION = {412: "The note has changed since the version named in If-Match (nothing "
                "was changed: read it again).",
                409: "Another change to this note was saved at the same instant (nothing was "
                "changed: read it again)."}


class RevisionSummary(Schema):
    id = Integer()
    version = Integer()
    created_at = DateTime()
    author = String(allow_none=True, metadata={"description": "Who saved it (display name)."})
    title = String()
    via = String(metadata={"description": "editor, api, admin, import, restore, publish."})


class RevisionList(Schema):
    items = List(Nested(RevisionSummary))


class RevisionOut(RevisionSummary):
    body = String(metadata={"description": "As written: HTML, or Markdown (see format)."})
    format = String()
    tags = List(String(), attribute="tag_names")
    published = Boolean()


class TrashList(Schema):
    items = List(Nested(NoteOut))


PAGE = re.compile(r"[1-9][0-9]{0,8}")


class PageNumber(Integer):
    """A page number; a malformed one is a 404 like a page past the last (as on the site)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if not PAGE.fullmatch(str(value)):
            abort(404, "No such page.")
        return int(value)


class ListQuery(Schema):
    page = PageNumber(load_default=1, validate=Range(1, 999_999_999),
                      metadata={"description": "1 to the last page; any other value is a 404. "
                                "Without `q`, following `next` is cheaper at any depth."})
    after = Integer(validate=Range(0, 2_147_483_647),
                    metadata={"description": "Notes with a larger id than this (the next "
                              "page: see `next`); ignored with `q`, whose pages go by `page`."})
    per_page = Integer(load_default=20, validate=Range(1, 100))
    author = Integer(validate=Range(1, 2_147_483_647),
                     metadata={"description": "Only this author's notes (author_id)."})
    tag = String(validate=Length(1, TAG_MAX))
    published = Boolean()
    q = String(validate=Length(1, 200))


class NoteList(Schema):
    items = List(Nested(NoteOut))
    page = Integer(allow_none=True, metadata={"description": "The page number asked for."})
    per_page = Integer()
    next = String(allow_none=True, metadata={
        "description": "The address of the next page, or null on the last one. (Lists are "
                       "not counted: a request costs the same at any depth.)"})


def out(note: Note) -> Note:
    note.url = url_for("views.note", slug=note.slug, _external=False)
    return note


def visible(note: Note | None, user: User | None) -> Note:
    mine = user is not None and note is not None and note.author_id == user.id
    if note is None or note.in_trash or not (note.is_public or mine):
        abort(404, "No such note.")
    return note


def numbered(stmt: Select[Any], key: Any, skip: int, seen: ColumnElement[bool],
             tag_id: int | None, reader: int | None, author_id: int | None = None,
             drafts: bool = True) -> Select[Any]:
    """``stmt`` (a list in id order of the notes ``seen`` shows a reader: all, a tag's or an
    author's) from its ``skip``-th note on. The block of ids that note is in is found by the
    notes counted per block (:func:`notes.lists.in_blocks`), the note itself by skipping
    within that block (the tag's links of it, for a tag), and the list is read from it: the
    same cost at any depth. When the counts cannot tell (a great many notes scheduled, or
    drafts), the list skips along its index from its start."""
    found = lists.in_blocks(skip, tag_id, newest_first=False, reader=reader,
                            author_id=author_id, drafts=drafts)
    if found is None:
        return stmt.where(false())  # past the last page
    if found == lists.UNCOUNTED:
        return stmt.offset(skip)
    block, skip = found
    low = block * NoteBlock.BLOCK
    if tag_id is None:
        # (MariaDB: along the primary key, not a list index read by ``published`` and sorted)
        place = lists.along(select(Note.id).where(seen, Note.id >= low).order_by(Note.id),
                            "PRIMARY")
    else:
        place = lists.tag_links(tag_id, note_tags.c.note_id >= low, seen).order_by(
            note_tags.c.note_id)  # (no end: see lists.by_tag_blocks)
    first = db.session.scalar(place.offset(skip).limit(1))
    return stmt.where(false() if first is None else key >= first)


@bp.get("/notes")
@bp.auth_required(token_auth, optional=True)  # type: ignore[arg-type]
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(NoteList)
@bp.doc(summary="List notes", description="Published notes, plus your own with a token "
        "(a token that is not valid is a 401).", responses=[401, 404])
def list_notes(query: dict[str, Any]) -> dict[str, Any]:
    """Oldest first (by id), or with ``q`` the most relevant first (see notes.search)."""
    user = reader()
    size = query["per_page"]
    where: list[ColumnElement[bool]] = [
        # (by id: the time compared so that no index on it is taken for the list)
        public(False) if user is None
        else and_(live(), public(False) | (Note.author_id == user.id))]
    if query.get("author"):
        where.append(Note.author_id == query["author"])
    if query.get("published") is not None:
        where.append(Note.published == query["published"])
    tag_id = None
    if query.get("tag"):
        tag_id = db.session.scalar(select(Tag.id).where(Tag.name == query["tag"].strip().lower()))
    args = {k: v for k, v in query.items() if k not in ("page", "after")}
    if query.get("q"):  # ranked, not in id order: `after` means nothing here (ignored)
        if query.get("tag"):
            where.append(Note.id.in_(select(note_tags.c.note_id).where(
                note_tags.c.tag_id == tag_id)))
        ids = search.ranked(query["q"], and_(*where))
        start = (query["page"] - 1) * size
        if start and start >= len(ids):
            abort(404, "No such page.")
        chosen = ids[start:start + size]
        found_notes = {n.id: n for n in db.session.scalars(
            select(Note).options(*SHOWN).where(Note.id.in_(chosen)))} if chosen else {}
        items = [found_notes[i] for i in chosen if i in found_notes]
        more = len(ids) > start + size
        following = {**args, "page": query["page"] + 1}
    else:
        stmt = select(Note).options(*SHOWN)
        key: Any = Note.id  # the list's order
        if query.get("tag"):  # along the tag's links (``IN`` would read all of them first)
            stmt = lists.links_first(stmt.select_from(note_tags).join(
                Note, and_(note_tags.c.note_id == Note.id, note_tags.c.tag_id == tag_id)))
            key = note_tags.c.note_id
        stmt = stmt.where(*where)
        stmt = stmt.order_by(key)
        if "after" in query:
            stmt = stmt.where(key > query["after"])
        elif query["page"] > 1:  # an old page number
            skip = (query["page"] - 1) * size
            # (published=false: a reader's own drafts, or nothing; author= and tag= together:
            # fewer than either alone) skipped along their index
            counted = query.get("published") is not False and not (
                query.get("author") and query.get("tag")) and (
                tag_id is not None or not query.get("tag"))
            stmt = (numbered(stmt, key, skip, and_(*where), tag_id,
                             None if user is None else user.id, query.get("author"),
                             drafts=query.get("published") is None)
                    if counted else stmt.offset(skip))
        items = list(db.session.scalars(stmt.limit(size + 1)))
        if not items and query["page"] > 1:
            abort(404, "No such page.")
        more = len(items) > size
        items = items[:size]
        following = {**args, "after": items[-1].id} if items else {}
    paged_by_id = "after" in query and not query.get("q")
    return {"items": [out(n) for n in items], "page": None if paged_by_id else query["page"],
            "per_page": size, "next": url_for("api.list_notes", **following) if more else None}


Tagged = tuple[Note, int, dict[str, str]]


def tagged(note: Note, status: int = 200) -> Tagged:
    """The note with its ETag."""
    return out(note), status, {"ETag": note.etag}


@bp.get("/notes/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth, optional=True)  # type: ignore[arg-type]
@bp.output(NoteOut, headers=ETagHeader)
@bp.doc(summary="Get a note", responses=[401, 404])
def get_note(note_id: int) -> Tagged:
    return tagged(visible(db.session.get(Note, note_id), reader()))


@bp.post("/notes")
@bp.auth_required(token_auth)
@bp.input(NoteIn, arg_name="data")
@bp.output(NoteOut, status_code=201, headers=ETagHeader)
@bp.doc(summary="Create a note")
def create(data: dict[str, Any]) -> Tagged:
    tags = _tags(data.get("tags"))
    published = _published(data)
    try:
        language = canonical(data["language"]) if data.get("language") else None
        note = save_note(lambda: create_note(api_user(), data["title"], data["body"],
                                             bool(published), tags, via="api",
                                             format=data["format"],
                                             publish_at=data.get("publish_at"),
                                             language=language))
    except Unfit as e:
        db.session.rollback()
        abort(422, str(e))
    return tagged(note, 201)


def _published(data: dict[str, Any]) -> bool | None:
    """``published`` as asked: ``publish_at`` implies it, and contradicts ``false``."""
    if data.get("publish_at") is not None:
        if data.get("published") is False:
            abort(422, "publish_at publishes the note: it cannot go with published: false.")
        if not 1970 <= data["publish_at"].year <= 9998:  # (as PUBLISH_YEARS declares)
            abort(422, "publish_at must be a time between the years 1970 and 9998.")
        return True
    published: bool | None = data.get("published")
    return published


def api_user() -> User:
    """The token's user, in a view behind ``auth_required(token_auth)``."""
    user = token_auth.current_user
    assert isinstance(user, User), "auth_required() lets only a verified token in"
    return user


def _tags(raw: list[str] | None) -> list[str] | None:
    try:
        return None if raw is None else parse_tags(raw)
    except ValueError as e:
        abort(422, str(e))


def own(note_id: int) -> Note:
    user = api_user()
    note = visible(db.session.get(Note, note_id), user)
    if note.author_id != user.id:
        abort(403, "This note is not yours.")
    return note


def if_match(note: Note) -> int | None:
    """The version ``If-Match`` names: the note's own if it matches (or is ``*``), else 412.
    ``None`` without the header."""
    if "If-Match" not in request.headers:
        return None
    wanted = request.if_match
    if wanted.star_tag or wanted.contains(note.etag.strip('"')):
        return note.version
    abort(412, f"The note has changed since (it is at {note.etag} now): nothing was changed. "
          "Read it again and retry.")


def _saved(write: Any) -> None:
    try:
        save_note(write)
    except revisions.Conflict:
        abort(409, "Another change to this note was saved at the same instant: nothing was "
              "changed. Read it again and retry.")


@bp.patch("/notes/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth)
@bp.input(IfMatch, location="headers", arg_name="headers")
@bp.input(NotePatch, arg_name="data")
@bp.output(NoteOut, headers=ETagHeader)
@bp.doc(summary="Change a note", responses={403: "Not your note.", 404: "No such note.",
                                            **PRECONDITION})
def update(note_id: int, headers: dict[str, Any], data: dict[str, Any]) -> Tagged:
    note = own(note_id)
    base = if_match(note)
    tags = _tags(data.get("tags"))
    published = _published(data)
    try:
        language = canonical(data["language"]) if data.get("language") else None
        _saved(lambda: update_note(note, title=data.get("title"), body=data.get("body"),
                                   published=published, tags=tags, base=base,
                                   by=api_user(), via="api", format=data.get("format"),
                                   publish_at=data.get("publish_at"), language=language))
    except Unfit as e:
        db.session.rollback()
        abort(422, str(e))
    return tagged(note)


@bp.delete("/notes/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth)
@bp.input(IfMatch, location="headers", arg_name="headers")
@bp.output({}, status_code=204)
@bp.doc(summary="Move a note to the trash", description="It can be restored from "
        "/api/trash until it is purged (NOTES_TRASH_DAYS after).",
        responses={403: "Not your note.", 404: "No such note.", 412: PRECONDITION[412]})
def delete(note_id: int, headers: dict[str, Any]) -> tuple[str, int]:
    note = own(note_id)
    if_match(note)
    trash.move(note)
    db.session.commit()
    return "", 204


def _revision(note: Note, rev: int) -> NoteRevision:
    found = revisions.get(note, rev)
    if found is None:
        abort(404, "No such revision of this note.")
    return found


@bp.get("/notes/<int(max=2147483647):note_id>/revisions")
@bp.auth_required(token_auth)
@bp.output(RevisionList)
@bp.doc(summary="A note's revisions", description="Newest first; at most "
        "NOTES_REVISIONS_KEEP per note are kept.", responses=[403, 404])
def list_revisions(note_id: int) -> dict[str, Any]:
    note = own(note_id)
    return {"items": [revisions.describe(r) for r in db.session.scalars(
        revisions.history(note))]}


@bp.get("/notes/<int(max=2147483647):note_id>/revisions/<int(max=2147483647):rev>")
@bp.auth_required(token_auth)
@bp.output(RevisionOut)
@bp.doc(summary="One revision of a note", responses=[403, 404])
def get_revision(note_id: int, rev: int) -> dict[str, Any]:
    found = _revision(own(note_id), rev)
    return {**revisions.describe(found), "body": found.body, "tag_names": found.tag_names,
            "published": found.published, "format": found.format}


@bp.post("/notes/<int(max=2147483647):note_id>/revisions/<int(max=2147483647):rev>/restore")
@bp.auth_required(token_auth)
@bp.output(NoteOut, headers=ETagHeader)
@bp.doc(summary="Restore a revision", description="Its title, text and tags become the "
        "note's again, as a new revision; the published state stays as it is.",
        responses={403: "Not your note.", 404: "No such note or revision.",
                   409: PRECONDITION[409]})
def restore_revision(note_id: int, rev: int) -> Tagged:
    note = own(note_id)
    found = _revision(note, rev)
    _saved(lambda: (revisions.restore(note, found, api_user()), note)[1])
    return tagged(note)


@bp.get("/trash")
@bp.auth_required(token_auth)
@bp.output(TrashList)
@bp.doc(summary="Your notes in the trash", description="The most recently deleted first; "
        "each is purged NOTES_TRASH_DAYS after it was deleted.")
def list_trash() -> dict[str, Any]:
    return {"items": [out(n) for n in db.session.scalars(trash.of(api_user()).limit(1000))]}


def _trashed(note_id: int) -> Note:
    found = trash.get(api_user(), note_id)
    if found is None:
        abort(404, "No such note in your trash.")
    return found


@bp.post("/trash/<int(max=2147483647):note_id>/restore")
@bp.auth_required(token_auth)
@bp.output(NoteOut, headers=ETagHeader)
@bp.doc(summary="Restore a note from the trash", description="The same id, address, tags "
        "and revisions.", responses=[404])
def restore_trashed(note_id: int) -> Tagged:
    note = _trashed(note_id)
    trash.restore(note)
    db.session.commit()
    return tagged(note)


@bp.delete("/trash/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Purge a note from the trash now", description="For good: with its "
        "revisions, and the images nothing else shows.", responses=[404])
def purge_trashed(note_id: int) -> tuple[str, int]:
    trash.purge(_trashed(note_id))
    db.session.commit()
    return "", 204


tokens_cli = click.Group("tokens", help="Manage personal API tokens.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A name to recognise it by.")
def create_token_command(email: str, name: str) -> None:
    """Create an API token for EMAIL and print it (only this once)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with the email {email}")
    click.echo(issue_token(user, name))


OPTIONAL_AUTH = (("/api/notes", "get"), ("/api/notes/{note_id}", "get"))


def _complete_spec(spec: dict[str, Any] | str) -> dict[str, Any] | str:
    """Say what the decorators cannot: reads work without a token (an empty security
    requirement), every request body is required, and ``publish_at`` never goes with
    ``published: false``."""
    if isinstance(spec, str):  # only asked for the JSON or YAML text
        return spec
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    for name in ("NoteIn", "NotePatch"):  # publish_at publishes: never with published false
        schema = spec.get("components", {}).get("schemas", {}).get(name)
        if schema is not None:
            schema["not"] = {"required": ["publish_at", "published"],
                             "properties": {"published": {"enum": [False]}}}
    for path, method in OPTIONAL_AUTH:
        operation = spec.get("paths", {}).get(path, {}).get(method)
        if operation and operation.get("security") and {} not in operation["security"]:
            operation["security"] = [{}, *operation["security"]]
    return spec


def init_app(app: APIFlask) -> None:
    app.spec_processor(_complete_spec)
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.cli.add_command(tokens_cli)
