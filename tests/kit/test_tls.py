"""TLS with the real Nginx: HTTP/2, redirect, HSTS, certificate rotation under load, errors.

The certificates come from a CA the test makes (tests/kit/certs.py); clients trust only it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.load import Load, wait_for

from .certs import CA, Issued, served_serial


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    tmp_path.chmod(0o755)
    return CA(tmp_path)


def tls_args(issued: Issued) -> list[str]:
    return ["--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def test_https_speaks_http2_and_http11_with_hsts_and_a_redirect_port(make_stack, ca) -> None:
    issued, redirect = ca.issue("site"), free_port()
    stack = make_stack("--app", "probe:application", *tls_args(issued), "--hsts", "31536000",
                       "--http-redirect-port", str(redirect)).start()
    url = f"https://127.0.0.1:{stack.port}/page?x=1"
    assert f"ready: https://127.0.0.1:{stack.port}" in stack.output()
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        result = curl(flag, "--cacert", str(ca.path), "-w", "%{http_version} %{http_code}", url)
        assert result.stdout == f"{version} 200", result.stderr
    r = requests.get(url, verify=str(ca.path), timeout=10)
    assert r.text == "v1 /page"
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert requests.get(stack.url.replace("http:", "https:") + "/static-missing/x",
                        verify=str(ca.path), timeout=10).headers.get("X-Request-ID")
    plain = requests.get(f"http://127.0.0.1:{redirect}/a/b?c=d", allow_redirects=False,
                         timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{stack.port}/a/b?c=d"
    assert "Strict-Transport-Security" not in plain.headers  # never over plain HTTP
    # old protocols are refused
    old = curl("--cacert", str(ca.path), "--tlsv1.1", "--tls-max", "1.1", url)
    assert old.returncode != 0
    assert stack.cli("health", "--tls-cert", str(issued.cert), "--tls-key", str(issued.key),
                     "--port", str(stack.port), "--host", "127.0.0.1").returncode == 0


def test_a_renewed_certificate_is_served_after_reload_with_no_failed_request(
        make_stack, ca) -> None:
    first = ca.issue("site")
    stack = make_stack("--app", "probe:application", "--workers", "2", *tls_args(first)).start()
    url = f"https://127.0.0.1:{stack.port}/"
    assert served_serial("127.0.0.1", stack.port, ca.path) == first.serial
    with Load(url, threads=4, limit_s=60, verify=str(ca.path)) as load:
        time.sleep(1)
        renewed = ca.issue("renewed")
        # replace each file at once, as certbot's and Kubernetes' symlink swaps do
        os.replace(renewed.key, first.key)
        os.replace(renewed.cert, first.cert)
        assert stack.cli("reload").returncode == 0
        assert wait_for(lambda: served_serial("127.0.0.1", stack.port, ca.path)
                        == renewed.serial, 15)
        time.sleep(1)
    assert load.failures == []
    assert load.ok > 50


def test_reload_with_a_broken_certificate_keeps_serving_the_old_one(make_stack, ca) -> None:
    first, other = ca.issue("site"), ca.issue("other")
    stack = make_stack("--app", "probe:application", *tls_args(first)).start()
    os.replace(other.key, first.key)  # a renewal half done: the key no longer matches
    refused = stack.cli("reload")
    assert refused.returncode == 6  # and says why, as the log does
    assert f"{first.key} is not the key of {first.cert}" in refused.stderr
    line = next(x for x in stack.output().splitlines() if "reload refused" in x)
    assert f"{first.key} is not the key of {first.cert}" in line
    assert served_serial("127.0.0.1", stack.port, ca.path) == first.serial
    assert requests.get(f"https://127.0.0.1:{stack.port}/", verify=str(ca.path),
                        timeout=10).status_code == 200


@pytest.mark.parametrize("fault", ["missing", "directory", "mismatched", "not-pem"])
def test_a_bad_certificate_stops_serve_with_one_line(make_stack, ca, tmp_path, fault) -> None:
    issued, other = ca.issue("site"), ca.issue("other")
    cert, key = issued.cert, issued.key
    if fault == "missing":
        cert = tmp_path / "gone.crt"
    elif fault == "directory":
        key = tmp_path
    elif fault == "mismatched":
        key = other.key
    else:
        cert.write_text("hello\n")
    stack = make_stack("--app", "probe:application", "--tls-cert", str(cert),
                       "--tls-key", str(key)).start(wait=False)
    assert stack.proc is not None
    assert stack.proc.wait(30) == 2
    time.sleep(0.2)
    errors = "".join(stack.stderr).strip().splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith("flaskstack: error: setting")
    assert str(cert if fault in {"missing", "not-pem"} else key) in errors[0]
