"""Site Nginx snippets ([nginx] in flaskstack.toml) and trusted proxies, with the real Nginx."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import requests

from tests.load import wait_for

from .conftest import FLASKSTACK, REQUEST_ID

SERVER_SNIPPET = """\
# a redirect
location = /old-page {
    return 301 /new-page;
}
# basic auth on a path
location /private/ {
    auth_basic "staff";
    auth_basic_user_file htpasswd;
    include uwsgi_params;
    uwsgi_pass flaskstack_app;
}
# refusing *.json
location ~* \\.json$ {
    return 403;
}
if ($flaskstack_site_blocked) {
    return 403;
}
"""
HTTP_SNIPPET = """\
map $http_user_agent $flaskstack_site_blocked {
    default 0;
    "~*badbot" 1;
}
"""


def with_snippets(stack, server: str = SERVER_SNIPPET,  # type: ignore[no-untyped-def]
                  http: str = HTTP_SNIPPET) -> Path:
    """Write flaskstack.toml and the snippets beside the probe app; returns the server file."""
    folder = stack.app_dir / "nginx"
    folder.mkdir()
    (folder / "server.conf").write_text(server.replace("htpasswd", str(folder / "htpasswd")))
    (folder / "http.conf").write_text(http)
    digest = base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
    (folder / "htpasswd").write_text(f"alice:{{SHA}}{digest}\n")
    (stack.app_dir / "flaskstack.toml").write_text(
        '[nginx]\nserver = "nginx/server.conf"\nhttp = "nginx/http.conf"\n')
    for path in [folder, *folder.iterdir(), stack.app_dir / "flaskstack.toml"]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder / "server.conf"


def test_readme_examples_redirect_basic_auth_and_refusing_json(make_stack) -> None:
    stack = make_stack("--app", "probe:application")
    with_snippets(stack)
    stack.start()
    old = requests.get(stack.url + "/old-page", allow_redirects=False, timeout=10)
    assert old.status_code == 301 and old.headers["Location"].endswith("/new-page")
    assert requests.get(stack.url + "/private/x", timeout=10).status_code == 401
    assert requests.get(stack.url + "/private/x", auth=("alice", "wrong"),
                        timeout=10).status_code == 401
    ok = requests.get(stack.url + "/private/x", auth=("alice", "s3cret"), timeout=10)
    assert ok.status_code == 200 and ok.text == "v1 /private/x"
    assert requests.get(stack.url + "/data/export.JSON", timeout=10).status_code == 403
    assert requests.get(stack.url + "/", headers={"User-Agent": "BadBot/1.0"},
                        timeout=10).status_code == 403
    assert requests.get(stack.url + "/fine", timeout=10).text == "v1 /fine"
    assert stack.seen() == ["/private/x", "/fine"]


def test_a_broken_snippet_stops_serve_with_one_line_naming_file_and_line(make_stack) -> None:
    stack = make_stack("--app", "probe:application")
    broken = "location /a/ {\n    return 200;\n}\nbogus_directive on;\n"
    server = with_snippets(stack, server=broken)
    stack.start(wait=False)
    assert stack.proc is not None
    assert stack.proc.wait(30) == 2
    time.sleep(0.2)
    errors = "".join(stack.stderr).strip().splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"flaskstack: error: {server} line 4: unknown directive "
                                '"bogus_directive"')
    check = stack.cli("config", "--check", "--app", "probe:application", "--app-dir",
                      str(stack.app_dir))
    assert check.returncode == 2
    assert check.stderr.strip() == errors[0]


def test_a_missing_snippet_or_a_bad_table_is_one_line(make_stack) -> None:
    stack = make_stack("--app", "probe:application")
    toml = stack.app_dir / "flaskstack.toml"
    for content, expected in (
        ('[nginx]\nserver = "nope.conf"\n', "nope.conf is not a file"),
        ('[nginx]\nlocation = "x.conf"\n', '[nginx] takes server = "FILE" and http = "FILE"'),
    ):
        toml.write_text(content)
        result = stack.cli("config", "--app", "probe:application", "--app-dir",
                           str(stack.app_dir))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and expected in result.stderr
        assert str(toml) in result.stderr


def test_a_snippet_broken_while_serving_is_refused_at_reload(make_stack) -> None:
    stack = make_stack("--app", "probe:application")
    server = with_snippets(stack)
    stack.start()
    server.write_text("location /x/ {\n")  # half-edited
    refused = stack.cli("reload")
    assert refused.returncode == 6 and f"{server} line" in refused.stderr
    assert "reload refused" in stack.output() and f"{server} line" in stack.output()
    assert requests.get(stack.url + "/old-page", allow_redirects=False,
                        timeout=10).status_code == 301  # the running configuration


def test_trusted_proxies_give_the_client_address_and_request_id(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--trusted-proxies",
                       "127.0.0.0/8,10.0.0.0/8").start()
    headers = {"X-Forwarded-For": "203.0.113.9, 10.1.2.3", "X-Request-ID": "lb-1234"}
    r = requests.get(stack.url + "/headers", headers=headers, timeout=10)
    seen = r.json()
    assert seen["REMOTE_ADDR"] == "203.0.113.9"  # the first address no proxy of ours added
    assert "HTTP_X_FORWARDED_FOR" not in seen and "HTTP_X_REAL_IP" not in seen
    assert r.headers["X-Request-ID"] == "lb-1234" == seen["HTTP_X_REQUEST_ID"]
    # hostile: a request id that is not a plain token is replaced by Nginx's own
    bad = requests.get(stack.url + "/headers", timeout=10,
                       headers={"X-Request-ID": "x\" injected", "X-Forwarded-For": "1.2.3.4"})
    assert REQUEST_ID.fullmatch(bad.headers["X-Request-ID"]) and "injected" not in bad.text
    # the access log reaches the relay in buffered writes, at least once a second
    assert wait_for(lambda: '203.0.113.9 - - [' in stack.output(), timeout=10)


def test_without_trusted_proxies_forwarded_headers_are_not_believed(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "spoofed"}
    r = requests.get(stack.url + "/headers", headers=headers, timeout=10)
    assert r.json()["REMOTE_ADDR"] == "127.0.0.1"
    assert r.headers["X-Request-ID"] != "spoofed" != r.json()["HTTP_X_REQUEST_ID"]


def test_bad_trusted_proxies_value_is_one_line() -> None:
    import subprocess

    result = subprocess.run([*FLASKSTACK, "config", "--trusted-proxies", "10.0.0.0/33"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("flaskstack: error: setting trusted_proxies")
    assert "an address or CIDR block" in result.stderr and result.stderr.count("\n") == 1
