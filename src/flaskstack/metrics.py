"""Prometheus metrics of the running stack, read from uWSGI's and Nginx's status sockets.

Nothing is counted per request by the kit: every scrape asks uWSGI's stats socket and Nginx's
``stub_status`` (the same sources as ``flaskstack status``) and turns their figures into metric
families with the official ``prometheus-client``. A source that does not answer gives
``flaskstack_up{service=...} 0`` and no other figures, never a failed scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
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


def serve(host: str, port: int, sources: Sources) -> Callable[[], None]:
    """Answer scrapes on ``host:port`` in a thread; returns the function that stops it."""
    server, thread = start_http_server(port, host.strip("[]"), registry(sources))

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
