"""`flaskstack serve` with real nginx and uWSGI: what a client and an operator see."""

from __future__ import annotations

import gzip
import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import REQUEST_ID, leftovers


def test_static_files_are_served_by_nginx_never_by_the_app(make_stack) -> None:
    stack = make_stack()
    assets = stack.root / "assets"
    assets.mkdir()
    payload = os.urandom(200_000)
    (assets / "blob.bin").write_bytes(payload)
    (assets / "blob.bin").chmod(0o644)
    assets.chmod(0o755)
    stack.args += ["--static", f"/assets/={assets}", "--app", "probe:application"]
    stack.start()
    r = requests.get(f"{stack.url}/assets/blob.bin", timeout=10)
    assert r.status_code == 200
    assert r.content == payload
    assert "max-age=" in r.headers["Cache-Control"] and "public" in r.headers["Cache-Control"]
    assert requests.get(f"{stack.url}/assets/missing.txt", timeout=10).status_code == 404
    assert requests.get(f"{stack.url}/dynamic", timeout=10).text == "v1 /dynamic"
    assert stack.seen() == ["/dynamic"]  # the app never saw /assets/...
    assert r.headers["Server"] == "nginx"  # server_tokens off: no version


def test_hidden_files_are_refused(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    for path in ("/.git/config", "/.env", "/static/.htpasswd", "/a/.hidden"):
        assert requests.get(stack.url + path, timeout=10).status_code == 404, path
    assert stack.seen() == []


def test_upload_over_the_limit_gets_a_413_page(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--max-upload", "100k").start()
    small = requests.post(f"{stack.url}/upload", data=b"x" * 50_000, timeout=10)
    assert small.status_code == 200 and small.text == "50000"
    big = requests.post(f"{stack.url}/upload", data=b"x" * 200_000, timeout=10)
    assert big.status_code == 413
    assert "Upload too large" in big.text and "<html" in big.text
    as_json = requests.post(f"{stack.url}/upload", data=b"x" * 200_000, timeout=10,
                            headers={"Accept": "application/json"})
    assert as_json.status_code == 413
    assert as_json.json()["status"] == 413


CLAIMS = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https",
          "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "1", "X-Real-IP": "10.9.9.9",
          "Proxy": "http://evil.example:3128"}


def test_the_app_is_told_the_client_once_and_never_what_it_claims(make_stack) -> None:
    """The CGI variables say where the request came from; a client's own X-Forwarded-*,
    X-Real-IP and Proxy (httpoxy) headers never reach the app, so ProxyFix believes nothing."""
    stack = make_stack("--app", "probe:application").start()
    port = stack.url.rsplit(":", 1)[1]
    r = requests.get(f"{stack.url}/headers", timeout=10,
                     headers={"Accept-Encoding": "gzip", **CLAIMS})
    seen = r.json()
    assert seen["REMOTE_ADDR"] == "127.0.0.1" and seen["wsgi.url_scheme"] == "http"
    assert seen["HTTP_HOST"] == f"127.0.0.1:{port}"  # with the port the client used
    assert seen["HTTP_X_REQUEST_ID"] == r.headers["X-Request-ID"]
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                "HTTP_X_FORWARDED_PORT", "HTTP_X_REAL_IP", "HTTP_PROXY"} & set(seen)
    # a GET has no CONTENT_TYPE or CONTENT_LENGTH (PEP 3333: absent when empty); a body has
    # them once, not again as HTTP_ variables
    assert "CONTENT_TYPE" not in seen and "CONTENT_LENGTH" not in seen
    assert "DOCUMENT_ROOT" not in seen and "REQUEST_SCHEME" not in seen  # said by wsgi.url_scheme
    posted = requests.post(f"{stack.url}/headers", data={"a": "1"}, timeout=10).json()
    assert posted["CONTENT_LENGTH"] == "3"
    assert posted["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert "HTTP_CONTENT_LENGTH" not in posted and "HTTP_CONTENT_TYPE" not in posted
    big = requests.get(f"{stack.url}/" + "x" * 2000, timeout=10,
                       headers={"Accept-Encoding": "gzip"}, stream=True)
    assert big.headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(big.raw.read()).startswith(b"v1 /xxx")


def test_app_factory_string(make_stack) -> None:
    stack = make_stack("--app", "factory:create_app()").start()
    assert requests.get(stack.url, timeout=10).text == "from a factory"


def test_broken_app_exits_non_zero_with_the_error_and_leaves_nothing(make_stack) -> None:
    stack = make_stack("--app", "broken:application").start(wait=False)
    code = stack.proc.wait(30)
    assert code == 3
    out = stack.output()
    assert "No module named 'this_module_does_not_exist_anywhere'" in out
    assert "the app failed to start" in out
    assert "ready:" not in out
    assert leftovers(str(stack.root)) == []


def test_failing_prestart_stops_before_serving(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--prestart", "sh -c 'exit 7'")
    stack.start(wait=False)
    assert stack.proc.wait(30) == 3
    assert "prestart failed (exit status 7)" in stack.output()
    assert leftovers(str(stack.root)) == []


def test_prestart_runs_before_the_app_as_the_stack_user(make_stack) -> None:
    stack = make_stack("--app", "probe:application")
    marker = stack.root / "prestart.txt"
    stack.root.chmod(0o777)
    stack.args += ["--prestart", f"sh -c 'id -u > {marker}'"]
    stack.start()
    expected = "33" if os.geteuid() == 0 else str(os.geteuid())  # www-data when root
    assert marker.read_text().strip() == expected


def test_sigterm_lets_an_in_flight_request_finish(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    result: dict[str, object] = {}

    def slow() -> None:
        r = requests.get(f"{stack.url}/slow", params="2", timeout=30)
        result["status"], result["text"] = r.status_code, r.text

    thread = threading.Thread(target=slow)
    thread.start()
    while "/slow" not in stack.seen():
        time.sleep(0.05)
    assert stack.stop(signal.SIGTERM) == 0
    thread.join(30)
    assert result == {"status": 200, "text": "v1 /slow"}
    assert leftovers(str(stack.root)) == []


def test_sigint_stops_cleanly_too(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    assert stack.stop(signal.SIGINT) == 0
    assert leftovers(str(stack.root)) == []


def worker_pids(stack) -> list[int]:
    from flaskstack.rundir import RunDir
    from flaskstack.status import uwsgi_stats

    return [w["pid"] for w in uwsgi_stats(RunDir(Path(stack.run_dir)))["workers"]]


def test_a_killed_worker_is_respawned(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--workers", "2").start()
    before = worker_pids(stack)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = worker_pids(stack)
        if before[0] not in now and all(now):
            break
        time.sleep(0.1)
    assert before[0] not in now and len(now) == 2 and all(now)
    for _ in range(10):
        assert requests.get(stack.url, timeout=10).status_code == 200
    assert stack.proc.poll() is None


def master_pid(stack, name: str) -> int:
    path = stack.run_dir / "nginx.pid"
    if name == "nginx":
        return int(path.read_text())
    from flaskstack.rundir import RunDir
    from flaskstack.status import uwsgi_stats

    return int(uwsgi_stats(RunDir(Path(stack.run_dir)))["pid"])


def test_nginx_dying_stops_the_stack_with_status_4(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    os.kill(master_pid(stack, "nginx"), signal.SIGKILL)
    assert stack.proc.wait(60) == 4
    assert "nginx died (killed by SIGKILL)" in stack.output()
    assert leftovers(str(stack.root)) == []


def test_uwsgi_master_dying_stops_the_stack_with_status_4(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    os.kill(master_pid(stack, "uwsgi"), signal.SIGKILL)
    assert stack.proc.wait(60) == 4
    assert "uwsgi died (killed by SIGKILL)" in stack.output()
    assert leftovers(str(stack.root)) == []


def test_status_shows_workers_and_nginx(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--workers", "2").start()
    requests.get(stack.url, timeout=10)
    result = stack.cli("status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uwsgi: master pid")
    assert len([line for line in lines if line.strip().startswith(("1 ", "2 "))]) == 2
    assert "active connections" in result.stdout


def test_status_and_reload_fail_clearly_when_not_running(make_stack) -> None:
    stack = make_stack()
    for command in ("status", "reload"):
        result = stack.cli(command)
        assert result.returncode == 1
        assert "no running flaskstack serve" in result.stderr


def test_a_reload_that_cannot_write_its_files_is_refused_and_serving_goes_on(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    blocker = stack.run_dir / "nginx.conf.tmp"
    blocker.mkdir()  # where the new nginx.conf would be written
    refused = stack.cli("reload")
    assert refused.returncode == 6
    assert refused.stderr.startswith("flaskstack: error: reload refused, generation 1 keeps "
                                     "serving: rendering the configuration failed")
    line = next(x for x in stack.output().splitlines() if "reload refused" in x)
    assert "rendering the configuration failed" in line and "nginx.conf.tmp" in line
    assert requests.get(stack.url + "/", timeout=10).status_code == 200
    blocker.rmdir()
    done = stack.cli("reload")
    assert done.returncode == 0
    assert done.stdout.startswith("reload: generation 2 serving, generation 1 stopped (")
    assert "reload: generation 2 serving" in stack.output()
    assert stack.proc is not None and stack.proc.poll() is None


def test_json_access_log(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--access-log-format", "json").start()
    requests.get(f"{stack.url}/logged?x=1", timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and '"/logged?x=1"' not in "".join(stack.stdout):
        time.sleep(0.1)
    line = next(li for li in stack.stdout if '"/logged?x=1"' in li)
    entry = json.loads(line)
    assert entry["status"] == 200 and entry["method"] == "GET"


def test_a_request_over_the_timeout_gets_the_friendly_502_page(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--request-timeout", "1").start()
    r = requests.get(f"{stack.url}/slow", params="4", timeout=30)
    assert r.status_code == 502 and "Bad gateway" in r.text and "<html" in r.text
    r = requests.get(f"{stack.url}/slow", params="4", timeout=30,
                     headers={"Accept": "application/json"})
    assert r.status_code == 502 and r.json()["status"] == 502
    assert requests.get(stack.url, timeout=10).status_code == 200  # the worker was replaced


@pytest.mark.skipif(os.geteuid() != 0, reason="this test switches to another user")
def test_runs_as_a_normal_user_on_a_high_port(make_stack) -> None:
    """Nothing under /etc, no root: the whole stack as `nobody`, its files in its run dir."""
    stack = make_stack("--app", "probe:application")
    nobody = pwd.getpwnam("nobody")
    stack.root.chmod(0o777)
    os.chown(stack.root / "seen.txt", nobody.pw_uid, nobody.pw_gid)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flaskstack", "serve", *stack.args], env=stack.env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, user=nobody.pw_uid,
        group=nobody.pw_gid, extra_groups=[])
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready: ") or len(lines) > 400:
                break
        assert lines[-1].startswith("ready: "), "".join(lines)
        assert requests.get(stack.url, timeout=10).text == "v1 /"
        owners = {p.stat().st_uid for p in stack.run_dir.iterdir()}
        assert owners == {nobody.pw_uid}
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_a_proxyfix_app_sees_the_host_and_port_the_client_used(make_stack) -> None:
    stack = make_stack("--app", "proxied:app").start()
    for host in ("site.example:8080", "site.example", "[::1]:9443", "127.0.0.1:" + str(stack.port)):
        r = requests.get(f"{stack.url}/absolute", headers={"Host": host}, timeout=10)
        assert r.text == f"http://{host}/absolute"
        moved = requests.get(f"{stack.url}/folder", headers={"Host": host}, timeout=10,
                             allow_redirects=False)
        assert moved.status_code == 308
        assert moved.headers["Location"] in (f"http://{host}/folder/", "/folder/")


def test_every_response_carries_the_request_id_the_app_saw(make_stack) -> None:
    stack = make_stack("--app", "proxied:app", "--access-log-format", "json").start()
    r = requests.get(f"{stack.url}/request-id", timeout=10)
    rid = r.headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(rid) and r.text == rid
    # unique: on one connection, on new ones, and after a restart (a new random prefix)
    with requests.Session() as kept:
        ids = [kept.get(f"{stack.url}/request-id", timeout=10).headers["X-Request-ID"]
               for _ in range(20)]
    ids += [requests.get(f"{stack.url}/request-id", timeout=10).headers["X-Request-ID"]
            for _ in range(20)]
    static_miss = requests.get(f"{stack.url}/.hidden", timeout=10)
    ids.append(static_miss.headers["X-Request-ID"])
    assert all(REQUEST_ID.fullmatch(i) for i in ids) and len({rid, *ids}) == 42
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rid not in "".join(stack.stdout):
        time.sleep(0.1)
    assert json.loads(next(li for li in stack.stdout if rid in li))["request_id"] == rid
    stack.stop()
    again = stack.start()
    assert requests.get(f"{again.url}/request-id", timeout=10).text.split("-")[0] != (
        rid.split("-")[0])


def test_the_long_running_process_is_the_supervisor_alone(make_stack) -> None:
    """`serve` replaces itself (the same pid) with `python -P -m flaskstack.supervise`: the
    command line's modules and OpenSSL are not kept for the stack's life, and the stack still
    serves and stops cleanly."""
    stack = make_stack("--app", "probe:application").start()
    pid = stack.proc.pid
    assert (stack.run_dir / "flaskstack.pid").read_text().strip() == str(pid)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[1:4] == [b"-P", b"-m", b"flaskstack.supervise"]
    assert b"serve" in argv and str(stack.port).encode() in argv  # as given, for ps
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "_hashlib" not in maps and "libcrypto" not in maps
    fds = {os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()}  # (an idle supervisor)
    assert str(stack.run_dir / "flaskstack.lock") in fds  # the run dir stayed locked
    assert not any(x.startswith("/memfd:") for x in fds)  # the plan's file is closed
    assert requests.get(f"{stack.url}/lean", timeout=10).text == "v1 /lean"
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(30) == 0
    assert not (stack.run_dir / "flaskstack.json").exists()
