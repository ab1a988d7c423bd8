"""Excel export/import, uploads, the secret key, the CLI, migrations and failure behaviour."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from notes import config as site_config
from notes.extensions import db
from notes.models import Note
from tests.web import PNG

from .conftest import PASSWORD, csrf, import_sheet, make_app, xlsx
from .test_site import write


def test_export_then_import_round_trip(app, client, user, admin, login) -> None:
    login(client, user[0].email)
    write(client, "One", "<p>first</p>")
    write(client, "Two", "<p>second</p>", published=False)
    boss = app.test_client()
    login(boss, admin[0].email)
    r = boss.get("/admin/excel/export")
    assert r.status_code == 200
    rows = list(load_workbook(io.BytesIO(r.data)).active.iter_rows(values_only=True))
    assert rows[0][:5] == ("id", "title", "author", "published", "body")
    assert {row[1] for row in rows[1:]} == {"One", "Two"}
    only = boss.get("/admin/excel/export?published=no")
    assert [r[1] for r in load_workbook(io.BytesIO(only.data)).active.iter_rows(
        values_only=True)][1:] == ["Two"]
    data = xlsx([["title", "author", "body", "published"],
                 ["Imported", user[0].email, "<p>x</p><script>y</script>", "yes"]])
    token = csrf(boss, "/admin/excel/")
    r = boss.post("/admin/excel/import", data={"csrf_token": token,
                  "file": (io.BytesIO(data), "notes.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 302
    with app.app_context():
        note = db.session.query(Note).filter_by(title="Imported").one()
        assert note.published and "<script" not in note.body


def test_one_bad_row_writes_nothing_and_is_reported(app, client, user, admin, login) -> None:
    login(client, admin[0].email)
    r = import_sheet(client, [["title", "author", "body", "published"],
                              ["Good 1", user[0].email, "<p>a</p>", "yes"],
                              ["", user[0].email, "<p>b</p>", "no"],
                              ["Good 2", "nobody@example.com", "<p>c</p>", "maybe"]], "bad.xlsx")
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert "row 3, column title: empty" in page
    assert "row 4, column author" in page and "row 4, column published" in page
    with app.app_context():
        assert db.session.query(Note).count() == 0
    junk = import_sheet(client, b"not a zip", "x.xlsx")
    assert junk.status_code == 422 and "not a readable .xlsx file" in junk.get_data(as_text=True)


def test_image_upload_checks_content_and_size(app, client, user, login) -> None:
    login(client, user[0].email)
    headers = {"X-CSRFToken": csrf(client, "/notes/new")}
    r = client.post("/upload", data={"upload": (io.BytesIO(PNG), "x.png")}, headers=headers,
                    content_type="multipart/form-data")
    assert r.status_code == 200 and r.json["uploaded"] == 1
    assert r.json["url"].startswith("/media/") and r.json["url"].endswith(".png")
    from PIL import Image

    served = Image.open(io.BytesIO(client.get(r.json["url"]).data))  # written anew, same pixels
    assert served.format == "PNG" and served.tobytes() == Image.open(io.BytesIO(PNG)).tobytes()
    fake = client.post("/upload", data={"upload": (io.BytesIO(b"<?php evil"), "x.png")},
                       headers=headers, content_type="multipart/form-data")
    assert fake.status_code == 415 and fake.json["uploaded"] == 0
    app.config["NOTES_MAX_IMAGE"] = 10
    big = client.post("/upload", data={"upload": (io.BytesIO(PNG), "x.png")}, headers=headers,
                      content_type="multipart/form-data")
    assert big.status_code == 413
    no_csrf = client.post("/upload", data={"upload": (io.BytesIO(PNG), "x.png")},
                          content_type="multipart/form-data")
    assert no_csrf.status_code == 400


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    config = {"NOTES_DATA_DIR": str(tmp_path)}
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: site_config.secret_key(config), range(8)))
    assert len(keys) == 1
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    (tmp_path / "k").write_text("x" * 40)
    assert site_config.secret_key({"NOTES_SECRET_KEY_FILE": str(tmp_path / "k")}) == "x" * 40


def test_database_password_comes_from_a_file(tmp_path: Path) -> None:
    url = "mysql+pymysql://notes@db:3306/notes?charset=utf8mb4"
    (tmp_path / "pw").write_text("s3cr@t/:pw\n")  # characters a URL must escape; a newline
    config = site_config.load({"NOTES_DATABASE_URL": url,
                               "NOTES_DATABASE_PASSWORD_FILE": str(tmp_path / "pw")})
    parsed = make_url(config["SQLALCHEMY_DATABASE_URI"])
    assert (parsed.password, parsed.host, parsed.query) == ("s3cr@t/:pw", "db",
                                                             {"charset": "utf8mb4"})
    with pytest.raises(site_config.ConfigError, match=r"^NOTES_DATABASE_PASSWORD_FILE: cannot"):
        site_config.load({"NOTES_DATABASE_URL": url,
                          "NOTES_DATABASE_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(("name", "value"), [("NOTES_TIMEZONE", "Mars/Olympus"),
                                             ("NOTES_REGISTRATION", "maybe"),
                                             ("NOTES_DATABASE_URL", "notes.db")])
def test_bad_setting_is_one_clear_line(name: str, value: str) -> None:
    with pytest.raises(site_config.ConfigError) as info:
        site_config.load({name: value})
    assert str(info.value).startswith(f"{name}={value!r} is not valid")


def flask_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, "-m", "flask", "--app", "notes", *args], input=stdin,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
                          check=False)


def migrations_round_trip(env: dict[str, str], engine: Any, down_to: str, notes: int) -> None:
    """The models and the migrations agree (``db check``); a downgrade to ``down_to`` keeps the
    ``notes`` notes there are; the upgrade runs again."""
    check = flask_cli(env, "db", "check")
    assert check.returncode == 0, check.stderr
    assert flask_cli(env, "db", "downgrade", down_to).returncode == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == notes
    assert flask_cli(env, "db", "upgrade").returncode == 0


def test_cli_users_tokens_export_import(db_url: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade").returncode == 0
    r = flask_cli(env, "users", "create", "cli@example.com", "--admin", "--password-stdin",
                  stdin=PASSWORD + "\n")
    assert r.returncode == 0 and "created admin cli@example.com" in r.stdout
    again = flask_cli(env, "users", "create", "cli@example.com", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert again.returncode != 0 and "exists already" in again.stderr
    assert "cli@example.com\tadmin" in flask_cli(env, "users", "list").stdout
    assert flask_cli(env, "tokens", "create", "cli@example.com").stdout.startswith("nt_")
    source = tmp_path / "in.xlsx"
    source.write_bytes(xlsx([["title", "author", "body"], ["From CLI", "cli@example.com", "x"]]))
    r = flask_cli(env, "notes", "import", str(source))
    assert r.returncode == 0 and "1 created, 0 updated, 0 skipped" in r.stdout
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(xlsx([["title", "author", "body"], ["", "cli@example.com", "x"]]))
    r = flask_cli(env, "notes", "import", str(bad))
    assert r.returncode != 0 and "row 2, column title: empty" in r.stderr
    out = tmp_path / "out.xlsx"
    r = flask_cli(env, "notes", "export", str(out))
    assert r.returncode == 0 and "exported 1 notes" in r.stdout
    assert load_workbook(out).active["B2"].value == "From CLI"


def test_concurrent_migrations_do_not_collide(db_url: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade"],
                              env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("Running upgrade  -> 0001" in out for out in outputs) == 1


def test_upgrade_from_0001_fills_the_search_text(db_url: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0001").returncode == 0
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:  # a site's data as revision 0001 stored it
            conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
                "VALUES ('old@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO notes (author_id, title, slug, body, published, created_at, "
                "updated_at) SELECT id, 'Old', 'old', '<p>Tea &amp; <em>cake</em></p>', true, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM users"))
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        with engine.connect() as conn:
            assert conn.execute(text("SELECT body_text FROM notes")).scalars().all() == [
                "Tea & cake"]
        check = flask_cli(env, "db", "check")  # the models and the migrations agree
        assert check.returncode == 0, check.stderr
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_database_down_gives_503_and_recovers(db_url, tmp_path, postgresql_server) -> None:
    app = make_app(db_url, tmp_path / "data")
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/healthz").get_json()["status"] == "ok"
    postgresql_server.stop()
    try:
        r = client.get("/")
        assert r.status_code == 503
        assert "cannot reach its database" in r.get_data(as_text=True)
        assert client.get("/healthz").status_code == 503  # probes see it too
    finally:
        postgresql_server.restart()
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sessions_in_redis_are_shared_between_app_instances(db_url, tmp_path, redis_server,
                                                            login) -> None:
    one = make_app(db_url, tmp_path / "data", NOTES_SESSION_REDIS_URL=redis_server.url)
    from notes.auth import create_user

    with one.app_context():
        create_user("shared@example.com", PASSWORD)
    two = make_app(db_url, tmp_path / "data", NOTES_SESSION_REDIS_URL=redis_server.url)
    first = one.test_client()
    assert login(first, "shared@example.com").status_code == 302
    cookie = first.get_cookie("session")
    second = two.test_client()
    second.set_cookie("session", cookie.value)
    assert second.get("/my").status_code == 200  # logged in on the other instance


def test_docs_list_the_site_settings() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "notes" / "configuration.md"
    block = page.read_text().split("<!-- generated:notes-settings -->\n", 1)[1]
    block = block.split("\n<!-- /generated:notes-settings -->")[0]
    assert block == site_config.markdown_table(), (
        "docs/notes/configuration.md's NOTES_* table is stale: run python -m flaskstack.readme")


def test_token_creation_is_post_redirect_get(app, client, user, login) -> None:
    from notes.models import ApiToken

    login(client, user[0].email)
    token = csrf(client, "/account")
    r = client.post("/account", data={"tok-name": "laptop", "tok-csrf_token": token})
    assert r.status_code == 302 and r.location.endswith("/account")
    page = client.get("/account")
    assert "no-store" in page.headers["Cache-Control"].split(", ")  # the token: never cached
    shown = re.search(r'id="new-token">(nt_[^<]+)<', page.get_data(as_text=True))
    assert shown, "the new token is shown once"
    again = client.get("/account").get_data(as_text=True)  # a reload
    assert shown.group(1) not in again and "laptop" in again
    with app.app_context():
        assert db.session.query(ApiToken).count() == 1
    assert client.get("/api/notes", headers={"Authorization": f"Bearer {shown.group(1)}"}
                      ).status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_admin_dates_are_readable_in_the_site_time_zone(db_url, tmp_path, login) -> None:
    from datetime import UTC, datetime

    from notes.auth import create_user

    app = make_app(db_url, tmp_path / "data", NOTES_TIMEZONE="Asia/Tokyo")
    with app.app_context():
        boss = create_user("root@example.com", PASSWORD, is_admin=True)
        boss.created_at = datetime(2026, 11, 29, 23, 17, 39, 51764, tzinfo=UTC)
        db.session.commit()
    client = app.test_client()
    login(client, "root@example.com")
    page = client.get("/admin/user/").get_data(as_text=True)
    assert "Nov 30, 2026, 08:17" in page  # Tokyo is UTC+9, written the reader's way (en)
    assert "23:17:39" not in page and "+00:00" not in page
    assert 'placeholder="Search by email"' in page
    notes = client.get("/admin/note/").get_data(as_text=True)
    assert 'placeholder="Search titles and text"' in notes and "body_text" not in notes


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_database_down_gives_a_signed_in_reader_503_too(db_url, tmp_path, postgresql_server,
                                                        login) -> None:
    """The error page for a signed-in user must not need the database (loading the user)."""
    from notes.auth import create_user

    app = make_app(db_url, tmp_path / "data")
    with app.app_context():
        create_user("reader@example.com", PASSWORD)
    client = app.test_client()
    login(client, "reader@example.com")
    assert client.get("/my").status_code == 200
    postgresql_server.stop()
    try:
        for path in ("/my", "/", "/account"):
            r = client.get(path)
            assert r.status_code == 503, (path, r.status_code)
            assert "cannot reach its database" in r.get_data(as_text=True)
            assert "Signed in" in r.get_data(as_text=True)  # as the session says
    finally:
        postgresql_server.restart()
    assert client.get("/my").status_code == 200
