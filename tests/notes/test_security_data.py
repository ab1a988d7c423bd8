"""Issue 12, items 7-11: the notes site's data handling attacked through the Flask client.

Excel export formula injection, import limits, the admin, uploads (polyglots, EXIF, bombs) and a
SQLite file that goes away while the site serves.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from notes.extensions import db
from notes.models import Note

from .conftest import PASSWORD, csrf, make_app
from .test_site import write


# -- 11. the SQLite file ---------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_missing_sqlite_file_is_an_error_not_a_new_database(db_url, tmp_path, login) -> None:
    from notes.auth import create_user

    app = make_app(db_url, tmp_path / "data")
    path = Path(db_url.removeprefix("sqlite:///"))
    with app.app_context():
        create_user("alice@example.com", PASSWORD)
    client = app.test_client()
    login(client, "alice@example.com")
    write(client, "Kept")
    assert client.get("/n/kept").status_code == 200
    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        token = issue_token(db.session.get(User, 1), "t")
    anonymous = app.test_client()  # (a signed-in page needs the database for its header)
    moved = path.with_name("moved.db")
    path.rename(moved)
    try:
        assert anonymous.get("/").status_code == 503
        assert anonymous.get("/n/kept").status_code == 503
        r = anonymous.post("/api/notes", json={"title": "Lost"},
                           headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503
        assert not path.exists(), "an empty database was created in place of the missing one"
    finally:
        moved.rename(path)
    assert anonymous.get("/n/kept").status_code == 200  # back without a restart
    fresh = tmp_path / "fresh" / "notes.db"
    env = {**os.environ, "NOTES_DATABASE_URL": f"sqlite:///{fresh}",
           "NOTES_DATA_DIR": str(tmp_path / "fresh")}
    r = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "users", "list"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0 and not fresh.exists()  # only `db upgrade` creates it
    r = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert fresh.exists()


# -- 9. the admin ----------------------------------------------------------------------------

LEAKS = ("SQL", "Traceback", "sqlalchemy", "sqlite3", "psycopg", "pymysql", "IntegrityError",
         "INSERT INTO", "UPDATE users", "File \"")


def no_leak(page: str) -> None:
    found = [word for word in LEAKS if word in page]
    assert not found, f"the page shows {found}"


def admin_post(client, path: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    r = client.post(path, data={"csrf_token": csrf(client, path), **data}, follow_redirects=True)
    no_leak(r.get_data(as_text=True))
    return r


def test_admin_edits_and_deactivates_a_user(app, client, user, other, admin, login) -> None:
    from notes.models import User

    login(client, admin[0].email)
    r = admin_post(client, f"/admin/user/edit/?id={user[0].id}",
                   {"email": " Alice.New@Example.com ", "active": "y"})
    assert "Record was successfully saved" in r.get_data(as_text=True)
    r = admin_post(client, f"/admin/user/edit/?id={user[0].id}", {"email": "alice.new@example.com"})
    assert "Record was successfully saved" in r.get_data(as_text=True)  # deactivated
    with app.app_context():
        alice = db.session.get(User, user[0].id)
        assert (alice.email, alice.active) == ("alice.new@example.com", False)
    assert login(app.test_client(), "alice.new@example.com").status_code != 302  # cannot log in
    taken = admin_post(client, f"/admin/user/edit/?id={user[0].id}", {"email": other[0].email})
    assert "Already exists." in taken.get_data(as_text=True)  # the real duplicate is refused
    bad = admin_post(client, f"/admin/user/edit/?id={user[0].id}", {"email": "not an email"})
    assert "Invalid email address." in bad.get_data(as_text=True)
    me = admin_post(client, f"/admin/user/edit/?id={admin[0].id}",
                    {"email": admin[0].email, "active": "y"})  # admin box unticked
    assert "cannot take away your own admin rights" in me.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, admin[0].id).is_admin
        assert db.session.get(User, user[0].id).email == "alice.new@example.com"


def test_admin_creates_a_note(app, client, user, admin, login) -> None:
    login(client, admin[0].email)
    for title in ("From the admin", "From the admin"):  # the second gets its own address
        r = admin_post(client, "/admin/note/new/", {
            "author": str(user[0].id), "title": title, "published": "y",
            "body": "<p>hello</p><img src=x onerror=alert(1)>"})
        assert "Record was successfully created" in r.get_data(as_text=True)
    with app.app_context():
        notes = db.session.query(Note).order_by(Note.id).all()
        assert [n.slug for n in notes] == ["from-the-admin", "from-the-admin-2"]
        assert notes[0].published_at is not None and "onerror" not in notes[0].body
    assert "hello" in app.test_client().get("/n/from-the-admin-2").get_data(as_text=True)


def test_a_database_refusal_in_the_admin_is_told_in_words(app, client, user, other, admin,
                                                          login) -> None:
    """Two admins at once: the email is free when the form is checked, taken when it is saved."""
    from sqlalchemy import event, text

    login(client, admin[0].email)
    with app.app_context():
        engine = db.engine
        done: list[bool] = []

        def race(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("UPDATE USERS") and not done:
                done.append(True)
                with engine.begin() as other_admin:
                    other_admin.execute(text(
                        "UPDATE users SET email = 'raced@example.com' WHERE id = :id"),
                        {"id": other[0].id})

        event.listen(engine, "before_cursor_execute", race)
        try:
            r = admin_post(client, f"/admin/user/edit/?id={user[0].id}",
                           {"email": "raced@example.com", "active": "y"})
        finally:
            event.remove(engine, "before_cursor_execute", race)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Not saved: another record already uses this value" in page


def test_bad_admin_addresses_are_4xx_without_sql(client, admin, login) -> None:
    login(client, admin[0].email)
    for path in ("/admin/note/?page=99999999999999999999", "/admin/note/?page=-5",
                 "/admin/note/edit/?id=abc", "/admin/note/edit/?id=99999999999999999999",
                 "/admin/user/details/?id=1e9",
                 "/admin/note/?sort=999&flt0_0=notabool&search=%27%22%25"):
        r = client.get(path)
        assert r.status_code < 500, path
        no_leak(r.get_data(as_text=True))
    action = client.post("/admin/note/action/", data={
        "csrf_token": csrf(client, "/admin/note/"), "action": "delete",
        "rowid": ["abc", "99999999999999999999"]})
    assert action.status_code == 400
