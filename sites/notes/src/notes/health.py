"""``/healthz``: what this replica can do right now, dependency by dependency.

Answers 503 only when the site cannot serve its core pages (the database is unreachable or its
schema is not there); a sessions store or data volume in trouble is reported (``degraded``) but
answers 200, since readers are still served — taking every replica out of rotation for it would
turn a partial outage into a full one. Each check is bounded in time, so the answer (whatever
it says) comes within the probes' timeout: liveness probes only need *an* answer.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

bp = Blueprint("health", __name__)
Check = dict[str, Any]


def database() -> Check:
    """Reachable, and the schema is there: Alembic's version row (a database file replaced by an
    empty one answers ``SELECT 1`` but has no schema)."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        db.session.rollback()
        return {"ok": False, "error": "unreachable", "why": str(e).splitlines()[0]}
    try:
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        db.session.rollback()
        revision = None
    if not revision:
        return {"ok": False, "error": "schema missing (run: flask --app notes db upgrade)"}
    return {"ok": True, "revision": revision}


def writable(folder: Path) -> Check:
    """Can a small file be written, flushed to disk and removed in ``folder``."""
    probe = folder / f".healthz-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return {"ok": False, "error": "full" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else "not writable", "why": f"{folder}: {e.strerror}"}
    finally:
        probe.unlink(missing_ok=True)
    return {"ok": True}


def within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run ``call`` in a thread: the error it raised, a ``TimeoutError`` if it has not finished
    after ``seconds`` (resolving a name ignores socket timeouts: a stopped container's name can
    take several seconds to fail), or None."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except Exception as e:  # whatever it raises is the answer
            outcome.append(e)

    worker = threading.Thread(target=run, name="healthz", daemon=True)
    worker.start()
    worker.join(seconds)
    return outcome[0] if outcome else TimeoutError(f"no answer within {seconds} s")


def _redis() -> Any:
    """A client of the sessions' Redis for probes only: one second per try and no retry, so a
    Redis that hangs costs a probe a second (the site's own client retries once)."""
    client = current_app.extensions.get("notes_health_redis")
    if client is None:
        import redis

        client = redis.Redis.from_url(current_app.config["NOTES_SESSION_REDIS_URL"],
                                      socket_connect_timeout=1, socket_timeout=1)
        current_app.extensions["notes_health_redis"] = client
    return client


def sessions() -> Check:
    """The sessions store: Redis answers a PING (with the client's short timeouts), or the
    session folder takes a file."""
    if current_app.config.get("NOTES_SESSION_REDIS_URL"):
        error = within(1.5, _redis().ping)
        if error is not None:
            return {"ok": False, "store": "redis", "error": "unreachable", "why": repr(error)}
        return {"ok": True, "store": "redis"}
    folder = Path(current_app.config["NOTES_DATA_DIR"]) / "sessions"
    folder.mkdir(exist_ok=True)  # made by the first session otherwise
    return {"store": "files", **writable(folder)}


_last: dict[str, bool] = {}  # per worker: each check's last state


def log_transition(name: str, check: Check) -> None:
    """Log a check going bad or good again, once per change (probes ask every few seconds).
    The cause goes to the log only, not into the public answer."""
    why = check.pop("why", "")
    if _last.get(name, True) != check["ok"]:
        if check["ok"]:
            current_app.logger.warning("health: %s is back", name)
        else:
            current_app.logger.error("health: %s %s: %s", name, check["error"], why)
    _last[name] = check["ok"]


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    """``{"status": "ok"|"degraded"|"unavailable", "checks": {...}}``; 503 when unavailable.

    Replicas' host names are in the X-Replica header (set by the kit), not here.
    """
    checks = {
        "database": database(),
        "sessions": sessions(),
        "data": writable(Path(current_app.config["NOTES_DATA_DIR"])),
    }
    for name, check in checks.items():
        log_transition(name, check)
    if not checks["database"]["ok"]:
        status, code = "unavailable", 503
    elif all(check["ok"] for check in checks.values()):
        status, code = "ok", 200
    else:
        status, code = "degraded", 200
    response = jsonify(status=status, checks=checks)
    response.headers["Cache-Control"] = "no-store"
    return response, code


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
