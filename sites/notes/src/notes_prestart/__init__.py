"""The notes site's prestart: ``flask --app notes db upgrade``, skipped when already at head.

Every start of the stack runs the prestart, and importing the whole site only to learn that
there is nothing to migrate is most of a restart's time. This package lives beside ``notes``
(importing anything inside ``notes`` would import the whole site): it reads the database URL with
notes' own settings module (loaded by path: it only needs the standard library), compares the
database's Alembic revision with the migration scripts' heads, and runs the real upgrade (which
takes a database lock against concurrent replicas) only when they differ or when anything about
the quick look fails.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType


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


def at_head() -> bool:
    """Whether the database's revisions are the migration scripts' heads (False when unsure)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect, text

    folder = notes_dir()
    url = site_config(folder).load()["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False  # a new database: do not create the file here
    config = Config()
    config.set_main_option("script_location", str(folder / "migrations"))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            return {row[0] for row in rows} == heads
    finally:
        engine.dispose()


def main() -> None:
    try:
        if at_head():
            print("notes: the database is at the latest migration", file=sys.stderr)
            return
    except Exception as e:  # any doubt means: run the real upgrade
        print(f"notes: checking the migrations quickly failed ({e}); upgrading", file=sys.stderr)
    os.execv(sys.executable, [sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade"])
