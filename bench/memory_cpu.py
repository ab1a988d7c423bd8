"""Memory and CPU per request: flaskstack beside the configuration it replaces, same app.

    .venv/bin/python -m bench.memory_cpu [--rounds 3] [--windows 5] [--duration 2]

For the one-route hello app and the notes site, each round (interleaved) starts flaskstack
(hello: with its defaults; notes: ``--workers 2``) and the original configuration (uWSGI
master loading the app once + 2 workers, Nginx with 1 worker) on the same venv, app and data,
one at a time; warms each up the same way (three rounds of its paths, then until every uWSGI
worker has answered), and sums PSS over each process tree after 1.5 s idle, then again after
1,000 more requests.

Then, for hello, the round measures the CPU time of each whole process tree per request under
``wrk -t1 -c32``, split by process (supervisor, Nginx, uWSGI master and workers) so that a
ratio can be explained: the three hello stacks run at once and take turns, ``--windows``
windows of ``--duration`` seconds each (in reverse order every other window), so that a busy
moment of this shared machine falls on all of them alike. Figures are medians of the rounds;
the last table shows where the kit's hello stack's memory goes, process by process.

The kit's modules are compiled first (``compileall``), as installing a wheel leaves them: a
supervisor that compiles them from source at every start (``PYTHONDONTWRITEBYTECODE``, an
editable install never imported yet) keeps about 0.5 MB more.
"""

from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import contextlib
import itertools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

import flaskstack
from bench.run import (
    BIN,
    Running,
    Stack,
    free_port,
    machine,
    original,
    positive,
    prepare,
    pss_mb,
    serve,
    tree,
    wrk,
)
from flaskstack.status import uwsgi_stats_at

WARM_UP = ("/", "/?page=1", "/feed.xml", "/api/docs", "/openapi.json", "/no-such-page",
           "/login", "/sitemap.xml")


def get_all(url: str, paths: tuple[str, ...], count: int) -> None:
    with requests.Session() as web:
        for i in range(count):
            web.get(url.rstrip("/") + paths[i % len(paths)], timeout=30)


def pss(pids: list[int]) -> float:
    return sum(pss_mb(pid) for pid in pids)


def warm_every_worker(url: str, stats: Path | None, paths: tuple[str, ...]) -> None:
    """Ask ``paths`` from 4 clients at once until every uWSGI worker has answered: which
    worker takes a request is the kernel's choice, and a worker that never answered has not
    yet copied the pages an answer writes to (about 3.5 MB on hello, in both configurations)."""
    if stats is None:
        return
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(100):
            if min(w["requests"] for w in uwsgi_stats_at(stats)["workers"]) > 0:
                return
            list(pool.map(lambda _: get_all(url, paths, len(paths)), range(4)))
    raise RuntimeError(f"{url}: a uWSGI worker never answered")


def measure(running: Running, paths: tuple[str, ...]) -> tuple[float, float]:
    """PSS after the warm-up (three rounds of ``paths``, and until every worker has answered)
    and 1.5 s idle; then after 1,000 more requests."""
    url, pids = running.url, running.pids
    get_all(url, paths, 3 * len(paths))
    warm_every_worker(url, running.stats, paths)
    time.sleep(1.5)
    idle = pss(pids)
    get_all(url, paths, 1000)
    time.sleep(1.5)
    return idle, pss(pids)


@contextlib.contextmanager
def kit(stack: Stack) -> Iterator[Running]:
    stack.start()
    try:
        assert stack.proc is not None
        yield Running(stack.url + "/", [stack.proc.pid], stack.run.uwsgi_stats)
    finally:
        stack.stop()


def breakdown(root: int) -> list[tuple[str, float]]:
    """PSS of each process under ``root`` (its own, not its children's), by its title."""
    rows = []
    for pid in tree(root):
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            own = sum(int(line.split()[1]) for line in
                      Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                      if line.startswith("Pss:"))
            rows.append((title.strip()[:70], own / 1024))
    return rows


def role(pid: int, title: str) -> str:
    """What a process of a stack is, for the CPU split: Nginx's by their titles, uWSGI's
    master (whose parent is not uWSGI) and workers, anything else the supervisor."""
    if title.startswith("nginx: "):
        return "nginx " + title.removeprefix("nginx: ").split(" process")[0]
    if "uwsgi" in title:
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            above = Path(f"/proc/{parent}/cmdline").read_bytes()
            return "uwsgi worker" if b"uwsgi" in above else "uwsgi master"
        return "uwsgi"
    return "supervisor"


def cpu_split(roots: list[int]) -> dict[str, float]:
    """User + system CPU seconds of every process under ``roots``, summed by :func:`role`."""
    found: dict[str, float] = {}
    for root in roots:
        for pid in tree(root):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                name = role(pid, title.strip())
                found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12]))
    return {k: v / os.sysconf("SC_CLK_TCK") for k, v in found.items()}


def take_turns(stacks: dict[str, Running], windows: int, duration: int
               ) -> dict[str, tuple[float, float, dict[str, float]]]:
    """Each running stack's req/s, CPU per request (µs) and CPU per request by process, over
    ``windows`` turns of ``duration`` seconds of ``wrk -c32`` (after 2 s of warm-up each)."""
    for running in stacks.values():
        wrk(running.url, 32, 2, {})
    requests_ = dict.fromkeys(stacks, 0)
    used: dict[str, dict[str, float]] = {key: {} for key in stacks}
    order = list(stacks)
    for turn in range(windows):
        for key in order if turn % 2 == 0 else order[::-1]:
            running = stacks[key]
            before = cpu_split(running.pids)
            point = wrk(running.url, 32, duration, {})  # (its CPU: cpu_split, around it)
            after = cpu_split(running.pids)
            requests_[key] += point.requests
            for name, seconds in after.items():
                used[key][name] = used[key].get(name, 0.0) + seconds - before.get(name, 0.0)
    return {key: (requests_[key] / (windows * duration),
                  sum(used[key].values()) / requests_[key] * 1e6,
                  {name: s / requests_[key] * 1e6 for name, s in used[key].items()})
            for key in stacks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive(int), default=3)
    parser.add_argument("--windows", type=positive(int), default=5,
                        help="turns of wrk per stack and round, the stacks running at once")
    parser.add_argument("--duration", type=positive(int), default=2,
                        help="seconds of wrk per turn (after a 2 s warm-up)")
    args = parser.parse_args()
    rounds, windows, duration = int(args.rounds), int(args.windows), int(args.duration)
    compileall.compile_dir(Path(flaskstack.__file__).parent, quiet=1)
    memory: dict[str, list[tuple[float, float]]] = {}
    cpu: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    split: dict[str, list[dict[str, float]]] = {}
    where: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="flaskstack-memory-") as name:
        tmp = Path(name)
        site, data, notes_env = prepare(tmp)
        def hello_stack(name: str, *flags: str) -> Stack:  # the kit's defaults, and flags
            port = free_port()
            return Stack(name, [str(BIN / "flaskstack"), "serve", "--run-dir",
                                str(tmp / f"run-{name}"), "--host", "127.0.0.1", "--port",
                                str(port), "--app", "hello:app", "--app-dir", str(site), *flags],
                         dict(os.environ), port)

        hello, two = hello_stack("hello"), hello_stack("hello2", "--nginx-workers", "2")
        notes = serve("notes", tmp, "--app-dir", str(tmp), env=notes_env)
        with kit(notes):  # migrates the database once, as a restart finds it
            pass
        if os.geteuid() == 0:
            shutil.chown(data, "www-data", "www-data")
            for path in data.rglob("*"):
                shutil.chown(path, "www-data", "www-data")
        starts = itertools.count()
        for n in range(rounds):
            hellos = {  # (each start of the original configuration in a folder of its own)
                "hello, flaskstack": lambda: kit(hello),
                "hello, original": lambda: original(tmp / f"oh{next(starts)}", site),
                "hello, flaskstack --nginx-workers 2": lambda: kit(two),
            }
            configurations = [
                *((key, start, ("/",)) for key, start in hellos.items()),
                ("notes, flaskstack", lambda: kit(notes), WARM_UP),
                ("notes, original", lambda n=n: original(
                    tmp / f"on{n}", tmp, "notes:create_app()", notes_env), WARM_UP),
            ]
            for key, start, paths in configurations:  # memory: one stack at a time
                with start() as running:
                    memory.setdefault(key, []).append(measure(running, paths))
                    if key == "hello, flaskstack" and n == rounds - 1:
                        where = breakdown(running.pids[0])
            with contextlib.ExitStack() as stacks:  # CPU: the hello stacks at once
                started = {key: stacks.enter_context(start()) for key, start in hellos.items()}
                for key, (rate, per_request, by_process) in take_turns(
                        started, windows, duration).items():
                    rps.setdefault(key, []).append(rate)
                    cpu.setdefault(key, []).append(per_request)
                    split.setdefault(key, []).append(by_process)
    print(f"{time.strftime('%Y-%m-%d %H:%M')} UTC · {machine()} · median of {rounds} "
          "interleaved rounds")
    print("| app, configuration | PSS idle | PSS after 1,000 requests | ratio (idle / after) |")
    print("| --- | ---: | ---: | ---: |")
    for key, values in memory.items():
        idle = statistics.median(v[0] for v in values)
        after = statistics.median(v[1] for v in values)
        base = memory[key.split(",")[0] + ", original"]
        ratio = (f"{idle / statistics.median(v[0] for v in base):.2f} / "
                 f"{after / statistics.median(v[1] for v in base):.2f}")
        print(f"| {key} | {idle:.1f} MB | {after:.1f} MB | {ratio} |")
    print()
    print(f"| hello app (wrk -t1 -c32, {windows} turns of {duration} s) | req/s "
          "| CPU per request | ratio "
          "| each round's own ratio (min-max) |")
    print("| --- | ---: | ---: | ---: | --- |")
    base = cpu["hello, original"]
    for key in cpu:
        value = statistics.median(cpu[key])
        own = [mine / theirs for mine, theirs in zip(cpu[key], base, strict=True)]
        print(f"| {key} | {statistics.median(rps[key]):,.0f} | {value:.1f} µs "
              f"| {value / statistics.median(base):.2f} "
              f"| {statistics.median(own):.2f} ({min(own):.2f}-{max(own):.2f}) |")
    print()
    roles = sorted({name for rows in split.values() for row in rows for name in row})
    print("| hello app: CPU per request by process | " + " | ".join(roles) + " |")
    print("| --- |" + " ---: |" * len(roles))
    for key, rows in split.items():
        cells = [f"{statistics.median(row.get(name, 0.0) for row in rows):.1f} µs"
                 for name in roles]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print()
    print("| process (flaskstack hello, after 1,000 requests) | PSS |")
    print("| --- | ---: |")
    for title, mb in where:
        print(f"| {title} | {mb:.1f} MB |")


if __name__ == "__main__":
    main()
