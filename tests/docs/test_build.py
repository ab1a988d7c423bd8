"""The documentation site builds with no warning, every internal link and anchor resolves, and
no page loads anything from outside."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .conftest import Build

# tag -> attributes whose URL the browser fetches by itself (an asset, not a link to follow)
ASSET_ATTRS = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",),
               "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",),
               "embed": ("src",), "object": ("data",), "link": ("href",)}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)""")
OUTSIDE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


class Page(HTMLParser):
    """The ids, links and fetched assets of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.ids.add(values["name"])
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        if tag == "link" and "alternate" in values.get("rel", "").split():
            return  # not fetched
        for attr in ASSET_ATTRS.get(tag, ()):
            if attr in values:
                self.assets += [u.split()[0] for u in values[attr].split(",") if u.strip()]
        if "style" in values:
            self.assets += CSS_URL.findall(values["style"])


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(errors="replace"))
    return page


def test_the_site_builds_with_no_warning(built: Build) -> None:
    assert built.returncode == 0, built.output
    assert "WARNING" not in built.output and "ERROR" not in built.output, built.output
    assert (built.html / "index.html").is_file()
    assert (built.html / "start" / "own-app.html").is_file()


def test_every_internal_link_and_anchor_resolves(built: Build) -> None:
    pages = {p: parse(p) for p in built.html.rglob("*.html")}
    broken = []
    checked = 0
    for path, page in pages.items():
        for href in page.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//"):
                continue  # a link to the outside: written as a link, never fetched here
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{path.relative_to(built.html)}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(built.html)}: {href} (no such anchor)")
    assert checked > 500
    assert not broken, "\n".join(broken)


def test_nothing_is_loaded_from_outside(built: Build) -> None:
    outside = []
    for path in built.html.rglob("*"):
        if path.suffix == ".html":
            urls = parse(path).assets
        elif path.suffix == ".css":
            urls = CSS_URL.findall(path.read_text(errors="replace"))
            urls += re.findall(r"""@import\s+['"]([^'"]+)""", path.read_text(errors="replace"))
        else:
            continue
        outside += [f"{path.relative_to(built.html)}: {u}" for u in urls if OUTSIDE.match(u)]
    assert not outside, "\n".join(outside)


def test_every_page_has_one_title() -> None:
    """One ``# Title`` per page: the toctrees and the sidebar show it."""
    from .conftest import DOCS

    for page in DOCS.rglob("*.md"):
        if "_build" in page.parts:
            continue
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
        titles = re.findall(r"^# \S", text, flags=re.MULTILINE)
        assert len(titles) == 1, f"{page}: {len(titles)} '# ' titles"
