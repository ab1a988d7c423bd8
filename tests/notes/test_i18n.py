"""The interface in Traditional Chinese and English; each note's own language."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

import notes
from notes.extensions import db
from notes.models import User
from notes.services import issue_token
from tests.notes.conftest import csrf

SITE = Path(__file__).parents[2] / "sites" / "notes"
TRANSLATIONS = Path(notes.__file__).parent / "translations"
LOCALES = sorted(p.parent.parent.name for p in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-TW,zh;q=0.9,en;q=0.5"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> dict[Any, int]:
    """Every interface string in the source, as ``pybabel extract -F babel.cfg`` finds it."""
    with open(SITE / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[Any, int] = {}
    for _file, line, message, _comments, _context in extract_from_dir(
            str(SITE), method_map, options_map,
            keywords={"_": None, "_l": None, "gettext": None, "ngettext": (1, 2)}):
        found[message] = line
    return found


def catalogue(locale: str) -> Any:
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f)


def test_zh_hant_is_a_catalogue() -> None:
    assert "zh_Hant" in LOCALES


@pytest.mark.parametrize("locale", LOCALES)
def test_every_interface_string_is_translated(locale: str) -> None:
    """A string added to a template or to the code without its translation fails here (run
    ``pybabel extract`` and ``pybabel update``: docs/notes/languages.md)."""
    messages = extracted()
    assert len(messages) > 150
    translations = catalogue(locale)
    missing = []
    for key in messages:
        entry = translations.get(key)
        strings = (entry.string if isinstance(entry.string, tuple) else (entry.string,)
                   ) if entry is not None else ()
        if entry is None or entry.fuzzy or not all(strings):
            missing.append(key)
            continue
        wanted = set(PLACEHOLDER.findall(key if isinstance(key, str) else key[0]))
        for string in strings:  # the same %(name)s placeholders, or the page fails
            assert set(PLACEHOLDER.findall(string)) <= wanted | {"num"}, (key, string)
            assert wanted - {"num"} <= set(PLACEHOLDER.findall(string)), (key, string)
    assert not missing, f"{locale}: not translated: {missing}"
    stale = [m.id for m in translations if m.id and m.id not in messages]
    assert not stale, f"{locale}: translations of strings no longer in the source: {stale}"


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogues_are_compiled(locale: str) -> None:
    """scripts/install.sh and the Dockerfile compile them: an .mo older than its .po would
    serve old translations."""
    po = TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    assert mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime, "run scripts/install.sh"


class Texts(HTMLParser):
    """What a reader sees or hears of a page: text, and the attributes read aloud or shown."""

    SHOWN = {"placeholder", "aria-label", "title", "alt", "data-confirm", "data-unsaved"}

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code", "pre"):
            self.skip += 1
        self.texts += [v.strip() for k, v in attrs if k in self.SHOWN and v and v.strip()]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code", "pre"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip and data.strip():
            self.texts.append(" ".join(data.split()))


def english_left(page: str, english: set[str]) -> list[str]:
    parser = Texts()
    parser.feed(page)
    found = [t for t in parser.texts if t in english]
    # longer strings, wherever they are in the text
    whole = " ".join(parser.texts)
    found += [e for e in english if " " in e and len(e) > 25 and "%(" not in e and e in whole]
    return found


@pytest.fixture
def english() -> set[str]:
    """The interface's English strings that read differently in Chinese (not "API")."""
    translations = catalogue("zh_Hant")
    out = set()
    for m in translations:
        if m.id and isinstance(m.id, str) and m.string != m.id and "<" not in m.id:
            out.add(m.id)
    return out


def test_a_zh_hant_reader_sees_no_english_interface_string(app, client, user, admin, login,
                                                           english) -> None:
    client.environ_base.update(ZH)
    assert client.get("/").get_data(as_text=True).count('<html lang="zh-Hant">') == 1
    for path in ("/", "/login", "/register", "/nowhere"):
        page = client.get(path).get_data(as_text=True)
        assert '<html lang="zh-Hant">' in page, path
        assert not english_left(page, english), (path, english_left(page, english))
    login(client, user[0].email)
    r = client.post("/notes/new", data={"title": "第一篇", "body": "<p>內文</p>",
                                        "tags": "旅行", "language": "zh-Hant", "published": "y",
                                        "csrf_token": csrf(client, "/notes/new")})
    assert r.status_code == 302
    with app.app_context():
        note_id = db.session.query(notes.models.Note).one().id
    client.post(f"/notes/{note_id}/edit", data={
        "title": "第一篇", "body": "<p>內文改過</p>", "tags": "旅行", "language": "zh-Hant",
        "published": "y", "version": "1", "csrf_token": csrf(client, "/notes/new")})
    pages = ["/", quote("/n/第一篇"), f"/a/{user[0].id}", quote("/t/旅行"), "/my", "/trash",
             "/account", "/notes/new", f"/notes/{note_id}/edit", f"/notes/{note_id}/history",
             "/?q=內文"]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        page = r.get_data(as_text=True)
        assert '<html lang="zh-Hant">' in page, path
        assert not english_left(page, english), (path, english_left(page, english))
    page = client.get("/my").get_data(as_text=True)
    assert "年" in page and "月" in page  # the date, the Chinese way
    # a form's errors: ours and WTForms' own
    r = client.post("/account", data={"pw-current": "", "pw-password": "x", "pw-confirm": "y",
                                      "pw-csrf_token": csrf(client, "/account")})
    page = r.get_data(as_text=True)
    assert "此欄位是必需的。" in page and "This field is required." not in page
    # flash messages
    r = client.post(f"/notes/{note_id}/delete", data={"csrf_token": csrf(client, "/my")},
                    follow_redirects=True)
    assert "「第一篇」已移到垃圾桶" in r.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf(client, "/my")})

    login(client, admin[0].email)
    for path in ("/admin/", "/admin/user/", "/admin/note/", "/admin/excel/"):
        r = client.get(path)
        assert r.status_code == 200, path
        page = r.get_data(as_text=True)
        assert not english_left(page, english), (path, english_left(page, english))
    assert "資料列表" in client.get("/admin/user/").get_data(as_text=True)  # Flask-Admin's own


def test_the_editor_speaks_the_readers_language(client, user, login) -> None:
    client.environ_base.update(ZH)
    login(client, user[0].email)
    page = client.get("/notes/new").get_data(as_text=True)
    language = re.search(r'name="editor-language" content="([^"]+)"', page)
    assert language and language.group(1) == "zh"  # CKEditor 4's Traditional Chinese
    static = Path(notes.__file__).parent / "static"
    assert (static / "vendor" / "ckeditor" / "lang" / "zh.js").is_file()
    messages = re.search(r'name="editor-messages" content="([^"]+)"', page)
    assert messages and "圖片太大" in json.loads(html.unescape(messages.group(1)))["tooLarge"]
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en-GB"
    page = client.get("/notes/new").get_data(as_text=True)
    assert 'name="editor-language" content="en"' in page


def test_the_accounts_choice_comes_before_the_browsers(app, client, user, login) -> None:
    client.environ_base.update(ZH)
    r = client.get("/")
    assert "Accept-Language" in r.headers["Vary"]  # caches keep the languages apart
    login(client, user[0].email)
    r = client.post("/account", data={"lang-locale": "en", "lang-csrf_token":
                                      csrf(client, "/account")}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert '<html lang="en">' in page and "The site&#39;s language is changed." in page
    with app.app_context():
        assert db.session.get(User, user[0].id).locale == "en"
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    r = client.post("/account", data={"lang-locale": "zh-Hant", "lang-csrf_token":
                                      csrf(client, "/account")}, follow_redirects=True)
    assert '<html lang="zh-Hant">' in r.get_data(as_text=True)
    r = client.post("/account", data={"lang-locale": "xx", "lang-csrf_token":
                                      csrf(client, "/account")})
    assert r.status_code == 200
    with app.app_context():
        assert db.session.get(User, user[0].id).locale == "zh-Hant"  # a bad value changes nothing
    r = client.post("/account", data={"lang-locale": "", "lang-csrf_token":
                                      csrf(client, "/account")}, follow_redirects=True)
    assert '<html lang="en">' in r.get_data(as_text=True)  # the browser's again


@pytest.mark.parametrize("header, lang", [
    ("zh-HK", "zh-Hant"), ("zh-Hant-TW", "zh-Hant"), ("zh", "zh-Hant"), ("zh-CN", "en"),
    ("fr, en;q=0.1", "en"), ("de", "en"), ("*", "en"), ("", "en"), ("x!!;q=oops", "en"),
])
def test_the_browsers_language_picks_a_catalogue(client, header: str, lang: str) -> None:
    page = client.get("/", headers={"Accept-Language": header}).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page


def test_a_notes_language_marks_its_page_its_feed_entry_and_og_locale(app, client, user
                                                                      ) -> None:
    with app.app_context():
        person = db.session.get(User, user[0].id)
        auth = {"Authorization": f"Bearer {issue_token(person, 'test')}"}
    r = client.post("/api/notes", json={"title": "Καλημέρα", "body": "<p>Γεια σου κόσμε</p>",  # noqa: RUF001
                                        "published": True, "language": "el"}, headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["language"] == "el"
    plain = client.post("/api/notes", json={"title": "Plain", "published": True}, headers=auth)
    assert plain.json["language"] == "en"  # the site's
    page = client.get(quote("/n/καλημέρα")).get_data(as_text=True)
    assert '<html lang="en">' in page  # the interface
    assert '<article class="note" lang="el">' in page
    assert '<meta property="og:locale" content="el_GR">' in page
    assert '<article class="summary" lang="el">' in client.get("/").get_data(as_text=True)
    feed = client.get("/feed.xml").get_data(as_text=True)
    assert '<entry xml:lang="el">' in feed and '<entry xml:lang="en">' in feed
    for wrong in ("xx-nope", "EL", "klingon"):  # the spec lists every tag it takes
        bad = client.post("/api/notes", json={"title": "x", "language": wrong}, headers=auth)
        assert bad.status_code == 422 and "language" in bad.json["detail"]["json"]
    spec = client.get("/openapi.json").json["components"]["schemas"]["NoteIn"]
    assert {"el", "zh-Hant", "pt-BR"} <= set(spec["properties"]["language"]["enum"])
    r = client.patch(f"/api/notes/{plain.json['id']}", json={"language": "zh-Hant"},
                     headers=auth)
    assert r.status_code == 200 and r.json["language"] == "zh-Hant"
    page = client.get("/n/plain").get_data(as_text=True)
    assert '<article class="note" lang="zh-Hant">' in page
    assert '<meta property="og:locale" content="zh_TW">' in page


def test_the_sites_language_is_a_setting(db_url, tmp_path) -> None:
    from tests.notes.conftest import make_app

    app = make_app(db_url, tmp_path / "data", NOTES_LANGUAGE="zh-Hant")
    try:
        client = app.test_client()
        # no language asked for: the site's, which has a catalogue
        assert '<html lang="zh-Hant">' in client.get("/").get_data(as_text=True)
        assert '<html lang="en">' in client.get(
            "/", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert 'xml:lang="zh-Hant"' in client.get("/feed.xml").get_data(as_text=True)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_a_bad_site_language_is_one_clear_line() -> None:
    from notes.config import ConfigError, load

    with pytest.raises(ConfigError, match=r"NOTES_LANGUAGE='klingon' is not valid: expected a "
                                          r"language tag"):
        load({"NOTES_LANGUAGE": "klingon"})
    assert load({"NOTES_LANGUAGE": "ZH-hant"})["NOTES_LANGUAGE"] == "zh-Hant"


def test_the_admin_sets_a_notes_language(app, client, user, admin, login) -> None:
    with app.app_context():
        person = db.session.get(User, user[0].id)
        auth = {"Authorization": f"Bearer {issue_token(person, 'test')}"}
    nid = client.post("/api/notes", json={"title": "Admin", "published": True},
                      headers=auth).json["id"]
    login(client, admin[0].email)
    path = f"/admin/note/edit/?id={nid}"
    form = {"author": str(user[0].id), "title": "Admin", "body": "<p>text</p>",
            "tag_list": "", "published": "y"}
    r = client.post(path, data={**form, "language": "klingon", "csrf_token": csrf(client, path)})
    assert r.status_code == 200 and "unknown language" in r.get_data(as_text=True)
    r = client.post(path, data={**form, "language": "EL", "csrf_token": csrf(client, path)})
    assert r.status_code == 302
    assert '<article class="note" lang="el">' in client.get("/n/admin").get_data(as_text=True)
    r = client.post(path, data={**form, "language": " ", "csrf_token": csrf(client, path)})
    assert r.status_code == 302
    assert '<article class="note" lang="en">' in client.get("/n/admin").get_data(as_text=True)
