"""Sessions, cache headers and the login's work, at the Flask level, on every database.

What Nginx's cache (the kit) relies on: anonymous public pages say ``public`` with an
``s-maxage``, set no cookie and do not vary by cookie; anything rendered for a session, a cookie
or a token is ``private, no-store``.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from notes import config as site_config
from notes.auth import safe_next
from notes.sessions import FileStore

from .conftest import PASSWORD, csrf, make_app
from .test_api import token_for
from .test_site import write

PUBLIC = ("public, max-age=0, must-revalidate, s-maxage=5, stale-while-revalidate=5, "
          "stale-if-error=300")


def publish(client, login, email: str) -> str:  # type: ignore[no-untyped-def]
    login(client, email)
    r = write(client, "Cached note", "<p>cached words</p>")
    client.post("/logout", data={"csrf_token": csrf(client, "/my")})
    return str(r.location)


def test_anonymous_public_pages_are_cacheable_by_shared_caches(app, user, login) -> None:
    note = publish(app.test_client(), login, user[0].email)
    reader = app.test_client()
    for path in ("/", note, "/?q=cached", "/?page=1"):
        r = reader.get(path)
        assert r.status_code == 200, path
        assert r.headers["Cache-Control"] == PUBLIC, path
        assert "Set-Cookie" not in r.headers, path
        assert "Cookie" not in r.headers.get("Vary", ""), path
        assert 'name="csrf-token"' not in r.get_data(as_text=True)
    assert reader.get_cookie("session") is None


def test_shared_pages_are_compressed_once_by_the_site_for_clients_that_take_gzip(
        app, user, login) -> None:
    note = publish(app.test_client(), login, user[0].email)
    reader = app.test_client()
    for path in ("/", note, "/feed.xml"):
        plain = reader.get(path)
        packed = reader.get(path, headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in plain.headers, path
        assert packed.headers["Content-Encoding"] == "gzip", path
        assert gzip.decompress(packed.get_data()) == plain.get_data(), path
        assert "Accept-Encoding" in packed.headers["Vary"] and "Accept-Encoding" in plain.headers[
            "Vary"], path
        refused = reader.get(path, headers={"Accept-Encoding": "gzip;q=0, identity"})
        assert "Content-Encoding" not in refused.headers, path
    tiny = reader.get("/robots.txt", headers={"Accept-Encoding": "gzip"})  # under 256 bytes
    assert "Content-Encoding" not in tiny.headers and "Accept-Encoding" in tiny.headers["Vary"]
    # what is private is left to Nginx, which compresses it on its way out
    login(reader, user[0].email)
    assert "Content-Encoding" not in reader.get("/", headers={"Accept-Encoding": "gzip"}).headers


def test_anything_for_a_user_or_a_visitor_with_a_session_is_private(app, client, user,
                                                                    login) -> None:
    note = publish(app.test_client(), login, user[0].email)
    r = client.get("/login")  # a form: its CSRF token starts a session
    assert "Set-Cookie" in r.headers and r.headers["Cache-Control"] == "private, no-store"
    assert client.get("/").headers["Cache-Control"] == "private, no-store"  # sends the cookie
    login(client, user[0].email)
    for path in ("/", note, "/?q=cached", "/my", "/account"):
        assert client.get(path).headers["Cache-Control"] == "private, no-store", path
    auth = token_for(app, user[0].email)
    reader = app.test_client()
    assert reader.get("/api/notes", headers=auth).headers["Cache-Control"] == "private, no-store"
    assert reader.get("/", headers=auth).headers["Cache-Control"] == "private, no-store"
    reader.set_cookie("remember_token", "anything")
    assert reader.get("/").headers["Cache-Control"] == "private, no-store"


def test_errors_posts_and_static_files_are_not_made_public(client) -> None:
    # (a 404 on a public page is cacheable like the page it replaces: a shared cache holding
    # a note's page keeps serving that stale copy while its refreshed answer may not be stored;
    # tests/notes/test_cache_nginx.py shows it through the real Nginx cache)
    missing = client.get("/n/no-such-note")
    assert missing.status_code == 404
    assert missing.headers["Cache-Control"] == PUBLIC
    assert "public" not in client.get("/no-such-page").headers.get("Cache-Control", "")
    assert "public" not in client.post("/").headers.get("Cache-Control", "")
    static = client.get("/static/style.css")
    assert static.status_code == 200 and "private" not in static.headers.get("Cache-Control", "")
    assert "public" not in client.get("/healthz").headers.get("Cache-Control", "")


def test_cache_seconds_is_a_setting_from_0_to_10(db_url, tmp_path) -> None:
    app = make_app(db_url, tmp_path / "data", NOTES_CACHE_SECONDS=0)
    assert "Cache-Control" not in app.test_client().get("/").headers
    assert site_config.load({"NOTES_CACHE_SECONDS": "10"})["NOTES_CACHE_SECONDS"] == 10
    for bad in ("11", "-1", "five", "2.5"):
        with pytest.raises(site_config.ConfigError, match=r"NOTES_CACHE_SECONDS.*0 to 10"):
            site_config.load({"NOTES_CACHE_SECONDS": bad})


def test_readers_write_no_session_files(app, user, login) -> None:
    note = publish(app.test_client(), login, user[0].email)
    folder = Path(app.config["NOTES_DATA_DIR"]) / "sessions"
    before = set(os.listdir(folder))
    reader = app.test_client()
    for i in range(300):
        r = reader.get(("/", note, "/?q=words")[i % 3])
        assert "Set-Cookie" not in r.headers
    assert set(os.listdir(folder)) == before


def test_a_flash_starts_a_session_and_an_emptied_one_is_deleted(app, client, user,
                                                                login) -> None:
    folder = Path(app.config["NOTES_DATA_DIR"]) / "sessions"
    r = client.get("/my")  # login_required: redirect with a flash message, which is stored
    assert r.status_code == 302 and client.get_cookie("session") is not None
    sid = client.get_cookie("session").value
    assert (folder / sid).exists()
    client.get(r.location)  # the flash is shown, and the CSRF token of the form stays
    login(client, user[0].email)
    assert not (folder / sid).exists()  # rotated at login
    client.post("/logout", data={"csrf_token": csrf(client, "/my")})
    assert len(list(folder.iterdir())) == 1  # the flash "You are logged out." only
    client.get("/")  # shown: nothing left, so the file and the cookie go
    assert list(folder.iterdir()) == [] and client.get_cookie("session") is None


def test_the_file_store_is_swept_by_age_off_the_request_path(app) -> None:
    folder = Path(app.config["NOTES_DATA_DIR"]) / "sessions"
    store = FileStore(folder, ttl=60)
    old = time.time() - 2 * app.config["NOTES_SESSION_IDLE"]
    for i in range(50):
        path = folder / f"{i:043d}"
        path.write_text("{}")
        os.utime(path, (old, old))
    store.set("f" * 43, {"_user_id": "1:0"})
    assert store.get(f"{0:043d}") is None  # expired: never handed out, even before a sweep
    r = app.test_cli_runner().invoke(args=["sessions", "sweep"])
    assert "removed 50 expired sessions" in r.output
    assert [p.name for p in folder.iterdir()] == ["f" * 43]


def test_a_hostile_session_cookie_is_no_path(app, client) -> None:
    folder = Path(app.config["NOTES_DATA_DIR"]) / "sessions"
    (folder.parent / "x").write_text('{"_user_id": "1:0"}')
    for value in ("../x", "..%2fx", "x" * 4000, "\x00", ""):
        client.set_cookie("session", value)
        r = client.get("/my")
        assert r.status_code == 302


def test_unknown_and_known_emails_cost_one_argon2_verification_each(app, client, user,
                                                                    monkeypatch) -> None:
    """The login does the same work whether the e-mail exists or not (timing is in the
    closing note; tests assert behaviour): one argon2 verification per attempt."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self, hash, password):  # type: ignore[no-untyped-def]
        calls.append(hash)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    for email in (user[0].email, "nobody@example.com"):
        calls.clear()
        r = client.post("/login", data={"email": email, "password": "wrong horse battery",
                                        "csrf_token": csrf(client)})
        assert r.status_code == 200
        assert len(calls) == 1 and calls[0].startswith("$argon2id$"), email


@pytest.mark.parametrize("target, expected", [
    ("/my", "/my"), ("/n/a-note?x=1#y", "/n/a-note?x=1#y"), ("", "/"), (None, "/"),
    ("//evil.example", "/"), ("/\t/evil.example", "/"), ("/\\evil.example", "/"),
    ("\\\\evil.example", "/"), ("\r\n/\n/evil.example", "/"), (" /my ", "/my"),
    ("/m\ty", "/my"), ("https://evil.example", "/"), ("javascript:alert(1)", "/"),
    ("/a\x00b", "/"), ("/a\x7fb", "/"), ("my", "/"),
])
def test_next_is_read_as_a_browser_reads_it(app, target, expected) -> None:
    with app.test_request_context():
        assert safe_next(target) == expected


def test_password_policy_message_names_the_problem(app) -> None:
    from notes.auth import create_user, password_problem

    assert "at least 8 characters" in (password_problem("short") or "")
    assert "too easy to guess" in (password_problem("password") or "")
    assert "too easy to guess" in (password_problem("alice.smith", "alice.smith@x.org") or "")
    assert password_problem(PASSWORD) is None
    assert password_problem("x" * 201) and password_problem(("word " * 40)[:200]) is not None
    with app.app_context(), pytest.raises(ValueError, match="too easy to guess"):
        create_user("weak@example.com", "iloveyou1")
