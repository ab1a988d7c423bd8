"""Backup and restore, one command each: ``flask --app notes backup PATH`` and
``flask --app notes restore PATH``.

A backup is one tar file (gzip-compressed):

* ``manifest.json`` first: the format, when and from which database it was taken, the schema
  revision, every table's row count, and every other member's size and SHA-256;
* ``data.db``: every table of the database (found by reflection, so tables added later are
  kept too) as an SQLite file, whatever the database was: the portable part. From SQLite it
  is the online backup API's copy; from MariaDB or PostgreSQL, one REPEATABLE READ read-only
  transaction (one consistent snapshot; writers are never blocked by it);
* ``secret_key``: the site's secret key (sessions, remember-me cookies, CSRF);
* ``uploads/…``: the uploaded images.

Restore checks the whole file before it writes anything (members, paths, sizes, checksums,
the schema revision), then creates the schema at the backup's revision, copies every table,
and migrates forward to the current schema. Any database can be restored into any other.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    MetaData,
    Table,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.types import NullType

from . import caching
from .extensions import db

FORMAT = 1
MANIFEST = "manifest.json"
DATA = "data.db"
SECRET = "secret_key"
UPLOADS = "uploads"
MANIFEST_MAX = 16 * 1024 * 1024  # bytes
BATCH = 2000  # rows per insert


class BackupError(Exception):
    """What is wrong with a backup file or a restore target: one line."""


# -- backup ----------------------------------------------------------------------------------

def take(path: Path) -> dict[str, Any]:
    """Write a backup of the site's database, uploads and secret key to ``path`` (atomically:
    a temporary file beside it, renamed when complete). Returns the manifest."""
    config = current_app.config
    data_dir = Path(config["NOTES_DATA_DIR"])
    path = path.absolute()
    if path.is_dir():
        raise BackupError(f"{path} is a folder: give a file name, e.g. {path}/notes.tar.gz")
    with tempfile.TemporaryDirectory(prefix=".notes-backup-", dir=path.parent) as work:
        snapshot = Path(work) / DATA
        started = time.monotonic()
        dialect = snapshot_database(db.engine, snapshot)
        tables = count_rows(snapshot)
        uploads = sorted(_upload_files(data_dir / UPLOADS))
        secret = str(config["SECRET_KEY"]).encode()
        files = {DATA: _digest_file(snapshot), SECRET: _digest_bytes(secret)}
        for name, file in uploads:
            files[name] = _digest_file(file)
        manifest = {
            "format": FORMAT,
            "app": "notes",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": dialect,
            "revision": _revision(snapshot),
            "tables": tables,
            "files": files,
            "snapshot_seconds": round(time.monotonic() - started, 3),
        }
        partial = path.with_name(f".{path.name}.partial")
        try:
            with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
                tar.add(snapshot, DATA, recursive=False)
                _add_bytes(tar, SECRET, secret)
                for name, file in uploads:
                    tar.add(file, name, recursive=False)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            partial.chmod(0o600)  # it holds the secret key and every password hash
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def snapshot_database(engine: Engine, target: Path) -> str:
    """Copy every table into the SQLite file ``target`` from one consistent read."""
    if engine.dialect.name == "sqlite":
        source_path = engine.url.database
        assert source_path
        source = sqlite3.connect(_read_only(Path(source_path)), uri=True, timeout=30)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # the online backup API: one step, one read transaction
        finally:
            copy.close()
            source.close()
        return "sqlite"
    out = create_engine(f"sqlite:///{target}")
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        if engine.dialect.name in ("postgresql", "mysql", "mariadb"):
            conn.execute(text("SET TRANSACTION READ ONLY"))
        source_meta = MetaData()
        source_meta.reflect(conn, only=lambda name, _: not derived(name))
        copies = MetaData()
        for table in source_meta.sorted_tables:
            Table(table.name, copies, *(Column(c.name, _portable(c.type),
                                               primary_key=c.primary_key)
                                        for c in _copied(table)))
        copies.create_all(out)
        with out.begin() as dest:
            for table in source_meta.sorted_tables:
                rows = conn.execution_options(yield_per=BATCH).execute(
                    select(*_copied(table)))
                for batch in rows.partitions():
                    dest.execute(copies.tables[table.name].insert(),
                                 [dict(r._mapping) for r in batch])
        conn.rollback()
    out.dispose()
    return engine.dialect.name


def derived(name: str) -> bool:
    """A table the database keeps from others (SQLite's full-text index and its shadow tables,
    the notes counted per day and per block of ids, all of them, a tag's and an author's:
    filled by triggers): never copied, never counted as data; rebuilt from the notes."""
    return name.startswith("notes_fts") or name in ("note_days", "note_blocks", "tag_blocks",
                                                    "author_blocks")


def _copied(table: Table) -> list[Column[Any]]:
    """The columns a copy writes: not the ones the database computes (PostgreSQL's
    ``search_vector``, generated from the text)."""
    return [c for c in table.columns if c.computed is None]


def _read_only(path: Path) -> str:
    """An SQLite URI opening ``path`` read-only (any characters in the path)."""
    return f"file:{quote(str(path.absolute()))}?mode=ro"


def _portable(kind: Any) -> Any:
    """A column type SQLite can hold: the dialect type's generic form."""
    if isinstance(kind, Boolean) or getattr(kind, "display_width", None) == 1:
        return Boolean()  # MariaDB's BOOL is TINYINT(1)
    try:
        return kind.as_generic()
    except NotImplementedError:
        return NullType()


def count_rows(sqlite_file: Path) -> dict[str, int]:
    with sqlite3.connect(_read_only(sqlite_file), uri=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _revision(sqlite_file: Path) -> str | None:
    with sqlite3.connect(_read_only(sqlite_file), uri=True) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
    return row[0] if row else None


def _upload_files(folder: Path) -> Iterator[tuple[str, Path]]:
    if not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
        for name in files:
            file = Path(root, name)
            if file.is_file() and not file.is_symlink():
                yield f"{UPLOADS}/{file.relative_to(folder).as_posix()}", file


def _digest_file(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def _digest_bytes(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


# -- reading a backup ------------------------------------------------------------------------

@contextmanager
def opened(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(path, "r:gz")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a folder, not a backup file") from None
    except (tarfile.TarError, OSError, EOFError):
        raise BackupError(f"{path} is not a notes backup (not a gzip-compressed tar file)"
                          ) from None
    with tar:
        yield tar


def unpack(path: Path, into: Path, known_revisions: set[str] | None = None) -> dict[str, Any]:
    """Check ``path`` member by member and write its members under ``into`` (a fresh
    folder). Raises :class:`BackupError` on anything wrong; returns the manifest."""
    try:
        return _unpack(path, into, known_revisions)
    except (tarfile.TarError, EOFError, zlib.error, sqlite3.Error) as e:
        raise BackupError(f"{path} is damaged or truncated ({e})") from None
    except OSError as e:
        if e.errno is None:  # gzip's own errors (a bad CRC, a bad header)
            raise BackupError(f"{path} is damaged or truncated ({e})") from None
        raise BackupError(f"cannot unpack {path}: {e.strerror}") from None


def _unpack(path: Path, into: Path, known_revisions: set[str] | None) -> dict[str, Any]:
    with opened(path) as tar:
        first = tar.next()
        if first is None or first.name != MANIFEST or not first.isfile():
            raise BackupError(f"{path} is not a notes backup (no {MANIFEST} first)")
        if first.size > MANIFEST_MAX:
            raise BackupError(f"{path}: its manifest is too large ({first.size} bytes)")
        raw = tar.extractfile(first)
        assert raw is not None
        manifest = _manifest(raw.read(), path)
        files: dict[str, dict[str, Any]] = manifest["files"]
        if known_revisions is not None and manifest["revision"] not in known_revisions:
            raise BackupError(
                f"{path} holds schema revision {manifest['revision']!r}, which this version of "
                "notes does not know (a backup from a newer version): upgrade notes first")
        needed = sum(int(f["size"]) for f in files.values())
        free = shutil.disk_usage(into).free
        if needed > free:
            raise BackupError(f"{path} unpacks to {needed} bytes; only {free} are free "
                              f"in {into}")
        seen: set[str] = set()
        while (member := tar.next()) is not None:
            name = _safe_name(member, path)
            if name not in files or name in seen:
                raise BackupError(f"{path}: member {member.name!r} is not in its manifest "
                                  "(or twice)")
            seen.add(name)
            expected = files[name]
            if member.size != expected["size"]:
                raise BackupError(f"{path}: {name} is {member.size} bytes, its manifest says "
                                  f"{expected['size']}")
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            digest = hashlib.sha256()
            with open(target, "xb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != expected["sha256"]:
                raise BackupError(f"{path}: {name} does not match its checksum (damaged)")
        missing = sorted(set(files) - seen)
        if missing:
            raise BackupError(f"{path} is truncated: {missing[0]} is missing")
    counts = count_rows(into / DATA)
    if counts != manifest["tables"]:
        raise BackupError(f"{path}: the database's row counts differ from its manifest")
    with sqlite3.connect(_read_only(into / DATA), uri=True) as conn:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"{path}: its database fails SQLite's integrity check")
    return manifest


def _manifest(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{path}: its manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("app") != "notes":
        raise BackupError(f"{path} is not a notes backup (its manifest names no notes app)")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r} is not one this "
                          f"version reads (format {FORMAT})")
    files, tables = manifest.get("files"), manifest.get("tables")
    if (not isinstance(files, dict) or not isinstance(tables, dict) or DATA not in files
            or SECRET not in files
            or not all(isinstance(f, dict) and isinstance(f.get("size"), int)
                       and f["size"] >= 0 and isinstance(f.get("sha256"), str)
                       for f in files.values())
            or not all(isinstance(n, int) for n in tables.values())):
        raise BackupError(f"{path}: its manifest is incomplete")
    return manifest


def _safe_name(member: tarfile.TarInfo, path: Path) -> str:
    """The member's name when it is a plain file under the backup's own names."""
    if not member.isfile():
        kind = "a symlink" if member.issym() else "a link" if member.islnk() else \
            "a folder" if member.isdir() else "a special file"
        raise BackupError(f"{path}: member {member.name!r} is {kind}; a backup holds files only")
    name = member.name
    pure = PurePosixPath(name)
    if (pure.is_absolute() or ".." in pure.parts or "\\" in name or "\0" in name
            or pure.as_posix() != name or not pure.parts):
        raise BackupError(f"{path}: member {name!r} would be written outside its folder")
    if name not in (DATA, SECRET) and (pure.parts[0] != UPLOADS or len(pure.parts) < 2):
        raise BackupError(f"{path}: member {name!r} is not part of a notes backup")
    return name


# -- restore ---------------------------------------------------------------------------------

def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    migrate = current_app.extensions["migrate"]
    config = migrate.migrate.get_config(migrate.directory)
    return {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}


def verify(path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=".notes-verify-") as work:
        return unpack(path, Path(work), known_revisions())


def restore(path: Path, force: bool = False) -> dict[str, Any]:
    """Restore ``path`` into the configured database and data folder."""
    import flask_migrate

    config = current_app.config
    data_dir = Path(config["NOTES_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".notes-restore-", dir=data_dir) as work:
        into = Path(work)
        manifest = unpack(path, into, known_revisions())
        in_use = _in_use(data_dir)
        if in_use and not force:
            raise BackupError(f"not empty: {in_use}; restore replaces everything, say --force")
        # empty (or --force): the schema is made again at the backup's own revision, so the
        # migrations after it run on its rows
        _drop_everything()
        if db.engine.dialect.name == "sqlite":
            from .sqlite import create_missing

            create_missing(db.engine.url)
        flask_migrate.upgrade(revision=manifest["revision"] or "base")
        _copy_rows(into / DATA, db.engine)
        flask_migrate.upgrade()
        uploads = data_dir / UPLOADS
        if (into / UPLOADS).is_dir():
            if force and uploads.exists():
                shutil.rmtree(uploads)
            if uploads.exists():
                for item in (into / UPLOADS).iterdir():
                    item.replace(uploads / item.name)
            else:
                (into / UPLOADS).replace(uploads)
        uploads.mkdir(exist_ok=True)
        _restore_secret(into / SECRET, data_dir)
    caching.send(caching.ALL)  # every page may have changed
    return manifest


def _in_use(data_dir: Path) -> str | None:
    """What is already there (None: empty)."""
    names = {n for n in inspect(db.engine).get_table_names()
             if n != "alembic_version" and not derived(n)}
    with db.engine.connect() as conn:
        meta = MetaData()
        meta.reflect(conn, only=sorted(names))
        for table in meta.sorted_tables:
            if conn.execute(select(func.count()).select_from(table)).scalar():
                return f"the database has rows in {table.name}"
    uploads = data_dir / UPLOADS
    if uploads.is_dir() and any(uploads.iterdir()):
        return f"{uploads} holds files"
    return None


def _drop_everything() -> None:
    db.session.remove()
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "sqlite":  # the virtual table takes its shadows along
            conn.execute(text("DROP TABLE IF EXISTS notes_fts"))
        meta = MetaData()
        meta.reflect(conn)
        meta.drop_all(conn)


def _copy_rows(source_file: Path, engine: Engine) -> None:
    source = create_engine(f"sqlite:///{_read_only(source_file)}&uri=true")
    try:
        source_meta = MetaData()
        source_meta.reflect(source)
        with engine.begin() as conn:
            target_meta = MetaData()
            target_meta.reflect(conn)
            with source.connect() as src:
                for table in target_meta.sorted_tables:
                    if (table.name == "alembic_version" or derived(table.name)
                            or table.name not in source_meta.tables):
                        continue
                    _copy_table(src, source_meta.tables[table.name], conn, table)
            if engine.dialect.name == "postgresql":
                _reset_sequences(conn, target_meta)
    finally:
        source.dispose()


def _copy_table(src: Connection, source: Table, conn: Connection, target: Table) -> None:
    columns = [c for c in source.columns
               if c.name in target.columns and target.columns[c.name].computed is None]
    rows = src.execution_options(yield_per=BATCH).execute(select(*columns))
    for batch in rows.partitions():
        conn.execute(target.insert(), [
            {c.name: _value(row[i], target.columns[c.name].type) for i, c in enumerate(columns)}
            for row in batch])


def _value(value: Any, kind: Any) -> Any:
    """A value from the portable file as the target column takes it."""
    if value is None:
        return None
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, DateTime) and isinstance(value, str):
        return datetime.fromisoformat(value)
    if isinstance(kind, Date) and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def _reset_sequences(conn: Connection, meta: MetaData) -> None:
    for table in meta.sorted_tables:
        for column in table.primary_key.columns:
            sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": table.name, "c": column.name}).scalar()
            if sequence:
                conn.execute(text(
                    f'SELECT setval(:s, coalesce((SELECT max("{column.name}") FROM '
                    f'"{table.name}"), 0) + 1, false)'), {"s": sequence})


def _restore_secret(file: Path, data_dir: Path) -> None:
    key = file.read_text().strip()
    config = current_app.config
    if config.get("NOTES_SECRET_KEY") or config.get("NOTES_SECRET_KEY_FILE"):
        if key != config["SECRET_KEY"]:
            click.echo("note: the backup's secret key differs from the configured one "
                       "(NOTES_SECRET_KEY/_FILE): sessions and remember-me cookies made "
                       "before the backup end; set it to the backup's to keep them", err=True)
        return
    target = data_dir / SECRET
    tmp = data_dir / f".{SECRET}.restore"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    tmp.replace(target)


# -- commands --------------------------------------------------------------------------------

def _fail(e: BackupError) -> None:
    raise click.ClickException(str(e))


@click.command("backup")
@with_appcontext
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--verify", "check", is_flag=True,
              help="Check the backup file PATH (members, checksums, schema) instead.")
def backup_command(path: Path, check: bool) -> None:
    """Write a backup of the database, the uploads and the secret key to PATH (while the site
    serves), or check one with --verify."""
    try:
        if check:
            manifest = verify(path)
            click.echo(f"{path}: good: {_summary(manifest)}")
            return
        started = time.monotonic()
        manifest = take(path)
    except BackupError as e:
        _fail(e)
    click.echo(f"backup written to {path} in {time.monotonic() - started:.1f} s: "
               f"{_summary(manifest)}")


@click.command("restore")
@with_appcontext
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True,
              help="Replace what the database and data folder already hold.")
def restore_command(path: Path, force: bool) -> None:
    """Restore the backup PATH into an empty database and data folder (stop the site first)."""
    try:
        manifest = restore(path, force)
    except BackupError as e:
        _fail(e)
    click.echo(f"restored {path}: {_summary(manifest)}")


def _summary(manifest: dict[str, Any]) -> str:
    tables = manifest["tables"]
    uploads = sum(1 for name in manifest["files"] if name.startswith(f"{UPLOADS}/"))
    return (f"{tables.get('notes', 0)} notes, {tables.get('users', 0)} users, {uploads} "
            f"uploads, schema {manifest['revision']}, taken {manifest['created_at']} from "
            f"{manifest['database']}")


def init_app(app: Flask) -> None:
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)

