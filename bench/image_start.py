"""The image's start: ``podman run`` (or ``podman start``) to the first 200 on ``/``, split.

    .venv/bin/python -m bench.image_start [--rounds 3] [--image TAG [--image TAG2 ...]]

Builds the image as the tests do (``scripts/container-base.sh``, ``flaskstack image build`` with
the base made by debootstrap, the CA secret, runc via a private containers.conf), unless
``--image`` names images already built (several are compared in one run). Each round, for each
image in turn: a container on a new data volume (the prestart makes its database), ``podman
start`` of that container once stopped, a new container on the same (migrated) volume; then
natively ``flaskstack serve`` with a new and with a migrated database. Every figure is the median
of the rounds (so a row's parts need not add up to its total).

The split reads what the container's processes leave behind, from the host (hence root): the
start times of uWSGI's master, its first worker and Nginx's master (``/proc``), and the files the
supervisor writes in its run directory (its pid file once the configs are written, uWSGI's
``gen-1/ready`` once the first generation's worker accepts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.run import children, free_port, machine, positive, serve, served_at

ROOT = Path(__file__).resolve().parents[1]
TAG = "localhost/flaskstack:bench"
PHASES = ("podman → PID 1", "kit: plan, render", "prestart", "uWSGI master: preload",
          "uWSGI worker: app, accepts", "kit → Nginx started", "Nginx → first 200")


def engine_env(tmp: Path) -> dict[str, str]:
    from tests.containers import engine_env as tests_env  # the tests' containers.conf

    return tests_env(tmp)


def podman(env: dict[str, str], *args: str, timeout: float = 900
           ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"podman {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return result


def build(env: dict[str, str], tag: str) -> None:
    """The image, built exactly as tests/containers.py builds it (podman's cache makes a rebuild
    of unchanged sources quick)."""
    from tests.containers import BASE, CA_BUNDLE

    print("bench: building the base image and the image (cached when unchanged)",
          file=sys.stderr, flush=True)
    for argv in (["bash", str(ROOT / "scripts" / "container-base.sh"), BASE],
                 [sys.executable, "-m", "flaskstack", "image", "build", "--engine", "podman",
                  "--tag", tag, "--context", str(ROOT), "--base-image", BASE,
                  *(["--ca-bundle", CA_BUNDLE] if Path(CA_BUNDLE).is_file() else [])]):
        made = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800,
                              check=False)
        if made.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {made.stderr.strip()[-3000:]}")


# -- when things happened ---------------------------------------------------------------------


def boot_offset() -> float:
    """Add to a time since boot (``/proc/PID/stat``'s start time) to get the wall clock."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def started_at(pid: int) -> float:
    """The wall-clock time ``pid`` was created (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return boot_offset() + ticks / os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def split(supervisor: int, run_dir: Path, began: float, served: float) -> dict[str, float]:
    """Seconds spent in each phase of a start whose PID 1 (or ``serve``) is ``supervisor`` and
    began at ``began`` (wall clock); the phases it cannot see are left out."""
    marks = {"began": began}
    with contextlib.suppress(OSError):
        marks["configs written"] = run_dir.joinpath("flaskstack.pid").stat().st_mtime
    with contextlib.suppress(OSError):
        marks["worker accepts"] = run_dir.joinpath("gen-1", "ready").stat().st_mtime
    with contextlib.suppress(OSError, StopIteration):
        below = children()
        for child in sorted(below.get(supervisor, [])):
            line = cmdline(child)
            if "uwsgi" in line and "--ini" in line:
                marks["uwsgi master"] = started_at(child)
                marks["uwsgi worker"] = started_at(next(iter(sorted(below.get(child, [])))))
            elif "nginx" in line:
                marks["nginx"] = started_at(child)
    marks["served"] = served
    order = ("began", "configs written", "uwsgi master", "uwsgi worker", "worker accepts",
             "nginx", "served")
    names = dict(zip(order[1:], PHASES[1:], strict=True))
    phases, last = {}, "began"
    for mark in order[1:]:
        if mark in marks:
            phases[names[mark]] = max(0.0, marks[mark] - marks[last])
            last = mark
    return phases


# -- the starts ---------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    totals: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)

    def add(self, total: float, phases: dict[str, float]) -> None:
        self.totals.append(total)
        for phase, seconds in phases.items():
            self.parts.setdefault(phase, []).append(seconds)


class Podman:
    """Containers and volumes named for this run, all removed at the end."""

    def __init__(self, env: dict[str, str], image: str) -> None:
        self.env, self.image = env, image
        self.names: list[str] = []
        self.volumes: list[str] = []

    def volume(self) -> str:
        name = f"fsbench-{uuid.uuid4().hex[:8]}"
        self.volumes.append(name)
        podman(self.env, "volume", "create", name)
        return name

    def running(self, name: str) -> bool:
        state = podman(self.env, "inspect", "--format", "{{.State.Running}}", name)
        return state.stdout.strip() == "true"

    def measure(self, row: Row, name: str, port: int, *command: str) -> None:
        """Run ``podman COMMAND`` and time it to the first 200, split."""
        began = time.time()
        podman(self.env, *command)
        served = served_at(f"http://127.0.0.1:{port}/", lambda: self.running(name), 120,
                           check_every=1)
        info = json.loads(podman(self.env, "inspect", name).stdout)[0]["State"]
        pid1 = int(info["Pid"])
        phases = {PHASES[0]: parse_time(info["StartedAt"]) - began}
        phases |= split(pid1, Path(f"/proc/{pid1}/root/run/flaskstack"),
                        parse_time(info["StartedAt"]), served)
        row.add(served - began, phases)

    def run(self, row: Row, volume: str) -> tuple[str, int]:
        """A new container on ``volume``: its name and port."""
        name, port = f"fsbench-{uuid.uuid4().hex[:8]}", free_port()
        self.names.append(name)
        self.measure(row, name, port, "run", "-d", "--name", name, "-p",
                     f"127.0.0.1:{port}:85", "-v", f"{volume}:/web/data", self.image)
        return name, port

    def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                podman(self.env, "rm", "-f", "-v", "-t", "0", name)
        for volume in self.volumes:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                podman(self.env, "volume", "rm", "-f", volume)


def parse_time(stamp: str) -> float:
    """podman's ``2026-11-30 03:40:16.44399513 +0000 UTC`` (or RFC 3339) as a wall-clock time."""
    text = stamp.replace("T", " ").replace("Z", " +0000").split(" UTC")[0].strip()
    day, clock, *zone = text.split()
    whole, _, fraction = clock.partition(".")
    moment = datetime.datetime.strptime(f"{day} {whole} {zone[0] if zone else '+0000'}",
                                        "%Y-%m-%d %H:%M:%S %z")
    return moment.timestamp() + float(f"0.{fraction or 0}")


def native(row: Row, tmp: Path, data: Path) -> None:
    """``flaskstack serve`` with the notes site and ``data`` (new or migrated), split."""
    stack = serve("notes", tmp, "--app-dir", str(tmp), env={
        "NOTES_DATA_DIR": str(data), "NOTES_SECRET_KEY": "bench-" + "x" * 32})
    began = time.time()
    try:
        elapsed = stack.start()
        assert stack.proc is not None
        row.add(elapsed, split(stack.proc.pid, tmp / "run-notes", began, began + elapsed))
    finally:
        stack.stop()


def run(rounds: int, images: list[str]) -> tuple[list[Row], str]:
    """The rows (each image's, then native), and podman's version."""
    kinds = ("podman run, new volume", "podman start of that container, stopped",
             "podman run, migrated volume")
    rows = {(image, kind): Row(f"{kind} ({image})" if len(images) > 1 else kind)
            for image in images or [TAG] for kind in kinds}
    rows |= {("", kind): Row(kind) for kind in ("flaskstack serve, new database (native)",
                                                 "flaskstack serve, migrated database (native)")}
    with tempfile.TemporaryDirectory(prefix="flaskstack-bench-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        env = engine_env(tmp)
        if not images:
            images = [TAG]
            build(env, TAG)
        version = podman(env, "version", "--format", "{{.Client.Version}}").stdout.strip()
        engines = [Podman(env, image) for image in images]
        try:
            for turn in range(rounds):
                print(f"bench: round {turn + 1} of {rounds}", file=sys.stderr, flush=True)
                for engine in engines:  # interleaved: each image in turn, then native
                    new, started, again = (rows[engine.image, kind] for kind in kinds)
                    volume = engine.volume()
                    fresh, port = engine.run(new, volume)
                    podman(env, "stop", "-t", "20", fresh)
                    engine.measure(started, fresh, port, "start", fresh)
                    podman(env, "rm", "-f", "-t", "0", fresh)
                    podman(env, "rm", "-f", "-t", "0", engine.run(again, volume)[0])
                data = tmp / f"data-{turn}"
                native(rows["", "flaskstack serve, new database (native)"], tmp, data)
                native(rows["", "flaskstack serve, migrated database (native)"], tmp, data)
        finally:
            for engine in engines:
                engine.cleanup()
    return list(rows.values()), version


def table(rows: list[Row], rounds: int) -> str:
    lines = [f"| start → first 200 on / (median of {rounds}) | total | "
             + " | ".join(PHASES) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in PHASES) + " |"]
    for row in rows:
        cells = [f"{statistics.median(row.parts[p]):.2f}" if p in row.parts else "—"
                 for p in PHASES]
        lines.append(f"| {row.name} | {statistics.median(row.totals):.2f} s | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive(int), default=3,
                        help="rounds over every kind of start; each figure is their median")
    parser.add_argument("--image", action="append", default=[],
                        help="an image already built; repeat to compare images in one run "
                        f"(default: build {TAG} as the tests do)")
    args = parser.parse_args()
    if not shutil.which("podman"):
        sys.exit("bench: podman is not installed (bash scripts/install.sh test)")
    if os.geteuid() != 0:
        sys.exit("bench: run as root (podman here, and the split reads the containers' /proc)")
    rows, version = run(int(args.rounds), list(args.image))
    print(f"{time.strftime('%Y-%m-%d')} · {machine()} · podman {version} (runc) · "
          f"{int(args.rounds)} rounds, interleaved")
    print(table(rows, int(args.rounds)))


if __name__ == "__main__":
    main()
