"""Issue 24 (content) in Chromium on the real stack (Nginx, uWSGI; `NOTES_TEST_DBS` chooses the
database): a rich note (an 800 x 450 image stored with the image dialog's old fixed size, a
500 px table with an image and long words, a code block, Greek, Chinese and Arabic text) on a
desktop (1366 x 900) and a phone (390 x 844), light and dark. The page never scrolls sideways,
images keep their ratio (within 2 %), the table scrolls in its own box, code blocks are
styled, the editor's text looks like the page's; an 8 MB camera JPEG goes through Nginx and is
served resized; error pages know who is signed in."""

# ruff: noqa: F811  (the page fixture is imported: pytest passes it by its name)
from __future__ import annotations

import io
from typing import Any

import pytest

from .test_notes_in_chromium import ARTIFACTS, page, wait_for_editor  # noqa: F401
from .test_writer_in_chromium import sign_in as writer_signs_in
from .test_writer_in_chromium import site  # noqa: F401  (the stack, on each database)

pytestmark = pytest.mark.browser
SCREENS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
WORDS = "service nginx configuration"


def picture(size: tuple[int, int], fmt: str = "PNG", noise: bool = False, **options: Any
            ) -> bytes:
    from PIL import Image

    gradient = Image.linear_gradient("L").resize(size)
    red = Image.effect_noise(size, 50) if noise else gradient
    image = Image.merge("RGB", [red, gradient.transpose(Image.Transpose.ROTATE_90).resize(size),
                                gradient])
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def sign_in(page: Any, url: str) -> str:
    """Signed in as the writer; the CSRF token."""
    writer_signs_in(page, url)
    page.goto(url + "/notes/new")
    return str(page.locator("meta[name=csrf-token]").get_attribute("content"))


def send(page: Any, url: str, token: str, data: bytes, name: str) -> dict[str, Any]:
    r = page.request.post(url + "/upload", headers={"X-CSRFToken": token}, multipart={
        "upload": {"name": name, "mimeType": "application/octet-stream", "buffer": data}})
    assert r.status == 200, r.text()
    answer: dict[str, Any] = r.json()
    return answer


LAYOUT = r"""() => {
  const view = document.documentElement.clientWidth;
  const box = (el) => el.getBoundingClientRect();
  const imgs = [...document.querySelectorAll('.body img')].map((img) => ({
    ratio: box(img).width / box(img).height, natural: img.naturalWidth / img.naturalHeight,
    left: box(img).left, right: box(img).right, complete: img.complete,
    current: img.currentSrc}));
  const [table, long] = document.querySelectorAll('.body table');
  const cells = [...table.querySelectorAll('td')].filter((td) => !td.querySelector('img'));
  // a word cut across two lines has two boxes: each word of the cells in a span, measured
  const broken = [];
  for (const td of cells) {
    td.innerHTML = td.textContent.trim().split(/\s+/).map((w) => `<span>${w}</span>`).join(' ');
    for (const word of td.querySelectorAll('span')) {
      if (word.getClientRects().length > 1) { broken.push(word.textContent); }
    }
  }
  const pre = document.querySelector('.body pre');
  const style = (el, name) => getComputedStyle(el)[name];
  return {view, scroll: document.documentElement.scrollWidth, imgs,
          table: {right: box(table).right, overflow: style(table, 'overflowX'),
                  longRight: box(long).right, scrolls: long.scrollWidth > long.clientWidth},
          cells: cells.length, broken,
          pre: {font: style(pre, 'fontFamily'), background: style(pre, 'backgroundColor'),
                color: style(pre, 'color'), overflow: style(pre, 'overflowX'),
                right: box(pre).right},
          body: style(document.body, 'backgroundColor')};
}"""


def luminance(css: str) -> float:
    parts = [float(p) for p in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
    return sum(parts) / (3 * 255)


def test_a_rich_note_fits_every_screen_in_light_and_dark(site: dict[str, Any],
                                                         page: Any) -> None:
    url = site["url"]
    token = sign_in(page, url)
    wide = send(page, url, token, picture((800, 450)), "wide.png")
    small = send(page, url, token, picture((400, 300)), "small.png")
    body = (
        '<h2 lang="el">Ελληνικά: καλημέρα κόσμε</h2>'
        f'<p><img alt="A wide picture" src="{wide["url"]}" '
        'style="height:450px; width:800px"></p>'
        '<p lang="zh-Hant">繁體中文的段落\uff0c一個很長的句子\uff0c'
        '沒有空格也要在字與字之間換行。</p>'
        '<p lang="ar" dir="rtl">مرحبا بالعالم، هذه فقرة باللغة العربية.</p>'
        '<table border="1" style="width:500px"><tbody>'
        f'<tr><td>{WORDS}</td><td>{WORDS}</td>'
        f'<td><img alt="In a cell" src="{small["url"]}" style="width:400px;height:300px"></td>'
        '</tr></tbody></table>'
        '<table><tbody><tr>' + '<td>NOTES_SESSION_REDIS_URL=redis://cache:6379/0</td>' * 3 +
        '</tr></tbody></table>'
        '<pre><code>flaskstack serve --port 85 --workers 4 --static /media/=/web/data/uploads '
        '--a-long-option-that-goes-on-and-on</code></pre>')
    r = page.request.post(url + "/notes/new", form={"csrf_token": token, "title": "Rich note",
                                                    "body": body, "published": "y"})
    assert r.ok and r.url.endswith("/n/rich-note"), r.text()
    for screen, viewport in SCREENS.items():
        page.set_viewport_size(viewport)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.goto(url + "/n/rich-note")
            page.wait_for_load_state("load")
            seen = page.evaluate(LAYOUT)
            page.screenshot(path=str(ARTIFACTS / f"content-{screen}-{scheme}.png"),
                            full_page=True)
            where = (screen, scheme, seen)
            assert seen["scroll"] <= seen["view"], where  # the page never scrolls sideways
            for image in seen["imgs"]:
                assert image["complete"] and image["right"] <= seen["view"] + 0.5, where
                assert abs(image["ratio"] / image["natural"] - 1) < 0.02, where
            assert abs(seen["imgs"][0]["ratio"] / (800 / 450) - 1) < 0.02, where
            assert seen["table"]["right"] <= seen["view"] + 0.5, where
            assert seen["table"]["overflow"] == "auto", where
            # a table wider than the screen scrolls in its own box
            assert seen["table"]["longRight"] <= seen["view"] + 0.5, where
            assert seen["table"]["scrolls"], where
            assert seen["cells"] == 2 and seen["broken"] == [], where  # words stay whole
            assert "monospace" in seen["pre"]["font"] and seen["pre"]["overflow"] == "auto"
            assert seen["pre"]["background"] != seen["body"], where
            assert seen["pre"]["right"] <= seen["view"] + 0.5, where
            dark = scheme == "dark"
            assert (luminance(seen["pre"]["background"]) < 0.3) == dark, where
            assert (luminance(seen["pre"]["color"]) > 0.7) == dark, where
            if screen == "phone":  # the smaller copy is what a phone fetches
                assert "-480w.png" in seen["imgs"][0]["current"] or seen["imgs"][0][
                    "current"].endswith("-960w.png"), where


def test_the_editor_looks_like_the_page_in_light_and_dark(site: dict[str, Any],
                                                          page: Any) -> None:
    url = site["url"]
    sign_in(page, url)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(url + "/notes/new")
        wait_for_editor(page)
        page.evaluate("Object.values(CKEDITOR.instances)[0].setData("
                      "'<p>Words</p><pre><code>code</code></pre>')")
        page.wait_for_timeout(200)
        frame = page.frame_locator("iframe.cke_wysiwyg_frame")
        inside = frame.locator("body").evaluate(
            "(b) => ({size: getComputedStyle(b).fontSize, font: getComputedStyle(b).fontFamily,"
            " background: getComputedStyle(b).backgroundColor, color: getComputedStyle(b).color,"
            " pre: getComputedStyle(b.querySelector('pre')).fontFamily})")
        outside = page.evaluate(
            "({size: getComputedStyle(document.body).fontSize,"
            " font: getComputedStyle(document.body).fontFamily,"
            " background: getComputedStyle(document.body).backgroundColor,"
            " color: getComputedStyle(document.body).color})")
        page.screenshot(path=str(ARTIFACTS / f"content-editor-{scheme}.png"), full_page=True)
        assert {k: inside[k] for k in outside} == outside, (scheme, inside, outside)
        assert "monospace" in inside["pre"]
        assert (luminance(inside["background"]) < 0.3) == (scheme == "dark")
        top = page.evaluate("getComputedStyle(document.querySelector('.cke_top')).filter")
        assert ("invert" in top) == (scheme == "dark")


def test_a_camera_jpeg_goes_through_nginx_and_is_served_resized(site: dict[str, Any],
                                                                page: Any) -> None:
    from PIL import Image

    url = site["url"]
    token = sign_in(page, url)
    big = picture((6000, 4000), "JPEG", noise=True, quality=80)
    assert len(big) > 7_000_000
    answer = send(page, url, token, big, "IMG_1234.JPG")
    assert (answer["width"], answer["height"]) == (2560, 1707)
    served = page.request.get(url + answer["url"])
    assert served.status == 200 and served.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(served.body())).size == (2560, 1707)


def test_error_pages_know_who_is_signed_in(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    page.goto(url + "/nowhere")
    assert page.locator("nav >> text=Log in").count() == 1
    sign_in(page, url)
    page.goto(url + "/nowhere")
    nav = page.locator("nav")
    assert "Signed in" in nav.inner_text() and nav.locator("text=Log in").count() == 0
    nav.locator("button", has_text="Log out").click()
    page.wait_for_load_state("load")
    page.goto(url + "/nowhere")
    assert page.locator("nav >> text=Log in").count() == 1
