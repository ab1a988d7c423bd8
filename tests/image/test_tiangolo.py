"""Sites made for tiangolo/uwsgi-nginx-flask on our image, with only their FROM line changed.

Their three test apps' layouts (written anew in tests/image/tiangolo/) are built FROM each
Python's image and checked as a client sees them: the responses, the static files, the upload
limit, the prestart's output and effects, a stop and start of the same container; then each of
their variables.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.containers import Containers, podman

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]
APPS = Path(__file__).parent / "tiangolo"
CUSTOM_ENV = {  # as their test of custom_app runs it
    "UWSGI_INI": "/application/custom_app/uwsgi.ini",
    "LISTEN_PORT": "8080",
    "STATIC_URL": "/content",
    "STATIC_PATH": "/application/custom_app/content",
}


def build_app(containers: Containers, image: str, app: str, tmp_path: Path) -> str:
    """Their Dockerfile with only the FROM line changed to ``image``."""
    context = tmp_path / app
    shutil.copytree(APPS / app, context)
    dockerfile = context / "Dockerfile"
    first, rest = dockerfile.read_text().split("\n", 1)
    assert first.startswith("FROM tiangolo/uwsgi-nginx-flask:")
    dockerfile.write_text(f"FROM {image}\n{rest}")
    tag = f"{image}-{app.replace('_', '-')}"
    podman(containers.env, "build", "--format", "docker", "-t", tag, str(context), timeout=900)
    return tag


def start(containers: Containers, tag: str, inside: int, env: dict[str, str] | None = None,
          ) -> tuple[str, str]:
    port = free_port()
    pairs = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
    name = containers.run(tag, "-p", f"127.0.0.1:{port}:{inside}", *pairs)
    containers.wait_healthy(name)
    return name, f"http://127.0.0.1:{port}"


def restart(containers: Containers, name: str) -> None:
    """Their tests stop and start the same container: it must serve again."""
    podman(containers.env, "stop", "-t", "20", name)
    assert containers.inspect(name)["State"]["ExitCode"] == 0  # a graceful stop
    podman(containers.env, "start", name)
    containers.wait_healthy(name)


def python_of(image: str) -> str:
    return image.rsplit("python", 1)[1]


def text(url: str) -> str:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    return response.text


def test_simple_app(each_image: str, containers: Containers, tmp_path: Path) -> None:
    tag = build_app(containers, each_image, "simple_app", tmp_path)
    name, url = start(containers, tag, 80)  # LISTEN_PORT's default: 80
    body = b"x" * (12 * 1024 * 1024)  # over our own 10m default: NGINX_MAX_UPLOAD 0 = no limit
    for _ in ("first start", "after a stop and start"):
        assert text(url) == f"Hello from Flask on Python {python_of(each_image)} - simple app"
        static = requests.get(f"{url}/static/test.txt", timeout=10)
        assert static.text == "Static test" and "max-age" in static.headers["Cache-Control"]
        upload = requests.post(f"{url}/upload", data=body, timeout=60)
        assert upload.text == f"received {len(body)} bytes"
        restart(containers, name)
    assert "tiangolo mode (/app/main.py exists)" in containers.logs(name)
    podman(containers.env, "rmi", "-f", tag, check=False)


def test_custom_app(each_image: str, containers: Containers, tmp_path: Path) -> None:
    tag = build_app(containers, each_image, "custom_app", tmp_path)
    name, url = start(containers, tag, 8080, {**CUSTOM_ENV, "STATIC_INDEX": "1"})
    for _ in ("first start", "after a stop and start"):
        assert text(url) == "<html><body><h1>Index from STATIC_INDEX</h1></body></html>"
        assert text(f"{url}/api") == (f"Hello from Flask on Python {python_of(each_image)} - "
                                      "custom app")
        assert text(f"{url}/content/test.txt") == "Static test"  # Nginx, not the app
        # their prestart ran as root, before the app, and what it exported reached the app
        assert text(f"{url}/prestart") == "uid 0; exported by prestart.sh"
        restart(containers, name)
    logs = containers.logs(name)
    assert logs.count("custom prestart.sh running as uid 0") == 3  # each start
    podman(containers.env, "rmi", "-f", tag, check=False)


def test_custom_nginx_app(each_image: str, containers: Containers, tmp_path: Path) -> None:
    tag = build_app(containers, each_image, "custom_nginx_app", tmp_path)
    name, url = start(containers, tag, 8080)  # the port its own nginx.conf listens on
    for _ in ("first start", "after a stop and start"):
        assert text(url) == (f"Hello from Flask on Python {python_of(each_image)} - custom "
                             "nginx.conf")
        assert text(f"{url}/static/test.txt") == "Static, from Flask"  # no static location
        restart(containers, name)
    # its `user nginx;`: Nginx's workers run as nginx, uWSGI's as www-data, neither as root
    users = podman(containers.env, "top", name, "user", "args").stdout
    assert re.search(r"^nginx\s+nginx: worker process", users, re.M), users
    assert not re.search(r"^root\s+nginx: worker", users, re.M), users
    podman(containers.env, "rmi", "-f", tag, check=False)


def test_each_of_their_variables(built_image: str, containers: Containers,
                                 tmp_path: Path) -> None:
    tag = build_app(containers, built_image, "custom_app", tmp_path)
    name, url = start(containers, tag, 8081, {
        **CUSTOM_ENV, "LISTEN_PORT": "8081",
        "PRE_START_PATH": "/application/custom_app/alt-prestart.sh",
        "NGINX_MAX_UPLOAD": "1m", "NGINX_WORKER_PROCESSES": "3",
        "NGINX_WORKER_CONNECTIONS": "512", "NGINX_WORKER_OPEN_FILES": "900",
        # uWSGI read these itself and exited 3 ("invalid cheaper value") on our image before
        "UWSGI_PROCESSES": "4", "UWSGI_CHEAPER": "2",
        "UWSGI_LOGTO": "/dev/null",  # a stray one: never reaches uWSGI
    })
    assert text(url) == "the app answered / (STATIC_INDEX should have)"  # no STATIC_INDEX
    assert requests.post(f"{url}/api", data=b"x" * (1024 * 1024 + 1), timeout=30
                         ).status_code == 413
    assert text(f"{url}/content/test.txt") == "Static test"
    logs = containers.logs(name)
    assert "the prestart named by PRE_START_PATH ran" in logs
    assert "custom prestart.sh running" not in logs
    assert "ignoring UWSGI_LOGTO: uWSGI reads only the configuration the kit renders" in logs
    config = podman(containers.env, "exec", name, "flaskstack", "config").stdout
    for setting, value, variable in (
            ("port", "8081", "LISTEN_PORT"), ("workers", "4", "UWSGI_PROCESSES"),
            ("cheaper", "2", "UWSGI_CHEAPER"), ("nginx_workers", "3", "NGINX_WORKER_PROCESSES"),
            ("nginx_connections", "512", "NGINX_WORKER_CONNECTIONS"),
            ("nginx_open_files", "900", "NGINX_WORKER_OPEN_FILES"),
            ("max_upload", "1048576", "NGINX_MAX_UPLOAD"),
            ("app", "custom_app.main:custom_app", "/application/custom_app/uwsgi.ini")):
        assert re.search(rf"^{setting}\s+{re.escape(value)}\s+\(tiangolo {re.escape(variable)}",
                         config, re.M), (setting, config[:3000])
    for line in ("worker_processes 3;", "worker_connections 512;", "worker_rlimit_nofile 900;",
                 "processes = 4", "cheaper = 2", "client_max_body_size 1048576;"):
        assert line in config, line
    podman(containers.env, "rmi", "-f", tag, check=False)
