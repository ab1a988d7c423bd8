"""Real podman for the tests: a private containers.conf, the locally made base image, the
flaskstack image built once per test session, and cleanup even on failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = "localhost/debian:bookworm-slim"  # the service images' base (and Python 3.11's)
# the base of each Python tag (flaskstack image build --python): the first is the default
PYTHON_BASES = {"3.13": "localhost/debian:trixie-slim", "3.11": BASE}
# another tag lets two checkouts build and test images side by side on one machine; each
# Python's image is tagged TAG-pythonX.Y
TAG = os.environ.get("FLASKSTACK_TEST_IMAGE", "localhost/flaskstack:test")
SERVICE_IMAGES = {  # stand-ins for mariadb:11 and redis:7 (tests/images/README.md)
    "mariadb": "localhost/flaskstack-test/mariadb:10.11",
    "redis": "localhost/flaskstack-test/redis:7.0",
}
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


def engine_env(tmp: Path) -> dict[str, str]:
    conf = tmp / "containers.conf"
    conf.write_text(CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf), "BUILDAH_FORMAT": "docker"}


def podman(env: dict[str, str], *args: str, check: bool = True, timeout: float = 600,
           ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr[-3000:]}")
    return result


def flaskstack(env: dict[str, str], *args: str, timeout: float = 1800
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flaskstack", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def make_base(env: dict[str, str], image: str) -> None:
    made = subprocess.run(["bash", str(ROOT / "scripts" / "container-base.sh"), image], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert made.returncode == 0, made.stderr


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    assert shutil.which("podman"), "podman is not installed (bash scripts/install.sh test)"
    env = engine_env(tmp_path_factory.mktemp("podman"))
    make_base(env, BASE)
    return env


_built: dict[str, str] = {}


def build_image(env: dict[str, str], python: str) -> str:
    """The flaskstack image for one Python, built once per session with `flaskstack image
    build --python` (podman's cache makes reruns fast)."""
    if python not in _built:
        make_base(env, PYTHON_BASES[python])
        tag = f"{TAG}-python{python}"
        result = flaskstack(env, "image", "build", "--engine", "podman", "--tag", tag,
                            "--python", python, "--context", str(ROOT),
                            "--base-image", PYTHON_BASES[python], "--ca-bundle", CA_BUNDLE)
        assert result.returncode == 0, result.stderr[-5000:]
        _built[python] = tag
    return _built[python]


@pytest.fixture(scope="session")
def built_image(engine: dict[str, str]) -> str:
    """The image of the default Python (the tests that need one image only)."""
    return build_image(engine, next(iter(PYTHON_BASES)))


@pytest.fixture(scope="session", params=list(PYTHON_BASES), ids=lambda v: f"python{v}")
def each_image(engine: dict[str, str], request: pytest.FixtureRequest) -> str:
    """Each Python's image in turn (the key container tests run on both tags)."""
    return build_image(engine, request.param)


@pytest.fixture(scope="session")
def service_images(engine: dict[str, str]) -> dict[str, str]:
    """MariaDB and Redis images built from Debian's packages (no registry is reachable)."""
    for name, tag in SERVICE_IMAGES.items():
        podman(engine, "build", "--format", "docker", "--network", "host", "--build-arg",
               f"BASE_IMAGE={BASE}", "--tag", tag, str(ROOT / "tests" / "images" / name),
               timeout=900)
    return dict(SERVICE_IMAGES)


class Containers:
    """Names containers uniquely and removes every one of them at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.names: list[str] = []
        self.volumes: list[str] = []

    def name(self, prefix: str = "fs") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        return name

    def volume(self) -> str:
        name = f"fsvol-{uuid.uuid4().hex[:8]}"
        self.volumes.append(name)
        return name

    def run(self, image: str, *args: str, name: str | None = None) -> str:
        name = name or self.name()
        podman(self.env, "run", "-d", "--name", name, *args, image)
        return name

    def wait_healthy(self, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.inspect(name)["State"]
            if not state["Running"]:
                raise AssertionError(f"{name} exited: {self.logs(name)[-3000:]}")
            if podman(self.env, "healthcheck", "run", name, check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} never became healthy: {self.logs(name)[-3000:]}")

    def inspect(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads(podman(self.env, "inspect", name).stdout)[0]

    def logs(self, name: str) -> str:
        result = podman(self.env, "logs", name, check=False)
        return result.stdout + result.stderr

    def cleanup(self) -> None:
        for name in self.names:
            # -v: with its anonymous volumes (the image declares VOLUME /web/data)
            podman(self.env, "rm", "-f", "-v", "-t", "0", name, check=False)
        for volume in self.volumes:
            podman(self.env, "volume", "rm", "-f", volume, check=False)


@pytest.fixture
def containers(engine: dict[str, str]) -> Iterator[Containers]:
    made = Containers(engine)
    yield made
    made.cleanup()
