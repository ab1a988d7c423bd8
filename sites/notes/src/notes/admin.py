"""The admin: Flask-Admin 2 (Bootstrap 4, its own local assets), for admins only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, abort, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_ckeditor import CKEditorField
from flask_login import current_user
from flask_wtf import FlaskForm

from .extensions import db
from .models import Note, User, utcnow
from .services import clean_html, unique_slug


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
            "notes": db.session.query(Note).count(),
            "published": db.session.query(Note).filter(Note.published.is_(True)).count(),
        }
        return self.render("admin/home.html", counts=counts)


class SecureModelView(AdminOnly, ModelView):
    # With app-wide CSRFProtect, Flask-Admin's SecureForm would get the wrong token and edits
    # would silently not save: use Flask-WTF's form, whose token CSRFProtect checks.
    form_base_class = FlaskForm
    page_size = 25


class UserView(SecureModelView):
    column_list = ("id", "email", "is_admin", "active", "created_at")
    column_searchable_list = ("email",)
    column_filters = ("is_admin", "active")
    form_columns = ("email", "is_admin", "active")
    can_create = False  # accounts are made by registering or `flask --app notes users create`


class NoteView(SecureModelView):
    column_list = ("id", "title", "author", "published", "updated_at")
    column_searchable_list = ("title", "body_text")
    column_filters = ("published",)
    column_default_sort = ("updated_at", True)
    form_columns = ("author", "title", "body", "published")
    form_overrides = {"body": CKEditorField}
    create_template = "admin/note_create.html"
    edit_template = "admin/note_edit.html"

    def on_model_change(self, form: Any, model: Note, is_created: bool) -> None:
        model.title = (model.title or "").strip()
        model.body = clean_html(model.body or "")
        model.slug = unique_slug(model.title, exclude_id=None if is_created else model.id)
        if model.published and model.published_at is None:
            model.published_at = utcnow()
        if not model.published:
            model.published_at = None


def init_app(app: Flask, views: Iterable[BaseView] = ()) -> None:
    """The admin, with the model views and ``views`` from other modules (e.g. Excel)."""
    admin = Admin(
        app, name="notes admin", theme=Bootstrap4Theme(swatch="default"),
        index_view=HomeView(url="/admin"),
    )
    admin.add_view(UserView(User, db, name="Users"))
    admin.add_view(NoteView(Note, db, name="Notes"))
    for view in views:
        admin.add_view(view)
