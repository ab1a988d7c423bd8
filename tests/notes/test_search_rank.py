"""How search ranks (issue 19), on SQLite, MariaDB and PostgreSQL: the newest
``notes.search.CANDIDATES`` matching notes, most relevant first by one rule computed in Python
(``notes.search.rank``), then newest first, so the same query lists the same notes in the same
order on the three databases; on SQLite a word's start is asked as the whole words it begins
(``search_words``, migration 0011), as a prefix only when they are many."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from notes import search
from notes.extensions import db
from notes.search import mariadb as mariadb_search
from notes.search import sqlite as sqlite_search

from .test_data import flask_cli, migrations_round_trip
from .test_scale import statements
from .test_site import write

NOTES = [  # written in this order (the last is the newest): title, text
    ("Plain one", "a note about kites and more words here"),
    ("Kites in the title", "nothing else"),
    ("Plain two", "a note about kites and more words here"),
    ("Kites kites", "kites kites kites kites and kites"),
    ("Kitchen", "a kitchen without the word"),
]


def ordered(client: Any, query: str) -> list[str]:
    r = client.get("/api/notes", query_string={"q": query, "per_page": 100})
    return [n["title"] for n in r.json["items"]]


@pytest.fixture
def written(client: Any, user: Any, login: Any) -> None:
    login(client, user[0].email)
    for title, body in NOTES:
        assert write(client, title, f"<p>{body}</p>").status_code == 302


@pytest.mark.parametrize(("first", "cap"), [(1000, 50_000), (1, 50_000), (2, 2), (0, 0)])
def test_search_ranks_the_same_on_every_database(app, client, written, monkeypatch,
                                                 first, cap) -> None:
    # MariaDB reads the newest notes one by one, then asks its full-text index: either way
    monkeypatch.setattr(mariadb_search, "FIRST", first)
    monkeypatch.setattr(mariadb_search, "CAP", cap)
    # the title, then how often (for its length), then the newest: "Plain two" and "Plain one"
    # say the same
    kites = ["Kites kites", "Kites in the title", "Plain two", "Plain one"]
    assert ordered(client, "kites") == kites
    assert ordered(client, "KITES about") == ["Plain two", "Plain one"]
    assert ordered(client, "kite") == kites  # the start of a word ranks as the word
    assert ordered(client, "kit") == [kites[0], "Kitchen", *kites[1:]]  # twice in it
    assert ordered(client, "kites absent") == ordered(client, "kitt") == []
    page = client.get("/", query_string={"q": "kites"}).get_data(as_text=True)
    assert re.findall(r'<h2 dir="auto"><a href="/n/([^"]+)"', page) == [
        "kites-kites", "kites-in-the-title", "plain-two", "plain-one"]  # the site's own page
    # only the newest CANDIDATES matching notes are ranked: a common word costs as a rare one
    monkeypatch.setattr(search, "CANDIDATES", 2)
    assert ordered(client, "kites") == ["Kites kites", "Plain two"]


def test_a_word_start_is_asked_as_whole_words_or_a_prefix(app, client, written,
                                                          monkeypatch) -> None:
    with app.app_context():
        dialect = db.engine.dialect.name
    everything = {title for title, _ in NOTES}
    with statements(app) as seen:
        assert set(ordered(client, "kit")) == everything
    if dialect == "sqlite":  # "kit" begins kitchen and kites: asked as those two words
        asked = [str(p) for s, p in seen if "notes_fts" in s]
        assert any("qqkitchen" in p and " OR " in p and "*" not in p for p in asked), asked
    monkeypatch.setattr(sqlite_search, "EXPANSIONS", 1)  # more words than that: a prefix
    with statements(app) as seen:
        assert set(ordered(client, "kit")) == everything
    if dialect == "sqlite":
        asked = [str(p) for s, p in seen if "notes_fts" in s]
        assert any('"qqkit"*' in p for p in asked), asked
    assert ordered(client, "kitten") == []  # a start that begins no word


def test_upgrade_to_0011_knows_the_words_already_written(db_url: str, tmp_path: Path) -> None:
    from notes.search.tokens import index_text

    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0010_language").returncode == 0
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:  # a note as revision 0010 stored it
            conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
                "VALUES ('old@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO notes (author_id, title, slug, body, body_text, search_text, "
                "published, created_at, updated_at, published_at, tags_text) SELECT id, 'Old', "
                "'old', '<p>Lighthouses</p>', 'Lighthouses', :s, true, '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', '' FROM users"),
                {"s": index_text("Old", "Lighthouses")})
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                assert conn.execute(text("SELECT word FROM search_words ORDER BY word")
                                    ).scalars().all() == ["qqlighthouses", "qqold"]
        migrations_round_trip(env, engine, "0010_language", notes=1)
    finally:
        engine.dispose()


def test_a_search_text_of_other_words_is_still_written(app, user) -> None:
    """search_words is split by SQLite from search_text; a text that is not index tokens (a row
    restored from before 0008) is written all the same, and adds no words."""
    with app.app_context():
        db.session.execute(text(
            "INSERT INTO notes (author_id, title, slug, body, body_text, search_text, "
            "published, created_at, updated_at, published_at, tags_text) VALUES (:a, 'Odd', "
            "'odd', '<p>x</p>', 'x', :s, :t, :now, :now, :now, '')"),
            {"a": user[0].id, "s": 'say "hi" \\ there', "t": True, "now": "2026-01-01 00:00:00"})
        db.session.commit()
        assert db.session.scalar(text("SELECT count(*) FROM notes WHERE slug = 'odd'")) == 1
        if db.engine.dialect.name == "sqlite":
            assert db.session.scalars(text("SELECT word FROM search_words")).all() == []


def test_a_middling_word_gives_its_newest_matches(app, client, user, login, monkeypatch) -> None:
    """A word in every other note: its newest matches on every database; MariaDB finds them
    reading the newest notes in wider and wider windows, without its full-text index (whose
    cost would be every note holding the word); a rare word is asked of the index, and with
    a common one, only the rare word is (its notes then checked for the other)."""
    login(client, user[0].email)
    for i in range(1, 13):  # the even ones hold "ember"; only the first, "glimmer"
        body = "ember and some words" if i % 2 == 0 else "other words"
        body += " glimmer" if i == 1 else ""
        assert write(client, f"Note {i}", f"<p>{body}</p>").status_code == 302
    monkeypatch.setattr(search, "CANDIDATES", 2)
    monkeypatch.setattr(mariadb_search, "FIRST", 2)
    monkeypatch.setattr(mariadb_search, "STEP", 2)
    with app.app_context():
        dialect = db.engine.dialect.name
    with statements(app) as seen:
        assert ordered(client, "ember") == ["Note 12", "Note 10"]
    asked = [s for s, _ in seen if "AGAINST" in s]
    if dialect == "mariadb":
        assert not asked and any("LIKE BINARY" in s for s, _ in seen)
    with statements(app) as seen:
        assert ordered(client, "glimmer") == ["Note 1"]
        assert ordered(client, "glimmer words") == ["Note 1"]
    if dialect == "mariadb":  # (the tokens of the words, see notes.search.tokens)
        asked = [str(p) for s, p in seen if "AGAINST" in s]
        assert len(asked) == 2 and all("glimmer" in p and "words" not in p for p in asked)
