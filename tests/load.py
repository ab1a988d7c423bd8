"""Bounded background load for the tests, counting every failed request."""

from __future__ import annotations

import threading
import time

import requests


class Load:
    """Bounded background load from a few threads, counting every failure.

    GET by default; ``method="POST"`` with ``json``/``data`` and ``headers`` for requests a
    proxy may not retry. ``expect`` is the status that counts as success.
    """

    def __init__(self, url: str, threads: int = 6, limit_s: float = 60, method: str = "GET",
                 expect: int = 200, **request: object) -> None:
        self.url = url
        self.method, self.expect, self.request = method, expect, request
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self.replicas: set[str] = set()
        self.last: str = ""
        self.answers: list[tuple[float, str]] = []  # (monotonic time it was sent, body)
        self.stop_at = time.monotonic() + limit_s
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stopping.is_set() and time.monotonic() < self.stop_at:
            sent = time.monotonic()
            try:
                # a new connection every time
                r = requests.request(self.method, self.url, timeout=30,
                                     **self.request)  # type: ignore[arg-type]
                with self.lock:
                    if r.status_code == self.expect:
                        self.ok += 1
                        self.bodies.add(r.text)
                        self.last = r.text
                        self.answers.append((sent, r.text))
                        self.replicas.add(r.headers.get("X-Replica", ""))
                    else:
                        self.failures.append(f"HTTP {r.status_code}")
            except requests.RequestException as e:
                with self.lock:
                    self.failures.append(repr(e))

    def sent_after(self, moment: float) -> set[str]:
        """The bodies of the answers to requests sent after ``moment`` (time.monotonic())."""
        with self.lock:
            return {body for sent, body in self.answers if sent > moment}

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(60)


def wait_for(condition, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
