"""Issue 11 in Chromium, on the real `flaskstack serve` (Nginx, uWSGI, SQLite): a first visit,
writing in any language, the editor, stable links, search, discovery, and axe-core's
accessibility checks on every page (axe-core from npm, sites/notes/node_modules, injected by
the test: never served by the site, never fetched from the internet).

The tests run in order on one site: the first sees it with no administrator.
"""

# ruff: noqa: F811  (the page fixture is imported: pytest passes it by its name)
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.web import PNG

from .notes_stack import serve_notes
from .test_notes_in_chromium import PASSWORD, page, wait_for_editor  # noqa: F401

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "sites/notes/node_modules/axe-core/axe.min.js"
SHOTS = Path(os.environ.get("NOTES_SCREENSHOTS", tempfile.gettempdir())) / "notes-publishing"
WRITER = "writer@example.com"


@pytest.fixture(scope="module")
def site() -> Iterator[dict[str, Any]]:
    """`flaskstack serve` with notes on a free port, a fresh data dir, and no account yet."""
    def env(port: int) -> dict[str, str]:
        return {"NOTES_SITE_TITLE": "Field notes",
                "NOTES_SITE_DESCRIPTION": "Notes from the field.",
                "NOTES_SITE_URL": f"http://127.0.0.1:{port}"}

    with serve_notes("notes-publishing-", env=env) as stack:
        def make_admin() -> None:
            stack.create_user("admin@example.com", PASSWORD, "--admin", "--name", "The Editors")

        yield {"url": stack.url, "make_admin": make_admin, "notes": {}}


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def axe(page: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """axe-core's WCAG 2.1 A/AA and best-practice violations on the current page."""
    assert AXE.exists(), "axe-core is missing: bash sites/notes/assets.sh (npm ci)"
    if not page.evaluate("!!window.axe"):
        page.evaluate(AXE.read_text())  # through DevTools: the site's CSP does not apply
    found = page.evaluate(
        """async (exclude) => {
            const context = exclude.length ? {exclude: exclude.map(s => [s])} : document;
            const r = await axe.run(context, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a',
                                                        'wcag21aa', 'best-practice']});
            return r.violations.map(v => v.id + ': ' + v.help + ' @ ' +
                                    v.nodes.map(n => n.target.join(' ')).join(', '));
        }""", list(exclude))
    return list(found)


def log_in(page: Any, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(url + "/")


def log_out(page: Any) -> None:
    page.click("text=Log out")


def editor(page: Any) -> str:
    return "Object.values(CKEDITOR.instances)[0]"


def test_1_a_first_visit_says_what_to_do(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    page.goto(url + "/")
    welcome = page.locator("section.welcome")
    assert "has no administrator yet" in welcome.inner_text()
    assert "users create you@example.com --admin" in welcome.locator("pre code").inner_text()
    assert page.locator("a.brand").inner_text() == "Field notes"
    assert page.title() == "Field notes"
    assert axe(page) == []
    shot(page, "first-visit")
    site["make_admin"]()
    # anonymous pages may come from the kit's cache for NOTES_CACHE_SECONDS (5 s by default)
    for _ in range(8):
        page.reload()
        if page.locator("section.welcome").count() == 0:
            break
        page.wait_for_timeout(1000)
    assert page.locator("section.welcome").count() == 0
    assert "to write the first one" in page.locator("main p.empty").inner_text()
    assert page.problems == []


def test_2_write_in_any_language_keep_links_and_find_it(site: dict[str, Any], page: Any
                                                        ) -> None:
    url = site["url"]
    page.goto(url + "/register")
    page.evaluate("document.querySelector('main form').noValidate = true")  # the server's say
    page.evaluate("document.querySelector('input[name=display_name]').value = 'x'.repeat(81)")
    page.click("main button[type=submit]")  # every error tied to its field
    for name in ("display_name", "email", "password", "confirm"):
        field = page.locator(f"input[name={name}]")
        assert field.get_attribute("aria-invalid") == "true"
        described = field.get_attribute("aria-describedby").split()
        assert page.locator(f"#{described[-1]}").inner_text()
    assert axe(page) == []
    page.fill("input[name=display_name]", "Layla Ω")
    page.fill("input[name=email]", WRITER)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(url + "/my")

    long_word = "\u0627" * 40 + "x" * 400  # alef
    page.goto(url + "/notes/new")
    wait_for_editor(page)
    assert page.evaluate("Object.keys(CKEDITOR.instances).length") == 1  # initialised once
    page.fill("input[name=title]", "مرحبا بالعالم")
    page.evaluate(f"{editor(page)}.setData('<p>هذه ملاحظة باللغة العربية.</p><p>{long_word}</p>')")
    page.fill("input[name=tags]", "عربي, Travel")
    page.check("input[name=published]")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/n/**")
    assert unquote(page.url) == url + "/n/مرحبا-بالعالم"
    assert page.evaluate("getComputedStyle(document.querySelector('.body')).direction") == "rtl"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).direction") == "rtl"
    assert page.locator("article.note p.meta a").first.inner_text() == "Layla Ω"
    assert page.locator("ul.tags a").all_inner_texts() == ["travel", "عربي"]
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the long word wraps
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "arabic-note-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # retitle: the old address answers a permanent redirect to the new one
    old = page.url
    page.click("article.note a:has-text('Edit')")
    wait_for_editor(page)
    page.fill("input[name=title]", "Hello again")
    page.click("form.editor button[type=submit]")
    page.wait_for_url(url + "/n/hello-again")
    response = page.request.get(old, max_redirects=0)
    assert response.status == 301 and response.headers["location"].endswith("/n/hello-again")
    page.goto(old)
    assert page.url == url + "/n/hello-again"

    page.goto(url + "/notes/new")
    wait_for_editor(page)
    page.fill("input[name=title]", "Ελληνικά ΝΈΑ")
    page.evaluate(f"{editor(page)}.setData('<p>Καλημέρα από την Αθήνα</p>')")
    page.check("input[name=published]")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/n/**")
    page.fill("input[type=search]", "ελληνικα αθηνα")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=**")
    assert page.locator("main mark").all_inner_texts() == ["Ελληνικά", "Αθήνα"]
    shot(page, "search")
    site["notes"]["greek"] = page.locator("article.summary h2 a").first.get_attribute("href")
    assert page.problems == [], page.problems  # no CKEditor error, nothing refused


def test_3_the_editor_publishes_what_it_offers(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    log_in(page, url, WRITER)
    page.goto(url + "/notes/new")
    wait_for_editor(page)
    ed = editor(page)
    # one declaration: what the editor allows is what the sanitiser keeps
    assert page.evaluate(f"{ed}.filter.check('img[src,alt]{{float,width,height}}', true, true)")
    assert page.evaluate(f"{ed}.filter.check('span(marker)', true, true)")
    assert not page.evaluate(f"{ed}.filter.check('span{{position}}', true, true)")
    assert not page.evaluate(f"{ed}.filter.check('div', true, true)")
    assert page.locator(".cke_combo__styles").count() == 1  # Marker is in the Styles menu
    assert "up to 9.5 MB" in page.locator("#upload-limit").inner_text()

    # the image dialog asks for alt text before it closes
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    respond = {"with": on_dialog}  # what the next dialogs get
    page.on("dialog", lambda d: respond["with"](d))
    page.evaluate(f"{ed}.execCommand('image')")
    page.wait_for_selector(".cke_dialog", state="visible")
    page.evaluate("CKEDITOR.dialog.getCurrent().setValueOf('info', 'txtUrl', "
                  "'/static/favicon.svg')")
    page.wait_for_timeout(1000)  # the dialog loads the image and fills in its natural size
    page.evaluate("""() => { const d = CKEDITOR.dialog.getCurrent();
        d.setValueOf('info', 'txtWidth', '120'); d.setValueOf('info', 'txtHeight', '120');
        d.setValueOf('info', 'cmbAlign', 'right'); d.getButton('ok').click(); }""")
    page.wait_for_timeout(300)
    assert any("alt text" in d for d in dialogs), dialogs
    page.evaluate("""() => { const d = CKEDITOR.dialog.getCurrent();
        d.setValueOf('info', 'txtAlt', 'the site icon'); d.getButton('ok').click(); }""")
    page.wait_for_selector(".cke_dialog", state="hidden")
    page.evaluate(f"{ed}.insertHtml('<p><span class=\"marker\">marked words</span></p>')")

    # uploads: a too-large image is refused with the limit, before it is sent
    result = page.evaluate(f"""() => {{
        const ed = {ed};
        const big = new File([new Uint8Array(9961472 + 1)], 'big.png',
                             {{type: 'image/png'}});
        const loader = ed.uploadRepository.create(big);
        loader.upload(ed.config.uploadUrl);
        return loader.status + ': ' + loader.message + ' | ' + ed.lang.filetools.httpError413;
    }}""")
    assert result.startswith("error: This image is too large: images can be at most 9.5 MB")
    assert result.endswith("at most 9.5 MB. Make it smaller (or save it as JPEG) and insert it "
                           "again.")
    page.fill("input[name=title]", "Toolbar note")
    page.check("input[name=published]")
    page.click("form.editor button[type=submit]")
    page.wait_for_url(url + "/n/toolbar-note")
    img = page.locator("div.body img")
    assert img.get_attribute("alt") == "the site icon"
    style = img.get_attribute("style").replace(" ", "")
    assert style == "float:right", style  # the size is attributes: a maximum, never squashed
    assert (img.get_attribute("width"), img.get_attribute("height")) == ("120", "120")
    assert page.evaluate("getComputedStyle(document.querySelector('div.body img')).cssFloat"
                         ) == "right"
    marker = page.locator("div.body span.marker")
    assert marker.inner_text() == "marked words"
    assert page.evaluate("getComputedStyle(document.querySelector('.marker')).backgroundColor"
                         ) not in ("rgba(0, 0, 0, 0)", "transparent")
    shot(page, "toolbar-note")

    # leaving the editor with unsaved changes asks first
    page.click("article.note a:has-text('Edit')")
    wait_for_editor(page)
    dialogs.clear()
    respond["with"] = lambda d: (dialogs.append(d.type), d.dismiss())
    page.click("input[name=title]")
    page.keyboard.type(" changed")
    page.click("header a:has-text('My notes')")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    assert "/edit" in page.url  # stayed

    # delete asks for confirmation: no keeps the note, yes deletes it
    answers = [True, False, True]  # leave the editor; don't delete; delete
    respond["with"] = lambda d: (dialogs.append(d.type),
                                 d.accept() if answers.pop(0) else d.dismiss())
    dialogs.clear()
    page.goto(url + "/my")
    row = page.locator("tr", has_text="Toolbar note")
    row.locator("button.danger").click()
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload", "confirm"]
    assert page.locator("tr", has_text="Toolbar note").count() == 1
    page.locator("tr", has_text="Toolbar note").locator("button.danger").click()
    page.wait_for_url(url + "/my")
    assert page.locator("tr", has_text="Toolbar note").count() == 0
    assert [p for p in page.problems if "beforeunload" not in p] == [], page.problems


def test_3b_a_pasted_image_is_uploaded_and_asks_for_alt_text(site: dict[str, Any], page: Any
                                                             ) -> None:
    url = site["url"]
    log_in(page, url, WRITER)
    page.goto(url + "/notes/new")
    wait_for_editor(page)
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(f"{d.type}: {d.message}"),
                                 d.accept("a tiny square")))
    # a paste carrying an image file, as the clipboard gives it: uploadimage sends it to /upload
    page.evaluate("""(bytes) => {
        const ed = Object.values(CKEDITOR.instances)[0];
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], 'square.png', {type: 'image/png'}));
        ed.focus();
        ed.fire('paste', {dataValue: '', method: 'paste',
                          dataTransfer: new CKEDITOR.plugins.clipboard.dataTransfer(transfer)});
    }""", list(PNG))
    for _ in range(100):
        if "/media/" in page.evaluate(f"{editor(page)}.getData()"):
            break
        page.wait_for_timeout(100)
    data = page.evaluate(f"{editor(page)}.getData()")
    assert asked and asked[0].startswith("prompt: Describe this image"), (asked, data)
    assert re.search(r'<img alt="a tiny square"[^>]* src="/media/[\w-]+\.png"', data), data
    assert page.problems == [], page.problems


def test_4_every_page_passes_axe_in_light_and_dark(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    page.goto(url + "/")
    page.keyboard.press("Tab")  # the first stop is the skip link, and it leads to main
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    greek = site["notes"]["greek"]
    public = ["/", "/?q=%CE%B5%CE%BB%CE%BB%CE%B7%CE%BD%CE%B9%CE%BA%CE%B1", greek, "/a/2",
              "/t/travel", "/login", "/register", "/nowhere", "/?page=9"]
    problems = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for path in public:
            page.goto(url + path)
            assert page.locator("main h1").count() == 1, path
            assert page.locator("nav").count() >= 1, path  # error pages have navigation too
            problems[f"{scheme} {path}"] = axe(page)
    page.emulate_media(color_scheme="dark")
    page.goto(url + greek)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 17, 23)"
    shot(page, "note-dark")
    page.emulate_media(color_scheme="light")
    log_in(page, url, WRITER)
    for path in ("/", "/my", "/account", "/notes/new", greek):
        page.goto(url + path)
        if path == "/notes/new":
            wait_for_editor(page)
        # CKEditor 4's own toolbar markup is not ours to fix
        problems[f"signed in {path}"] = axe(page, exclude=(".cke",))
    assert {k: v for k, v in problems.items() if v} == {}
    # repeated controls have distinct names
    page.goto(url + "/my")
    names = page.locator("td.actions button, td.actions a").all_inner_texts()
    assert len(names) == len(set(names)), names
    assert [p for p in page.problems if "status of 404" not in p] == []  # /nowhere is one


def test_5_discovery_and_nothing_from_outside(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    page.goto(url + "/")
    feed = page.locator('link[rel=alternate][type="application/atom+xml"]').get_attribute("href")
    body = page.request.get(url + feed).text()
    assert "<title>Ελληνικά ΝΈΑ</title>" in body and '<category term="travel"' in body
    assert "<name>Layla Ω</name>" in body and WRITER not in body
    assert "/sitemap.xml" in page.request.get(url + "/robots.txt").text()
    index = page.request.get(url + "/sitemap.xml").text()  # a sitemap index: follow its parts
    parts = re.findall(r"<loc>([^<]+/sitemap-\d+\.xml)</loc>", index)
    assert parts and any("/n/hello-again</loc>" in page.request.get(p).text() for p in parts)
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert re.fullmatch(r"/static/favicon\.svg\?v=[0-9a-f]{12}", icon)
    assert page.request.get(url + "/favicon.ico").status == 200
    statics = page.evaluate("[...document.querySelectorAll('link[href^=\"/static\"], "
                            "script[src^=\"/static\"]')].map(e => e.href || e.src)")
    assert statics and all(re.search(r"\?v=[0-9a-f]{12}$", s) for s in statics), statics
    page.goto(url + site["notes"]["greek"])
    assert page.locator('meta[property="og:title"]').get_attribute("content") == "Ελληνικά ΝΈΑ"
    assert page.locator('meta[name=description]').get_attribute("content") == (
        "Καλημέρα από την Αθήνα")
    assert page.locator("link[rel=canonical]").get_attribute("href") == page.url
    # the API docs: every asset local (the fixture fails the test on any other request)
    page.goto(url + "/api/docs")
    page.wait_for_selector(".swagger-ui .info")
    assert page.locator("link[rel=icon]").first.get_attribute("href").startswith(
        "/static/favicon.svg?v=")
    # CKEditor's own files carry the asset version too (CKEDITOR.timestamp)
    log_in(page, url, WRITER)
    page.goto(url + "/notes/new")
    wait_for_editor(page)
    version = page.evaluate("CKEDITOR.timestamp")
    loaded = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)"
                           ".filter(n => n.includes('/static/vendor/ckeditor/'))")
    assert len(loaded) > 2, loaded
    # every file is versioned: by the site's asset version, or (images that CKEditor's
    # prebuilt skin CSS names) by CKEditor's build stamp, which changes with each release
    assert all(re.search(r"[?&][tv]=\w+$", n) for n in loaded), loaded
    assert sum(f"t={version}" in n for n in loaded) >= 1, (version, loaded)
    assert page.problems == [], page.problems
