"""What the tests that drive the notes site over real HTTP share."""

from __future__ import annotations

import re

import requests

# a 1 x 1 transparent PNG: the smallest image the site's upload accepts (a valid one: uploads
# are decoded, and the former constant's pixel data failed its checksum)
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\x0bIDATx\xdac`\x00\x02\x00\x00\x05\x00\x01\xe9\xfa"
       b"\xdc\xd8\x00\x00\x00\x00IEND\xaeB`\x82")


def form_token(page: str) -> str:
    """The CSRF token a page of the site carries in its ``csrf-token`` meta tag."""
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, "no csrf-token on the page"
    return found.group(1)


def csrf(session: requests.Session, url: str) -> str:
    """GET ``url`` and return its CSRF token."""
    return form_token(session.get(url, timeout=10).text)
