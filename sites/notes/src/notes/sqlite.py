"""SQLite files: a missing database is an error, never a new empty database.

``sqlite3.connect(path)`` creates the file when it is missing. If the database file were moved
away while the site serves, new connections would silently start an empty database (and writes
made there would be lost when the real file is put back). So connections open the file in
``mode=rw``, pooled connections are dropped when the file at the path is no longer the one they
opened, and only ``db upgrade`` (:func:`create_missing`) creates the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import DisconnectionError


def _file(dialect: Any, cargs: list[Any], cparams: dict[str, Any]) -> str | None:
    """The database file of a pysqlite connection about to open (None: memory, URI, others)."""
    if dialect.name != "sqlite" or cparams.get("uri") or not cargs:
        return None
    path = str(cargs[0])
    return None if path in ("", ":memory:") else path


def watch(engine: Engine) -> None:
    """Open ``engine``'s SQLite file read-write only, and check it is still there at checkout."""
    event.listen(engine, "do_connect", _open_existing_only)
    event.listen(engine, "connect", _remember_file)
    event.listen(engine, "checkout", _same_file)


def _open_existing_only(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]
                        ) -> None:
    path = _file(dialect, cargs, cparams)
    if path is None:
        return
    cargs[0] = f"file:{quote(path)}?mode=rw"
    cparams["uri"] = True
    record.info["sqlite_path"] = path


def _remember_file(dbapi_connection: Any, record: Any) -> None:
    path = record.info.get("sqlite_path")
    if path is not None:
        st = os.stat(path)
        record.info["sqlite_file"] = (st.st_dev, st.st_ino)


def _same_file(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection whose file was moved or replaced is dropped (the pool reconnects,
    which fails while the file is missing)."""
    path = record.info.get("sqlite_path")
    if path is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        raise DisconnectionError(f"the SQLite database {path} is missing") from None
    if (st.st_dev, st.st_ino) != record.info.get("sqlite_file"):
        raise DisconnectionError(f"the SQLite database {path} was replaced")


def create_missing(url: URL) -> None:
    """Create an empty SQLite database file for ``url`` (``db upgrade`` only)."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return
    if url.database in (None, "", ":memory:"):
        return
    path = Path(url.database).absolute()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)  # an empty file is an empty SQLite database
