"""The proxy role's passive health checks: what takes a replica out of rotation, and what not."""

from __future__ import annotations

import pytest
import requests

from flaskstack import render
from tests.kit.test_load import replicas_behind_a_proxy
from tests.kit.test_render import directive, make


def test_the_proxy_counts_only_what_says_a_replica_is_unreachable() -> None:
    plan = make(role="proxy", upstreams="app:8000", servers=("10.0.0.1:8000", "10.0.0.2:8000"))
    nginx = render.render(plan)["nginx.conf"]
    # connect errors, timeouts, empty or garbled answers; never an answer with a status code
    assert directive(nginx, "uwsgi_next_upstream") == ["error timeout invalid_header"]
    # a request in flight on a replica cut off from the network fails over (keepalive probes)
    assert directive(nginx, "uwsgi_socket_keepalive") == ["on"]
    assert "uwsgi_socket_keepalive" not in render.render(make())["nginx.conf"]


@pytest.mark.slow
@pytest.mark.parametrize("code", [500, 503])
def test_application_errors_take_no_replica_out_of_rotation(make_stack, code: int) -> None:
    """An app's 5xx is one request's answer, not a sign that the replica is unreachable: it is
    passed on as it is (not retried elsewhere), and both replicas keep serving."""
    _, _, proxy = replicas_behind_a_proxy(make_stack)
    answers = [requests.get(f"{proxy.url}/status?{code}", timeout=10) for _ in range(20)]
    assert [r.status_code for r in answers] == [code] * 20
    assert {r.text for r in answers} == {f"{code} from the app"}  # the app's, not Nginx's
    after = [requests.get(f"{proxy.url}/", timeout=10) for _ in range(10)]
    assert [r.status_code for r in after] == [200] * 10
    assert {r.headers["X-Replica"] for r in after} == {"a", "b"}
