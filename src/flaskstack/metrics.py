"""Prometheus metrics of the running stack, read from uWSGI's and Nginx's status sockets.

Nothing is counted per request by the kit: every scrape asks uWSGI's stats socket and Nginx's
``stub_status`` (the same sources as ``flaskstack status``) and turns their figures into metric
families with the official ``prometheus-client``. A source that does not answer gives
``flaskstack_up{service=...} 0`` and no other figures, never a failed scrape.

The endpoint is served by one thread with one event loop (:class:`Listener`), not a thread per
connection: at most ``MAX_CONNECTIONS`` clients are held at once (a new one closes the longest
waiting), each has ``REQUEST_SECONDS`` to send its request and as long again to read the
answer, and a request is at most ``MAX_REQUEST`` bytes. Idle connections by the thousand cost
neither threads nor memory and never keep a scrape waiting.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from . import status
from .rundir import RunDir

PREFIX = "flaskstack"


@dataclass
class Sources:
    """Where the figures come from: the run directory's status sockets of the servers this
    plan runs."""

    run: RunDir
    uwsgi: bool
    nginx: bool
    started: float = field(default_factory=time.time)  # the stack's start (Unix time)
    reloads: Callable[[], int] = lambda: 0  # reloads so far, as the supervisor counts them


class StackCollector(Collector):
    """One scrape: the stack's own figures, then uWSGI's, then Nginx's."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_up", "Whether the server answered this scrape.",
                               labels=["service"])
        yield GaugeMetricFamily(f"{PREFIX}_start_time_seconds",
                                "When the stack started (Unix time).", self.sources.started)
        yield GaugeMetricFamily(f"{PREFIX}_uptime_seconds", "Seconds since the stack started.",
                                max(0.0, time.time() - self.sources.started))
        yield CounterMetricFamily(f"{PREFIX}_reloads", "Reloads (SIGHUP, flaskstack reload).",
                                  self.sources.reloads())
        if self.sources.uwsgi:
            try:
                stats = status.uwsgi_stats(self.sources.run)
            except (OSError, ValueError):
                up.add_metric(["uwsgi"], 0)
            else:
                up.add_metric(["uwsgi"], 1)
                yield from uwsgi_metrics(stats)
        if self.sources.nginx:
            try:
                nginx = status.nginx_status(self.sources.run)
            except (OSError, ValueError, IndexError):
                up.add_metric(["nginx"], 0)
            else:
                up.add_metric(["nginx"], 1)
                yield from nginx_metrics(nginx)
        yield up


def uwsgi_metrics(stats: dict[str, Any]) -> Iterable[Metric]:
    """Families from one reading of uWSGI's stats socket."""
    workers: list[dict[str, Any]] = stats.get("workers", [])

    def per_worker(kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, doc: str,
                   key: str) -> Metric:
        family = kind(f"{PREFIX}_uwsgi_worker_{name}", doc, labels=["worker"])
        for w in workers:
            family.add_metric([str(w["id"])], w.get(key, 0))
        return family

    yield per_worker(CounterMetricFamily, "requests",
                     "Requests a worker served (restarts at 0 when it respawns).", "requests")
    yield per_worker(CounterMetricFamily, "exceptions", "Unhandled exceptions in the app.",
                     "exceptions")
    yield per_worker(CounterMetricFamily, "respawns", "Times the worker was respawned.",
                     "respawn_count")
    yield per_worker(CounterMetricFamily, "harakiri",
                     "Requests killed for passing request_timeout.", "harakiri_count")
    # from /proc: uWSGI's own figure needs memory-report, which costs every request
    rss = GaugeMetricFamily(f"{PREFIX}_uwsgi_worker_rss_bytes", "Resident memory of the worker.",
                            labels=["worker"])
    for w in workers:
        rss.add_metric([str(w["id"])], status.rss(int(w["pid"])) or 0)
    yield rss
    yield per_worker(CounterMetricFamily, "transmitted_bytes", "Bytes the worker sent.", "tx")
    busy = GaugeMetricFamily(f"{PREFIX}_uwsgi_worker_busy",
                             "1 while the worker serves a request, else 0.", labels=["worker"])
    states: dict[str, int] = {"busy": 0, "idle": 0}
    for w in workers:
        state = str(w.get("status", "idle"))
        busy.add_metric([str(w["id"])], 1 if state == "busy" else 0)
        states[state] = states.get(state, 0) + 1
    yield busy
    by_state = GaugeMetricFamily(f"{PREFIX}_uwsgi_workers", "Workers by state.",
                                 labels=["state"])
    for state, count in sorted(states.items()):
        by_state.add_metric([state], count)
    yield by_state
    yield GaugeMetricFamily(f"{PREFIX}_uwsgi_listen_queue",
                            "Connections waiting in uWSGI's listen queue.",
                            stats.get("listen_queue", 0))
    yield CounterMetricFamily(f"{PREFIX}_uwsgi_listen_queue_errors",
                              "Connections refused because the listen queue was full.",
                              stats.get("listen_queue_errors", 0))
    caches = stats.get("caches") or []
    if caches:  # only when the app configured uWSGI caches
        hits = CounterMetricFamily(f"{PREFIX}_uwsgi_cache_hits", "uWSGI cache hits.",
                                   labels=["cache"])
        misses = CounterMetricFamily(f"{PREFIX}_uwsgi_cache_misses", "uWSGI cache misses.",
                                     labels=["cache"])
        for cache in caches:
            hits.add_metric([str(cache.get("name", ""))], cache.get("hits", 0))
            misses.add_metric([str(cache.get("name", ""))], cache.get("miss", 0))
        yield hits
        yield misses


def nginx_metrics(n: status.NginxStatus) -> Iterable[Metric]:
    """Families from one reading of Nginx's stub_status."""
    connections = GaugeMetricFamily(f"{PREFIX}_nginx_connections",
                                    "Client connections by state.", labels=["state"])
    for state in ("active", "reading", "writing", "waiting"):
        connections.add_metric([state], getattr(n, state))
    yield connections
    yield CounterMetricFamily(f"{PREFIX}_nginx_connections_accepted",
                              "Client connections accepted.", n.accepted)
    yield CounterMetricFamily(f"{PREFIX}_nginx_connections_handled",
                              "Client connections handled (below accepted: a limit was hit).",
                              n.handled)
    yield CounterMetricFamily(f"{PREFIX}_nginx_requests", "Client requests.", n.requests)


def registry(sources: Sources) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StackCollector(sources))
    return reg


MAX_CONNECTIONS = 64  # clients held at once; beyond it the longest waiting one is closed
REQUEST_SECONDS = 5.0  # to send the request line and headers, and again to read the answer
MAX_REQUEST = 8192  # bytes of request line and headers


@dataclass
class _Client:
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    answer: bytes = b""  # what is left to send (empty: still reading the request)


class Listener:
    """A small HTTP/1.1 server for scrapes: ``GET /metrics`` (or ``/``) answers the registry's
    figures, anything else 404; every answer closes the connection."""

    def __init__(self, host: str, port: int, reg: CollectorRegistry) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.registry = reg
        self.listener = socket.create_server((host, port), family=family, backlog=128)
        self.listener.setblocking(False)
        self.wake_read, self.wake_write = socket.socketpair()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        self.clients: dict[socket.socket, _Client] = {}  # oldest first
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            first = min((c.deadline for c in self.clients.values()), default=now + 60)
            for key, events in self.selector.select(max(0.0, first - now)):
                sock = key.fileobj
                if sock is self.listener:
                    self.accept()
                elif sock is self.wake_read:
                    self.stopping = True
                elif isinstance(sock, socket.socket) and sock in self.clients:
                    if events & selectors.EVENT_READ:
                        self.read(sock)
                    elif events & selectors.EVENT_WRITE:
                        self.write(sock)
            now = time.monotonic()
            for sock in [s for s, c in self.clients.items() if c.deadline <= now]:
                self.close(sock)
        for sock in list(self.clients):
            self.close(sock)
        self.selector.close()
        self.listener.close()
        self.wake_read.close()

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: the others are still served
                return
            if len(self.clients) >= MAX_CONNECTIONS:
                self.close(next(iter(self.clients)))
            sock.setblocking(False)
            self.clients[sock] = _Client(time.monotonic() + REQUEST_SECONDS)
            self.selector.register(sock, selectors.EVENT_READ)

    def read(self, sock: socket.socket) -> None:
        client = self.clients[sock]
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(sock)
            return
        client.received += data
        end = client.received.find(b"\r\n\r\n")
        if end < 0:
            if len(client.received) > MAX_REQUEST:
                self.answer(sock, "431 Request Header Fields Too Large", "text/plain", b"")
            return
        self.answer(sock, *self.respond(bytes(client.received[:end])))

    def respond(self, head: bytes) -> tuple[str, str, bytes]:
        """(status, content type, body) for one request's line and headers."""
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b""
        if path not in ("/metrics", "/"):
            return "404 Not Found", "text/plain", b""
        accept = next((line.partition(":")[2].strip() for line in lines[1:]
                       if line.lower().startswith("accept:")), "")
        # the format the client asks for, as prometheus-client's own server chooses it
        encoder, content_type = choose_encoder(accept)
        body = encoder(self.registry)
        return "200 OK", content_type, b"" if method == "HEAD" else body

    def answer(self, sock: socket.socket, status: str, content_type: str, body: bytes) -> None:
        head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        client = self.clients[sock]
        client.answer = head.encode() + body
        client.deadline = time.monotonic() + REQUEST_SECONDS
        self.selector.modify(sock, selectors.EVENT_WRITE)
        self.write(sock)

    def write(self, sock: socket.socket) -> None:
        client = self.clients[sock]
        try:
            sent = sock.send(client.answer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(client.answer)
        client.answer = client.answer[sent:]
        if not client.answer:
            self.close(sock)

    def close(self, sock: socket.socket) -> None:
        del self.clients[sock]
        self.selector.unregister(sock)
        sock.close()

    def stop(self) -> None:
        """Ends :meth:`run` (from another thread); a second call does nothing."""
        with contextlib.suppress(OSError):  # already stopped: the socket is closed
            self.wake_write.send(b"x")
        self.wake_write.close()


def serve(host: str, port: int, sources: Sources) -> Callable[[], None]:
    """Answer scrapes on ``host:port`` in one thread; returns the function that stops it."""
    listener = Listener(host.strip("[]"), port, registry(sources))
    thread = threading.Thread(target=listener.run, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        listener.stop()
        thread.join(5)

    return stop
