"""REST API under /api (placeholder: filled in by the API work)."""

from apiflask import APIFlask


def init_app(app: APIFlask) -> None:
    """Register the API blueprint."""
