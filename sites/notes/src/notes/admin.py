"""The admin: Flask-Admin 2 (Bootstrap 4, its own local assets), for admins only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Flask, abort, current_app, flash, g, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.model import typefmt
from flask_admin.model.template import EndpointLinkRowAction
from flask_admin.theme import Bootstrap4Theme
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import Email, Length, ValidationError

from . import revisions, trash
from .auth import normalise_name
from .extensions import db
from .i18n import canonical, localtime
from .models import Note, User, live, utcnow
from .services import (
    BODY_MAX,
    clean_html,
    clean_title,
    parse_tags,
    retitle,
    set_tags,
    unique_slug,
)
from .text import Unfit


def is_admin() -> bool:
    return bool(current_user.is_authenticated and current_user.is_admin)


def refuse() -> Any:
    """Anonymous: to the login page; signed in but not an admin: 403."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(403)


class AdminOnly:
    def is_accessible(self) -> bool:
        return is_admin()

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        return refuse()


class HomeView(AdminOnly, AdminIndexView):
    @expose("/")
    def index(self) -> Any:
        counts = {
            "users": db.session.query(User).count(),
            "notes": db.session.query(Note).filter(live()).count(),
            "published": db.session.query(Note).filter(Note.published.is_(True), live()).count(),
            "trash": db.session.query(Note).filter(Note.deleted_at.is_not(None)).count(),
        }
        return self.render("admin/home.html", counts=counts)


class AdminForm(FlaskForm):
    """Flask-WTF's form (with app-wide CSRFProtect, Flask-Admin's SecureForm would get the wrong
    token and edits would silently not save) that also keeps the edited object, as Flask-Admin's
    own form does: its unique validators compare with it (else every edit is "Already exists.")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._obj = kwargs.get("obj")
        super().__init__(*args, **kwargs)


MAX_ID = 2**31 - 1  # the largest id every database's INTEGER holds
MAX_PAGE = 1_000_000


def _row_id(value: Any) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit() and (
        int(value) <= MAX_ID)


def _when(view: Any, value: datetime | None, name: str = "") -> str:
    return localtime(value)


def _language(value: str | None) -> str | None:
    """A note's language as typed in the admin: its canonical tag, or None (the site's)."""
    return canonical(value) if value and value.strip() else None


def _valid_tags(form: Any, field: Any) -> None:
    try:
        parse_tags(field.data)
    except ValueError as e:
        raise ValidationError(str(e)) from None


class SecureModelView(AdminOnly, ModelView):
    form_base_class = AdminForm
    page_size = 25
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _when}
    column_type_formatters_detail = column_type_formatters
    column_labels = {"id": "ID", "is_admin": _l("Admin"), "created_at": _l("Created"),
                     "updated_at": _l("Updated"), "published_at": _l("Published on"),
                     "body": _l("Text"), "body_text": _l("Text"), "email": _l("Email"),
                     "display_name": _l("Display name"), "active": _l("Active"),
                     "title": _l("Title"), "author": _l("Author"), "tags": _l("Tags"),
                     "published": _l("Published"), "language": _l("Language")}
    placeholder = _l("Search")

    def search_placeholder(self) -> str:
        return str(self.placeholder)

    # Bad ids and pages are the visitor's mistake (404/400), not a database error (503/500).
    def get_one(self, id: Any) -> Any:
        return super().get_one(id) if _row_id(id) else None

    def get_list(self, page: int | None, *args: Any, **kwargs: Any) -> Any:
        if page is not None and not 0 <= page <= MAX_PAGE:
            abort(404)
        return super().get_list(page, *args, **kwargs)

    def handle_action(self, return_view: str | None = None) -> Any:
        if not all(_row_id(i) for i in request.form.getlist("rowid")):
            abort(400)
        return super().handle_action(return_view)

    def handle_view_exception(self, exc: Exception) -> bool:
        """Say what happened in words; SQL and tracebacks go to the log, never to the page."""
        if isinstance(exc, ValidationError):
            return bool(super().handle_view_exception(exc))  # our own one-line message
        if isinstance(exc, StaleDataError):
            flash(_("Not saved: someone else saved this note at the same instant. Your text is "
                    "still in the form: save again to replace theirs with it."), "error")
            return True
        if not isinstance(exc, IntegrityError):
            raise exc  # the site's error pages (503 for the database, else 500)
        current_app.logger.warning("admin: %s refused by the database: %s", self.name, exc.orig)
        flash(_("Not saved: another record already uses this value (emails and addresses of "
                "notes must be unique). Change it and save again."), "error")
        return True


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if isinstance(value, str) else value


class UserView(SecureModelView):
    column_list = ("id", "email", "display_name", "is_admin", "active", "created_at")
    column_searchable_list = ("email", "display_name")
    column_filters = ("is_admin", "active")
    form_columns = ("email", "display_name", "is_admin", "active")
    form_args = {"email": {"validators": [Email()], "filters": [_lower]}}
    can_create = False  # accounts are made by registering or `flask --app notes users create`
    placeholder = _l("Search by email")

    def on_model_change(self, form: Any, model: User, is_created: bool) -> None:
        try:
            model.display_name = normalise_name(model.display_name) if (
                model.display_name or "").strip() else ""
        except ValueError as e:
            raise ValidationError(_("Not saved: %(problem)s.", problem=e)) from None
        if model.id == current_user.id and not (model.is_admin and model.active):
            raise ValidationError(_("You cannot take away your own admin rights or deactivate "
                                    "yourself: ask another admin."))

    # deleting an account asks what becomes of its notes (the remove view), never a bare
    # "Are you sure?"
    can_delete = False
    column_extra_row_actions = [EndpointLinkRowAction("fa fa-trash", ".remove_view",
                                                      title=_l("Delete…"))]

    @expose("/remove/", methods=("GET", "POST"))
    def remove_view(self) -> Any:
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            abort(404)
        back = url_for(".index_view")
        if user.id == current_user.id:
            flash(_("You cannot delete your own account here."), "error")
            return redirect(back)
        count = db.session.scalar(select(func.count()).select_from(Note).where(
            Note.author_id == user.id, live())) or 0
        form = RemoveUserForm()
        form.heir.choices = [("", "—")] + [
            (str(u.id), u.email) for u in db.session.scalars(
                select(User).where(User.id != user.id).order_by(User.email).limit(1000))]
        if form.validate_on_submit():
            heir = (db.session.get(User, int(form.heir.data))
                    if form.notes.data == "reassign" and (form.heir.data or "").isdigit()
                    else None)
            if form.notes.data == "reassign" and heir is None:
                form.heir.errors = [_("Choose who takes over the notes.")]
            else:
                to_trash = heir is None
                trash.hand_over(user, heir or current_user._get_current_object(), to_trash)
                email = user.email
                db.session.delete(user)
                db.session.commit()
                if to_trash:
                    flash(_("Deleted %(email)s; their %(count)s note(s) are moved to your trash "
                            "(restorable for %(days)s days).", email=email, count=count,
                            days=current_app.config["NOTES_TRASH_DAYS"]), "success")
                else:
                    assert heir is not None
                    flash(_("Deleted %(email)s; their %(count)s note(s) are now %(heir)s's.",
                            email=email, count=count, heir=heir.email), "success")
                return redirect(back)
        return self.render("admin/user_remove.html", user=user, count=count, form=form,
                           back=back)


class RemoveUserForm(FlaskForm):
    notes = RadioField(_l("Their notes"), choices=[
        ("trash", _l("Move them to the trash (yours, restorable until they are purged)")),
        ("reassign", _l("Give them to another user"))], default="trash")
    heir = SelectField(_l("Give them to"), choices=[], validate_choice=False)


class NoteView(SecureModelView):
    column_list = ("id", "title", "author", "tags", "published", "updated_at")
    column_searchable_list = ("title", "body_text")
    column_filters = ("published",)
    column_default_sort = ("updated_at", True)
    form_columns = ("author", "title", "body", "tag_list", "language", "published",
                    "opened_version")
    form_overrides = {"body": TextAreaField}
    form_args = {"body": {"validators": [Length(max=BODY_MAX)]},
                 "language": {"filters": [_language], "description": _l(
                     "A language tag such as el or zh-Hant; empty: the site's.")}}
    form_extra_fields = {
        "tag_list": StringField(_l("Tags"), description=_l("Separated by commas"),
                                validators=[_valid_tags]),
        # the version the form was opened on (see notes.revisions)
        "opened_version": HiddenField(),
    }
    create_template = "admin/note_create.html"
    edit_template = "admin/note_edit.html"
    placeholder = _l("Search titles and text")

    def get_query(self) -> Any:  # notes in the trash are their authors' business
        return super().get_query().filter(live())

    def get_count_query(self) -> Any:
        return super().get_count_query().filter(live())

    def get_one(self, id: Any) -> Any:
        found = super().get_one(id)
        return None if found is None or found.in_trash else found

    def on_form_prefill(self, form: Any, id: Any) -> None:
        note = db.session.get(Note, int(id))
        if note is not None:
            form.tag_list.data = ", ".join(note.tag_names)
            form.opened_version.data = str(note.version)

    def update_model(self, form: Any, model: Note) -> bool:
        g.note_before = revisions.state(model)  # before the form is copied into it
        return bool(super().update_model(form, model))

    def delete_model(self, model: Note) -> bool:
        """Into the trash (its author can restore it), not deleted."""
        trash.move(model)
        db.session.commit()
        flash(_("“%(title)s” is in its author's trash.", title=model.title), "info")
        return True

    def on_model_change(self, form: Any, model: Note, is_created: bool) -> None:
        if not is_created:
            opened = form.opened_version.data or ""
            if opened.isdigit() and int(opened) != model.version:
                form.opened_version.data = str(model.version)  # saving again overwrites
                raise ValidationError(
                    "Not saved: this note was changed by someone else since you opened it "
                    f"(it is at version {model.version} now). Your text is still in the form: "
                    "save again to replace theirs with it, or reload the page to see theirs "
                    "(the author's History page shows the difference).")
        if model.format == "markdown" and inspect(model).attrs.body.history.has_changes():
            model.format, model.source = "html", None  # its HTML edited here: an HTML note now
        try:
            model.title = clean_title(model.title or "")
            model.body = clean_html(model.body or "")
        except Unfit as e:
            raise ValidationError(f"Not saved: {e}.") from None
        # the new note is in the session already: the slug query must not flush it slug-less
        with db.session.no_autoflush:
            if is_created:
                model.slug = unique_slug(model.title)
            else:  # the slug follows the title; the old one keeps answering (a redirect)
                old: list[str] = list(inspect(model).attrs.title.history.deleted)
                if old and old[0] != model.title:
                    title, model.title = model.title, old[0]
                    retitle(model, title)
            set_tags(model, parse_tags(form.tag_list.data))
        if model.published and model.published_at is None:
            model.published_at = utcnow()
        if not model.published:
            model.published_at = None
        me = current_user._get_current_object()
        revisions.record(model, None if is_created else g.pop("note_before", None), me, "admin")


def init_app(app: Flask, views: Iterable[BaseView] = ()) -> None:
    """The admin, with the model views and ``views`` from other modules (e.g. Excel)."""
    admin = Admin(
        app, name=_l("notes admin"), index_view=HomeView(url="/admin", name=_l("Home")),
        theme=Bootstrap4Theme(swatch="default", base_template="admin/notes_base.html"),
    )
    admin.add_view(UserView(User, db, name=_l("Users")))
    admin.add_view(NoteView(Note, db, name=_l("Notes")))
    for view in views:
        admin.add_view(view)
