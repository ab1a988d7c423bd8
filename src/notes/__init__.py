"""notes: the default site served by flaskstack, a small notes publishing CMS."""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask


def create_app(config: dict[str, Any] | None = None) -> APIFlask:
    """Application factory: ``flask --app notes …`` and ``notes:create_app()``."""
    app = APIFlask(
        __name__,
        title="notes API",
        version="1",
        spec_path="/openapi.json",
        docs_path="/api/docs",
    )
    # configuration, extensions, auth, pages, admin: see the modules of this package
    from . import api, excel

    if config:
        app.config.update(config)
    api.init_app(app)
    excel.init_app(app)
    return app
