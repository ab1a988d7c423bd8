"""Benchmark the stack against Nginx's own ``return 200`` (the ceiling), with wrk, in one run.

    .venv/bin/python -m bench.run [--duration 5] [--rounds 3] [--burst-seconds 8]

Every server runs on 127.0.0.1 at once: Nginx alone, the notes site with the response cache on
and off, the hello app through flaskstack and through the configuration flaskstack replaces
(see docs in /work/shared/notes/measuring.md). Each round measures every target in turn (so the
configurations are interleaved on a shared machine); a target's figure is the median of the
rounds, printed as a ratio of the ceiling's median. Then: 1024 connections for a few seconds
(failed requests counted), the stacks' idle memory (PSS summed over the process tree) and their
start time (``serve`` to the first 200, the database already migrated).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from flaskstack.rundir import RunDir

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
BIN = Path(sys.executable).parent
USER = "bench@example.com"
PASSWORD = "bench-password-1"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def served_at(url: str, alive: Callable[[], bool], timeout: float,
              check_every: float = 0) -> float:
    """Poll ``url`` every 20 ms until it answers 200; the wall-clock time it did. ``alive()`` is
    asked at most every ``check_every`` seconds (asking podman takes longer than a poll)."""
    deadline = time.monotonic() + timeout
    asked = time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return time.time()
        if time.monotonic() - asked >= check_every:
            asked = time.monotonic()
            if not alive():
                raise RuntimeError(f"{url}: the server stopped before answering")
        time.sleep(0.02)
    raise TimeoutError(f"{url} never answered 200")


def first_200(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
    """Poll ``url`` until it answers 200; the seconds since this was called."""
    started = time.time()
    return served_at(url, lambda: proc.poll() is None, timeout) - started


@dataclass
class Point:
    rps: float
    p99_ms: float
    requests: int
    failed: int
    cpu_us: float = float("nan")  # CPU time of the server's whole process tree per request


def cpu_seconds(roots: Sequence[int]) -> float:
    """User + system CPU time of every process under ``roots`` (from /proc: a busy neighbour
    on a shared machine slows the clock, not the work)."""
    ticks = 0
    for root in roots:
        for pid in tree(root):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url: str, connections: int, duration: int, headers: dict[str, str],
        roots: Sequence[int] = ()) -> Point:
    """One wrk run; with ``roots`` (the server's processes) also its CPU per request."""
    print(f"bench: wrk -c{connections} -d{duration}s {url}", file=sys.stderr, flush=True)
    flags = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    cpu_before = cpu_seconds(roots)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
         *flags, url],
        capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu_us = (cpu_seconds(roots) - cpu_before) / total * 1e6 if roots and total else float("nan")
    return Point(rps, p99_ms, total, wrk_failures(out), cpu_us)


def wrk_failures(output: str) -> int:
    """Failed requests in wrk's report: socket errors plus non-2xx/3xx answers."""
    failed = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output):
        failed += sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        failed += int(m.group(1))
    return failed


# -- processes ------------------------------------------------------------------------------------


def spawn(argv: list[str], log: Path | None = None, **kwargs: object
          ) -> subprocess.Popen[bytes]:
    """``argv`` in a session of its own; its output into ``log`` (or nowhere)."""
    with contextlib.ExitStack() as files:
        out = files.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        return subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True,
                                **kwargs)  # type: ignore[call-overload]


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def children() -> dict[int, list[int]]:
    """Every process's children, by parent pid (from ``/proc``)."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                found.setdefault(parent, []).append(int(entry.name))
    return found


def tree(root: int) -> list[int]:
    """``root`` and all its descendants (Nginx and uWSGI start sessions of their own, so the
    session id would miss them: follow the parent links)."""
    below = children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(below.get(pid, []))
    return found


def pss_mb(root: int) -> float:
    total = 0
    for pid in tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


@dataclass
class Stack:
    """One ``flaskstack serve``: how to start it, and the processes it is running."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def run(self) -> RunDir:
        return RunDir(self.argv[self.argv.index("--run-dir") + 1])

    def start(self, log: Path | None = None, timeout: float = 60) -> float:
        self.proc = spawn(self.argv, log, env=self.env)
        return first_200(self.url + "/", self.proc, timeout)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def serve(name: str, tmp: Path, *args: str, env: dict[str, str] | None = None,
          workers: int = 2) -> Stack:
    port = free_port()
    argv = [str(BIN / "flaskstack"), "serve", "--run-dir", str(tmp / f"run-{name}"), "--host",
            "127.0.0.1", "--port", str(port), "--workers", str(workers), "--threads", "1",
            "--nginx-workers", "1", *args]
    return Stack(name, argv, {**os.environ, **(env or {})}, port)


# notes' static folder, found without importing notes
NOTES_STATIC = Path(importlib.util.find_spec("notes").origin or "").parent / "static"  # type: ignore[union-attr]

NGINX_ALONE = """\
worker_processes 1;
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
        location /static/ {{ alias {static}/; }}  # Nginx's defaults, for a file
    }}
}}
"""

# The configuration flaskstack replaces: uWSGI 2 x 1 on a unix socket (chmod 666, a stats
# socket, a pid file), Nginx with 1 worker, gzip, limit_conn 100 per address, an access log
# file and the stock uwsgi_params.
ORIGINAL_NGINX = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr error;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    keepalive_timeout 50;
    client_max_body_size 10M;
    gzip on;
    limit_conn_zone $binary_remote_addr zone=addr:10m;
    server {{
        listen 127.0.0.1:{port};
        limit_conn addr 100;
        location / {{ include /etc/nginx/uwsgi_params; uwsgi_pass unix:{tmp}/uwsgi.sock; }}
    }}
}}
"""


@dataclass
class Running:
    """A server started by the bench: its URL and the processes that serve it."""

    url: str
    pids: list[int]
    stats: Path | None = None  # its uWSGI's stats socket, if it runs one


@contextlib.contextmanager
def nginx_alone(tmp: Path) -> Iterator[Running]:
    tmp.mkdir()
    port = free_port()
    (tmp / "nginx.conf").write_text(NGINX_ALONE.format(tmp=tmp, port=port, static=NOTES_STATIC))
    proc = spawn(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr",
                  "-g", "daemon off;"])
    try:
        first_200(f"http://127.0.0.1:{port}/", proc)
        yield Running(f"http://127.0.0.1:{port}/", [proc.pid])
    finally:
        stop(proc, signal.SIGQUIT)


@contextlib.contextmanager
def original(tmp: Path, site: Path, module: str = "hello:app",
             env: dict[str, str] | None = None) -> Iterator[Running]:
    """The configuration flaskstack replaces, serving ``module`` (the app loaded once by the
    master, which forks 2 workers; Nginx with 1 worker)."""
    tmp.mkdir()
    tmp.chmod(0o777)
    user = ["--uid", "www-data", "--gid", "www-data"] if os.geteuid() == 0 else []
    uw = spawn([str(BIN / "uwsgi"), "--socket", str(tmp / "uwsgi.sock"), "--master",
                "--processes", "2", "--threads", "1", "--chdir", str(site), "--module",
                module, "--chmod-socket=666", "--vacuum", "--disable-logging",
                "--stats", str(tmp / "stats.sock"), "--pidfile", str(tmp / "uwsgi.pid"), *user],
               env={**os.environ, **(env or {})})
    port = free_port()
    (tmp / "nginx.conf").write_text(ORIGINAL_NGINX.format(tmp=tmp, port=port))
    ngx = None
    try:
        deadline = time.monotonic() + 30
        while not (tmp / "uwsgi.sock").exists():
            if uw.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("uwsgi (original configuration) did not start")
            time.sleep(0.05)
        ngx = spawn(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr",
                     "-g", "daemon off;"])
        first_200(f"http://127.0.0.1:{port}/", ngx)
        yield Running(f"http://127.0.0.1:{port}/", [uw.pid, ngx.pid], tmp / "stats.sock")
    finally:
        if ngx is not None:
            stop(ngx, signal.SIGQUIT)
        stop(uw, signal.SIGINT)


# -- the notes site: a user, a note, a signed-in session ------------------------------------------


def notes_setup(stack: Stack) -> tuple[str, dict[str, str]]:
    """Create a user and a published note; (the note's path, the signed-in cookies)."""
    assert stack.proc is not None
    exec_argv = [str(BIN / "flaskstack"), "exec", *stack.argv[2:], "--", str(BIN / "flask"),
                 "--app", "notes", "users", "create", USER, "--password-stdin"]
    made = subprocess.run(exec_argv, input=PASSWORD + "\n", capture_output=True, text=True,
                          env=stack.env, timeout=60)
    if made.returncode != 0 and "exists" not in made.stderr + made.stdout:
        raise RuntimeError(f"cannot create the bench user: {made.stderr.strip()}")
    web = requests.Session()

    def token(path: str) -> str:
        page = web.get(stack.url + path, timeout=10).text
        found = re.search(r'name="csrf-token" content="([^"]+)"', page) or re.search(
            r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        if not found:
            raise RuntimeError(f"no CSRF token on {path}")
        return found.group(1)

    signed_in = web.post(stack.url + "/login", timeout=10, data={
        "email": USER, "password": PASSWORD, "csrf_token": token("/login")})
    if signed_in.status_code != 200 or "/login" in signed_in.url:
        raise RuntimeError(f"bench user cannot sign in (HTTP {signed_in.status_code})")
    body = "<p>" + "A paragraph of a benchmark note. " * 40 + "</p>"
    made_note = web.post(stack.url + "/notes/new", timeout=10, data={
        "title": f"Bench note {time.time_ns()}", "body": body, "published": "y",
        "csrf_token": token("/notes/new")})
    path = made_note.url.removeprefix(stack.url)
    if not path.startswith("/n/"):
        raise RuntimeError(f"the bench note was not created (ended at {made_note.url})")
    return path, {k: v for k, v in web.cookies.items() if v}


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    roots: list[int] = field(default_factory=list)  # the processes serving it (CPU time)
    points: list[Point] = field(default_factory=list)
    cache_status: str = ""

    def median(self) -> Point:
        pick = sorted(self.points, key=lambda p: p.rps)[len(self.points) // 2]
        return Point(statistics.median(p.rps for p in self.points), pick.p99_ms,
                     sum(p.requests for p in self.points), sum(p.failed for p in self.points),
                     statistics.median(p.cpu_us for p in self.points))


@dataclass
class Report:
    targets: list[Target]
    bursts: list[tuple[str, Point]]
    memory: list[tuple[str, float]]  # MB
    starts: list[tuple[str, float]]  # seconds, median
    kit_mb: float = 0.0  # the hello app through flaskstack, after the run (PSS)
    original_mb: float = 0.0  # ... and under the original configuration


BROWSER = {"Accept-Encoding": "gzip, deflate, br"}  # what browsers send


def prepare(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """The bench apps copied into ``tmp/site`` where the workers' account (www-data when root)
    reads them; the notes site's data folder and environment."""
    tmp.chmod(0o755)
    site = tmp / "site"
    shutil.copytree(APPS, site)
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    data = tmp / "data"
    return site, data, {"NOTES_DATA_DIR": str(data), "NOTES_SECRET_KEY": "bench-" + "x" * 32}


def run(duration: int, rounds: int, burst_seconds: int) -> Report:
    with tempfile.TemporaryDirectory(prefix="flaskstack-bench-") as name:
        tmp = Path(name)
        site, _, notes_env = prepare(tmp)
        stacks = {
            "hello": serve("hello", tmp, "--app", "hello:app", "--app-dir", str(site)),
            "notes": serve("notes", tmp, "--app-dir", str(tmp), env=notes_env),
            "notes-nocache": serve("notes-nocache", tmp, "--app-dir", str(tmp), "--cache",
                                   "off", env=notes_env),
        }
        report = Report([], [], [], [])
        try:
            with contextlib.ExitStack() as servers:
                alone = servers.enter_context(nginx_alone(tmp / "ceiling"))
                original_hello = servers.enter_context(original(tmp / "orig", site))
                ceiling, orig = alone.url, original_hello.url
                for stack in stacks.values():
                    stack.start()
                    servers.callback(stack.stop)
                note, cookies = notes_setup(stacks["notes"])
                signed = {**BROWSER, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
                on, off = stacks["notes"].url, stacks["notes-nocache"].url
                pids = {name: [s.proc.pid] for name, s in stacks.items() if s.proc is not None}
                report.targets = [
                    Target("nginx alone: return 200 (the ceiling)", ceiling, {}, alone.pids),
                    Target("nginx alone: the same bytes from a file (style.css.br, its "
                           "defaults)", ceiling + "static/style.css.br", {}, alone.pids),
                    Target("static file /static/style.css (notes)", on + "/static/style.css",
                           BROWSER, pids["notes"]),
                    Target("home / anonymous, cache on", on + "/", BROWSER, pids["notes"]),
                    Target("home / anonymous, cache off", off + "/", BROWSER,
                           pids["notes-nocache"]),
                    Target("note page anonymous, cache on", on + note, BROWSER, pids["notes"]),
                    Target("note page anonymous, cache off", off + note, BROWSER,
                           pids["notes-nocache"]),
                    Target("note page signed in (cache on)", on + note, signed, pids["notes"]),
                    Target("hello app through flaskstack", stacks["hello"].url + "/", {},
                           pids["hello"]),
                    Target("hello app, the original configuration", orig, {},
                           original_hello.pids),
                ]
                for target in report.targets:  # what the cache said, for the table
                    requests.get(target.url, headers=target.headers, timeout=10)
                    r = requests.get(target.url, headers=target.headers, timeout=10)
                    target.cache_status = r.headers.get("X-Cache-Status", "")
                for _ in range(rounds):
                    for target in report.targets:
                        wrk(target.url, 32, min(2, duration), target.headers)  # warm-up
                        target.points.append(wrk(target.url, 32, duration, target.headers,
                                                 target.roots))
                if burst_seconds:
                    for label, url in (("home / anonymous, cache on", on + "/"),
                                       ("hello app through flaskstack",
                                        stacks["hello"].url + "/"),
                                       ("hello app, the original configuration", orig)):
                        report.bursts.append((label, wrk(url, 1024, burst_seconds, BROWSER)))
                # the original configuration's memory after the same run, for the memory row
                time.sleep(1)
                report.original_mb = sum(pss_mb(pid) for pid in original_hello.pids)
                assert stacks["hello"].proc is not None
                report.kit_mb = pss_mb(stacks["hello"].proc.pid)
            report.memory, report.starts = idle_and_start(stacks["notes"], stacks["hello"],
                                                          rounds)
        finally:
            for stack in stacks.values():
                stack.stop()
    return report


def idle_and_start(notes: Stack, hello: Stack, rounds: int) -> tuple[list[tuple[str, float]],
                                                                       list[tuple[str, float]]]:
    """Restart each stack ``rounds`` times (interleaved): seconds to the first 200, and the
    PSS of the whole tree after 1 s idle."""
    starts: dict[str, list[float]] = {"notes": [], "hello": []}
    memory: dict[str, list[float]] = {"notes": [], "hello": []}
    for _ in range(rounds):
        for label, stack in (("notes", notes), ("hello", hello)):
            starts[label].append(stack.start())
            time.sleep(1)
            assert stack.proc is not None
            memory[label].append(pss_mb(stack.proc.pid))
            stack.stop()
    return ([(f"{k}, 2 workers, idle", statistics.median(v)) for k, v in memory.items()],
            [(f"{k}: serve -> first 200 (migrated database)", statistics.median(v))
             for k, v in starts.items()])


def tables(report: Report, rounds: int) -> str:
    ceiling = report.targets[0].median().rps
    lines = [
        f"| target (32 connections, median of {rounds}) | req/s | ratio of ceiling "
        "| p99 latency | failed | X-Cache-Status | CPU per request |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for t in report.targets:
        m = t.median()
        lines.append(f"| {t.name} | {m.rps:,.0f} | {m.rps / ceiling:.3f} | {m.p99_ms:.1f} ms "
                     f"| {m.failed:,} | {t.cache_status or '—'} | {m.cpu_us:.1f} µs |")
    hello = {t.name: t.median() for t in report.targets}
    kit_hello = hello["hello app through flaskstack"]
    orig_hello = hello["hello app, the original configuration"]
    lines += ["", "hello app: flaskstack / the original configuration = "
              f"{kit_hello.rps / orig_hello.rps:.2f} (req/s), "
              f"{kit_hello.cpu_us / orig_hello.cpu_us:.2f} (CPU per request)"]
    if report.original_mb:
        lines += [f"hello app memory after the run (PSS): flaskstack {report.kit_mb:.1f} MB, "
                  f"the original configuration {report.original_mb:.1f} MB = "
                  f"{report.kit_mb / report.original_mb:.2f}"]
    if report.bursts:
        lines += ["", "| 1024 connections | req/s | requests | failed |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {label} | {p.rps:,.0f} | {p.requests:,} | {p.failed:,} |"
                  for label, p in report.bursts]
    lines += ["", f"| stack (median of {rounds} restarts) | value |", "| --- | ---: |"]
    lines += [f"| PSS {label} | {mb:.0f} MB |" for label, mb in report.memory]
    lines += [f"| start {label} | {s:.2f} s |" for label, s in report.starts]
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def positive(kind: Callable[[str], int], zero: bool = False) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = kind(value)
        except ValueError:
            number = -1
        if number < 0 or (number == 0 and not zero):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
        return number
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=positive(int), default=5,
                        help="seconds per point (after a warm-up of up to 2 s)")
    parser.add_argument("--rounds", type=positive(int), default=3,
                        help="rounds over all targets; each figure is their median")
    parser.add_argument("--burst-seconds", type=positive(int, zero=True), default=8,
                        help="seconds at 1024 connections (0: skip)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (bash scripts/install.sh test)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    report = run(int(args.duration), int(args.rounds), int(args.burst_seconds))
    print(f"{time.strftime('%Y-%m-%d')} · {machine()} · wrk -t1 · {args.duration:g} s per "
          f"point · {int(args.rounds)} rounds, interleaved")
    print(tables(report, int(args.rounds)))


if __name__ == "__main__":
    main()
