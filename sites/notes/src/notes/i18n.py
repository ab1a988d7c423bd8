"""The interface's language (Flask-Babel) and the languages notes are written in.

Interface languages are the message catalogues under ``translations/`` (``<locale>/LC_MESSAGES/
messages.po``, compiled to ``.mo`` at install) plus English, the language of the source: adding
a catalogue adds a language, with no change here. A request's language is the signed-in
account's choice, else the best of the browser's ``Accept-Language``, else the site's language
(``NOTES_LANGUAGE``) when there is a catalogue for it, else English.

Flask-Admin and WTForms ship catalogues of their own, named by their own conventions
(``zh_Hant_TW``, ``zh_TW``): they are looked up under the interface locale and its likely
expansions (``zh_Hant`` -> ``zh_Hant_TW``, ``zh_TW``, ``zh``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from babel import Locale
from babel.core import get_global
from babel.dates import format_skeleton
from babel.support import NullTranslations, Translations
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from .config import language_tag, parse_language

TRANSLATIONS = Path(__file__).parent / "translations"
SOURCE = Locale("en")  # the language the interface is written in
CKEDITOR_LANG = Path(__file__).parent / "static" / "vendor" / "ckeditor" / "lang"


def parse(raw: str) -> Locale:
    """A language tag (``el``, ``zh-Hant``, ``pt_BR``) as a Babel locale; ValueError (said
    in the reader's language) if Babel does not know it."""
    try:
        return parse_language(raw)
    except ValueError:
        raise ValueError(_("unknown language %(tag)s: expected a language tag such as en, el "
                           "or zh-Hant", tag=repr(raw))) from None


tag = language_tag


def canonical(raw: str) -> str:
    """``raw`` as the canonical tag of the language Babel knows it as (``ZH-tw`` ->
    ``zh-Hant-TW``); ValueError for a language Babel does not know."""
    return tag(parse(raw))


@functools.cache
def interface_locales() -> tuple[Locale, ...]:
    """English, then every locale with a compiled catalogue, in name order."""
    found = sorted(p.parent.parent.name for p in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo"))
    return (SOURCE, *(Locale.parse(name) for name in found if name != str(SOURCE)))


def _likely(locale: Locale) -> Locale:
    """``locale`` with the script and territory its language most likely has (CLDR)."""
    likely = get_global("likely_subtags")
    full = likely.get(str(locale)) or likely.get(locale.language) or str(locale)
    parsed = Locale.parse(full)
    return Locale(locale.language, territory=locale.territory or parsed.territory,
                  script=locale.script or parsed.script)


def matches(wanted: Locale, offered: Locale) -> bool:
    """Whether a reader asking for ``wanted`` reads ``offered``: same language, and the same
    script when both say (Traditional and Simplified Chinese differ); a territory never
    excludes (a reader in Hong Kong reads the Taiwanese catalogue)."""
    if wanted.language != offered.language:
        return False
    return not (wanted.script and offered.script) or wanted.script == offered.script


def negotiate(requested: Iterable[str], offered: Iterable[Locale]) -> Locale | None:
    """The first offered locale matching the requested tags, taken in order."""
    offered = list(offered)
    for raw in requested:
        if raw == "*":
            continue
        try:
            wanted = parse(raw)
        except ValueError:
            continue
        exact = [o for o in offered if str(o) == str(wanted)]
        found = exact or [o for o in offered if matches(wanted, o)]
        if found:
            return found[0]
    return None


def select_locale() -> Locale:
    """The account's language, else the browser's best, else the site's, else English."""
    offered = interface_locales()
    if not has_request_context():  # the command line, a background task: the site's language
        return negotiate([current_app.config["NOTES_LANGUAGE"]], offered) or SOURCE
    try:
        chosen = (current_user.locale if current_user.is_authenticated else None)
    except SQLAlchemyError:  # the database is down: the error page is still made
        chosen = None
    if chosen:
        found = negotiate([chosen], offered)
        if found:
            return found
    g.locale_from_header = True  # the answer varies by Accept-Language
    return (negotiate([lang for lang, _ in request.accept_languages], offered)
            or negotiate([current_app.config["NOTES_LANGUAGE"]], offered) or SOURCE)


def candidates(locale: Locale) -> list[str]:
    """Catalogue names to look for a translation into ``locale`` under, most specific first:
    ``zh_Hant`` -> ``zh_Hant``, ``zh_Hant_TW``, ``zh_TW``; ``el`` -> ``el``, ``el_Grek_GR``,
    ``el_GR``. The bare language only where it means the same script (``zh`` is Simplified)."""
    full = _likely(locale)
    names = [str(locale), str(full), f"{full.language}_{full.territory}" if full.territory
             else ""]
    if _likely(Locale(locale.language)).script == full.script:
        names.append(locale.language)
    return list(dict.fromkeys(n for n in names if n))


def load(directories: Iterable[str], domain: str) -> NullTranslations:
    """Another package's catalogues for the current locale: in each directory, the first of
    :func:`candidates` it has (gettext's own search would take ``zh``, Simplified, for
    ``zh_Hant``). Read once per process."""
    return _load(tuple(directories), domain, str(get_locale() or SOURCE))


@functools.lru_cache(maxsize=64)
def _load(directories: tuple[str, ...], domain: str, locale: str) -> NullTranslations:
    names = candidates(Locale.parse(locale))
    merged = Translations()
    for directory in directories:
        for name in names:
            path = Path(directory) / name / "LC_MESSAGES" / f"{domain}.mo"
            if path.is_file():
                with open(path, "rb") as f:
                    merged.merge(Translations(f, domain=domain))
                break
    return merged


def _admin_catalogues(app: Flask) -> None:
    """Flask-Admin's catalogues (``zh_Hant_TW``) under the interface locale (``zh_Hant``)."""
    from flask_admin import babel as admin_babel

    domain = admin_babel.domain

    def get_translations() -> NullTranslations:
        if not has_request_context():
            return NullTranslations()
        return load(domain.translation_directories, "admin")

    domain.get_translations = get_translations  # its gettext functions ask this


class _WTFormsCatalogue:
    """WTForms' own messages (``This field is required.``) in the interface language; Flask-WTF
    reads it from ``request.wtforms_translations``, loaded when a form first needs it."""

    def _translations(self) -> NullTranslations:
        from wtforms.i18n import messages_path

        return load([messages_path()], "wtforms")

    def ugettext(self, string: str) -> str:
        return self._translations().ugettext(string)

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        return self._translations().ungettext(singular, plural, n)


def html_lang() -> str:
    """The interface language as a ``lang`` attribute."""
    return tag(get_locale() or SOURCE)


def note_lang(note: Any) -> str:
    """The language a note is written in: its own, else the site's."""
    return str(note.lang)


def og_locale(language: str) -> str:
    """Open Graph's form of a language (``language_TERRITORY``): ``el`` -> ``el_GR``."""
    try:
        full = _likely(parse(language))
    except ValueError:
        return "en_US"
    return f"{full.language}_{full.territory}" if full.territory else full.language


@functools.cache
def language_tags() -> tuple[str, ...]:
    """Every language tag Babel has data for, canonical (``el``, ``pt-BR``, ``zh-Hant-TW``)."""
    from babel.localedata import locale_identifiers

    return tuple(sorted({tag(Locale.parse(name)) for name in locale_identifiers()}))


@functools.cache
def language_names(display: str) -> list[tuple[str, str]]:
    """The languages a note may be written in, as (tag, its own name), sorted by name: each
    language Babel knows, and the scripts of those written in more than one (zh-Hant, zh-Hans,
    sr-Latn)."""
    from babel.localedata import locale_identifiers

    tags = set()
    for name in locale_identifiers():
        parts = name.split("_")
        if len(parts) == 1 or (len(parts) == 2 and len(parts[1]) == 4):
            tags.add(tag(Locale.parse(name)))
    shown = Locale.parse(display)
    names = []
    for t in tags:
        locale = Locale.parse(t, sep="-")
        own = locale.get_display_name(locale) or t
        there = locale.get_display_name(shown)
        names.append((t, own if own == there or not there else f"{own} · {there}"))
    return sorted(names, key=lambda item: item[1].casefold())


def interface_choices() -> list[tuple[str, str]]:
    """The interface languages, each in its own name."""
    return [(tag(locale), locale.get_display_name(locale) or tag(locale))
            for locale in interface_locales()]


def ckeditor_language() -> str:
    """CKEditor's own language file for the interface locale (``zh`` is Traditional Chinese in
    CKEditor 4, ``zh-cn`` Simplified), else English."""
    locale = get_locale() or SOURCE
    full = _likely(locale)
    for name in (f"{full.language}-{full.territory}".lower() if full.territory else "",
                 locale.language):
        if name and (CKEDITOR_LANG / f"{name}.js").is_file():
            return name
    return "en"


def editor_messages() -> dict[str, str]:
    """What static/editor.js says, in the interface language (``%(name)s``: filled in there)."""
    return {
        "tooLarge": _("This image is too large: images can be at most %(size)s. Make it smaller "
                      "(or save it as JPEG) and insert it again."),
        "onlyImages": _("Only PNG, JPEG, GIF, WebP and HEIC images can be uploaded."),
        "askAlt": _("Describe this image for people who cannot see it (alt text):"),
        "askAgain": _("A note is saved only with every image described. Describe this image "
                      "for people who cannot see it (alt text):"),
        "altRequired": _("Please describe the image (alt text) for people who cannot see it."),
        "draftKept": _("Draft kept in this browser at %(time)s."),
        "sessionEnded": _("Your session has ended. Your text is kept in this browser: press "
                          "Save, sign in, and it will be back here to save."),
        "draftOffer": _("This browser kept text you typed here (%(when)s) that was not saved."),
        "earlier": _("earlier"),
        "restore": _("Restore it"),
        "discard": _("Discard it"),
    }


def localtime(value: datetime | None) -> str:
    """A time in the site's time zone, written the reader's way (``Dec 5, 2026, 14:05``,
    ``2026年12月5日 14:05``)."""
    if value is None:
        return ""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(current_app.config["NOTES_TIMEZONE"])
    locale = get_locale() or SOURCE
    moment = value.astimezone(zone)
    date = format_skeleton("yMMMd", moment, locale=locale)
    time = format_skeleton("Hm", moment, locale=locale)
    # the locale's way of joining a date and a time ("{1}, {0}", "{1} {0}")
    return str(locale.datetime_formats["medium"]).replace("'", "").format(time, date)


def vary(response: Response) -> Response:
    """A page made in the browser's language says so, for caches."""
    if g.get("locale_from_header"):
        response.vary.add("Accept-Language")
    return response


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    # {% trans %} blocks: line breaks and indentation are not part of the message
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    _admin_catalogues(app)
    catalogue = _WTFormsCatalogue()

    @app.before_request
    def wtforms_language() -> None:
        request.wtforms_translations = catalogue  # type: ignore[attr-defined]

    app.after_request(vary)
    app.add_template_global(html_lang)
    app.add_template_global(note_lang)
    app.add_template_global(og_locale)
    app.add_template_global(ckeditor_language)
    app.add_template_global(editor_messages)
