"""Public pages (list, search, note) and the signed-in author's pages (write, edit, upload)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
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
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_ckeditor import CKEditorField
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length

from . import images
from .extensions import db
from .models import Note
from .services import BODY_MAX, TITLE_MAX, create_note, save_note, search, update_note

bp = Blueprint("views", __name__)

class NoteForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=TITLE_MAX)])
    body = CKEditorField("Text", validators=[Length(max=BODY_MAX)])
    published = BooleanField("Published")


@bp.route("/")
def index() -> str:
    q = request.args.get("q", "").strip()[:200]
    stmt = select(Note).where(Note.published.is_(True))
    if q:
        stmt = stmt.where(search(q))
    stmt = stmt.order_by(Note.published_at.desc(), Note.id.desc())
    page = db.paginate(stmt, per_page=current_app.config["NOTES_PER_PAGE"], error_out=False)
    return render_template("index.html", page=page, q=q)


@bp.route("/n/<slug>")
def note(slug: str) -> str:
    found = db.session.scalar(select(Note).where(Note.slug == slug))
    mine = (current_user.is_authenticated and found is not None
            and found.author_id == current_user.id)
    if found is None or not (found.published or mine):
        abort(404)
    return render_template("note.html", note=found)


@bp.route("/my")
@login_required
def my_notes() -> str:
    stmt = select(Note).where(Note.author_id == current_user.id).order_by(Note.updated_at.desc())
    page = db.paginate(stmt, per_page=current_app.config["NOTES_PER_PAGE"], error_out=False)
    return render_template("my_notes.html", page=page)


def own_note(note_id: int) -> Note:
    found = db.session.get(Note, note_id)
    if found is None:
        abort(404)
    if found.author_id != current_user.id:
        abort(403)
    return found


@bp.route("/notes/new", methods=["GET", "POST"])
@login_required
def new_note() -> ResponseReturnValue:
    form = NoteForm()
    if form.validate_on_submit():
        created = save_note(lambda: create_note(current_user, form.title.data or "",
                                                form.body.data or "", bool(form.published.data)))
        flash("Note saved.", "info")
        return redirect(url_for("views.note", slug=created.slug))
    return render_template("edit.html", form=form, note=None)


@bp.route("/notes/<int(max=2147483647):note_id>/edit", methods=["GET", "POST"])
@login_required
def edit_note(note_id: int) -> ResponseReturnValue:
    found = own_note(note_id)
    form = NoteForm(obj=found)
    if form.validate_on_submit():
        save_note(lambda: update_note(found, title=form.title.data, body=form.body.data or "",
                                      published=bool(form.published.data)))
        flash("Note saved.", "info")
        return redirect(url_for("views.note", slug=found.slug))
    return render_template("edit.html", form=form, note=found)


@bp.route("/notes/<int(max=2147483647):note_id>/publish", methods=["POST"])
@login_required
def publish_note(note_id: int) -> ResponseReturnValue:
    found = own_note(note_id)
    update_note(found, published=not found.published)
    db.session.commit()
    flash("Note published." if found.published else "Note unpublished.", "info")
    return redirect(url_for("views.my_notes"))


@bp.route("/notes/<int(max=2147483647):note_id>/delete", methods=["POST"])
@login_required
def delete_note(note_id: int) -> ResponseReturnValue:
    db.session.delete(own_note(note_id))
    db.session.commit()
    flash("Note deleted.", "info")
    return redirect(url_for("views.my_notes"))


def _upload_error(message: str, status: int = 400) -> ResponseReturnValue:
    return jsonify(uploaded=0, error={"message": message}), status


@bp.route("/upload", methods=["POST"])
@login_required
def upload() -> ResponseReturnValue:
    """CKEditor image upload: decoded and written anew (:mod:`notes.images`), under a random
    name."""
    file = request.files.get("upload")
    if file is None:
        return _upload_error("No file was sent.")
    limit = current_app.config["NOTES_MAX_IMAGE"]
    data = file.read(limit + 1)
    if len(data) > limit:
        return _upload_error(f"The image is too large: at most {limit / 1024 / 1024:g} MB.", 413)
    try:
        data, ext = images.reencode(data, current_app.config["NOTES_MAX_IMAGE_PIXELS"])
    except images.Refused as e:
        return _upload_error(str(e), e.status)
    name = f"{secrets.token_urlsafe(16)}.{ext}"
    folder = Path(current_app.config["NOTES_DATA_DIR"]) / "uploads"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(folder / name)
    return jsonify(uploaded=1, fileName=name, url=url_for("views.media", name=name))


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


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    """For probes: 200 when the database answers, else the 503 of the database error handler.

    Replicas' host names are in the X-Replica header (set by the kit), not here.
    """
    db.session.execute(select(1))
    return jsonify(status="ok")


def localtime(value: datetime | None) -> str:
    if value is None:
        return ""
    zone = ZoneInfo(current_app.config["NOTES_TIMEZONE"])
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_filter(localtime)
    app.cli.add_command(images.uploads_cli)
