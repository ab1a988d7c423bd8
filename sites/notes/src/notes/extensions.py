"""Flask extension objects, created unbound and initialised in :func:`notes.create_app`."""

from __future__ import annotations

import warnings

# Flask-CKEditor warns at import that bleach (its optional sanitiser) is missing: we sanitise
# with nh3 in services.clean_html instead.
warnings.filterwarnings("ignore", message='The "bleach" library', category=UserWarning)

from flask_ckeditor import CKEditor  # noqa: E402
from flask_login import LoginManager  # noqa: E402
from flask_migrate import Migrate  # noqa: E402
from flask_sqlalchemy import SQLAlchemy  # noqa: E402
from flask_wtf.csrf import CSRFProtect  # noqa: E402
from sqlalchemy.orm import DeclarativeBase  # noqa: E402


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


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
ckeditor = CKEditor()
