"""Old ``?page=N`` addresses of the home page (issue 19): found by the public notes counted per
day (``note_days``, kept by triggers), they show what ``OFFSET`` shows, whatever was written
since: publishing, withdrawing, the trash, deleting, scheduling, moving a note in time; on
the three databases. On MariaDB a list is read along its index from the place it starts."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, create_engine, select, text, update

from notes.extensions import db
from notes.models import Note, NoteDay, counted, public

from .test_data import flask_cli, migrations_round_trip
from .test_scale import many, plan, statements  # noqa: F401 (many: a fixture)

SIZE = 7
SHOWN = re.compile(r'<h2 dir="auto"><a href="/n/([^"]+)"')


def by_offset(app: Any, number: int) -> list[str]:
    """Page ``number`` of the home page, as ``OFFSET`` finds it."""
    with app.app_context():
        return list(db.session.scalars(
            select(Note.slug).where(public())
            .order_by(Note.published_at.desc(), Note.id.desc())
            .offset((number - 1) * SIZE).limit(SIZE)))


def check_days_counted(app: Any) -> None:
    """The counts per day are those of the notes."""
    with app.app_context():
        days = Counter(at.date() for at in db.session.scalars(
            select(Note.published_at).where(counted())))
        kept = {d: n for d, n in db.session.execute(select(NoteDay.day, NoteDay.notes)) if n}
    assert kept == dict(days)


def check_every_page(app: Any, client: Any) -> None:
    check_days_counted(app)
    with app.app_context():
        total = db.session.scalar(select(db.func.count()).select_from(Note).where(public()))
    assert total
    last = (total - 1) // SIZE + 1
    for number in range(2, last + 1):
        page = client.get(f"/?page={number}")
        assert page.status_code == 200, number
        assert SHOWN.findall(page.get_data(as_text=True)) == by_offset(app, number), number
    assert client.get(f"/?page={last + 1}").status_code == 404


def move(app: Any, times: dict[int, datetime]) -> None:
    """Set the publication time of notes by a plain statement (the triggers follow it)."""
    with app.app_context():
        table = Note.__table__
        db.session.execute(update(table).where(table.c.id == bindparam("b_id"))
                           .values(published_at=bindparam("b_at")),
                           [{"b_id": i, "b_at": at} for i, at in times.items()])
        db.session.commit()


@pytest.mark.usefixtures("many")
def test_page_numbers_show_what_offset_shows_after_every_change(app, client) -> None:
    app.config["NOTES_PER_PAGE"] = SIZE
    start = datetime(2021, 3, 1, tzinfo=UTC)
    # 300 notes over about 60 days, some at the very same time (the order is then by id)
    times = {i: start + timedelta(hours=5 * i) for i in range(1, 301)}
    times.update({i: times[100] for i in range(101, 106)})
    move(app, times)
    check_every_page(app, client)
    with app.app_context():
        db.session.get(Note, 150).published = False  # withdrawn
        db.session.get(Note, 40).deleted_at = datetime.now(UTC)  # to the trash
        db.session.get(Note, 103).published_at = start - timedelta(days=400)  # back in time
        db.session.get(Note, 7).published_at = datetime.now(UTC) + timedelta(days=2)  # later
        db.session.get(Note, 8).published_at = datetime.now(UTC) + timedelta(days=3)
        db.session.commit()
        db.session.execute(text("DELETE FROM note_tags WHERE note_id = 220"))
        db.session.execute(text("DELETE FROM notes WHERE id = 220"))  # gone for good
        db.session.commit()
    check_every_page(app, client)
    with app.app_context():
        db.session.get(Note, 150).published = True  # back, and out of the trash
        db.session.get(Note, 40).deleted_at = None
        db.session.get(Note, 7).published_at = datetime.now(UTC) - timedelta(minutes=1)  # due
        db.session.commit()
    check_every_page(app, client)


@pytest.mark.usefixtures("many")
def test_pages_by_link_and_number_are_read_along_the_list_index(app, client) -> None:
    """On MariaDB the list statements name their index: told nothing, its optimizer reads the
    index from ``published`` alone (``ref``) and filters every note up to the page."""
    app.config["NOTES_PER_PAGE"] = SIZE
    home = client.get("/").get_data(as_text=True)
    older = re.search(r'href="/\?before=([0-9-]+)"', home)
    author = re.search(r'href="/a/3\?before=([0-9-]+)"', client.get("/a/3").get_data(
        as_text=True))
    assert older and author
    with app.app_context():
        dialect = db.engine.dialect.name
    for path in (f"/?before={older.group(1)}", "/?page=20", f"/a/3?before={author.group(1)}",
                 "/a/3?page=3"):
        with statements(app) as seen:
            assert client.get(path).status_code == 200, path
        listed = [(s, p) for s, p in seen if "ORDER BY notes.published_at DESC" in s]
        assert listed, path
        for statement, parameters in listed:
            found = plan(app, statement, parameters)
            assert re.search(r"ix_notes_(public|author)_order", found), (path, found)
            if dialect == "mariadb":  # (with a few hundred notes it takes the range untold)
                assert "FORCE INDEX (ix_notes_" in statement, (path, statement)
                assert "'type': 'range'" in found, (path, statement, found)


def test_upgrade_to_0012_counts_the_notes_and_downgrade_keeps_them(
        db_url: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0010_language").returncode == 0
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
                "VALUES ('old@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
            for slug, published, at, deleted in (
                    ("a", True, "2026-01-01 10:00:00", None),
                    ("b", True, "2026-01-01 23:59:59", None),
                    ("c", True, "2026-01-03 00:00:00", None),
                    ("draft", False, None, None),
                    ("trashed", True, "2026-01-03 08:00:00", "2026-01-04 00:00:00")):
                conn.execute(text(
                    "INSERT INTO notes (author_id, title, slug, body, body_text, published, "
                    "published_at, deleted_at, created_at, updated_at) SELECT id, :slug, "
                    ":slug, '<p>x</p>', 'x', :published, :at, :deleted, '2026-01-01 00:00:00', "
                    "'2026-01-01 00:00:00' FROM users"),
                    {"slug": slug, "published": published, "at": at, "deleted": deleted})
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        with engine.connect() as conn:
            rows = {str(d): n for d, n in conn.execute(text("SELECT day, notes FROM note_days"))}
        assert rows == {"2026-01-01": 2, "2026-01-03": 1}
        with engine.begin() as conn:  # and follows what is written now
            conn.execute(text("UPDATE notes SET published = true, "
                              "published_at = '2026-01-03 09:00:00' WHERE slug = 'draft'"))
            conn.execute(text("DELETE FROM notes WHERE slug = 'a'"))
        with engine.connect() as conn:
            rows = {str(d): n for d, n in conn.execute(text("SELECT day, notes FROM note_days"))}
        assert rows == {"2026-01-01": 1, "2026-01-03": 2}
        migrations_round_trip(env, engine, "0010_language", notes=4)
        with engine.connect() as conn:
            rows = {str(d): n for d, n in conn.execute(text("SELECT day, notes FROM note_days"))}
        assert rows == {"2026-01-01": 1, "2026-01-03": 2}
    finally:
        engine.dispose()


def old_notes(conn: Any) -> None:
    """An author and notes 1, 2 (published), 3 (a draft), 1500 (published), 1600 (in the
    trash), written by plain SQL before an upgrade."""
    conn.execute(text(
        "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
        "VALUES ('old@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
    for note_id, published, deleted in ((1, True, None), (2, True, None), (3, False, None),
                                        (1500, True, None), (1600, True, "2026-01-04 00:00:00")):
        conn.execute(text(
            "INSERT INTO notes (id, author_id, title, slug, body, body_text, published, "
            "published_at, deleted_at, created_at, updated_at) SELECT :id, id, 't', :slug, "
            "'<p>x</p>', 'x', :published, '2026-01-01 00:00:00', :deleted, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM users"),
            {"id": note_id, "slug": f"n{note_id}", "published": published, "deleted": deleted})


def test_upgrade_to_0013_counts_the_notes_per_block_of_ids(db_url: str, tmp_path: Path
                                                           ) -> None:
    """note_blocks (the API's old page numbers, see notes.api.numbered): the published notes
    not in the trash per 1,000 ids, counted by the upgrade, then by triggers."""
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0012_pages").returncode == 0
    engine = create_engine(db_url)

    def blocks() -> dict[int, int]:
        with engine.connect() as conn:
            return {b: n for b, n in conn.execute(text("SELECT block, notes FROM note_blocks"))
                    if n}

    try:
        with engine.begin() as conn:
            old_notes(conn)
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        assert blocks() == {0: 2, 1: 1}
        with engine.begin() as conn:  # and follows what is written now
            conn.execute(text("UPDATE notes SET published = true WHERE id = 3"))
            conn.execute(text("UPDATE notes SET deleted_at = NULL WHERE id = 1600"))
            conn.execute(text("DELETE FROM notes WHERE id = 1"))
            conn.execute(text("UPDATE notes SET published = false WHERE id = 1500"))
        assert blocks() == {0: 2, 1: 1}
        migrations_round_trip(env, engine, "0012_pages", notes=4)
        assert blocks() == {0: 2, 1: 1}
    finally:
        engine.dispose()


def test_mariadb_refusing_triggers_changes_nothing_and_says_what_to_set(tmp_path: Path
                                                                         ) -> None:
    """With binary logging on, MariaDB refuses triggers to an account without SUPER (error
    1419): the upgrade to 0012 stops before any change, naming the setting; with it set, the
    same upgrade runs."""
    from tests import servers

    with servers.mariadb("--log-bin=binlog", "--server-id=1", accounts=True) as server:
        server.wait_ready()
        root = create_engine(server.url, isolation_level="AUTOCOMMIT")
        try:
            with root.connect() as conn:
                for statement in ("CREATE DATABASE notes_binlog",
                                  "CREATE USER 'site'@'127.0.0.1' IDENTIFIED BY 'site-pw'",
                                  "GRANT ALL ON notes_binlog.* TO 'site'@'127.0.0.1'"):
                    conn.exec_driver_sql(statement)
            url = f"mysql+pymysql://site:site-pw@127.0.0.1:{server.port}/notes_binlog"
            env = {"NOTES_DATABASE_URL": url, "NOTES_DATA_DIR": str(tmp_path)}
            refused = flask_cli(env, "db", "upgrade")
            assert refused.returncode != 0
            last = refused.stderr.strip().splitlines()[-1]
            assert "1419" in last and "log_bin_trust_function_creators=1" in last, last
            with root.connect() as conn:
                assert conn.exec_driver_sql("SELECT version_num FROM notes_binlog."
                                            "alembic_version").scalar() == "0011_search"
                assert conn.exec_driver_sql("SHOW TABLES FROM notes_binlog LIKE 'note_days'"
                                            ).first() is None
                columns = conn.exec_driver_sql("SHOW INDEX FROM notes_binlog.notes WHERE "
                                               "Key_name = 'ix_notes_public_order'").all()
                assert len(columns) == 3  # as 0008 made it
                assert conn.exec_driver_sql("SHOW TRIGGERS FROM notes_binlog").first() is None
                conn.exec_driver_sql("SET GLOBAL log_bin_trust_function_creators = 1")
            again = flask_cli(env, "db", "upgrade")
            assert again.returncode == 0, again.stderr
            with root.connect() as conn:
                assert conn.exec_driver_sql("SELECT version_num FROM notes_binlog."
                                            "alembic_version").scalar() == "0015_authors"
        finally:
            root.dispose()
