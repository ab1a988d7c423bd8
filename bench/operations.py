"""Measure what issue 10 asked for, on 127.0.0.1, as ratios within one run.

    .venv/bin/python -m bench.operations [--rounds 3]

- HTTP/2 vs HTTP/1.1 on the same page over TLS (h2load, 32 clients; HTTP/2 with 10 streams per
  connection, HTTP/1.1 one request at a time per connection, as browsers do);
- the time one Prometheus scrape takes (median of 50);
- what the WebSocket-sparing harakiri rule costs: uWSGI with ``harakiri = 60`` vs the kit's
  ``route-if = empty:${HTTP_UPGRADE} harakiri:60`` (wrk, 32 connections, --http-socket).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from bench.run import free_port, served_at, wrk

APPS = Path(__file__).resolve().parent / "apps"
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def stack(tmp: Path, *args: str) -> Iterator[int]:
    port = free_port()
    argv = [str(BIN / "flaskstack"), "serve", "--app", "hello:app", "--app-dir", str(APPS),
            "--run-dir", str(tmp / f"run-{port}"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "2", "--access-log", "off", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        accepting(port, proc)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def accepting(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until ``port`` accepts connections (plain HTTP or TLS alike)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} stopped before accepting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} never accepted")


def h2load(url: str, http1: bool) -> float:
    argv = ["h2load", "-c", "32", "-D", "5", "--warm-up-time", "1", url]
    argv += ["--h1", "-m", "1"] if http1 else ["-m", "10"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    failed = int(re.search(r"(\d+) failed", out).group(1))  # type: ignore[union-attr]
    if failed:
        raise RuntimeError(f"h2load: {failed} failed requests")
    return float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]


def certificate(tmp: Path) -> tuple[str, str]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def uwsgi_rps(rule: list[str], rounds: int) -> float:
    port = free_port()
    argv = [str(BIN / "uwsgi"), "--master", "--processes", "2", "--http-socket",
            f"127.0.0.1:{port}", "--chdir", str(APPS), "--module", "hello:app",
            "--disable-logging", "--die-on-term", "--listen", "1024", *rule]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        served_at(f"http://127.0.0.1:{port}/", lambda: proc.poll() is None, 60)
        wrk(f"http://127.0.0.1:{port}/", 32, 2, {})
        return wrk(f"http://127.0.0.1:{port}/", 32, 5, {}).rps
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    h1: list[float] = []
    h2: list[float] = []
    scrapes: list[float] = []
    plain: list[float] = []
    routed: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as folder:
        tmp = Path(folder)
        tmp.chmod(0o755)  # the servers' workers (www-data under root) reach the run dir
        cert, key = certificate(tmp)
        metrics_port = free_port()
        with stack(tmp, "--tls-cert", cert, "--tls-key", key, "--metrics-listen",
                   f"127.0.0.1:{metrics_port}") as port:
            url = f"https://127.0.0.1:{port}/"
            for _ in range(args.rounds):
                h1.append(h2load(url, http1=True))
                h2.append(h2load(url, http1=False))
            for _ in range(50):
                start = time.perf_counter()
                requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
                scrapes.append(time.perf_counter() - start)
    for _ in range(args.rounds):
        plain.append(uwsgi_rps(["--harakiri", "60"], args.rounds))
        routed.append(uwsgi_rps(["--route-if", "empty:${HTTP_UPGRADE} harakiri:60"],
                                args.rounds))
    m1, m2 = statistics.median(h1), statistics.median(h2)
    print("| measure | value |\n| --- | --- |")
    print(f"| HTTP/1.1 over TLS, hello page, 32 clients | {m1:,.0f} req/s |")
    print(f"| HTTP/2 over TLS, same page, 32 clients x 10 streams | {m2:,.0f} req/s "
          f"({m2 / m1:.2f} x HTTP/1.1) |")
    print(f"| one /metrics scrape (median of 50) | {statistics.median(scrapes) * 1000:.1f} ms |")
    mp, mr = statistics.median(plain), statistics.median(routed)
    print(f"| uWSGI harakiri = 60 | {mp:,.0f} req/s |")
    print(f"| uWSGI route-if harakiri (spares WebSockets) | {mr:,.0f} req/s ({mr / mp:.2f}) |")


if __name__ == "__main__":
    main()
