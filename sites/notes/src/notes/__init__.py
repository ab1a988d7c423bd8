"""notes: the default site served by flaskstack, a small notes publishing CMS."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from flask import has_request_context, request
from flask.logging import default_handler
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from . import (
    admin,
    api,
    auth,
    backup,
    errors,
    excel,
    health,
    i18n,
    sessions,
    sqlite,
    trash,
    views,
)
from . import config as site_config
from .extensions import csrf, db, login_manager, migrate
from .failsafe import LastResort

HERE = Path(__file__).parent


def create_app(config: dict[str, Any] | None = None) -> APIFlask:
    """Application factory: ``flask --app notes …`` and ``notes:create_app()``."""
    app = APIFlask(
        __name__,
        title="notes API",
        version="1",
        spec_path="/openapi.json",
        docs_path="/api/docs",
        docs_ui="swagger-ui",
    )
    app.config.update(site_config.load())
    if config:
        app.config.update(config)
    data = Path(app.config["NOTES_DATA_DIR"])
    (data / "uploads").mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = site_config.secret_key(app.config)
    app.config.update(
        MAX_CONTENT_LENGTH=max(app.config["NOTES_MAX_IMAGE"], 16 * 1024 * 1024),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_NAME="remember_token",
        REMEMBER_COOKIE_DURATION=timedelta(days=app.config["NOTES_REMEMBER_DAYS"]),
        WTF_CSRF_TIME_LIMIT=None,
    )
    sessions.init_app(app)  # first: its before_request runs before CSRF's
    _log_request_ids(app.logger)
    _static_versions(app)
    app.wsgi_app = LastResort(  # type: ignore[method-assign]
        ProxyFix(SecureCookiesOverHTTPS(app.wsgi_app), x_for=1, x_proto=1, x_host=1),
        app.logger,
    )

    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
            sqlite.watch(db.engine)  # a missing database file is an error
        else:
            event.listen(db.engine, "connect", _dead_peer_timeout)
    migrate.init_app(app, db, directory=str(HERE / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)

    auth.init_app(app)
    views.init_app(app)
    trash.init_app(app)
    errors.init_app(app)
    admin.init_app(app, views=[excel.admin_view()])
    api.init_app(app)
    excel.init_app(app)
    health.init_app(app)
    backup.init_app(app)
    return app


class SecureCookiesOverHTTPS:
    """Mark cookies Secure on responses to HTTPS requests (``wsgi.url_scheme``: from HTTPS
    behind the kit's Nginx with TLS, from X-Forwarded-Proto through ProxyFix behind another
    proxy). Per request: the same process may also serve plain HTTP."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def secure_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            headers = [
                (k, v + "; Secure")
                if k.lower() == "set-cookie" and "; secure" not in v.lower() else (k, v)
                for k, v in headers
            ]
            return start_response(status, headers, *args)

        return self.app(environ, secure_start)


def _static_versions(app: APIFlask) -> None:
    """Every static URL the site emits carries its file's content hash (``?v=…``), so Nginx
    can let browsers keep /static/ for a year (immutable): a changed file is a new URL."""
    folder = Path(app.static_folder or HERE / "static")

    @functools.cache
    def version(filename: str) -> str:
        try:
            return hashlib.sha256((folder / filename).read_bytes()).hexdigest()[:12]
        except OSError:  # not there (yet): no version rather than a broken page
            return "0"

    @app.url_defaults
    def add_version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values:
            values.setdefault("v", version(values["filename"]))

    def static(filename: str) -> str:
        return f"/static/{filename}?v={version(filename)}"

    app.config.update(
        SWAGGER_UI_BUNDLE_JS=static("vendor/swagger-ui/swagger-ui-bundle.js"),
        SWAGGER_UI_CSS=static("vendor/swagger-ui/swagger-ui.css"),
        SWAGGER_UI_STANDALONE_PRESET_JS=static("vendor/swagger-ui/swagger-ui-standalone-preset.js"),
        DOCS_FAVICON=static("favicon.svg"),  # APIFlask's default is on a public website
    )
    app.jinja_env.globals["asset_version"] = version


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    """SQLite (this app's engine only): write-ahead log (readers never block the writer),
    foreign keys on, and waiting for a lock instead of failing at once."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _dead_peer_timeout(dbapi_connection: Any, record: Any) -> None:
    """TCP database connections: data left unacknowledged for 5 s aborts the connection.

    When the network path to the database dies (this replica cut off and reconnected with a new
    address), a pooled connection's pre-ping would otherwise wait for an answer that cannot come,
    holding the worker until the request timeout kills it. A long query is not affected: the
    server acknowledges the query at once, however long it runs.
    """
    sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL
    fileno = getattr(sock if sock is not None else dbapi_connection, "fileno", None)
    if fileno is None or not hasattr(socket, "TCP_USER_TIMEOUT"):  # not Linux
        return
    with socket.socket(fileno=os.dup(fileno())) as tcp:  # options belong to the shared socket
        if tcp.family in (socket.AF_INET, socket.AF_INET6):
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)


class RequestIdFilter(logging.Filter):
    """Every line the site logs during a request names it by the id the kit's Nginx gave it
    (``X-Request-ID``, also in Nginx's access log and on the response)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request.headers.get("X-Request-ID", "-") if has_request_context() else "-"
        record.request_id = rid
        return True


def _log_request_ids(logger: logging.Logger) -> None:
    """On the site's logger (its own lines) and on Flask's handler (the lines its modules'
    loggers pass up to it), which prints the id."""
    for target in (logger, default_handler):
        if not any(isinstance(f, RequestIdFilter) for f in target.filters):
            target.addFilter(RequestIdFilter())
    default_handler.setFormatter(logging.Formatter(
        "[%(asctime)s] %(levelname)s request_id=%(request_id)s in %(module)s: %(message)s"))
