"""The site's prestart (python -m notes_prestart): the real upgrade when the database is behind,
a quick no-op without importing the site when it is at the latest migration."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

CHECK = ("import sys, notes_prestart; notes_prestart.main(); "
         "print('site imported:', 'notes' in sys.modules)")


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
    assert again.stdout.strip() == "site imported: False"
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
