"""Excel export and import (placeholder: filled in by the Excel work)."""

from apiflask import APIFlask


def init_app(app: APIFlask) -> None:
    """Register the export/import routes and CLI commands."""
