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
