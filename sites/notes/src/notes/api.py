"""REST API under /api: notes CRUD, personal API tokens, an OpenAPI spec at /openapi.json."""

from __future__ import annotations

import re
from typing import Any

import click
from apiflask import APIBlueprint, APIFlask, HTTPTokenAuth, Schema, abort
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, Range
from flask import url_for
from sqlalchemy import ColumnElement, and_, select

from . import search
from .extensions import csrf, db
from .models import ApiToken, Note, Tag, User, note_tags, public, utcnow
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


def _tags_field(**kwargs: Any) -> List[str]:
    return List(String(validate=Length(1, TAG_MAX)), validate=Length(0, TAGS_PER_NOTE),
                metadata={"description": "Tag names (stored in lower case)."}, **kwargs)


class NoteIn(Schema):
    title = String(required=True, validate=Length(1, TITLE_MAX))
    body = String(load_default="", validate=Length(0, BODY_MAX))
    published = Boolean(load_default=False)
    tags = _tags_field(load_default=[])


class NotePatch(Schema):
    title = String(validate=Length(1, TITLE_MAX))
    body = String(validate=Length(0, BODY_MAX))
    published = Boolean()
    tags = _tags_field()


class NoteOut(Schema):
    id = Integer()
    title = String()
    slug = String()
    body = String(metadata={"description": "Sanitised HTML."})
    published = Boolean()
    author = String(attribute="author.public_name",
                    metadata={"description": "The author's display name."})
    author_id = Integer()
    tags = List(String(), attribute="tag_names")
    url = String()
    created_at = DateTime()
    updated_at = DateTime()
    published_at = DateTime(allow_none=True)


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
                              "page: see `next`). Not with `q`."})
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
    if note is None or not (note.is_public or (user is not None and note.author_id == user.id)):
        abort(404, "No such note.")
    return note


@bp.get("/notes")
@bp.auth_required(token_auth, optional=True)  # type: ignore[arg-type]
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(NoteList)
@bp.doc(summary="List notes", description="Published notes, plus your own with a token.",
        responses=[404])
def list_notes(query: dict[str, Any]) -> dict[str, Any]:
    """Oldest first (by id), or with ``q`` the most relevant first (see notes.search)."""
    user = token_auth.current_user
    size = query["per_page"]
    where: list[ColumnElement[bool]] = [
        public() if user is None else public() | (Note.author_id == user.id)]
    if query.get("author"):
        where.append(Note.author_id == query["author"])
    if query.get("published") is not None:
        where.append(Note.published == query["published"])
    if query.get("tag"):
        found = db.session.scalar(select(Tag.id).where(Tag.name == query["tag"].strip().lower()))
        where.append(Note.id.in_(select(note_tags.c.note_id).where(note_tags.c.tag_id == found)))
    args = {k: v for k, v in query.items() if k not in ("page", "after")}
    if query.get("q"):
        if "after" in query:
            abort(400, "`after` pages a list without `q`: use `page`.")
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
        stmt = select(Note).options(*SHOWN).where(*where).order_by(Note.id)
        if "after" in query:
            stmt = stmt.where(Note.id > query["after"])
        elif query["page"] > 1:  # an old page number: skipped along the index
            stmt = stmt.offset((query["page"] - 1) * size)
        items = list(db.session.scalars(stmt.limit(size + 1)))
        if not items and query["page"] > 1:
            abort(404, "No such page.")
        more = len(items) > size
        items = items[:size]
        following = {**args, "after": items[-1].id} if items else {}
    return {"items": [out(n) for n in items], "page": None if "after" in query else query["page"],
            "per_page": size, "next": url_for("api.list_notes", **following) if more else None}


@bp.get("/notes/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth, optional=True)  # type: ignore[arg-type]
@bp.output(NoteOut)
@bp.doc(summary="Get a note", responses=[404])
def get_note(note_id: int) -> Note:
    return out(visible(db.session.get(Note, note_id), token_auth.current_user))


@bp.post("/notes")
@bp.auth_required(token_auth)
@bp.input(NoteIn, arg_name="data")
@bp.output(NoteOut, status_code=201)
@bp.doc(summary="Create a note")
def create(data: dict[str, Any]) -> Note:
    tags = _tags(data.get("tags"))
    note = save_note(lambda: create_note(api_user(), data["title"], data["body"],
                                         data["published"], tags))
    return out(note)


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


@bp.patch("/notes/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth)
@bp.input(NotePatch, arg_name="data")
@bp.output(NoteOut)
@bp.doc(summary="Change a note", responses=[403, 404])
def update(note_id: int, data: dict[str, Any]) -> Note:
    note = own(note_id)
    tags = _tags(data.get("tags"))
    save_note(lambda: update_note(note, title=data.get("title"), body=data.get("body"),
                                  published=data.get("published"), tags=tags))
    return out(note)


@bp.delete("/notes/<int(max=2147483647):note_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a note", responses=[403, 404])
def delete(note_id: int) -> tuple[str, int]:
    db.session.delete(own(note_id))
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
    requirement), and every request body is required."""
    if isinstance(spec, str):  # only asked for the JSON or YAML text
        return spec
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
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
