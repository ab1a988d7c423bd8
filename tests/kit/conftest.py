"""A real `flaskstack serve` (real nginx, real uWSGI) on a free port, per test."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

APPS = Path(__file__).parent / "apps"
FLASKSTACK = [sys.executable, "-m", "flaskstack"]
# a request id Nginx makes: a random prefix per start, the worker's pid, the connection's serial
# number and the request's number on that connection
REQUEST_ID = re.compile(r"[0-9a-f]{8}-\d+-\d+-\d+")


def leftovers(marker: str) -> list[str]:
    """Command lines of live processes whose command line or environment mention ``marker``."""
    return [cmdline for _, cmdline in _processes(marker)]


def _processes(marker: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if (marker in cmdline or marker in environ) and ") Z" not in stat:
            found.append((int(entry.name), cmdline))
    return found


class Stack:
    """One `flaskstack serve` process and what it printed."""

    def __init__(self, root: Path, args: list[str], env: dict[str, str]) -> None:
        self.root = root
        self.app_dir = root / "site"
        self.run_dir = root / "run"
        self.port = free_port()
        self.args = [
            "--app-dir", str(self.app_dir), "--run-dir", str(self.run_dir),
            "--port", str(self.port), "--host", "127.0.0.1", *args,
        ]
        self.env = {**os.environ, "PROBE_SEEN": str(root / "seen.txt"), **env}
        self.proc: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*FLASKSTACK, *args, "--run-dir", str(self.run_dir)],
            capture_output=True, text=True, env=self.env, timeout=60, check=check,
        )

    def start(self, wait: bool = True) -> Stack:
        self.ready.clear()
        self.proc = subprocess.Popen(
            [*FLASKSTACK, "serve", *self.args], env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True)\
            .start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True)\
            .start()
        if wait:
            assert self.wait_ready(), f"not ready: {self.output()}"
        return self

    def _read(self, stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            into.append(line)
            if line.startswith("ready: "):
                self.ready.set()

    def wait_ready(self, timeout: float = 60) -> bool:
        assert self.proc is not None
        for _ in range(int(timeout * 10)):
            if self.ready.wait(0.1) or self.proc.poll() is not None:
                break
        return self.ready.is_set()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    def seen(self) -> list[str]:
        path = self.root / "seen.txt"
        return path.read_text().splitlines() if path.exists() else []

    def kill(self) -> None:
        """Stop what the test left running: gracefully first, then by force, nginx's whole
        process group included (its workers carry no trace of the test in their environment)."""
        nginx_pid = self.run_dir / "nginx.pid"
        master = int(nginx_pid.read_text()) if nginx_pid.exists() else None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if master is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(master, signal.SIGKILL)
        for pid, _ in _processes(str(self.root)):  # only after a failed test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def make_stack() -> Iterator[object]:
    """``make_stack(*serve_args, **env)`` -> an unstarted :class:`Stack` with the fixture apps."""
    stacks: list[Stack] = []
    roots: list[Path] = []

    def make(*args: str, **env: str) -> Stack:
        # world-readable, so uWSGI and nginx workers (www-data when root) can read the site
        root = Path(tempfile.mkdtemp(prefix="flaskstack-test-"))
        root.chmod(0o755)
        shutil.copytree(APPS, root / "site")
        for path in [root / "site", *(root / "site").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "seen.txt").touch()
        (root / "seen.txt").chmod(0o666)
        stack = Stack(root, list(args), env)
        stacks.append(stack)
        roots.append(root)
        return stack

    yield make
    for stack in stacks:
        stack.kill()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
