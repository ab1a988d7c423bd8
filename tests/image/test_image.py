"""The container image, built and run for real with podman."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.containers import CA_BUNDLE, ROOT, flaskstack, podman
from tests.web import csrf

# the first test builds the base and the image (minutes on a cold machine)
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]
PASSWORD = "image password 1"


def test_notes_site_serves_stops_cleanly_and_keeps_data(each_image, containers) -> None:
    port, volume = free_port(), containers.volume()
    name = containers.run(each_image, "-p", f"127.0.0.1:{port}:85", "-v", f"{volume}:/web/data")
    containers.wait_healthy(name)
    # a new volume: the database is the image's empty one, migrated when the image was built
    assert "copied from the image's empty one at the latest migration" in containers.logs(name)
    url = f"http://127.0.0.1:{port}"
    home = requests.get(url, timeout=10)
    # a new site: the home page says how to make its administrator
    assert home.status_code == 200 and "users create" in home.text
    css = requests.get(f"{url}/static/style.css", timeout=10)
    assert css.status_code == 200 and "max-age" in css.headers["Cache-Control"]
    assert requests.get(f"{url}/static/vendor/ckeditor/ckeditor.js", timeout=10).ok
    assert requests.get(f"{url}/openapi.json", timeout=10).json()["openapi"].startswith("3.")

    web = requests.Session()
    r = web.post(f"{url}/register", timeout=10, data={
        "display_name": "Owner", "email": "owner@example.com", "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": csrf(web, f"{url}/register")})
    assert r.ok
    r = web.post(f"{url}/notes/new", timeout=10, data={
        "title": "Kept across restarts", "body": "<p>data</p>", "published": "y",
        "csrf_token": csrf(web, f"{url}/notes/new")})
    assert r.ok and r.url.endswith("/n/kept-across-restarts")

    podman(containers.env, "stop", "-t", "20", name)
    assert containers.inspect(name)["State"]["ExitCode"] == 0  # not 137: a graceful stop
    podman(containers.env, "start", name)
    containers.wait_healthy(name)
    assert "Kept across restarts" in requests.get(url, timeout=10).text
    assert "the database is at the latest migration" in containers.logs(name)


def test_settings_from_the_environment(built_image, containers) -> None:
    name = containers.run(built_image, "-e", "FLASKSTACK_PORT=8080", "-e", "FLASKSTACK_WORKERS=3",
                          "-e", "FLASKSTACK_MAX_UPLOAD=20m",
                          # uWSGI read these as options of its own and exited 3 before
                          "-e", "UWSGI_PROCESSES=4", "-e", "UWSGI_CHEAPER=2")
    containers.wait_healthy(name)
    assert ("ignoring UWSGI_CHEAPER, UWSGI_PROCESSES: uWSGI reads only the configuration the "
            "kit renders") in containers.logs(name)
    config = podman(containers.env, "exec", name, "flaskstack", "config").stdout
    assert re.search(r"^port\s+8080\s+\(env FLASKSTACK_PORT\)", config, re.M)
    assert re.search(r"^workers\s+3\s+\(env FLASKSTACK_WORKERS\)", config, re.M)
    assert "client_max_body_size 20971520;" in config
    # no Nginx or uWSGI worker runs as root
    script = (
        "import os\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        cmd = open(f'/proc/{pid}/cmdline','rb').read().replace(b'\\0',b' ').decode()\n"
        "        uid = [l for l in open(f'/proc/{pid}/status') if l.startswith('Uid:')][0]\n"
        "    except OSError:\n"
        "        continue\n"
        "    print(uid.split()[1], cmd)\n")
    listing = podman(containers.env, "exec", name, "python3", "-c", script).stdout
    workers = [line for line in listing.splitlines()
               if "nginx: worker" in line or ("uwsgi" in line and "--ini" in line)]
    uwsgi = [line for line in workers if "uwsgi" in line]
    assert len(uwsgi) == 4  # master + 3 workers
    non_master = [line for line in workers if "nginx: worker" in line] + uwsgi[1:]
    assert non_master and all(not line.startswith("0 ") for line in non_master), listing


def test_a_site_that_fails_to_import_stops_the_container(built_image, containers) -> None:
    name = containers.run(built_image, "-e", "FLASKSTACK_APP=no_such_site_module:app")
    podman(containers.env, "wait", name, timeout=120)
    assert containers.inspect(name)["State"]["ExitCode"] == 3
    logs = containers.logs(name)
    assert "No module named 'no_such_site_module'" in logs
    assert "the app failed to start" in logs


def test_save_rm_load_round_trip(built_image, containers, tmp_path: Path) -> None:
    env = containers.env
    copy = "localhost/flaskstack:roundtrip"
    podman(env, "tag", built_image, copy)
    archive = tmp_path / "nginx_flask_server.tar"
    assert flaskstack(env, "image", "save", "--engine", "podman", "--output", str(archive),
                      copy).returncode == 0
    assert flaskstack(env, "image", "rm", "--engine", "podman", copy).returncode == 0
    assert podman(env, "image", "exists", copy, check=False).returncode == 1
    assert flaskstack(env, "image", "load", "--engine", "podman", "--input",
                      str(archive)).returncode == 0
    listing = flaskstack(env, "image", "ls", "--engine", "podman").stdout
    assert re.search(r"^localhost/flaskstack\s+roundtrip\s", listing, re.M), listing
    port = free_port()
    name = containers.run(copy, "-p", f"127.0.0.1:{port}:85")
    containers.wait_healthy(name)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).ok
    podman(env, "rm", "-f", "-v", name)
    podman(env, "rmi", copy, check=False)


def test_cli_without_an_engine_fails_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "flaskstack", "image", "ls"],
                            capture_output=True, text=True, env={"PATH": str(tmp_path)},
                            check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ("flaskstack: error: no container engine available: docker "
                                     "or podman is not installed or its engine does not answer")


def test_a_users_own_site_on_the_image(built_image, containers, tmp_path: Path) -> None:
    env = containers.env
    tag = f"{built_image}-example"
    # examples/ as a user would write it, with a pin that breaks the kit's libraries (pydantic,
    # APIFlask's flask plugin) when it shares their venv: here it stays in the site's own venv
    context = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", context)
    with (context / "mysite" / "requirements.txt").open("a") as requirements:
        requirements.write("typing_extensions==4.8.0\n")
    podman(env, "build", "--format", "docker", "-t", tag, "--build-arg",
           f"FLASKSTACK_IMAGE={built_image}", "--secret", f"id=pipca,src={CA_BUNDLE}",
           str(context), timeout=900)
    port = free_port()
    name = containers.run(tag, "-p", f"127.0.0.1:{port}:85", "-v",
                          f"{containers.volume()}:/web/data")
    containers.wait_healthy(name)
    url = f"http://127.0.0.1:{port}"
    page = requests.get(url, timeout=10).text  # markdown (its own dependency) + its migration
    assert re.search(r"<p>Visit number <strong>\d+</strong>.</p>", page), page
    assert requests.get(f"{url}/static/site.css", timeout=10).text.startswith("body")
    # the site's `flask` commands work, by hand and as the stack's user, in the site's venv
    for argv in (["flask", "--app", "app", "routes"],
                 ["flaskstack", "exec", "--", "flask", "--app", "app", "routes"]):
        routes = podman(env, "exec", name, *argv).stdout
        assert "/slow" in routes, routes
    version = ("import importlib.metadata as m, sys; "
               "print(sys.prefix, m.version('typing_extensions'))")
    assert podman(env, "exec", name, "flaskstack", "exec", "--", "python3", "-c", version
                  ).stdout.split() == ["/opt/site", "4.8.0"]
    # the kit and the notes site keep theirs: the notes CLI (APIFlask, pydantic) still loads
    notes = podman(env, "exec", "-e", "FLASKSTACK_APP=notes:create_app()", name, "flaskstack",
                   "exec", "--", "flask", "--app", "notes", "users", "--help")
    assert "create" in notes.stdout
    slow: dict[str, object] = {}

    def call() -> None:
        r = requests.get(f"{url}/slow", timeout=30)
        slow.update(status=r.status_code, text=r.text)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.7)  # the request is in flight inside the app
    podman(env, "stop", "-t", "20", name)
    thread.join(30)
    assert slow == {"status": 200, "text": "finished"}
    assert containers.inspect(name)["State"]["ExitCode"] == 0
    podman(env, "rmi", "-f", tag, check=False)


def test_the_runtime_image_holds_no_build_or_network_tools(built_image, engine) -> None:
    found = podman(engine, "run", "--rm", "--no-healthcheck", "--entrypoint", "sh", built_image,
                   "-c", "for c in gcc cc make curl wget ping vi vim nano npm node; do "
                   "command -v $c; done; true").stdout
    assert found.strip() == ""
