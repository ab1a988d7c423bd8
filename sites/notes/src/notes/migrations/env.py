import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from logging.config import fileConfig
from typing import Any

from alembic import context
from flask import current_app
from sqlalchemy import Connection, Engine, MetaData
from sqlalchemy.exc import OperationalError

from notes import search
from notes.sqlite import create_missing

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
if config.config_file_name is not None:
    # (existing loggers stay on: the site's own, when migrations run inside the app)
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')


def get_engine() -> Engine:
    engine: Engine = current_app.extensions['migrate'].db.engine
    return engine


def get_engine_url() -> str:
    # '%' doubled: alembic's config is an interpolating ConfigParser
    return get_engine().url.render_as_string(hide_password=False).replace('%', '%%')


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata() -> MetaData:
    metadata: MetaData = target_db.metadatas[None]
    return metadata


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


@contextlib.contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """One migration at a time: replicas upgrading together wait for each other.

    Alembic takes no lock itself. MariaDB/MySQL: GET_LOCK; PostgreSQL: an advisory lock;
    SQLite: an exclusive lock on a file beside the database.
    """
    dialect = connection.dialect.name
    if dialect in ("mysql", "mariadb"):
        got = connection.exec_driver_sql("SELECT GET_LOCK('notes_migrations', 600)").scalar()
        connection.commit()
        if got != 1:
            raise RuntimeError("could not take the migration lock within 600 s")
        try:
            yield
        finally:
            connection.exec_driver_sql("SELECT RELEASE_LOCK('notes_migrations')")
            connection.commit()
    elif dialect == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_lock(7007001)")
        connection.commit()
        try:
            yield
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(7007001)")
            connection.commit()
    elif dialect == "sqlite" and connection.engine.url.database not in (None, "", ":memory:"):
        with open(f"{connection.engine.url.database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    else:
        yield


def connect_patiently(engine: Engine) -> Connection:
    """Connect, retrying for NOTES_DB_WAIT seconds: replicas may start before the database."""
    deadline = time.monotonic() + current_app.config.get("NOTES_DB_WAIT", 60)
    while True:
        try:
            return engine.connect()
        except OperationalError as e:
            if time.monotonic() >= deadline:
                raise
            logger.info("database not reachable yet (%s); retrying", str(e.orig).strip())
            time.sleep(1)


def run_migrations_online() -> None:
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context: Any, revision: Any, directives: Any) -> None:
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    # the full-text index of each database is made by migration 0008, not declared in models
    conf_args.setdefault("include_object", lambda _obj, name, _type, reflected, compare_to: not (
        reflected and compare_to is None and search.outside_models(name)))
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()
    # the only place a missing SQLite file is created: the site itself refuses to
    create_missing(connectable.url)

    with connect_patiently(connectable) as connection, migration_lock(connection):
        context.configure(
            connection=connection,
            target_metadata=get_metadata(),
            **conf_args
        )

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
