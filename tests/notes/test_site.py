"""The site through Flask's test client, on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import re

from notes.extensions import db
from notes.models import Note

from .conftest import csrf

XSS = (
    '<p>ok <b>bold</b></p><script>alert(1)</script><img src=x alt="x" onerror="alert(2)">'
    '<a href="javascript:alert(3)">link</a><svg onload="alert(4)"></svg>'
    '<table><tr><td>cell</td></tr></table>'
)


def write(client, title: str, body: str = "<p>text</p>", published: bool = True):  # type: ignore[no-untyped-def]
    data = {"title": title, "body": body, "csrf_token": csrf(client, "/notes/new")}
    if published:
        data["published"] = "y"
    return client.post("/notes/new", data=data)


def test_register_write_publish_search_and_read(client) -> None:
    token = csrf(client, "/register")
    r = client.post("/register", data={"display_name": "Writer", "email": "Writer@Example.com",
                                       "password": "long enough 1",
                                       "confirm": "long enough 1", "csrf_token": token})
    assert r.status_code == 302
    r = write(client, "Hello, World! Ça va?", "<p>First <strong>bold</strong> words</p>")
    assert r.status_code == 302 and r.location.endswith("/n/hello-world-ca-va")
    page = client.get("/n/hello-world-ca-va").get_data(as_text=True)
    assert "<strong>bold</strong>" in page
    assert "Hello, World! Ça va?" in client.get("/").get_data(as_text=True)
    assert "Hello, World!" in client.get("/?q=FIRST").get_data(as_text=True)
    assert "Hello, World!" not in client.get("/?q=absent").get_data(as_text=True)
    write(client, "Hello, World!")
    assert client.get("/n/hello-world").status_code == 200
    write(client, "Hello, World!")
    assert client.get("/n/hello-world-2").status_code == 200  # slugs stay unique


def test_drafts_are_private_and_publishing_toggles(app, client, user, other, login) -> None:
    login(client, user[0].email)
    write(client, "Draft", published=False)
    assert "Draft" not in client.get("/").get_data(as_text=True)
    assert client.get("/n/draft").status_code == 200  # the author sees it
    with app.app_context():
        note_id = db.session.query(Note).one().id
    client.post(f"/notes/{note_id}/publish", data={"csrf_token": csrf(client, "/my")})
    assert "Draft" in client.get("/").get_data(as_text=True)
    other_client = app.test_client()
    assert other_client.get("/n/draft").status_code == 200
    client.post(f"/notes/{note_id}/publish", data={"csrf_token": csrf(client, "/my")})
    assert other_client.get("/n/draft").status_code == 404


def test_stored_xss_is_neutralised(client, user, login) -> None:
    login(client, user[0].email)
    write(client, "Payload", XSS)
    page = client.get("/n/payload").get_data(as_text=True)
    body = page.split('<div class="body" dir="auto">', 1)[1].split("</div>", 1)[0]
    assert "<script" not in body and "onerror" not in body and "onload" not in body
    assert "javascript:" not in body
    assert "<b>bold</b>" in body and "<td>cell</td>" in body


def test_post_without_csrf_token_is_refused(client, user, login) -> None:
    login(client, user[0].email)
    r = client.post("/notes/new", data={"title": "x", "body": "y"})
    assert r.status_code == 400
    assert client.post("/login", data={"email": "a@b.c", "password": "x"}).status_code == 400


def test_nobody_edits_or_deletes_another_users_note(app, client, user, other, login) -> None:
    login(client, user[0].email)
    write(client, "Mine")
    with app.app_context():
        note_id = db.session.query(Note).one().id
    intruder = app.test_client()
    login(intruder, other[0].email)
    token = csrf(intruder, "/my")
    assert intruder.get(f"/notes/{note_id}/edit").status_code == 403
    r = intruder.post(f"/notes/{note_id}/edit", data={"title": "hacked", "csrf_token": token})
    assert r.status_code == 403
    assert intruder.post(f"/notes/{note_id}/delete", data={"csrf_token": token}).status_code == 403
    assert intruder.post("/notes/99999/delete", data={"csrf_token": token}).status_code == 404
    assert "Mine" in client.get("/n/mine").get_data(as_text=True)


def test_search_matches_the_text_not_the_markup(client, user, login) -> None:
    login(client, user[0].email)
    write(client, "Formatted", "<p>Fish &amp; <strong>chips</strong></p><p>every day</p>")
    write(client, "Plain", "<p>nothing here</p>")

    def found(query: str) -> bool:
        return "Formatted" in client.get("/", query_string={"q": query}).get_data(as_text=True)

    assert found("fish & chips") and found("chips every")  # entities decoded, blocks spaced
    assert not found("strong") and not found("amp") and not found("<p>")


def test_search_with_sql_metacharacters_is_harmless(client, user, login) -> None:
    login(client, user[0].email)
    write(client, "100% pure_fun")
    write(client, "Other note")
    for query in ("'; DROP TABLE notes; --", "%", "_", "\\", "' OR '1'='1", '"'):
        r = client.get("/", query_string={"q": query})
        assert r.status_code == 200
        assert "Other note" not in r.get_data(as_text=True), query
    # words are letters and digits: the punctuation of a query is not searched (notes.search)
    assert "<mark>100</mark>% pure_fun" in client.get("/?q=100%").get_data(as_text=True)
    assert "<mark>fun</mark>" in client.get("/?q=_fun").get_data(as_text=True)
    assert "Other note" in client.get("/").get_data(as_text=True)


def test_failed_logins_are_rate_limited(client, user, login) -> None:
    for _ in range(5):
        assert login(client, user[0].email, "wrong password").status_code == 200
    r = login(client, user[0].email)  # even the right password waits now
    assert r.status_code == 429
    assert "Too many failed logins" in r.get_data(as_text=True)


def test_remember_me_logout_and_password_change(app, client, user, login) -> None:
    r = login(client, user[0].email, remember=True)
    assert r.status_code == 302
    assert "remember_token" in r.headers.get("Set-Cookie", "") or any(
        "remember_token" in h for h in r.headers.getlist("Set-Cookie"))
    token = csrf(client, "/account")
    r = client.post("/account", data={"pw-current": "wrong", "pw-password": "new password 1",
                                      "pw-confirm": "new password 1", "pw-csrf_token": token})
    assert "not your current password" in r.get_data(as_text=True)
    r = client.post("/account", data={"pw-current": user[1], "pw-password": "new password 1",
                                      "pw-confirm": "new password 1", "pw-csrf_token": token})
    assert r.status_code == 302
    client.post("/logout", data={"csrf_token": csrf(client, "/account")})
    assert client.get("/my").status_code == 302
    assert login(client, user[0].email, "new password 1").status_code == 302


def test_admin_access_and_edits_save_with_csrf(app, client, user, admin, login) -> None:
    assert client.get("/admin/").status_code == 302
    assert "/login" in client.get("/admin/note/").location
    login(client, user[0].email)
    write(client, "Before")
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/note/").status_code == 403
    with app.app_context():
        note = db.session.query(Note).one()
        note_id, author_id = note.id, note.author_id
    boss = app.test_client()
    login(boss, admin[0].email)
    assert boss.get("/admin/").status_code == 200
    page = boss.get(f"/admin/note/edit/?id={note_id}").get_data(as_text=True)
    assert "ckeditor.js" in page
    token = re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"',
                      page).group(1)
    r = boss.post(f"/admin/note/edit/?id={note_id}", data={
        "csrf_token": token, "author": str(author_id), "title": "After",
        "body": "<p>edited</p><script>x</script>", "published": "y",
    })
    assert r.status_code == 302
    page = client.get("/n/after").get_data(as_text=True)
    assert "edited" in page and "<script>x" not in page
    assert client.get("/n/before").location.endswith("/n/after")  # the old link still works


def test_security_headers_and_cookie_flags(client, user, login) -> None:
    r = client.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"]
    cookie = login(client, user[0].email).headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_friendly_error_pages(client) -> None:
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "nothing at this address" in r.get_data(as_text=True)
    assert client.get("/n/missing", headers={"Accept": "application/json"}).json["status"] == 404


def test_registration_can_be_closed(app, client) -> None:
    app.config["NOTES_REGISTRATION"] = "closed"
    r = client.get("/register")
    assert r.status_code == 403 and "Registration is closed" in r.get_data(as_text=True)
    assert "Register" not in client.get("/login").get_data(as_text=True)


def test_cookies_are_secure_behind_https(app, client, user, login) -> None:
    https = {"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"}
    client.get("/login", headers=https)
    r = client.post("/login", headers=https, data={
        "email": user[0].email, "password": user[1],
        "csrf_token": csrf(client, "/login")})
    assert "Secure" in r.headers.get("Set-Cookie", "")


def test_plain_http_cookies_stay_usable_after_an_https_request(app, client, user, login) -> None:
    client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in login(app.test_client(), user[0].email).headers.get("Set-Cookie", "")


def test_the_sites_log_lines_name_the_request_id(app) -> None:
    """A line logged while answering a request carries the id Nginx gave that request, and
    Flask's handler (what uWSGI's log shows) prints it."""
    import logging

    from flask.logging import default_handler

    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    app.logger.addHandler(keep)
    try:
        with app.test_request_context("/", headers={"X-Request-ID": "f00dfeed"}):
            app.logger.error("something to say")
    finally:
        app.logger.removeHandler(keep)
    assert records[-1].request_id == "f00dfeed"  # type: ignore[attr-defined]
    assert "request_id=f00dfeed in " in default_handler.format(records[-1])
