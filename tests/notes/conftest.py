"""The notes app on a fresh, migrated database per test: SQLite, MariaDB and PostgreSQL.

`NOTES_TEST_DBS=sqlite` limits the databases for a quick local run; the default is all three.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_migrate import upgrade
from openpyxl import Workbook
from werkzeug.test import TestResponse

from notes import create_app
from notes.auth import create_user
from notes.extensions import db
from tests import servers

DBS = [d for d in os.environ.get("NOTES_TEST_DBS", "sqlite,mariadb,postgresql").split(",") if d]
_names = itertools.count(1)
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[servers.Server]:
    with servers.mariadb() as server:
        yield server


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[servers.Server]:
    with servers.postgresql() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    with servers.redis() as server:
        yield server


@pytest.fixture(params=DBS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notes.db'}"
    server = request.getfixturevalue(f"{request.param}_server")
    return servers.create_database(server, f"notes_test_{os.getpid()}_{next(_names)}")


def make_app(db_url: str, data: Path, **extra: Any) -> Any:
    app = create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "NOTES_DATA_DIR": str(data),
        "SECRET_KEY": "test-secret-key-for-the-suite",
        "NOTES_LOGIN_ATTEMPTS": 5,
        **extra,
    })
    with app.app_context():
        upgrade()
    return app


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[Any]:
    app = make_app(db_url, tmp_path / "data")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def user(app: Any) -> tuple[Any, str]:
    return _account(app, "alice@example.com")


@pytest.fixture
def other(app: Any) -> tuple[Any, str]:
    return _account(app, "bob@example.com")


@pytest.fixture
def admin(app: Any) -> tuple[Any, str]:
    return _account(app, "root@example.com", True)


def _account(app: Any, email: str, is_admin: bool = False) -> tuple[SimpleNamespace, str]:
    with app.app_context():
        created = create_user(email, PASSWORD, is_admin=is_admin,
                              display_name=email.split("@")[0].title())
        account = SimpleNamespace(id=created.id, email=created.email, is_admin=is_admin)
    return account, PASSWORD


def csrf(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page) or re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)



def xlsx(rows: list[list[object]]) -> bytes:
    """A workbook of one sheet holding ``rows``."""
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def import_sheet(client: FlaskClient, sheet: list[list[object]] | bytes,
                 name: str = "notes.xlsx") -> TestResponse:
    """Post ``sheet`` (rows, or a file's bytes) to the admin's Excel import as ``client``."""
    data = sheet if isinstance(sheet, bytes) else xlsx(sheet)
    return client.post("/admin/excel/import", data={
        "csrf_token": csrf(client, "/admin/excel/"), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data")

@pytest.fixture
def login() -> Callable[..., Any]:
    def do(client: FlaskClient, email: str, password: str = PASSWORD, remember: bool = False
           ) -> Any:
        data = {"email": email, "password": password, "csrf_token": csrf(client)}
        if remember:
            data["remember"] = "y"
        return client.post("/login", data=data)

    return do
