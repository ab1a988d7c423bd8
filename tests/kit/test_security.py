"""Attacks on the kit's own surface through the real Nginx and uWSGI (issue 12, items 13-17)."""

from __future__ import annotations

import socket

import requests


def test_hidden_files_are_refused_inside_static_mappings_too(make_stack) -> None:
    stack = make_stack("--app", "uploadsite:app").start()
    assert requests.get(f"{stack.url}/assets/evil.svg", timeout=10).status_code == 200
    for path in ("/assets/.env", "/media/.env", "/assets/sub/.stamp-abc", "/media/sub/.stamp-abc",
                 "/assets/%2eenv", "/assets/sub/%2Estamp-abc"):
        r = requests.get(f"{stack.url}{path}", timeout=10)
        assert r.status_code == 404, path
        assert "secret" not in r.text


def test_header_and_url_limits_answer_4xx_from_nginx_never_502(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    many = {f"X-H{i}": "a" * 200 for i in range(150)}  # 30 KB of headers
    r = requests.get(f"{stack.url}/headers", headers=many, timeout=10)
    assert r.status_code in (200, 400, 431), r.status_code
    huge = {f"X-H{i}": "a" * 200 for i in range(200)}  # 40 KB: over the 32k setting
    assert requests.get(f"{stack.url}/headers", headers=huge, timeout=10).status_code == 400
    one_long = {"X-Long": "a" * 9000}  # one header line over 8k
    assert requests.get(f"{stack.url}/", headers=one_long, timeout=10).status_code == 400
    assert requests.get(f"{stack.url}/q?" + "a" * 17000, timeout=10).status_code == 414
    long_path = requests.get(f"{stack.url}/" + "p" * 9000, timeout=10)
    assert long_path.status_code == 414
    assert "Address too long" in long_path.text
    # what fits Nginx's limits fits uWSGI's: the largest URL plus headers near the limit
    near = {f"X-H{i}": "a" * 200 for i in range(100)}
    r = requests.get(f"{stack.url}/headers?" + "q" * 7000, headers=near, timeout=10)
    assert r.status_code == 200 and len(r.json()) >= 100
    page = requests.get(f"{stack.url}/headers", headers=huge, timeout=10)
    assert "Bad request" in page.text  # the kit's page (the headers could not be read)


def test_request_timeout_kills_a_request_with_a_large_body_and_frees_the_database(
        make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--request-timeout", "2")
    data = stack.root / "db"
    data.mkdir()
    data.chmod(0o777)  # the workers run as www-data when root
    stack.env["PROBE_DB"] = str(data / "probe.db")
    stack.start()
    assert requests.get(f"{stack.url}/write", timeout=10).text == "written"
    for body in (b"x" * 600_000, b"x" * 100, b""):
        r = requests.post(f"{stack.url}/lock?30", data=body, timeout=60)
        # 502: uWSGI killed the worker at the timeout (504 would be Nginx giving up while the
        # request still ran, holding the database's write lock)
        assert r.status_code == 502, (len(body), r.status_code)
        assert requests.get(f"{stack.url}/write", timeout=10).text == "written"


def test_nosniff_on_everything_nginx_serves_and_uploads_are_sandboxed(make_stack) -> None:
    stack = make_stack("--app", "uploadsite:app", "--max-upload", "1k").start()
    responses = {
        "app": requests.get(f"{stack.url}/", timeout=10),
        "static": requests.get(f"{stack.url}/assets/evil.svg", timeout=10),
        "upload": requests.get(f"{stack.url}/media/evil.svg", timeout=10),
        "hidden": requests.get(f"{stack.url}/.git/config", timeout=10),
        "missing static": requests.get(f"{stack.url}/assets/nothing.css", timeout=10),
        "413 page": requests.post(f"{stack.url}/", data=b"x" * 4096, timeout=10),
    }
    for name, r in responses.items():
        assert r.headers.get("X-Content-Type-Options") == "nosniff", name
        assert r.raw.headers.getlist("X-Content-Type-Options") == ["nosniff"], name
    csp = responses["upload"].headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert "Content-Security-Policy" not in responses["static"].headers


def test_server_names_refuse_other_hosts(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--server-names",
                       "site.example,*.site.example").start()
    for host in ("site.example", f"site.example:{stack.port}", "www.site.example"):
        assert requests.get(f"{stack.url}/", headers={"Host": host}, timeout=10).status_code == 200
    for host in ("evil.example", "site.example.evil.example", "127.0.0.1"):
        r = requests.get(f"{stack.url}/", headers={"Host": host}, timeout=10,
                         allow_redirects=False)
        assert r.status_code == 421, host
        assert "site.example" not in r.headers.get("Location", "")
    # HTTP/1.0 without any Host header
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(64).split()[1] == b"421"


def test_any_host_is_served_by_default(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    assert requests.get(f"{stack.url}/", headers={"Host": "whatever.example"},
                        timeout=10).status_code == 200
