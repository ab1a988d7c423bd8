"""The site's prestart (python -m notes_prestart): the real upgrade when the database is behind,
a quick no-op without importing the site when it is at the latest migration."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import notes_prestart

CHECK = ("import sys, notes_prestart; notes_prestart.main(); "
         "print('site imported:', 'notes' in sys.modules, "
         "'sqlalchemy imported:', 'sqlalchemy' in sys.modules)")


def prestart(data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "NOTES_DATA_DIR": str(data),
             "NOTES_SECRET_KEY": "k" * 32, **env},
    )


def test_a_database_behind_is_migrated_then_later_starts_skip_the_upgrade(
        tmp_path: Path) -> None:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "NOTES_DATA_DIR": str(tmp_path), "NOTES_SECRET_KEY": "k" * 32}
    first = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade",
                            "0001"], capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr
    behind = prestart(tmp_path)
    assert behind.returncode == 0, behind.stderr
    assert "Running upgrade 0001 -> 0002" in behind.stderr
    with sqlite3.connect(tmp_path / "notes.db") as db:
        head = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert head != [("0001",)]
    again = prestart(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "the database is at the latest migration" in again.stderr
    assert "Running upgrade" not in again.stderr
    # SQLite: the quick look needs only the standard library
    assert again.stdout.strip() == "site imported: False sqlalchemy imported: False"
    with sqlite3.connect(tmp_path / "notes.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == head


def test_a_new_database_is_created_by_the_real_upgrade(tmp_path: Path) -> None:
    made = prestart(tmp_path)
    assert made.returncode == 0, made.stderr
    assert "Running upgrade  -> 0001" in made.stderr and (tmp_path / "notes.db").exists()


def test_when_the_quick_look_fails_the_real_upgrade_reports_the_problem(tmp_path: Path) -> None:
    bad = prestart(tmp_path, NOTES_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
                   NOTES_DB_WAIT="1")
    assert bad.returncode != 0
    assert "checking the migrations quickly failed" in bad.stderr
    assert not (tmp_path / "notes.db").exists()


def test_the_heads_read_from_the_scripts_are_alembics_own() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from notes_prestart import heads, notes_dir

    config = Config()
    config.set_main_option("script_location", str(notes_dir() / "migrations"))
    assert heads(notes_dir() / "migrations" / "versions") == set(
        ScriptDirectory.from_config(config).get_heads())


def test_scripts_of_an_unusual_shape_mean_the_real_upgrade(tmp_path: Path) -> None:
    from notes_prestart import heads

    def scripts(**files: str) -> set[str]:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        for name, text in files.items():
            (folder / f"{name}.py").write_text(text)
        return heads(folder)

    a = "revision = 'a'\ndown_revision = None\n"
    assert scripts(a=a, b="revision: str = \"b\"\ndown_revision: str | None = 'a'\n") == {"b"}
    # two branches and their merge
    branches = {"a": a, "b": "revision = 'b'\ndown_revision = 'a'\n",
                "c": "revision = 'c'\ndown_revision = 'a'\n"}
    assert scripts(**branches) == {"b", "c"}
    assert scripts(**branches, m="revision = 'm'\ndown_revision = ('b', 'c')\n") == {"m"}
    # anything else: no heads, so the prestart runs the real upgrade
    assert scripts(a=a, x="down_revision = 'a'\n") == set()
    assert scripts(a=a, x="revision = make_id()\ndown_revision = 'a'\n") == set()
    assert scripts(a=a, x="revision = 'x'\n") == set()


def test_serving_pages_loads_neither_alembic_nor_openpyxl(tmp_path: Path) -> None:
    script = ("import sys, notes; app = notes.create_app(); c = app.test_client(); "
              "print(c.get('/').status_code, c.get('/login').status_code, "
              "sorted(m for m in ('alembic', 'flask_migrate', 'openpyxl') if m in sys.modules)); "
              "app.extensions['migrate'].directory; print('alembic' in sys.modules)")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "NOTES_DATA_DIR": str(tmp_path),
           "NOTES_SECRET_KEY": "k" * 32}
    made = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert made.returncode == 0, made.stderr
    seen = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True,
                          text=True, timeout=120, env=env)
    # Flask-Migrate is set up at the first look at it (flask_migrate.upgrade() and friends)
    assert seen.stdout.split("\n")[:2] == ["200 200 []", "True"], seen.stderr


def test_a_damaged_database_file_is_left_to_the_real_upgrade(tmp_path: Path) -> None:
    damaged = b"this is not an SQLite database" * 100
    (tmp_path / "notes.db").write_bytes(damaged)
    bad = prestart(tmp_path)
    assert bad.returncode != 0
    assert "checking the migrations quickly failed" in bad.stderr
    assert "file is not a database" in bad.stderr
    assert (tmp_path / "notes.db").read_bytes() == damaged


def test_each_database_is_migrated_once_then_found_at_head(db_url: str, tmp_path: Path) -> None:
    made = prestart(tmp_path / "data", NOTES_DATABASE_URL=db_url)
    assert made.returncode == 0, made.stderr
    assert "Running upgrade  -> 0001" in made.stderr
    again = prestart(tmp_path / "data", NOTES_DATABASE_URL=db_url)
    assert again.returncode == 0, again.stderr
    assert "the database is at the latest migration" in again.stderr
    assert "Running upgrade" not in again.stderr


# -- the image's empty database ------------------------------------------------------------------


def empty_database(folder: Path, revision: str | None = None) -> Path:
    """An empty database made by the real upgrade (at ``revision``, else the latest), kept as
    the image's build keeps it."""
    made = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade",
                           *([revision] if revision else [])], capture_output=True, text=True,
                          timeout=120, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                            "NOTES_DATA_DIR": str(folder),
                                            "NOTES_SECRET_KEY": "k" * 32})
    assert made.returncode == 0, made.stderr
    kept = folder / "template" / "empty.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notes_prestart, "template", lambda: kept)
        notes_prestart.save_template(folder / "notes.db")
    return kept


def tables(path: Path) -> list[tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sorted(db.execute("SELECT type, name, sql FROM sqlite_master").fetchall())


def test_a_new_database_is_a_copy_of_the_images_empty_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = empty_database(tmp_path / "image")
    # no WAL: read where the workers cannot write (the image's /opt), without a -shm file
    with contextlib.closing(sqlite3.connect(template)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    monkeypatch.setattr(notes_prestart, "template", lambda: template)
    monkeypatch.setenv("NOTES_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    new = tmp_path / "data" / "notes.db"
    assert notes_prestart.from_template()
    assert sorted(p.name for p in new.parent.iterdir()) == ["notes.db"]  # no partial copy left
    assert tables(new) == tables(template)
    assert notes_prestart.database_revisions(f"sqlite:///{new}") == notes_prestart.heads(
        notes_prestart.notes_dir() / "migrations" / "versions")
    # a database that is there is never replaced
    new.write_bytes(b"someone's data")
    assert not notes_prestart.from_template()
    assert new.read_bytes() == b"someone's data"


def test_a_template_behind_the_scripts_or_another_database_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = empty_database(tmp_path / "image", "0001")
    monkeypatch.setattr(notes_prestart, "template", lambda: template)
    monkeypatch.setenv("NOTES_DATA_DIR", str(tmp_path))
    assert not notes_prestart.from_template()
    assert not (tmp_path / "notes.db").exists()
    monkeypatch.setattr(notes_prestart, "template", lambda: tmp_path / "none.db")
    assert not notes_prestart.from_template()
    monkeypatch.setattr(notes_prestart, "template", lambda: empty_database(tmp_path / "new"))
    monkeypatch.setenv("NOTES_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert not notes_prestart.from_template()


COPY = """
import sys, pathlib, notes_prestart
notes_prestart.template = lambda: pathlib.Path(sys.argv[1])
print(notes_prestart.from_template())
"""


def test_replicas_copying_at_once_make_one_database(tmp_path: Path) -> None:
    template = empty_database(tmp_path / "image")
    (tmp_path / "data").mkdir()
    new = tmp_path / "data" / "notes.db"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "NOTES_DATA_DIR": str(tmp_path / "data")}
    racers = [subprocess.Popen([sys.executable, "-c", COPY, str(template)], env=env,
                               stdout=subprocess.PIPE, text=True) for _ in range(6)]
    said = [racer.communicate(timeout=60)[0].strip() for racer in racers]
    assert said.count("True") == 1 and said.count("False") == 5, said
    assert sorted(p.name for p in new.parent.iterdir()) == ["notes.db"]
    assert tables(new) == tables(template)
