"""Flask extension objects, created unbound and initialised in :func:`notes.create_app`."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same way
    on SQLite, MariaDB and PostgreSQL."""

    from sqlalchemy import MetaData

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Migrations:
    """Flask-Migrate, set up on first use: serving pages never imports it nor Alembic (about
    12 MB and 0.15 s in every process). ``flask db …`` and ``flask_migrate.upgrade()`` work as
    usual: the first look at ``app.extensions["migrate"]`` or at the ``db`` command loads it."""

    def init_app(self, app: Flask, db: SQLAlchemy, directory: str) -> None:
        app.extensions["migrate"] = _Pending(app, db, directory)
        app.cli = _SiteCommands(app)


class _Pending:
    # (its own attributes have names Flask-Migrate's config object does not use)
    def __init__(self, app: Flask, db: SQLAlchemy, directory: str) -> None:
        self._app, self._db, self._directory = app, db, directory

    def __getattr__(self, name: str) -> Any:
        from flask_migrate import Migrate

        if name.startswith("_"):
            raise AttributeError(name)
        Migrate(self._app, self._db, directory=self._directory)  # replaces this object
        return getattr(self._app.extensions["migrate"], name)


class _SiteCommands(AppGroup):
    """The app's commands, with Flask-Migrate's ``db`` group loaded when it is asked for."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app.name)
        self.commands.update(app.cli.commands)
        self.app = app

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "db" and "db" not in self.commands:
            self.app.extensions["migrate"].migrate  # noqa: B018 (loads it, which adds "db")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "db"})


db = SQLAlchemy(model_class=Base)
migrate = Migrations()
login_manager = LoginManager()
csrf = CSRFProtect()
