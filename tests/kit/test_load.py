"""Behaviour under load: reload with zero failed requests, 1024 concurrent connections, roles."""

from __future__ import annotations

import re
import resource
import shutil
import signal
import subprocess
import threading
import time

import pytest
import requests
from bench.run import wrk_failures

from tests.conftest import free_port

pytestmark = pytest.mark.slow


class Load:
    """Bounded background load from a few threads, counting every failure."""

    def __init__(self, url: str, threads: int = 6, limit_s: float = 60) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self.replicas: set[str] = set()
        self.last: str = ""
        self.stop_at = time.monotonic() + limit_s
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stopping.is_set() and time.monotonic() < self.stop_at:
            try:
                r = requests.get(self.url, timeout=30)  # a new connection every time
                with self.lock:
                    if r.status_code == 200:
                        self.ok += 1
                        self.bodies.add(r.text)
                        self.last = r.text
                        self.replicas.add(r.headers.get("X-Replica", ""))
                    else:
                        self.failures.append(f"HTTP {r.status_code}")
            except requests.RequestException as e:
                with self.lock:
                    self.failures.append(repr(e))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(60)


def wait_for(condition, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_reload_under_load_fails_no_request_and_loads_new_code(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--workers", "2").start()
    with Load(stack.url) as load:
        assert wait_for(lambda: load.ok > 50)
        probe = stack.app_dir / "probe.py"
        probe.write_text(probe.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
        result = stack.cli("reload")
        assert result.returncode == 0, result.stderr
        assert wait_for(lambda: load.last.startswith("v2"))
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
        stack.proc.send_signal(signal.SIGHUP)  # the signal does the same as the command
        count = load.ok
        assert wait_for(lambda: load.ok > count + 200)
    assert load.failures == []
    assert {"v1 /", "v2 /"} <= load.bodies
    assert stack.proc.poll() is None


def test_1024_concurrent_connections_fail_no_request(make_stack) -> None:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed (scripts/install.sh test installs it)"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    stack = make_stack("--app", "probe:application", "--workers", "2").start()
    result = subprocess.run(
        [wrk, "-t2", "-c1024", "-d5s", "--timeout", "20s", f"{stack.url}/"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    requests_done = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    assert requests_done > 1024
    assert wrk_failures(result.stdout) == 0, result.stdout


def test_proxy_role_balances_and_survives_an_app_replica_dying(make_stack) -> None:
    apps = []
    for name in ("a", "b"):
        listen = f"127.0.0.1:{free_port()}"
        stack = make_stack("--role", "app", "--app", "probe:application", "--workers", "1",
                           "--app-listen", listen, "--replica-name", name)
        apps.append((stack.start(), listen))
    proxy = make_stack("--role", "proxy", "--upstreams", ",".join(u for _, u in apps))
    proxy.start()
    with Load(proxy.url, threads=4) as load:
        assert wait_for(lambda: load.replicas >= {"a", "b"})
        assert apps[0][0].stop(signal.SIGKILL) != 0  # the hard way: no draining at all
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
    assert load.failures == []
    assert requests.get(proxy.url, timeout=10).headers["X-Replica"] == "b"
