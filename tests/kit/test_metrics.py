"""Prometheus metrics: a real scrape of a real stack, parsed with prometheus_client's parser."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from flaskstack import metrics
from flaskstack.rundir import RunDir
from tests.conftest import free_port


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{family name: {sorted labels: value}} from one GET of ``url``."""
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def total(values: dict[tuple[tuple[str, str], ...], float]) -> float:
    return sum(values.values())


def test_metrics_move_with_traffic(make_stack) -> None:
    port = free_port()
    stack = make_stack("--app", "probe:application", "--workers", "2", "--request-timeout", "2",
                       "--metrics-listen", f"127.0.0.1:{port}").start()
    url = f"http://127.0.0.1:{port}/metrics"
    before = scrape(url)
    assert before["flaskstack_up"] == {(("service", "nginx"),): 1, (("service", "uwsgi"),): 1}
    assert set(before["flaskstack_uwsgi_worker_requests_total"]) == {
        (("worker", "1"),), (("worker", "2"),)}
    for _ in range(30):
        assert requests.get(stack.url + "/x", timeout=10).status_code == 200
    assert requests.get(stack.url + "/slow?5", timeout=30).status_code == 502  # a harakiri
    time.sleep(1)
    after = scrape(url)
    assert (total(after["flaskstack_uwsgi_worker_requests_total"])
            >= total(before["flaskstack_uwsgi_worker_requests_total"]) + 30)
    assert (after["flaskstack_nginx_requests_total"][()]
            >= before["flaskstack_nginx_requests_total"][()] + 31)
    assert total(after["flaskstack_uwsgi_worker_harakiri_total"]) == 1
    assert total(after["flaskstack_uwsgi_worker_respawns_total"]) >= 1
    assert max(after["flaskstack_uwsgi_worker_rss_bytes"].values()) > 1_000_000  # a respawned
    # worker reports its RSS after its first request
    assert after["flaskstack_uwsgi_listen_queue"][()] == 0
    assert after["flaskstack_nginx_connections"][(("state", "active"),)] >= 0
    assert after["flaskstack_uptime_seconds"][()] > 0
    assert stack.cli("reload").returncode == 0
    time.sleep(1)
    assert scrape(url)["flaskstack_reloads_total"][()] == 1


def test_metrics_are_off_by_default(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    assert "metrics: " not in stack.output()  # the line `serve` prints when they are on


def test_a_server_that_does_not_answer_is_up_0_not_a_failed_scrape(tmp_path: Path) -> None:
    port = free_port()
    sources = metrics.Sources(RunDir(tmp_path), uwsgi=True, nginx=True)
    stop = metrics.serve("127.0.0.1", port, sources)
    try:
        found = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop()
    assert found["flaskstack_up"] == {(("service", "nginx"),): 0, (("service", "uwsgi"),): 0}
    assert "flaskstack_uwsgi_worker_requests_total" not in found


def test_role_app_has_no_nginx_figures(tmp_path: Path) -> None:
    port = free_port()
    sources = metrics.Sources(RunDir(tmp_path), uwsgi=True, nginx=False)
    stop = metrics.serve("127.0.0.1", port, sources)
    try:
        found = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop()
    assert found["flaskstack_up"] == {(("service", "uwsgi"),): 0}
