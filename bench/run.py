"""Benchmark flaskstack against uWSGI alone and against Nginx alone (the ceiling), with wrk.

    .venv/bin/python -m bench.run [--duration 10] [--connections 32,1024] [--workers N]

Every target runs on 127.0.0.1 in the same run; each row's req/s is printed as a ratio of the
Nginx-only ceiling measured at the same connection count, so the numbers compare across noisy
machines. Also measured: the original system's configuration (limit_conn 100 per address,
uWSGI's default listen backlog of 100, 2 processes x 1 thread) at 128 and 512 connections.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            time.sleep(0.5)  # let every worker settle
            return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} never accepted")


@dataclass
class Result:
    target: str
    connections: int
    rps: float
    p99_ms: float
    requests: int
    failed: int


def wrk(url: str, connections: int, duration: int) -> tuple[float, float, int, int]:
    print(f"bench: wrk -c{connections} {url}", file=sys.stderr, flush=True)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
         "--latency", url],
        capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, p99_ms, total, wrk_failures(out)


def wrk_failures(output: str) -> int:
    """Failed requests in wrk's report: socket errors plus non-2xx/3xx answers."""
    failed = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output):
        failed += sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        failed += int(m.group(1))
    return failed


@contextlib.contextmanager
def process(argv: list[str], port: int, **kwargs: object) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, **kwargs)  # type: ignore[call-overload]
    try:
        wait_port(port, proc)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


NGINX_ALONE = """\
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    keepalive_timeout 50;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
"""

# The original system: limit_conn 100 per address; uWSGI 2 x 1, default listen backlog (100).
ORIGINAL_NGINX = """\
worker_processes auto;
pid {tmp}/nginx.pid;
error_log stderr error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    keepalive_timeout 50;
    client_max_body_size 10M;
    client_header_timeout 15; client_body_timeout 15; send_timeout 15;
    gzip on;
    limit_conn_zone $binary_remote_addr zone=addr:10m;
    server {{
        listen 127.0.0.1:{port};
        limit_conn addr 100;
        location / {{ include /etc/nginx/uwsgi_params; uwsgi_pass unix:{tmp}/uwsgi.sock; }}
    }}
}}
"""


def nginx(conf: str, tmp: Path, port: int) -> contextlib.AbstractContextManager[None]:
    (tmp / "nginx.conf").write_text(conf)
    return process(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr",
                    "-g", "daemon off;"], port)


def run(duration: int, connections: list[int], workers: int) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="flaskstack-bench-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        site = tmp / "site"
        shutil.copytree(APPS, site)
        for path in [site, *site.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

        def measure(target: str, url: str) -> None:
            for c in connections:
                rps, p99, total, failed = wrk(url, c, duration)
                results.append(Result(target, c, rps, p99, total, failed))

        port = free_port()
        (tmp / "ceiling").mkdir()
        with nginx(NGINX_ALONE.format(workers=workers, tmp=tmp / "ceiling", port=port),
                   tmp / "ceiling", port):
            measure("nginx alone (return 200): ceiling", f"http://127.0.0.1:{port}/")

        port = free_port()
        with process([str(BIN / "flaskstack"), "serve", "--app", "hello:app", "--app-dir",
                      str(site), "--run-dir", str(tmp / "fs"), "--host", "127.0.0.1",
                      "--port", str(port), "--workers", str(workers), "--access-log", "off"],
                     port):
            measure("flaskstack (nginx + uwsgi + Flask)", f"http://127.0.0.1:{port}/")

        port = free_port()
        user = ["--uid", "www-data", "--gid", "www-data"] if os.geteuid() == 0 else []
        with process([str(BIN / "uwsgi"), "--http", f"127.0.0.1:{port}", "--master",
                      "--processes", str(workers), "--chdir", str(site), "--module",
                      "hello:app", "--listen", "4096", "--disable-logging", "--http-keepalive=1",
                      "--add-header", "Connection: Keep-Alive", *user], port):
            measure("uwsgi --http alone + Flask", f"http://127.0.0.1:{port}/")

        port = free_port()
        orig = tmp / "orig"
        orig.mkdir()
        orig.chmod(0o777)
        uw = subprocess.Popen(
            [str(BIN / "uwsgi"), "--socket", str(orig / "uwsgi.sock"), "--master", "--processes",
             "2", "--threads", "1", "--chdir", str(site), "--module", "hello:app",
             "--chmod-socket=666", "--vacuum", "--disable-logging", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not (orig / "uwsgi.sock").exists():
                if uw.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uwsgi (original configuration) did not start")
                time.sleep(0.1)
            time.sleep(1)
            with nginx(ORIGINAL_NGINX.format(tmp=orig, port=port), orig, port):
                for c in (128, 512):
                    rps, p99, total, failed = wrk(f"http://127.0.0.1:{port}/", c, duration)
                    results.append(Result("original system's config (for comparison)", c, rps,
                                          p99, total, failed))
        finally:
            os.killpg(uw.pid, signal.SIGINT)
            uw.wait(20)
    return results


def table(results: list[Result]) -> str:
    ceiling = {r.connections: r.rps for r in results if "ceiling" in r.target}
    lines = [
        "| target | connections | req/s | ratio of ceiling | p99 latency | requests | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = f"{r.rps / ceiling[r.connections]:.3f}" if r.connections in ceiling else "—"
        lines.append(
            f"| {r.target} | {r.connections} | {r.rps:,.0f} | {ratio} | {r.p99_ms:.1f} ms "
            f"| {r.requests:,} | {r.failed:,} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def connection_list(value: str) -> list[int]:
    """Parse ``--connections``: comma-separated positive integers."""
    try:
        counts = [int(c) for c in value.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 32,1024, got {value!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per point")
    parser.add_argument("--connections", type=connection_list, default=[32, 1024],
                        help="comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (bash scripts/install.sh test)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    if args.duration < 1 or args.workers < 1:
        parser.error("--duration and --workers must be at least 1")
    results = run(args.duration, args.connections, args.workers)
    print(f"{time.strftime('%Y-%m-%d')} · {machine()} · {args.workers} workers · "
          f"{args.duration} s per point")
    print(table(results))


if __name__ == "__main__":
    main()
