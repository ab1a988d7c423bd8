"""Faults injected for real into deploy/compose.yaml on podman-compose: Redis killed and back
empty, MariaDB restarted under load, an app replica cut off from the network under load.

Each test asserts what clients saw (status codes, failed requests) and what was stored or is
served afterwards, and records its counts in test-artifacts/faults.json. One project for the
module, as in test_compose.py; it is removed at the end, even when a test fails.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.containers import podman
from tests.deploy.test_compose import ARTIFACTS, Project
from tests.load import wait_for
from tests.web import csrf

pytestmark = [pytest.mark.container, pytest.mark.timeout(1200)]
PASSWORD = "faults password 1"


@dataclass
class Answer:
    at: float  # when it was sent (monotonic)
    status: int  # 0: no answer (connection error, timeout)
    seconds: float
    replica: str


@dataclass
class Clients:
    """A few threads sending GETs (a new connection each), every answer kept with its time."""

    url: str
    threads: int = 4
    timeout: float = 30
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + 300  # bounded, whatever the test does
        while not self.stopping.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            try:
                r = requests.get(self.url, timeout=self.timeout, headers=self.headers)
                answer = Answer(start, r.status_code, time.monotonic() - start,
                                r.headers.get("X-Replica", ""))
            except requests.RequestException:
                answer = Answer(start, 0, time.monotonic() - start, "")
            self.answers.append(answer)  # list.append is atomic

    def __enter__(self) -> Clients:
        self.workers = [threading.Thread(target=self.run) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(60)

    def ok_after(self, moment: float) -> int:
        return sum(a.status == 200 for a in self.answers if a.at > moment)

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]


def record(name: str, **figures: Any) -> None:
    """Measured figures for the README and the closing note."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "faults.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = figures
    path.write_text(json.dumps(data, indent=2) + "\n")


def started_at(project: Project) -> dict[str, str]:
    """Each app container's start time: the same after a fault means it was not restarted."""
    return {name: podman(project.env, "inspect", "--format", "{{.State.StartedAt}}",
                         name).stdout.strip() for name in project.containers("app")}


def health(project: Project) -> dict[str, dict[str, Any]]:
    """/healthz as each replica answers it through the proxy, by replica."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(20):
        r = requests.get(f"{project.url}/healthz", timeout=30)
        seen[r.headers["X-Replica"]] = {"code": r.status_code, **r.json()}
    return seen


def all_ok(project: Project) -> bool:
    try:
        return all(state["status"] == "ok" for state in health(project).values())
    except (requests.RequestException, KeyError, ValueError):
        return False


def sign_up(project: Project, email: str) -> requests.Session:
    web = requests.Session()
    token = csrf(web, f"{project.url}/register")
    r = web.post(f"{project.url}/register", timeout=10, data={
        "email": email, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token})
    assert r.ok and r.url.endswith("/my"), r.text[:300]
    return web


def test_redis_stopped_broken_requests_take_no_replica_out_then_back_empty(project) -> None:
    """Redis (sessions) stopped: 20 requests of a signed-in user fail with a real 5xx from a
    replica, none takes a replica out of the proxy's rotation, and /healthz says why on both.
    Redis comes back empty: the user is asked to sign in again, cleanly."""
    web = sign_up(project, "redis@example.com")
    redis = project.containers("redis")[0]
    before = started_at(project)
    # it will come back empty: no snapshot to reload, none written on the way down
    podman(project.env, "exec", redis, "redis-cli", "config", "set", "save", "")
    podman(project.env, "exec", redis, "rm", "-f", "/data/dump.rdb")
    podman(project.env, "stop", "-t", "5", redis)
    try:
        answers = [web.get(f"{project.url}/my", timeout=30, allow_redirects=False)
                   for _ in range(20)]
        assert {r.status_code for r in answers} <= {500, 503}, [r.status_code for r in answers]
        assert all(r.content and r.headers.get("X-Replica") for r in answers)  # the app's own
        # readers need no session: the home page, from both replicas (each query its own cache
        # key, so the proxy's cache sends every one to a replica)
        pages = [requests.get(f"{project.url}/?r={i}", timeout=30) for i in range(10)]
        assert [p.status_code for p in pages] == [200] * 10
        assert len({p.headers["X-Replica"] for p in pages}) == 2
        # both replicas still in rotation, each saying what is wrong (readers are still served)
        states = health(project)
        assert len(states) == 2, states
        for state in states.values():
            assert state["code"] == 200 and state["status"] == "degraded", state
            assert state["checks"]["sessions"] == {
                "ok": False, "store": "redis", "error": "unreachable"}
            assert state["checks"]["database"]["ok"] is True
    finally:
        podman(project.env, "start", redis)
    assert wait_for(lambda: podman(project.env, "exec", redis, "redis-cli", "ping",
                                   check=False).stdout.strip() == "PONG")
    assert podman(project.env, "exec", redis, "redis-cli", "dbsize").stdout.strip() == "0"
    # back empty: the session is gone; a clean redirect to sign in, nothing else breaks
    assert wait_for(lambda: all_ok(project))
    r = web.get(f"{project.url}/my", timeout=10, allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"], (r.status_code, r.text)
    assert requests.get(f"{project.url}/", timeout=10).status_code == 200
    token = csrf(web, f"{project.url}/login")
    r = web.post(f"{project.url}/login?next=/my", timeout=10, data={
        "email": "redis@example.com", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 200 and r.url.endswith("/my"), r.text[:300]
    assert started_at(project) == before  # no replica was restarted
    record("redis stopped (compose): 20 requests of a signed-in user",
           requests=20, statuses=sorted({r.status_code for r in answers}),
           slowest_s=round(max(r.elapsed.total_seconds() for r in answers), 2),
           empty_answers=0, replicas_in_rotation=2, reader_pages_ok=10)


def test_mariadb_restart_under_load_fails_only_during_the_outage(project) -> None:
    """MariaDB stopped for 3 s and started again under GET load through the proxy: failures
    are the app's 503s only while it is away (never a 500, a 502 or no answer); the replicas
    are not restarted and serve again as soon as it accepts connections."""
    mariadb = project.containers("mariadb")[0]
    before = started_at(project)
    # the load bypasses the proxy's cache (as a signed-in user's requests do): it sees the app
    bypass = {"Authorization": "Bearer not-a-token"}
    with Clients(f"{project.url}/", headers=bypass) as load:
        assert wait_for(lambda: load.ok_after(0) > 50)
        down = time.monotonic()
        podman(project.env, "stop", "-t", "10", mariadb)
        stopped = time.monotonic()
        time.sleep(3)
        podman(project.env, "start", mariadb)
        started = time.monotonic()
        assert wait_for(lambda: podman(project.env, "healthcheck", "run", mariadb,
                                       check=False).returncode == 0, timeout=120)
        up = time.monotonic()
        assert wait_for(lambda: load.ok_after(up) > 200, timeout=120)
    failed = load.failed()
    assert failed, "the outage was not seen"
    assert {a.status for a in failed} == {503}, sorted({a.status for a in failed})
    assert all(down <= a.at <= up for a in failed)
    first_ok = min(a.at + a.seconds for a in load.answers if a.at > stopped and a.status == 200)
    last_failed = max(a.at + a.seconds for a in failed)
    assert started_at(project) == before  # recovered without restarting any replica
    assert len({a.replica for a in load.answers if a.at > up and a.status == 200}) == 2
    record("mariadb restart under load (compose)", requests=len(load.answers),
           failed=len(failed), failed_statuses=[503],
           stop_to_healthy_s=round(up - down, 1),
           first_to_last_503_s=round(last_failed - min(a.at for a in failed), 1),
           first_200_after_podman_start_s=round(first_ok - started, 2))


def test_a_replica_cut_off_from_the_network_loses_no_get(project) -> None:
    """One app replica disconnected from the project's network under GET load: the proxy takes
    it out (connect timeout, then it no longer resolves) and retries elsewhere — no GET fails;
    reconnected, it is back in rotation."""
    network = f"{project.name}_default"
    apps = project.containers("app")
    cut = apps[0]
    cut_name = podman(project.env, "inspect", "--format", "{{.Config.Hostname}}",
                      cut).stdout.strip()
    attached = json.loads(podman(project.env, "inspect", "--format",
                                 "{{json .NetworkSettings.Networks}}", cut).stdout)[network]
    # reconnected as Compose attached it: under its service name too, which the proxy resolves
    aliases = [f"--alias={alias}" for alias in attached.get("Aliases") or []]
    assert "--alias=app" in aliases, attached
    # a request in flight on the replica when it is cut waits for Nginx's read timeout
    # (request_timeout + 5 s) before it is retried elsewhere: the clients wait longer than that
    with Clients(f"{project.url}/", timeout=120) as load:
        assert wait_for(lambda: {a.replica for a in load.answers} >= {cut_name})
        start = time.monotonic()
        podman(project.env, "network", "disconnect", network, cut)
        cut_at = time.monotonic()
        assert wait_for(lambda: load.ok_after(cut_at + 10) > 100, timeout=120)
        during = [a for a in load.answers if a.at >= start]  # until reconnected
        podman(project.env, "network", "connect", *aliases, network, cut)
        back = time.monotonic()
        assert wait_for(lambda: any(a.replica == cut_name and a.at > back
                                    for a in load.answers), timeout=120)
    timeline = [(round(a.at - cut_at, 2), a.status, round(a.seconds, 2), a.replica)
                for a in load.answers if a.seconds > 0.5 or a.status != 200]
    (ARTIFACTS / "network-cut.json").write_text(json.dumps({
        "back_s": round(back - cut_at, 2), "slow_or_failed": timeline,
        "proxy_log": podman(project.env, "logs", "--tail", "60", project.containers("proxy")[0],
                            check=False).stderr.splitlines()}, indent=1))
    assert load.failed() == [], load.failed()[:10]
    assert not any(a.replica == cut_name for a in load.answers if cut_at + 10 < a.at < back)
    slow = sorted(a.seconds for a in during)
    after = sorted(a.seconds for a in load.answers if a.at >= back)
    record("app replica cut off from the network under load (compose)",
           requests=len(load.answers), failed=0, while_cut=len(during),
           slowest_while_cut_s=round(slow[-1], 2),
           median_while_cut_s=round(slow[len(slow) // 2], 3),
           over_1s_while_cut=sum(s > 1 for s in slow),
           after_reconnect=len(after), slowest_after_reconnect_s=round(after[-1], 2),
           back_in_rotation_after_s=round(min(a.at for a in load.answers
                                              if a.at > back and a.replica == cut_name) - back, 1))
