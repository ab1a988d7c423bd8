"""Faults local to one replica of the site, injected for real: the sessions store stopped, the
database killed in the middle of a write and restarted under load, the data volume full (a
small tmpfs). Each test checks what clients saw and what was stored afterwards.

The same faults across the scaled-out stack (proxy, replicas, MariaDB, Redis in containers)
are in tests/deploy/test_faults.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notes.api import issue_token
from notes.extensions import db
from notes.models import Note
from tests.notes.conftest import PASSWORD, make_app
from tests.web import PNG

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def record(name: str, **figures: Any) -> None:
    """Measured figures for the README and the closing note."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "faults.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = figures
    path.write_text(json.dumps(data, indent=2) + "\n")


def signed_in(app: Any, email: str = "writer@example.com") -> tuple[Any, str]:
    """A test client signed in as a new user, and an API token of that user."""
    from notes.auth import create_user

    with app.app_context():
        user = create_user(email, PASSWORD)
        token = issue_token(user, "faults")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    r = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client, token


def count_notes(app: Any, title: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).where(Note.title == title)) or 0


# -- 1. an error anywhere is answered, never an empty response ------------------------------

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_error_with_the_sessions_store_down_is_answered_and_health_says_why(
        db_url, tmp_path, redis_server) -> None:
    app = make_app(db_url, tmp_path / "data", NOTES_SESSION_REDIS_URL=redis_server.url)
    app.logger.disabled = False  # Alembic's logging set-up (the migration) turned it off
    said: list[str] = []
    heard = logging.Handler()
    heard.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    app.logger.addHandler(heard)
    client, _ = signed_in(app)
    assert client.get("/my").status_code == 200
    assert app.test_client().get("/healthz").get_json()["status"] == "ok"
    redis_server.stop()
    try:
        for _ in range(5):  # the session cookie makes the error path itself need the store
            r = client.get("/my")
            assert r.status_code >= 500 and r.data, (r.status_code, r.data[:200])
        for _ in range(3):
            health = app.test_client().get("/healthz")
        assert health.status_code == 200  # readers are still served: stay in rotation
        assert health.get_json()["status"] == "degraded"
        assert health.get_json()["checks"]["sessions"] == {
            "ok": False, "store": "redis", "error": "unreachable"}
    finally:
        redis_server.restart()
    for _ in range(3):
        assert app.test_client().get("/healthz").get_json()["status"] == "ok"
    said = [line for line in said if line.startswith("health: ")]
    assert len(said) == 2, said  # once when it went, once when it came back
    assert said[0].startswith("health: sessions unreachable: ") and "6379" not in said[1]
    assert said[1] == "health: sessions is back"


# -- 2. /healthz tells the truth ----------------------------------------------------------------

def test_healthz_reports_each_dependency(app, client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["revision"]  # the schema is there
    assert body["checks"]["sessions"] == {"ok": True, "store": "files"}
    assert body["checks"]["data"] == {"ok": True}
    assert "Set-Cookie" not in r.headers  # probes make no sessions
    assert not [p for p in (Path(app.config["NOTES_DATA_DIR"])).rglob(".healthz-*")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_healthz_is_503_when_the_database_file_is_gone(app, client, tmp_path) -> None:
    path = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    assert client.get("/healthz").status_code == 200
    with app.app_context():
        db.engine.dispose()  # its write-ahead log folded in; opened again as a new worker would
    path.rename(tmp_path / "moved.db")
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.get_json()["status"] == "unavailable"
    assert r.get_json()["checks"]["database"]["ok"] is False
    with app.app_context():
        db.engine.dispose()
    for leftover in path.parent.glob(path.name + "*"):  # whatever opening it left behind
        leftover.unlink()
    (tmp_path / "moved.db").rename(path)
    r = client.get("/healthz")
    assert r.status_code == 200, r.get_json()


# -- 3. the database lost in the middle of a write ------------------------------------------

@contextlib.contextmanager
def writes_blocked(server: Any, url: str) -> Iterator[sa.Connection]:
    """Another client holds a lock that lets reads through and makes writes to notes wait."""
    engine = sa.create_engine(url)
    conn = engine.connect()
    try:
        if server.name == "mariadb":
            conn.exec_driver_sql("LOCK TABLES notes READ")
        else:
            conn.exec_driver_sql("LOCK TABLE notes IN EXCLUSIVE MODE")
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()
        engine.dispose()


def waiting_writes(url: str) -> int:
    """Statements waiting for the lock (from a fresh connection)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if url.startswith("mysql"):
                return conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM information_schema.processlist "
                    "WHERE state LIKE '%%lock%%' AND info LIKE '%%notes%%'").scalar() or 0
            return conn.exec_driver_sql(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).scalar() or 0
    finally:
        engine.dispose()


def kill(server: Any) -> None:
    """The database dies: SIGKILL for MariaDB; PostgreSQL's immediate shutdown (SIGQUIT: no
    checkpoint, crash recovery at the next start), since a SIGKILLed postmaster leaves its
    backends holding the shared memory a new one needs."""
    server.proc.send_signal(signal.SIGKILL if server.name == "mariadb" else signal.SIGQUIT)
    server.proc.wait(30)


@pytest.mark.parametrize("db_url", ["mariadb", "postgresql"], indirect=True)
def test_a_write_in_flight_when_the_database_dies_is_a_503_and_leaves_nothing(
        request, db_url, tmp_path) -> None:
    server = request.getfixturevalue(f"{db_url.split('+')[0].replace('mysql', 'mariadb')}_server")
    # durable commits, as in production: the suite's servers trade them for speed
    durable = sa.create_engine(server.url + ("/postgres" if server.name == "postgresql" else ""),
                               isolation_level="AUTOCOMMIT")
    with durable.connect() as conn:
        if server.name == "mariadb":  # back to the suite's setting at its restart
            conn.exec_driver_sql("SET GLOBAL innodb_flush_log_at_trx_commit = 1")
        else:  # this test's database only
            conn.exec_driver_sql(f"ALTER DATABASE {db_url.rsplit('/', 1)[1]} "
                                 "SET synchronous_commit = on")
    durable.dispose()
    app = make_app(db_url, tmp_path / "data")
    web, token = signed_in(app)
    api = {"Authorization": f"Bearer {token}"}
    old = app.test_client().post("/api/notes", headers=api, json={
        "title": "Before", "body": "<p>old text</p>", "published": True}).get_json()
    answers: dict[str, Any] = {}

    def send(name: str, method: str, path: str, body: dict[str, Any]) -> None:
        answers[name] = app.test_client().open(path, method=method, headers=api, json=body)

    new = {"title": "In flight", "body": "<p>" + "x" * 50_000 + "</p>", "published": True}
    edit = {"title": "Edited", "body": "<p>new text</p>"}
    with writes_blocked(server, db_url):
        senders = [threading.Thread(target=send, args=("create", "POST", "/api/notes", new)),
                   threading.Thread(target=send, args=("edit", "PATCH",
                                                       f"/api/notes/{old['id']}", edit))]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while waiting_writes(db_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting_writes(db_url) == 2, "the writes never reached the database"
        kill(server)
        for sender in senders:
            sender.join(60)
    server.restart()  # returns when it accepts a login
    assert answers["create"].status_code == 503, answers["create"].data[:300]
    assert answers["edit"].status_code == 503, answers["edit"].data[:300]
    assert "database" in answers["create"].get_json()["message"]
    # nothing half-written: no new note, the old one exactly as it was
    assert count_notes(app, "In flight") == 0
    with app.app_context():
        kept = db.session.get(Note, old["id"])
        assert (kept.title, kept.body, kept.slug) == ("Before", "<p>old text</p>", "before")
    # the client retries once the database is back: done, once
    retried = app.test_client().post("/api/notes", headers=api, json=new)
    assert retried.status_code == 201
    assert count_notes(app, "In flight") == 1
    assert web.get("/my").status_code == 200  # the signed-in page works again, no restart


@pytest.mark.parametrize("db_url", ["mariadb", "postgresql"], indirect=True)
def test_a_database_restart_under_load_fails_only_during_the_outage(request, db_url,
                                                                    tmp_path) -> None:
    """4 readers and 2 writers on one app (one replica's pool), the database stopped for 2 s
    and started again: failures are 503s, none after the database is back and one request per
    client has found its connection gone; every note a writer was told about is stored."""
    server = request.getfixturevalue(f"{db_url.split('+')[0].replace('mysql', 'mariadb')}_server")
    app = make_app(db_url, tmp_path / "data")
    _, token = signed_in(app)
    api = {"Authorization": f"Bearer {token}"}
    stop = threading.Event()
    log: list[tuple[float, str, int]] = []  # (time, kind, status)
    created: list[int] = []

    def client(kind: str) -> None:
        web = app.test_client()
        n = 0
        while not stop.is_set():
            n += 1
            if kind == "read":
                status = web.get("/").status_code
            else:
                r = web.post("/api/notes", headers=api, json={"title": f"load {n}"})
                status = r.status_code
                if status == 201:
                    created.append(r.get_json()["id"])
            log.append((time.monotonic(), kind, status))
            time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(k,)) for k in ["read"] * 4 + ["write"] * 2]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        down = time.monotonic()
        server.stop()
        time.sleep(2)
        server.restart()  # returns when it accepts a login
        up = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    failed = [(t, kind, s) for t, kind, s in log if s not in (200, 201)]
    assert {s for _, _, s in failed} <= {503}, failed  # a clear 503, never a 500
    assert failed and all(t >= down for t, _, _ in failed)
    first_ok = min(t for t, _, s in log if t > up and s in (200, 201))
    late = [f for f in failed if f[0] > first_ok]
    assert late == [], late  # recovered, without restarting the app
    with app.app_context():
        stored = set(db.session.scalars(sa.select(Note.id).where(Note.title.like("load %"))))
    assert set(created) <= stored  # every 201 is there
    record(f"database restart under load ({server.name}, test client)",
           requests=len(log), failed=len(failed),
           outage_s=round(up - down, 2), recovered_after_up_s=round(first_ok - up, 2))


# -- 4. the data volume full ----------------------------------------------------------------

@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: a data volume that can really fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mount)],
                   check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(volume: Path) -> Path:
    """Fill ``volume`` to the last byte; the filler file to delete to free it."""
    filler = volume / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (4096, 1):  # whole pages, then the last bytes
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    return filler


def test_a_full_data_volume_refuses_writes_cleanly_and_keeps_serving_reads(small_volume) -> None:
    data = small_volume / "data"
    # as in production: an error outside a view goes to the error handlers, not to the test
    app = make_app(f"sqlite:///{data / 'notes.db'}", data, PROPAGATE_EXCEPTIONS=False)
    web, token = signed_in(app)
    api = {"Authorization": f"Bearer {token}"}
    assert web.post("/api/notes", headers=api, json={
        "title": "Written before", "body": "<p>readable</p>", "published": True}).status_code == 201
    csrf = web.get("/notes/new").get_data(as_text=True).split(
        'name="csrf-token" content="', 1)[1].split('"', 1)[0]
    uploads = data / "uploads"
    sessions = data / "sessions"
    before = {"uploads": set(os.listdir(uploads)), "sessions": len(os.listdir(sessions))}
    filler = fill(small_volume)

    # an upload: a clear 507, no file, not even a partial temporary one
    r = web.post("/upload", data={"upload": (__import__("io").BytesIO(PNG * 200), "a.png")},
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 507, r.data[:300]
    assert "storage is full" in r.get_json()["error"]["message"]
    assert set(os.listdir(uploads)) == before["uploads"]
    # a note too large for what is left: 507, and not stored
    big = {"title": "Too big", "body": "<p>" + "y" * 400_000 + "</p>", "published": True}
    r = web.post("/api/notes", headers=api, json=big)
    assert r.status_code == 507, r.data[:300]
    assert "storage is full" in r.get_json()["message"]
    # a new visitor's session cannot be stored: a clear 507 page for the sign-in form, not a
    # sign-in that is gone on the next page, and no partial session file
    other = app.test_client()
    r = other.get("/login")
    assert r.status_code in (503, 507), (r.status_code, r.data[:300])
    assert not [n for n in os.listdir(sessions) if n.startswith(".") or n.endswith(".__wz_cache")]
    # reads keep working, and health says what is wrong without taking the replica out
    reader = app.test_client().get("/")  # readers need no session: nothing to store
    assert reader.status_code == 200 and "Written before" in reader.get_data(as_text=True)
    home = web.get("/")  # signed in: the session exists, its refresh is skipped
    assert home.status_code == 200 and "Written before" in home.get_data(as_text=True)
    assert web.get("/n/written-before").status_code == 200
    assert web.get("/my").status_code == 200
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded"
    assert health.get_json()["checks"]["data"] == {"ok": False, "error": "full"}

    filler.unlink()  # space freed: everything works again, no restart
    assert app.test_client().get("/healthz").get_json()["status"] == "ok"
    r = web.post("/upload", data={"upload": (__import__("io").BytesIO(PNG), "a.png")},
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 200 and r.get_json()["uploaded"] == 1
    assert (uploads / r.get_json()["fileName"]).read_bytes().startswith(b"\x89PNG")
    assert web.post("/api/notes", headers=api, json=big).status_code == 201
    assert count_notes(app, "Too big") == 1
    assert other.get("/login").status_code == 200
