"""Behaviour under load: reload with zero failed requests, 1024 concurrent connections, roles."""

from __future__ import annotations

import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
from bench.run import wrk_failures

from flaskstack import upstreams
from flaskstack.supervisor import RESOLVE_EVERY
from tests.conftest import free_port
from tests.load import Load, wait_for

pytestmark = pytest.mark.slow


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


def replicas_behind_a_proxy(make_stack, workers: int = 1):  # type: ignore[no-untyped-def]
    """App replicas a and b (role app, probe app) and a proxy started in front of them;
    returns ([a, b], [a's HOST:PORT, b's], proxy)."""
    apps, listens = [], []
    for name in ("a", "b"):
        listens.append(f"127.0.0.1:{free_port()}")
        apps.append(make_stack("--role", "app", "--app", "probe:application", "--workers",
                               str(workers), "--app-listen", listens[-1],
                               "--replica-name", name).start())
    proxy = make_stack("--role", "proxy", "--upstreams", ",".join(listens)).start()
    return apps, listens, proxy


def test_proxy_role_balances_and_survives_an_app_replica_dying(make_stack) -> None:
    apps, _, proxy = replicas_behind_a_proxy(make_stack)
    with Load(proxy.url, threads=4) as load:
        assert wait_for(lambda: load.replicas >= {"a", "b"})
        assert apps[0].stop(signal.SIGKILL) != 0  # the hard way: no draining at all
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
    assert load.failures == []
    assert requests.get(proxy.url, timeout=10).headers["X-Replica"] == "b"


def test_an_app_replica_stopping_finishes_its_requests_and_the_proxy_loses_none(make_stack
                                                                                ) -> None:
    apps, _, proxy = replicas_behind_a_proxy(make_stack, workers=2)
    slow: list[requests.Response] = []

    def slow_request() -> None:  # in flight on replica a when it is told to stop
        slow.append(requests.get(f"{proxy.url}/slow?3", timeout=30))

    health = apps[0].cli("health", *apps[0].args)  # a real request over the uwsgi protocol
    assert (health.returncode, health.stdout) == (0, "healthy: GET / answered 200\n")
    with Load(proxy.url, threads=4) as load:
        assert wait_for(lambda: load.replicas >= {"a", "b"})
        senders: list[threading.Thread] = []
        while "/slow" not in apps[0].seen() and len(senders) < 20:  # until one is on a
            senders.append(threading.Thread(target=slow_request))
            senders[-1].start()
            wait_for(lambda: "/slow" in apps[0].seen(), timeout=0.3)
        assert "/slow" in apps[0].seen()
        assert apps[0].stop(signal.SIGTERM) == 0  # graceful: finishes it, exit 0
        for sender in senders:
            sender.join(30)
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
    assert load.failures == []
    assert [r.status_code for r in slow] == [200] * len(senders)
    assert "a" in {r.headers["X-Replica"] for r in slow}  # the one in flight on a
    gone = apps[0].cli("health", *apps[0].args)
    assert gone.returncode == 1 and gone.stderr.startswith("flaskstack: error: unhealthy:")


def test_an_app_replica_refuses_connections_until_its_app_is_loaded(make_stack) -> None:
    """A replica still loading its app gets no request: the proxy (as any load balancer that
    checks the port) sees its address refuse until the app can answer."""
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    make_stack("--role", "app", "--app", "probe:application", "--app-listen", a).start()
    proxy = make_stack("--role", "proxy", "--upstreams", f"{a},{b}").start()
    loading = make_stack("--role", "app", "--app", "gated:application", "--app-listen", b)
    gate = loading.root / "gate"  # (the app runs as the workers' user: www-data under root)
    gate.mkdir(mode=0o777)
    gate.chmod(0o777)
    loading.env["GATE"] = str(gate / "open")
    loading.start(wait=False)
    with Load(proxy.url, threads=4) as load:
        assert wait_for((gate / "open.loading").exists)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(upstreams.split_host_port(b), timeout=5).close()
        time.sleep(RESOLVE_EVERY + 1)  # the proxy looks at its upstreams again meanwhile
        opened = time.monotonic()
        (gate / "open").touch()
        assert loading.wait_ready()
        assert wait_for(lambda: "gated" in load.sent_after(opened))
    assert load.failures == []
    assert {body for sent, body in load.answers if sent < opened} == {"v1 /"}


def test_drain_takes_a_replica_out_of_rotation_before_it_stops(make_stack) -> None:
    apps, listens, proxy = replicas_behind_a_proxy(make_stack, workers=2)
    # POSTs: Nginx never retries them on another replica, so nothing may be lost
    with Load(f"{proxy.url}/upload", threads=4, method="POST", data=b"x" * 1000) as load:
        assert wait_for(lambda: load.replicas >= {"a", "b"})
        drained = proxy.cli("drain", *proxy.args, listens[0])
        assert (drained.returncode, drained.stdout) == (0, f"drained: {listens[0]}\n"), drained
        with load.lock:
            load.replicas.clear()
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
        assert load.replicas == {"b"}  # a gets no new request
        assert apps[0].stop(signal.SIGTERM) == 0
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
    assert load.failures == []
    assert load.bodies == {"1000"}
    bad = proxy.cli("drain", *proxy.args, "no-port")
    assert (bad.returncode, bad.stderr) == (
        2, "flaskstack: error: drain: 'no-port' is not HOST:PORT\n")
