"""deploy/compose.yaml for real on podman-compose: a proxy, two app replicas, MariaDB and Redis.

One project is brought up for the module; the tests run in order on it (shared state, a replica
stopped under load, a rolling update under load, down and up again) and it is removed at the
end, volumes and network included, even when a test fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.containers import ROOT, podman
from tests.load import Load, wait_for
from tests.web import PNG, csrf, form_token

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "compose password 1"


class Project:
    """One podman-compose project of deploy/compose.yaml on a port of 127.0.0.1."""

    def __init__(self, engine: dict[str, str], image: str, services: dict[str, str],
                 tmp: Path) -> None:
        self.name = f"fsc{uuid.uuid4().hex[:6]}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        secrets = tmp / "secrets"
        subprocess.run(["bash", str(ROOT / "deploy" / "secrets.sh"), str(secrets)], check=True,
                       capture_output=True, timeout=30)
        self.env = {**engine, "FLASKSTACK_IMAGE": image, "MARIADB_IMAGE": services["mariadb"],
                    "REDIS_IMAGE": services["redis"], "PUBLISH": f"127.0.0.1:{port}",
                    "SECRETS_DIR": str(secrets), "APP_REPLICAS": "2"}
        self.compose_command = [str(Path(sys.executable).parent / "podman-compose"), "-p",
                                self.name, "-f", str(COMPOSE_FILE)]

    def compose(self, *args: str, timeout: float = 300) -> str:
        # podman-compose can wait forever on a container that failed: always bounded
        result = subprocess.run([*self.compose_command, *args], env=self.env, text=True,
                                capture_output=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"podman-compose {args}: {result.stderr[-3000:]}"
        return result.stdout

    def containers(self, service: str) -> list[str]:
        return podman(self.env, "ps", "-a", "--format", "{{.Names}}", "--filter",
                      f"label=com.docker.compose.project={self.name}", "--filter",
                      f"label=com.docker.compose.service={service}").stdout.split()

    def replicas_seen(self, count: int = 20) -> set[str]:
        return {requests.get(f"{self.url}/healthz", timeout=10).headers["X-Replica"]
                for _ in range(count)}

    def wait_serving(self, timeout: float = 300) -> set[str]:
        """Until both replicas answer through the proxy; their names."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen = self.replicas_seen()
                if len(seen) == 2:
                    return seen
            except (requests.RequestException, KeyError):
                pass
            time.sleep(1)
        logs = {n: podman(self.env, "logs", "--tail", "30", n, check=False).stderr
                for s in ("proxy", "app") for n in self.containers(s)}
        raise AssertionError(f"the stack never served from 2 replicas: {logs}")

    def log_lines(self, service: str, *words: str, count: int = 40) -> list[str]:
        """The last ``count`` lines of the service's containers' logs holding one of ``words``
        (what a failed test shows of what the servers saw)."""
        lines = []
        for name in self.containers(service):
            logs = podman(self.env, "logs", "-t", name, check=False)
            lines += [f"{name} {line}" for line in (logs.stdout + logs.stderr).splitlines()
                      if any(word in line for word in words)]
        return lines[-count:]

    def remove(self) -> None:
        subprocess.run([*self.compose_command, "down", "-v", "-t", "5"], env=self.env,
                       capture_output=True, timeout=300, check=False)
        label = f"label=io.podman.compose.project={self.name}"
        for name in podman(self.env, "ps", "-aq", "--filter", label, check=False).stdout.split():
            podman(self.env, "rm", "-f", "-v", "-t", "0", name, check=False)
        for volume in podman(self.env, "volume", "ls", "-q", "--filter", label,
                             check=False).stdout.split():
            podman(self.env, "volume", "rm", "-f", volume, check=False)
        podman(self.env, "network", "rm", "-f", f"{self.name}_default", check=False)


def csrf_and_maker(session: requests.Session, url: str) -> tuple[str, str]:
    """A form's CSRF token, and the replica that made it."""
    page = session.get(url, timeout=10)
    return form_token(page.text), page.headers["X-Replica"]


def record(name: str, load: Load) -> None:
    """Request counts for the README and the closing note."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "scale-out.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {"requests": load.ok + len(load.failures), "failed": len(load.failures),
                  "replicas": sorted(load.replicas)}
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_sessions_uploads_and_the_secret_key_are_shared_by_the_replicas(project) -> None:
    url, web = project.url, requests.Session()
    token = csrf(web, f"{url}/register")
    r = web.post(f"{url}/register", timeout=10, data={
        "display_name": "Scale", "email": "scale@example.com", "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": token})
    assert r.ok
    crossed = 0  # forms made by one replica and accepted by the other: one secret key
    for i in range(8):
        token, maker = csrf_and_maker(web, f"{url}/notes/new")
        r = web.post(f"{url}/notes/new", timeout=10, data={
            "title": f"Scaled note {i}", "body": "<p>on MariaDB</p>", "published": "y",
            "csrf_token": token})
        assert r.ok and r.url.endswith(f"/n/scaled-note-{i}"), r.text[:300]
        crossed += r.history[0].headers["X-Replica"] != maker
    assert crossed > 0
    # signed in on every replica: the session lives in Redis
    pages = [web.get(f"{url}/my", timeout=10, allow_redirects=False) for _ in range(10)]
    assert {p.status_code for p in pages} == {200}
    assert len({p.headers["X-Replica"] for p in pages}) == 2
    # an upload through one replica is on the shared volume: served by the proxy, seen by all
    token = csrf(web, f"{url}/notes/new")
    r = web.post(f"{url}/upload", files={"upload": ("x.png", PNG, "image/png")},
                 headers={"X-CSRFToken": token}, timeout=10)
    assert r.ok and r.json()["uploaded"] == 1, r.text
    media = requests.get(f"{url}{r.json()['url']}", timeout=10)
    assert media.status_code == 200 and media.content.startswith(PNG[:8])  # re-encoded
    assert "X-Replica" not in media.headers  # Nginx served it, not an app
    for app in project.containers("app"):
        podman(project.env, "exec", app, "test", "-s", f"/web/data/uploads/{r.json()['fileName']}")


def test_unpublished_or_deleted_is_never_served_again_by_the_proxy(project) -> None:
    """Issue 18, item 4, scaled out: whichever replica makes the change purges the proxy's
    cache (FLASKSTACK_CACHE_PURGE_TO=proxy:8090), so the next anonymous request is a 404."""
    url, web = project.url, requests.Session()
    token = csrf(web, f"{url}/register")
    assert web.post(f"{url}/register", timeout=10, data={
        "display_name": "Purger", "email": "purge@example.com", "password": PASSWORD,
        "confirm": PASSWORD, "csrf_token": token}).ok
    for action in ("publish", "delete"):  # publish toggles: the note is unpublished
        made = web.post(f"{url}/notes/new", timeout=10, data={
            "title": f"Purged {action}", "body": "<p>soon gone</p>", "published": "y",
            "csrf_token": csrf(web, f"{url}/notes/new")})
        assert made.ok
        path = made.url.removeprefix(url)
        edit = re.search(r'href="/notes/(\d+)/edit"', made.text)
        assert edit, made.text[:300]
        note_id = edit.group(1)
        for _ in range(2):
            anonymous = requests.get(url + path, timeout=10)
        assert anonymous.headers["X-Cache-Status"] == "HIT"
        done = web.post(f"{url}/notes/{note_id}/{action}", timeout=10,
                        data={"csrf_token": csrf(web, f"{url}/my")})
        assert done.ok
        assert requests.get(url + path, timeout=10).status_code == 404
        assert f"Purged {action}" not in requests.get(f"{url}/", timeout=10).text


def test_stopping_a_replica_under_load_fails_no_request(project) -> None:
    apps = project.containers("app")
    with Load(f"{project.url}/", threads=4, limit_s=120) as load:
        assert wait_for(lambda: len(load.replicas) == 2)
        podman(project.env, "stop", "-t", "20", apps[0])
        count = load.ok
        assert wait_for(lambda: load.ok > count + 200)
    record("replica stopped under load", load)
    assert load.failures == []
    assert podman(project.env, "inspect", "--format", "{{.State.ExitCode}}",
                  apps[0]).stdout.strip() == "0"  # finished its requests, stopped gracefully
    podman(project.env, "start", apps[0])
    project.wait_serving()


def test_rolling_update_under_load_fails_no_request(project) -> None:
    before = project.replicas_seen()
    token = podman(project.env, "exec", project.containers("app")[0], "flaskstack", "exec", "--",
                   "flask", "--app", "notes", "tokens", "create", "scale@example.com"
                   ).stdout.strip()
    api = {"Authorization": f"Bearer {token}"}
    # GETs, and POSTs that create notes: Nginx may not retry those, so none may reach a replica
    # that is going away
    reads = Load(f"{project.url}/", threads=3, limit_s=600)
    writes = Load(f"{project.url}/api/notes", threads=2, limit_s=600, method="POST", expect=201,
                  json={"title": "Rolling", "body": "<p>written during the update</p>"},
                  headers=api)
    with reads, writes:
        assert wait_for(lambda: len(reads.replicas) == 2 and writes.ok > 0)
        rolled = subprocess.run(
            ["bash", str(ROOT / "deploy" / "rolling-update.sh")], text=True,
            capture_output=True, timeout=540, check=False,
            env={**project.env, "ENGINE": "podman", "PROJECT": project.name,
                 "COMPOSE": project.compose_command[0], "COMPOSE_YAML": str(COMPOSE_FILE)})
        count = reads.ok
        assert wait_for(lambda: reads.ok > count + 100)
    record("rolling update under load: GET /", reads)
    record("rolling update under load: POST /api/notes", writes)
    assert rolled.returncode == 0, rolled.stderr
    assert "2 app replicas replaced and healthy" in rolled.stdout
    assert reads.failures == [] and writes.failures == [], (
        reads.failures, writes.failures,
        project.log_lines("proxy", "[error]", "[warn]", "flaskstack:"),
        project.log_lines("app", "ready:", "flaskstack:"))
    after = project.wait_serving()
    assert not after & before  # both replicas are new containers
    written, following = 0, "/api/notes?per_page=100"  # the list pages by its `next` links
    while following:
        listed = requests.get(project.url + following.removeprefix(project.url), headers=api,
                              timeout=10).json()
        written += sum(1 for n in listed["items"] if n["title"] == "Rolling")
        following = listed["next"]
    assert written == writes.ok  # every note written once: none lost, none twice


def test_down_and_up_keeps_the_data(project) -> None:
    project.compose("down", "-t", "20")
    assert project.containers("app") == []
    project.compose("up", "-d")
    project.wait_serving()
    page = requests.get(f"{project.url}/?q=Scaled+note+7", timeout=10)
    assert page.status_code == 200 and "Scaled note 7" in page.text
