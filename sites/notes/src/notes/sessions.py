"""Server-side sessions that exist only once something is stored in them (the HTTP cache policy
that follows from that is in :mod:`notes.caching`).

- A request that stores nothing gets no cookie and writes nothing: anonymous readers never touch
  the store, so their pages can be cached by a shared cache (``Cache-Control: public``).
- The cookie lasts as long as the browser session; the server forgets a session after
  ``NOTES_SESSION_IDLE`` seconds without a request (Redis TTL, or file age; files are swept by a
  background thread, never on the request path). "Remember me" is Flask-Login's own cookie.
- :func:`rotate` gives a session a new id (at login): an id planted before is worth nothing.
- With the store unreachable, pages that need no session are still served; anything that must
  store or read a session answers a clear 503, logged once per outage, and the next request
  after the store is back works again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import click
from flask import (
    Flask,
    Request,
    Response,
    current_app,
    flash,
    redirect,
    request,
    session,
    url_for,
)
from flask.cli import with_appcontext
from flask.sessions import SessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.datastructures import CallbackDict

from .caching import SAFE_METHODS, cache_policy, public_read
from .errors import error_response, wants_json

log = logging.getLogger(__name__)
SID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
UNAVAILABLE = ("Signing in is unavailable right now (the session store cannot be reached). "
               "Pages that need no sign-in still work; please try again in a moment.")


class Store(Protocol):
    """Where session data lives; every method raises one of ``errors`` when unreachable."""

    errors: tuple[type[BaseException], ...]

    def get(self, sid: str) -> dict[str, Any] | None: ...
    def set(self, sid: str, data: dict[str, Any]) -> None: ...
    def delete(self, sid: str) -> None: ...
    def ping(self) -> bool: ...


class RedisStore:
    """Sessions in Redis (shared by replicas): one key per session, its TTL the idle timeout."""

    def __init__(self, url: str, ttl: int, prefix: str = "notes:session:") -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # fail fast while Redis is down (one retry covers a connection closed by a restart)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2,
                                           retry=Retry(NoBackoff(), 1))
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.ttl, self.prefix = ttl, prefix

    def get(self, sid: str) -> dict[str, Any] | None:
        raw = self.client.get(self.prefix + sid)
        return _decode(raw) if raw else None

    def set(self, sid: str, data: dict[str, Any]) -> None:
        self.client.set(self.prefix + sid, json.dumps(data), ex=self.ttl)

    def delete(self, sid: str) -> None:
        self.client.delete(self.prefix + sid)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except self.errors:
            return False


class FileStore:
    """One file per session (mode 0600, written atomically); it is over when its age (since the
    last write) passes the TTL. A thread per worker sweeps old files, one worker at a time."""

    errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, folder: Path, ttl: int) -> None:
        self.folder, self.ttl = folder, ttl
        self._sweeper: int | None = None  # pid that runs the sweeper (workers are forked)

    def get(self, sid: str) -> dict[str, Any] | None:
        path = self.folder / sid
        try:
            with path.open("rb") as f:
                if os.fstat(f.fileno()).st_mtime + self.ttl < time.time():
                    return None
                return _decode(f.read())
        except FileNotFoundError:
            return None

    def set(self, sid: str, data: dict[str, Any]) -> None:
        self._start_sweeper()
        tmp = self.folder / f".{sid}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(data))
            os.replace(tmp, self.folder / sid)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, sid: str) -> None:
        (self.folder / sid).unlink(missing_ok=True)

    def ping(self) -> bool:
        return os.access(self.folder, os.W_OK)

    def sweep(self) -> int:
        """Delete sessions (and leftovers of interrupted writes) older than the TTL."""
        deadline, removed = time.time() - self.ttl, 0
        with os.scandir(self.folder) as entries:
            for entry in entries:
                try:
                    if entry.is_file() and entry.stat().st_mtime < deadline:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:  # deleted meanwhile (logout, another sweeper)
                    pass
        return removed

    def _start_sweeper(self) -> None:
        if self._sweeper == os.getpid():
            return
        self._sweeper = os.getpid()
        threading.Thread(target=self._sweep_forever, name="session-sweeper", daemon=True).start()

    def _sweep_forever(self) -> None:
        interval = max(1, min(300, self.ttl // 4))
        lock = self.folder.parent / ".sessions-sweep.lock"
        while True:
            time.sleep(interval)
            try:
                with lock.open("a") as f:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # another worker sweeps right now
                    self.sweep()
            except OSError as e:
                log.warning("session sweep failed: %s", e)


def _decode(raw: bytes | str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class Health:
    """Whether the store answered last time, per process: each change is logged once."""

    def __init__(self) -> None:
        self.up = True

    def failed(self, error: BaseException) -> None:
        if self.up:
            self.up = False
            current_app.logger.error("session store unreachable: %s", error)

    def answered(self) -> None:
        if not self.up:
            self.up = True
            current_app.logger.warning("session store reachable again")


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """``flask.session``. ``sid`` is None until something is stored; ``lost`` when the request
    named a session the store does not have (ended, expired, or the store was emptied);
    ``unavailable`` when the store could not be asked."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None,
                 lost: bool = False, unavailable: bool = False) -> None:
        def on_update(session: ServerSession) -> None:
            session.modified = True

        super().__init__(data, on_update)
        self.sid, self.lost, self.unavailable = sid, lost, unavailable
        self.modified = False


class ServerSessions(SessionInterface):
    def __init__(self, store: Store, idle: int) -> None:
        self.store, self.idle = store, idle
        self.health = Health()
        self.refresh = max(1, min(60, idle // 10))  # rewrite at most this often to stay alive

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid:
            return ServerSession()
        if not SID.fullmatch(sid):
            return ServerSession(lost=True)
        try:
            data = self.store.get(sid)
        except self.store.errors as e:
            self.health.failed(e)
            return ServerSession(unavailable=True)
        self.health.answered()
        if data is None:
            return ServerSession(lost=True)
        session = ServerSession(data, sid)
        now = int(time.time())
        if now - int(data.get("_t", 0)) >= self.refresh:
            session["_t"] = now  # a write keeps it alive: the idle timeout counts from here
        return session

    def rotate(self, session: ServerSession) -> None:
        """A new id for this session's data (the old one is deleted from the store)."""
        if session.sid:
            try:
                self.store.delete(session.sid)
            except self.store.errors as e:
                self.health.failed(e)
        session.sid = None
        session.modified = True

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        # bookkeeping alone (the refresh time; Flask-Login's marks without a user) is no reason
        # to keep a session
        noise = {"_t"} if "_user_id" in session else {"_t", "_fresh", "_id"}
        stored = {k: v for k, v in session.items() if k not in noise}
        if not stored:  # nothing worth keeping: no store entry, no cookie
            if session.sid or session.lost:
                self._delete(session.sid)
                response.delete_cookie(name, domain=domain, path=path)
        elif session.modified or not session.sid:
            new = session.sid is None
            session.sid = session.sid or secrets.token_urlsafe(32)
            session.setdefault("_t", int(time.time()))
            try:
                self.store.set(session.sid, dict(session))
            except self.store.errors as e:
                self.health.failed(e)
                if not public_read():  # served as it is, just not remembered
                    refuse(response)
                return cache_policy(response, personal=True)
            self.health.answered()
            if new or request.cookies.get(name) != session.sid:
                response.set_cookie(  # no expiry: the cookie ends with the browser session
                    name, session.sid, domain=domain, path=path,
                    httponly=self.get_cookie_httponly(app), secure=self.get_cookie_secure(app),
                    samesite=self.get_cookie_samesite(app),
                )
        cache_policy(response, personal=bool(stored) or session.unavailable)

    def _delete(self, sid: str | None) -> None:
        if sid:
            try:
                self.store.delete(sid)
            except self.store.errors as e:
                self.health.failed(e)


def refuse(response: Response) -> None:
    """Turn ``response`` into the session-store-down 503 (HTML or JSON), in place: the session
    interface runs after the view, when the response object already exists."""
    page = current_app.make_response(error_response(503, UNAVAILABLE))
    for header in ("Location", "Set-Cookie", "Content-Type", "Content-Length", "Vary"):
        response.headers.pop(header, None)
    response.status_code = 503
    response.headers["Content-Type"] = page.headers["Content-Type"]
    response.headers["Retry-After"] = "5"
    response.set_data(page.get_data())


def rotate() -> None:
    """Give the current session a new id (at login)."""
    interface = current_app.session_interface
    assert isinstance(interface, ServerSessions) and isinstance(session, ServerSession)
    interface.rotate(session)


def store_reachable(app: Flask) -> bool:
    """For health checks: whether the session store answers now."""
    interface = app.session_interface
    return isinstance(interface, ServerSessions) and interface.store.ping()


def init_app(app: Flask) -> None:
    """Install the sessions: Redis when configured (several replicas), else files."""
    idle = app.config["NOTES_SESSION_IDLE"]
    url = app.config["NOTES_SESSION_REDIS_URL"]
    store: Store
    if url:
        store = RedisStore(url, idle)
    else:
        folder = Path(app.config["NOTES_DATA_DIR"]) / "sessions"
        folder.mkdir(parents=True, exist_ok=True)
        store = FileStore(folder, idle)
    app.session_interface = ServerSessions(store, idle)
    app.cli.add_command(sessions_cli)

    @app.before_request
    def store_down() -> ResponseReturnValue | None:
        if (getattr(session, "unavailable", False) and request.method not in SAFE_METHODS
                and not request.path.startswith("/api/")):  # the API uses tokens, not sessions
            response = Response()
            refuse(response)
            return response
        return None

    @app.errorhandler(CSRFError)
    def session_ended(e: CSRFError) -> ResponseReturnValue:
        """A form posted from a session that has ended: sign in again, not a bare 400. What
        was typed into an editor is kept, and shown again once signed in."""
        from flask_login import current_user

        from .views import keep_form

        if same_origin() and not wants_json() and (
                getattr(session, "lost", False) or "csrf_token" not in session):
            editor = keep_form()
            if editor is not None:
                if current_user.is_authenticated:  # "remember me" signed them in again
                    return redirect(editor)
                flash("Your session had ended, so your text is not saved yet: sign in again "
                      "and it will be back in the editor.", "info")
                return redirect(url_for("auth.login", next=editor))
        if getattr(session, "lost", False) and not wants_json():
            flash("Your session has ended: please sign in again.", "info")
            return redirect(url_for("auth.login"))
        return error_response(400)


def same_origin() -> bool:
    """Whether the browser says the request comes from this site's own pages (a form another
    site posts must not put text into someone's editor)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return origin.split("://", 1)[-1].split("/", 1)[0] == request.host


sessions_cli = click.Group("sessions", help="Manage server-side sessions.")


@sessions_cli.command("sweep")
@with_appcontext
def sweep_command() -> None:
    """Delete expired session files now (workers also do it in the background)."""
    store = current_app.session_interface.store  # type: ignore[attr-defined]
    if isinstance(store, FileStore):
        click.echo(f"removed {store.sweep()} expired sessions")
    else:
        click.echo("sessions are in Redis: they expire by themselves")
