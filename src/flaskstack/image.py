"""``flaskstack image …``: build, save, load, remove and list the container image.

Named after the operations users of the original image know (``docker build/save/load/rmi/
images``). Uses ``docker`` when a Docker engine answers, else ``podman``; ``--engine`` chooses.
On hosts where podman needs a particular runtime or limits, export ``CONTAINERS_CONF``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import click

from . import exits

DEFAULT_TAG = "nginx_flask_server"
# The Python each tag carries, and the Debian release that brings it (and Nginx): the first is
# the default (also tagged latest). Which is supported how long: docs/start/image-tags.md.
PYTHONS = {"3.13": "debian:trixie-slim", "3.11": "debian:bookworm-slim"}
DEFAULT_PYTHON = next(iter(PYTHONS))


def fail(message: str) -> NoReturn:
    exits.fail(message, exits.Exit.ERROR)


def find_engine(choice: str | None) -> str:
    """``docker`` when its engine answers, else ``podman``; one clear line when neither."""
    candidates = [choice] if choice else ["docker", "podman"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        if name == "docker":
            answer = subprocess.run([path, "info"], capture_output=True, timeout=20,
                                    check=False)
            if answer.returncode != 0:
                continue
        return path
    wanted = choice or "docker or podman"
    fail(f"no container engine available: {wanted} is not installed or its engine does not "
         "answer")


def build_context(given: str | None) -> Path:
    """The flaskstack checkout to build from: ``--context``, else the current directory or the
    nearest folder above it that holds the Dockerfile (an installed kit has none)."""
    start = Path(given or os.getcwd()).resolve()
    for folder in [start] if given else [start, *start.parents]:
        if (folder / "Dockerfile").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    where = f"in {start}" if given else f"in {start} or above it"
    fail(f"no flaskstack Dockerfile {where}: run `flaskstack image build` in a flaskstack "
         "checkout, or give --context")


def run(argv: list[str]) -> None:
    """Run an engine command with its progress on the terminal; its failure is ours."""
    click.echo("+ " + " ".join(argv), err=True)
    code = subprocess.run(argv, check=False).returncode
    if code != 0:
        fail(f"{Path(argv[0]).name} {argv[1]} failed (exit status {code})")


engine_option = click.option("--engine", type=click.Choice(["docker", "podman"]),
                             help="Container engine (default: docker if it answers, else podman).")


@click.group()
def image() -> None:
    """Build and move the flaskstack container image (docker or podman)."""


def build_tags(tag: str | None, python: str) -> list[str]:
    """``--tag`` as given; else ``nginx_flask_server:pythonX.Y`` (and ``:latest`` for the
    default Python)."""
    if tag:
        return [tag]
    tags = [f"{DEFAULT_TAG}:python{python}"]
    return [*tags, f"{DEFAULT_TAG}:latest"] if python == DEFAULT_PYTHON else tags


@image.command()
@click.option("--tag", "-t", help="Image name [default: nginx_flask_server:pythonX.Y, and "
              "nginx_flask_server:latest for the default Python].")
@click.option("--python", type=click.Choice(list(PYTHONS)), default=DEFAULT_PYTHON,
              show_default=True,
              help="The Python in the image: 3.13 on Debian 13, 3.11 on Debian 12.")
@click.option("--base-image", help="Base image (Dockerfile ARG BASE_IMAGE) [default: the "
              "Debian release of --python].")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle for pip/npm inside the build (a proxy that re-signs HTTPS).")
@click.option("--context", type=click.Path(file_okay=False),
              help="The flaskstack checkout to build (default: the one you are in).")
@engine_option
def build(tag: str | None, python: str, base_image: str | None, ca_bundle: str | None,
          context: str | None, engine: str | None) -> None:
    """Build the image from a flaskstack checkout's Dockerfile."""
    root = build_context(context)
    binary = find_engine(engine)
    tags = build_tags(tag, python)
    argv = [binary, "build", *(arg for t in tags for arg in ("-t", t)),
            "-f", str(root / "Dockerfile")]
    if Path(binary).name == "podman":
        argv += ["--format", "docker"]  # keeps HEALTHCHECK
    argv += ["--build-arg", f"BASE_IMAGE={base_image or PYTHONS[python]}"]
    if ca_bundle:
        argv += ["--secret", f"id=pipca,src={ca_bundle}"]
    run([*argv, str(root)])
    click.echo(f"built {', '.join(tags)}")


@image.command()
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Archive to write.")
@click.argument("tag", default=DEFAULT_TAG)
@engine_option
def save(output: str, tag: str, engine: str | None) -> None:
    """Save TAG to an archive (Docker's format) to copy to another machine."""
    binary = find_engine(engine)
    argv = [binary, "save", "-o", output]
    if Path(binary).name == "podman":
        argv += ["--format", "docker-archive"]
    run([*argv, tag])


@image.command()
@click.option("--input", "-i", "input_", required=True,
              type=click.Path(exists=True, dir_okay=False), help="Archive to read.")
@engine_option
def load(input_: str, engine: str | None) -> None:
    """Load an image archive made by `image save`."""
    run([find_engine(engine), "load", "-i", input_])


@image.command(name="rm")
@click.argument("tag", default=DEFAULT_TAG)
@engine_option
def remove(tag: str, engine: str | None) -> None:
    """Remove the image TAG."""
    run([find_engine(engine), "rmi", tag])


@image.command(name="ls")
@engine_option
def list_images(engine: str | None) -> None:
    """List the images."""
    run([find_engine(engine), "images"])
