"""Compare uWSGI builds for the kit: start time, hello throughput, WebSocket handshake.

    .venv/bin/python -m bench.uwsgi_builds NAME=UWSGI_BINARY[:EXTRA_ARGS] ... [--rounds 3]

Each build serves bench/apps/hello.py on ``--http-socket`` (2 processes, the app loaded by the
master, as the kit runs it); rounds interleave the builds and the medians are printed as ratios
of the first one, so the figures compare on a noisy shared machine. Example, as recorded in
docs/design.md::

    python -m bench.uwsgi_builds pyuwsgi=/venv-a/bin/uwsgi sdist=/venv-b/bin/uwsgi \\
        "debian=/usr/bin/uwsgi-core:--plugin-dir /usr/lib/uwsgi/plugins --plugin python3 \\
        --virtualenv /venv-b"
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.run import free_port, wrk

APPS = Path(__file__).resolve().parent / "apps"


def first_200(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> float:
    """Seconds from now until GET / answers 200 (polling every 20 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"uwsgi exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            if s.recv(64).split(b" ")[1:2] == [b"200"]:
                return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError("no answer")


def websocket_ok(port: int) -> bool:
    """Whether a WebSocket handshake on /ws completes (101)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(request.encode())
        return s.recv(256).startswith(b"HTTP/1.1 101")


def start(binary: list[str], port: int) -> subprocess.Popen[bytes]:
    argv = [*binary, "--master", "--processes", "2", "--need-app",
            "--die-on-term", "--http-socket", f"127.0.0.1:{port}", "--chdir", str(APPS),
            "--module", "wsecho:application", "--disable-logging", "--listen", "1024"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", metavar="NAME=BINARY[:ARGS]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    builds: dict[str, list[str]] = {}
    for spec in args.builds:
        name, sep, rest = spec.partition("=")
        binary, _, extra = rest.partition(":")
        if not sep or not Path(binary).exists():
            parser.error(f"{spec!r}: want NAME=BINARY[:ARGS] with an existing binary")
        builds[name] = [binary, *shlex.split(extra)]
    starts: dict[str, list[float]] = {n: [] for n in builds}
    rps: dict[str, list[float]] = {n: [] for n in builds}
    ws: dict[str, bool] = {}
    for _ in range(args.rounds):
        for name, binary in builds.items():
            port = free_port()
            proc = start(binary, port)
            try:
                starts[name].append(first_200(port, proc))
                ws[name] = websocket_ok(port)
                url = f"http://127.0.0.1:{port}/"
                wrk(url, 32, 2)  # warm-up
                rps[name].append(wrk(url, 32, args.duration)[0])
            finally:
                stop(proc)
    first = next(iter(builds))
    base = statistics.median(rps[first])
    print("| build | start to first 200 (median) | hello req/s (median) | ratio | WebSocket |")
    print("| --- | --- | --- | --- | --- |")
    for name in builds:
        r = statistics.median(rps[name])
        print(f"| {name} | {statistics.median(starts[name]):.2f} s | {r:,.0f} | "
              f"{r / base:.2f} | {'101' if ws[name] else 'refused'} |")


if __name__ == "__main__":
    sys.exit(main())
