"""Friendly error pages, the database-down page, and security headers."""

from __future__ import annotations

import contextlib
import errno

from flask import Flask, Response, g, jsonify, make_response, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from .extensions import db, login_manager

MESSAGES = {
    400: _l("The request could not be understood (an expired form? reload the page and retry)."),
    403: _l("You are not allowed to see this page."),
    404: _l("There is nothing at this address."),
    405: _l("This page does not accept that kind of request."),
    413: _l("What you sent is too large."),
    429: _l("Too many attempts: please wait a little."),
    500: _l("Something went wrong on our side. It has been logged."),
    503: _l("The site cannot reach its database right now. Please try again in a moment."),
    507: _l("The site's storage is full: what you sent was not saved. Please try again later."),
}
FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(e: BaseException) -> bool:
    """A full disk, as the OS says it or as the database driver words it."""
    if isinstance(e, OSError):
        return e.errno in FULL
    text = str(getattr(e, "orig", e)).lower()
    return "disk is full" in text or "no space left" in text

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# CKEditor 4's toolbar uses inline event handlers, and Flask-Admin's and Swagger UI's pages
# carry inline scripts: those pages (signed-in authors and admins only) allow inline scripts.
# Public pages, where stored notes are shown, keep the strict policy.
CSP_INLINE = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
INLINE_ENDPOINTS = {"views.new_note", "views.edit_note"}


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["text/html", "application/json"])
        == "application/json"
    )


def signed_in() -> bool:
    """Whether the visitor is signed in, for an error page: as Flask-Login says, or with the
    database down (or failing now), as the session says (it needs no database)."""
    try:
        if not getattr(g, "database_down", False):
            return bool(current_user.is_authenticated)
    except Exception:  # an error page renders whatever failed: the session says the rest
        with contextlib.suppress(Exception):
            db.session.rollback()
    try:
        return bool(session.get("_user_id"))
    except Exception:  # the session store is down too: nothing is known
        return False


def error_response(code: int, message: str | None = None) -> tuple[Response, int]:
    text = str(message or MESSAGES.get(code) or _("Something went wrong."))
    if wants_json():
        response = jsonify(status=code, message=text)
    else:
        response = make_response(render_template("error.html", code=code, message=text,
                                                 signed_in=signed_in()))
    if not request.path.startswith("/api/"):
        # a page's URL answers JSON or HTML by Accept: caches keep the two apart
        response.vary.add("Accept")
    return response, code


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> ResponseReturnValue:
        if request.path.startswith("/api/"):  # APIFlask's error format
            return jsonify(detail={}, message=e.name), e.code or 500
        code = e.code or 500
        description = e.description if code in (403, 429) and e.description and (
            e.description != type(e).description
        ) else None
        return error_response(code, description)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_down(e: Exception) -> ResponseReturnValue:
        app.logger.error("database error: %s", e)
        db.session.rollback()
        # the page cannot know who is signed in (that needs the database): it is made as for
        # an anonymous visitor, instead of loading the user again and failing with a 500
        g._login_user = login_manager.anonymous_user()
        g.database_down = True
        return error_response(507 if disk_full(e) else 503)

    @app.teardown_appcontext
    def end_database_session(exc: BaseException | None) -> None:
        """Before Flask-SQLAlchemy's own: the answer is made, so a connection that died in the
        meantime (its final rollback fails) is logged, not turned into an error response."""
        try:
            db.session.remove()
        except SQLAlchemyError as e:
            app.logger.warning("database connection lost after the answer was made: %s", e)
            db.session.registry.clear()

    @app.errorhandler(OSError)
    def storage_error(e: OSError) -> ResponseReturnValue:
        db.session.rollback()
        if disk_full(e):
            app.logger.error("storage full: %s", e)
            return error_response(507)
        app.logger.exception("OS error: %s", e)
        return error_response(500)

    @app.errorhandler(500)
    def server_error(e: Exception) -> ResponseReturnValue:
        db.session.rollback()
        # raised outside a view (saving the session, after-request): the cause is kept here
        if disk_full(getattr(e, "original_exception", None) or e):
            return error_response(507)
        return error_response(500)

    @app.after_request
    def security_headers(response: Response) -> Response:
        inline = request.endpoint in INLINE_ENDPOINTS or request.path.startswith(
            ("/admin", "/api/docs"))
        response.headers.setdefault("Content-Security-Policy", CSP_INLINE if inline else CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        # no Strict-Transport-Security: that is the TLS terminator's (the kit's hsts setting),
        # one source, so the site never contradicts it
        return response


