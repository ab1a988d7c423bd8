"""The notes site served by the real `flaskstack serve`, for the browser tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port


@dataclass
class NotesStack:
    url: str
    root: Path
    base: list[str]  # the settings flags, for `flaskstack exec` with the same stack
    env: dict[str, str]

    def create_user(self, email: str, password: str, *extra: str) -> None:
        """`flask --app notes users create EMAIL [extra…]` run as the stack runs it."""
        made = subprocess.run(
            [sys.executable, "-m", "flaskstack", "exec", *self.base, "--", "flask", "--app",
             "notes", "users", "create", email, *extra, "--password-stdin"],
            input=password + "\n", env=self.env, capture_output=True, text=True, timeout=60,
            check=False)
        assert made.returncode == 0, made.stderr


@contextlib.contextmanager
def serve_notes(prefix: str, *flags: str, scheme: str = "http",
                env: Callable[[int], dict[str, str]] = lambda port: {}) -> Iterator[NotesStack]:
    """`flaskstack serve` with the default app (notes) on a free port and a fresh data dir;
    ``env(port)`` adds variables, ``flags`` settings."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # the workers (www-data when root) read the site and write the data
    port = free_port()
    environ = {**os.environ, "NOTES_DATA_DIR": str(root / "data"), **env(port)}
    base = ["--port", str(port), "--host", "127.0.0.1", "--app-dir", str(root / "site"),
            "--run-dir", str(root / "run"), "--workers", "2", *flags]
    proc = subprocess.Popen([sys.executable, "-m", "flaskstack", "serve", *base], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()
    lines: list[str] = []

    def read(stream: Any) -> None:
        for line in stream:
            lines.append(line)
            if line.startswith("ready: "):
                ready.set()

    threading.Thread(target=read, args=(proc.stdout,), daemon=True).start()
    try:
        assert ready.wait(90), "".join(lines)
        yield NotesStack(f"{scheme}://127.0.0.1:{port}", root, base, environ)
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)
