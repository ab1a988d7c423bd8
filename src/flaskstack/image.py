"""`flaskstack image …`: build, save, load, remove and list the container image (placeholder)."""

import click


@click.group()
def image() -> None:
    """Build and move the flaskstack container image (docker or podman)."""
