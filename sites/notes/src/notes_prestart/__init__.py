"""The notes site's prestart: ``flask --app notes db upgrade``, skipped when already at head.

Every start of the stack runs the prestart, and importing the whole site only to learn that
there is nothing to migrate is most of a restart's time. This package lives beside ``notes``
(importing anything inside ``notes`` would import the whole site): it reads the database URL with
notes' own settings module (loaded by path: it only needs the standard library), compares the
database's Alembic revision with the migration scripts' heads, and runs the real upgrade (which
takes a database lock against concurrent replicas) only when they differ or when anything about
the quick look fails. In the image, a new SQLite database is a copy of the empty one its build
migrated (see :func:`from_template`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sqlite3
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import NoReturn


def notes_dir() -> Path:
    spec = importlib.util.find_spec("notes")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the notes package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def site_config(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_notes_config", folder / "config.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("notes/config.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


# ``revision = '0005_publishing'`` / ``down_revision = '0004_data'`` (or None, or a tuple)
ASSIGNMENT = re.compile(r"^(down_)?revision\s*(?::[^=\n]*)?=\s*(.+)$", re.MULTILINE)
QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def heads(versions: Path) -> set[str]:
    """The migration scripts' heads, read from their text (importing Alembic to learn them takes
    longer than the rest of the check); empty when a script is not the shape Alembic writes."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        found = {m.group(1) or "": m.group(2) for m in ASSIGNMENT.finditer(script.read_text())}
        revision = QUOTED.findall(found.get("", ""))
        if len(revision) != 1 or "down_" not in found:
            return set()
        revisions.add(revision[0])
        parents.update(QUOTED.findall(found["down_"]))
    return revisions - parents


def site_database() -> tuple[str, set[str]]:
    """The database URL notes' settings give, and the migration scripts' heads."""
    folder = notes_dir()
    return (site_config(folder).load()["SQLALCHEMY_DATABASE_URI"],
            heads(folder / "migrations" / "versions"))


def sqlite_file(url: str) -> Path | None:
    """The file of a plain SQLite URL (no query string); None for anything else."""
    if url.startswith("sqlite:///") and "?" not in url:
        return Path(url.removeprefix("sqlite:///"))
    return None


def read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A connection to the SQLite file ``path`` that can neither write nor create it."""
    return contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True))


def database_revisions(url: str) -> set[str] | None:
    """The revisions in the database's ``alembic_version`` table; None when it has none."""
    if (path := sqlite_file(url)) is not None:
        if not path.exists():
            return None  # a new database: do not create the file here
        with read_only(path) as connection:
            try:
                rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            except sqlite3.OperationalError:  # no such table
                return None
        return {row[0] for row in rows}
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return {row[0] for row in connection.execute(
                text("SELECT version_num FROM alembic_version"))}
    finally:
        engine.dispose()


def at_head() -> bool:
    """Whether the database's revisions are the migration scripts' heads (False when unsure)."""
    url, wanted = site_database()
    return bool(wanted) and database_revisions(url) == wanted


def template() -> Path:
    """An empty database at the latest migration that the image's build made with the real
    upgrade (``sys.prefix``: the image's venv; elsewhere there is none)."""
    return Path(sys.prefix) / "share" / "notes" / "empty.db"


def save_template(database: Path) -> None:
    """Keep a copy of ``database`` (new, just upgraded) as :func:`template` (the image's build
    calls this). In rollback-journal mode: a WAL database cannot be read where the workers cannot
    write (its -shm file); the site turns WAL on again as it connects."""
    target = template()
    target.parent.mkdir(parents=True, exist_ok=True)
    with read_only(database) as source, contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")


def from_template() -> bool:
    """Make a new SQLite database a copy of :func:`template` when there is one at the scripts'
    heads (False: nothing done). Importing the whole site to migrate an empty database was most
    of a new container's start. The copy is linked into place, so a database another replica made
    meanwhile is never replaced."""
    source = template()
    if not source.is_file():
        return False
    url, wanted = site_database()
    path = sqlite_file(url)
    if (path is None or not wanted or path.exists()
            or database_revisions(f"sqlite:///{source.absolute()}") != wanted):
        return False
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(source.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        partial.chmod(0o644)  # as SQLite makes a new file (mkstemp's is 0600)
        os.link(partial, path)
    except FileExistsError:
        return False  # another replica made it: the real upgrade takes its lock and looks
    finally:
        partial.unlink(missing_ok=True)
    return True


def upgrade() -> NoReturn:
    """``flask --app notes db upgrade``, in this process; its errors end it as they would the
    command. On success the process ends without Python's own teardown of the whole site's
    modules, which took 0.3 to 0.5 s of a new container's start (measured in the image)."""
    import logging

    from flask_migrate import upgrade as migrate

    from notes import create_app
    from notes.extensions import db

    app = create_app()
    with app.app_context():
        migrate()
        db.engine.dispose()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    try:
        if at_head():
            print("notes: the database is at the latest migration", file=sys.stderr)
            return
        if from_template():
            print("notes: a new database, copied from the image's empty one at the latest "
                  "migration", file=sys.stderr)
            return
    except Exception as e:  # any doubt means: run the real upgrade
        print(f"notes: checking the migrations quickly failed ({e}); upgrading", file=sys.stderr)
    upgrade()
