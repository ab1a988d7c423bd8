"""Issue 23's attacks on the kit (findings 1, 6, 9, 10, 11, 12, 13, 14), each reproduced against a
real stack (the test fixture apps), with the figures that tell before from after.

    .venv/bin/python -m bench.kit_bounds                                  # this checkout
    PYTHONPATH=/tmp/kit-before/src .venv/bin/python -m bench.kit_bounds   # another tree of the kit

(``git archive main src | tar -x -C /tmp/kit-before`` makes the tree of the code before.)
Everything runs on 127.0.0.1; the whole run takes about a minute.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from tests.conftest import free_port
from tests.kit.certs import CA
from tests.kit.test_bounds import SITE, get, raw

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "tests" / "kit" / "apps"
EXAMPLE = ROOT / "examples" / "websocket" / "app.py"


@contextlib.contextmanager
def stack(*args: str) -> Iterator[tuple[int, subprocess.Popen[str], Path]]:
    """A started `flaskstack serve` with the fixture apps: (port, process, its folder)."""
    root = Path(tempfile.mkdtemp(prefix="kit-bounds-"))
    root.chmod(0o755)
    shutil.copytree(APPS, root / "site")
    shutil.copy(EXAMPLE, root / "site" / "wsexample.py")
    for path in [root / "site", *(root / "site").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flaskstack", "serve", "--app-dir", str(root / "site"),
         "--run-dir", str(root / "run"), "--port", str(port), "--host", "127.0.0.1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PROBE_SEEN": ""})
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready: "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"the stack did not start: {args}")
        yield port, proc, root
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)


def curl(*args: str) -> tuple[str, float]:
    start = time.monotonic()
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                            capture_output=True, text=True, timeout=120, check=False)
    return (result.stdout or f"failed: {result.stderr.strip()}"), time.monotonic() - start


def proc_status(pid: int, field: str) -> str:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                if x.startswith(field + ":"))
    return line.split(":", 1)[1].strip()


def main() -> None:
    import flaskstack

    print(f"kit: {Path(flaskstack.__file__).parent}")
    folder = Path(tempfile.mkdtemp(prefix="kit-bounds-ca-"))
    folder.chmod(0o755)
    ca = CA(folder)
    issued = ca.issue("site", (SITE, "127.0.0.1"))
    tls = ["--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]
    context = ssl.create_default_context(cafile=str(ca.path))

    with stack("--app", "wsprobe:app", "--workers", "2", "--request-timeout", "2", *tls) as (
            port, _, _):
        url = f"https://127.0.0.1:{port}/slow/6"
        for version in ("--http1.1", "--http2"):
            for header in ((), ("-H", "Upgrade: websocket")):
                status, took = curl(version, "--cacert", str(ca.path), *header, url)
                print(f"1  {version[2:]:7} /slow/6 {' '.join(header) or '(no header)':22} "
                      f"-> {status} after {took:.1f} s")

    redirect = free_port()
    with stack("--app", "probe:application", "--server-names", SITE, *tls,
               "--http-redirect-port", str(redirect)) as (port, _, _):
        status, _, body = raw(port, get(f"https://{SITE}/headers", "evil.example"), context)
        seen = "evil.example" if b"evil.example" in body else "-"
        print(f"6  GET https://{SITE}/headers, Host: evil.example -> {status} "
              f"(app saw Host {seen})")
        status, headers, _ = raw(redirect, get("/a", "evil.example"))
        print(f"13 redirect port, Host: evil.example -> {status} "
              f"Location {headers.get('location', ['-'])[0]}")
        status, headers, _ = raw(redirect, get(f"http://{SITE}/a", "evil.example"))
        print(f"13 redirect port, GET http://{SITE}/a, Host: evil.example -> {status} "
              f"Location {headers.get('location', ['-'])[0]}")
        resolve = f"{SITE}:{port}:127.0.0.1"
        for version in ("--tlsv1.3", "--tlsv1.2"):
            status, _ = curl(version, "--tls-max", version[6:], "--cacert", str(ca.path),
                             "--resolve", resolve, f"https://{SITE}:{port}/")
            print(f"10 {version[2:]} with server_names -> {status}")

    for hsts in ("300", "0"):
        with stack("--app", "probe:application", "--hsts", hsts, *tls) as (port, _, _):
            r = requests.get(f"https://127.0.0.1:{port}/hsts", verify=str(ca.path), timeout=10)
            print(f"9  --hsts {hsts}: Strict-Transport-Security "
                  f"{r.raw.headers.getlist('Strict-Transport-Security')}")

    with stack("--app", "cachy:application") as (port, _, _):
        path = f"http://127.0.0.1:{port}/missing?cc=public,+max-age=60&negotiate=1"
        requests.get(path, headers={"Accept": "application/json"}, timeout=10)
        r = requests.get(path, headers={"Accept": "text/html,*/*;q=0.8"}, timeout=10)
        print(f"12 browser after an API client: {r.headers['Content-Type']} "
              f"({r.headers.get('X-Cache-Status')})")

    with stack("--app", "probe:application") as (port, _, _):
        for label in (63, 64):
            status, _, _ = raw(port, get("/x", "a" * label + ".example"))
            print(f"14 Host label of {label} characters -> {status}")

    metrics = free_port()
    with stack("--app", "probe:application", "--metrics-listen", f"127.0.0.1:{metrics}") as (
            _, proc, _):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8000), hard))
        before = (proc_status(proc.pid, "Threads"), proc_status(proc.pid, "VmRSS"))
        idle = []
        deadline = time.monotonic() + 60
        while len(idle) < 3000 and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", metrics), timeout=1))
        time.sleep(1)
        start = time.monotonic()
        try:
            scrape = str(requests.get(f"http://127.0.0.1:{metrics}/metrics",
                                      timeout=60).status_code)
        except requests.RequestException as e:
            scrape = type(e).__name__
        took = time.monotonic() - start
        after = (proc_status(proc.pid, "Threads"), proc_status(proc.pid, "VmRSS"))
        print(f"11 {len(idle)} idle connections to metrics: supervisor threads {before[0]} -> "
              f"{after[0]}, RSS {before[1]} -> {after[1]}; a scrape: {scrape} after {took:.2f} s")
        for sock in idle:
            sock.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
