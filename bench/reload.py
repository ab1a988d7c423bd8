"""A reload as a user sees it: four client threads loop on ``/`` while the app changes version.

    .venv/bin/python -m bench.reload

Serves a versioned one-route app through ``flaskstack serve --workers 2``, then (1) writes
version 2 and runs ``flaskstack reload``, (2) writes a version that cannot be imported and runs
``flaskstack reload`` again. Every request's send time, status and version is recorded; the
stack's PSS (summed over its process tree) is sampled while reload runs. Prints, for each
reload, its exit status and output, the requests that failed, how many requests sent after
``reload`` returned were answered by the old version, and the memory before, at its peak and
after.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.run import BIN, Stack, free_port, pss_mb

APP = '''\
VERSION = "{version}"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


class Clients:
    """Four threads on ``url``: (sent at, status or error, body) for every request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.log: list[tuple[float, str, str]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.loop) for _ in range(4)]

    def loop(self) -> None:
        while not self.stopping.is_set():
            sent = time.monotonic()
            try:
                r = requests.get(self.url, timeout=30)
                self.log.append((sent, str(r.status_code), r.text))
            except requests.RequestException as e:
                self.log.append((sent, type(e).__name__, ""))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flaskstack-reload-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        site = tmp / "site"
        site.mkdir(mode=0o755)
        app = site / "versioned.py"
        app.write_text(APP.format(version="v1"))
        app.chmod(0o644)
        port = free_port()
        run_dir = str(tmp / "run")
        stack = Stack("reload", [str(BIN / "flaskstack"), "serve", "--run-dir", run_dir,
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                                 "--app", "versioned:application", "--app-dir", str(site)],
                      dict(os.environ), port)
        stack.start()
        assert stack.proc is not None
        clients = Clients(stack.url + "/")
        try:
            for t in clients.threads:
                t.start()
            time.sleep(2)
            for label, text, old in (("v2", APP.format(version="v2"), "v1"),
                                     ("broken", APP.format(version="v3") + "def broken(:\n",
                                      "v2")):
                before = pss_mb(stack.proc.pid)
                memory = []
                app.write_text(text)
                began = time.monotonic()
                reload = subprocess.Popen([str(BIN / "flaskstack"), "reload", "--run-dir",
                                           run_dir], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
                while reload.poll() is None:
                    memory.append(pss_mb(stack.proc.pid))
                returned = time.monotonic()
                out, err = reload.communicate()
                time.sleep(2)
                after = pss_mb(stack.proc.pid)
                during = [e for e in clients.log if e[0] >= began - 1]
                failed = [e for e in during if e[1] != "200"]
                late = [e for e in clients.log if e[0] > returned and e[2] == old]
                sent_after = [e for e in clients.log if e[0] > returned]
                print(f"## reload to {label}: exit {reload.returncode}, "
                      f"{returned - began:.2f} s")
                print((out + err).strip())
                print(f"requests from 1 s before the reload to 2 s after: {len(during)}, "
                      f"failed: {len(failed)}")
                versions = sorted({e[2] for e in sent_after})
                print(f"sent after reload returned: {len(sent_after)}, answered by {old}: "
                      f"{len(late)}; versions answering them: {', '.join(versions)}")
                print(f"PSS: before {before:.1f} MB, peak {max(memory, default=0):.1f} MB "
                      f"({len(memory)} samples while reload ran), after {after:.1f} MB")
                print()
        finally:
            clients.stopping.set()
            for t in clients.threads:
                t.join(30)
            stack.stop()


if __name__ == "__main__":
    main()
