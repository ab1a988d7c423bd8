"""One log format for the whole stack: with access_log_format json, every line is JSON."""

from __future__ import annotations

import json
import time

import requests

from tests.load import wait_for


def parsed(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_from_nginx_uwsgi_and_the_supervisor(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--access-log-format", "json",
                       "--request-timeout", "1").start()
    r = requests.get(stack.url + "/hello?q=\"quoted\"", timeout=10)
    request_id = r.headers["X-Request-ID"]
    assert requests.get(stack.url + "/slow?4", timeout=30).status_code == 502  # a harakiri
    assert stack.cli("reload").returncode == 0  # returns once the new generation serves
    time.sleep(0.5)
    out, err = "".join(stack.stdout), "".join(stack.stderr)
    assert out.startswith("ready: ")  # the one line meant for people and scripts waiting
    lines = parsed(out.split("\n", 1)[1]) + parsed(err)  # every other line is JSON
    for entry in lines:
        assert {"time", "source", "level"} <= set(entry), entry
    by_source = {str(e["source"]) for e in lines}
    assert {"nginx", "uwsgi", "flaskstack"} <= by_source
    access = next(e for e in lines if e.get("uri") == "/hello?q=%22quoted%22")
    assert access["request_id"] == request_id and access["status"] == 200
    assert any(e["source"] == "uwsgi" and "HARAKIRI" in str(e["message"]) for e in lines)
    assert any(e["source"] == "nginx" and e["level"] == "error"
               and "upstream prematurely closed" in str(e["message"]) for e in lines)
    assert any(e["source"] == "flaskstack" and str(e["message"]).startswith("reload:")
               for e in lines)


def test_combined_stays_plain_text(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    r = requests.get(stack.url + "/x", timeout=10)
    assert wait_for(lambda: '"GET /x HTTP/1.1" 200' in stack.output(), 10)
    line = next(x for x in stack.output().splitlines() if '"GET /x HTTP/1.1"' in x)
    assert line.endswith(f'"{r.headers["X-Request-ID"]}"')
    assert "*** Starting uWSGI" in stack.output()
