"""notes over HTTPS on a port that is not 443, as behind `-p 8443:85` or a second site.

The app must see the host and port the browser used: absolute redirects, the OpenAPI
`servers` and the CSRF referrer check (which refused every login POST) all depend on it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3

from .notes_stack import serve_notes
from .test_notes_in_chromium import ARGS, CHROMIUM

pytestmark = pytest.mark.browser
PASSWORD = "https password 1 for the admin"


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    key.chmod(0o644)  # read by Nginx's master (root) only in practice; the test dir is private
    return cert, key


@pytest.fixture(scope="module")
def https_site() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="notes-https-certs-"))
    try:
        cert, key = self_signed(folder)
        with serve_notes("notes-https-", "--tls-cert", str(cert), "--tls-key", str(key),
                         scheme="https") as stack:
            stack.create_user("admin@example.com", PASSWORD, "--admin")
            yield stack.url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_redirects_and_the_api_spec_keep_the_https_port(https_site: str) -> None:
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    moved = requests.get(f"{https_site}/admin", verify=False, timeout=10, allow_redirects=False)
    assert moved.status_code in (301, 308)
    assert moved.headers["Location"] in (f"{https_site}/admin/", "/admin/")
    spec = requests.get(f"{https_site}/openapi.json", verify=False, timeout=10).json()
    assert {s["url"].rstrip("/") for s in spec.get("servers", [{"url": https_site}])} == {
        https_site}


def test_a_browser_signs_in_over_https_on_another_port(https_site: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{https_site}/login")
            page.fill("input[name=email]", "admin@example.com")
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url.startswith(https_site)
            assert page.locator("text=Log out").count() == 1, page.content()[:2000]
            page.goto(f"{https_site}/admin/")
            assert page.url == f"{https_site}/admin/"
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["session"]["secure"] is True
        finally:
            browser.close()
