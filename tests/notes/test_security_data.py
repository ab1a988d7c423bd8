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
