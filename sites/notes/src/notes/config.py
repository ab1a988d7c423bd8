"""The site's settings, declared once: ``NOTES_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from babel import Locale

PREFIX = "NOTES_"


class ConfigError(ValueError):
    """A ``NOTES_*`` variable has a bad value; one line naming it."""


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return raw

    return parse


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone such as Europe/Paris") from None
    return raw


def parse_language(raw: str) -> Locale:
    """A language tag (``el``, ``zh-Hant``, ``pt_BR``) as a Babel ``Locale``; ValueError if
    Babel does not know it. (Here, not in notes.i18n: the prestart reads this module alone,
    outside the package, to start quickly.)"""
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(raw.strip().replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"unknown language {raw!r}") from None


def language_tag(locale: Locale) -> str:
    """The BCP 47 tag of a Babel ``locale`` (``zh-Hant``), for ``lang`` and ``xml:lang``."""
    return "-".join(p for p in (locale.language, locale.script, locale.territory) if p)


def _language(raw: str) -> str:
    try:
        return language_tag(parse_language(raw))
    except ValueError:
        raise ValueError("a language tag such as en, el or zh-Hant") from None


def _bool(raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("on or off")


def _url(raw: str) -> str:
    if "://" not in raw:
        raise ValueError("a URL such as sqlite:////path/notes.db")
    return raw


def _site_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or "?" in raw or "#" in raw:
        raise ValueError("an address such as https://notes.example.org")
    return raw.rstrip("/")


def _int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("a whole number of at least 1")
    return value


def _range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return value

    return parse


@dataclass(frozen=True)
class Var:
    """One ``NOTES_<name>`` variable; its parsed value is the Flask config key
    ``NOTES_<name>`` and, when named, the Flask keys in ``also``."""

    name: str
    parse: Callable[[str], Any]
    default: str
    help: str
    also: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return PREFIX + self.name


VARS: tuple[Var, ...] = (
    Var("DATA_DIR", str, "/web/data",
        "Folder for the SQLite database, uploads, sessions and the generated secret key."),
    Var("DATABASE_URL", _url, "",
        "SQLAlchemy URL: sqlite:///…, mysql+pymysql://…, postgresql://… "
        "(default: SQLite in the data folder)."),
    Var("DATABASE_PASSWORD_FILE", str, "",
        "File holding the database password, put into DATABASE_URL (e.g. a container secret)."),
    Var("DB_WAIT", _int, "60",
        "Seconds `db upgrade` keeps retrying an unreachable database (replicas may start first)."),
    Var("SECRET_KEY", str, "", "Secret key (default: NOTES_SECRET_KEY_FILE, else generated "
        "once into DATA_DIR/secret_key, mode 0600)."),
    Var("SECRET_KEY_FILE", str, "", "File holding the secret key (e.g. a container secret)."),
    Var("SESSION_REDIS_URL", str, "",
        "Keep sessions in Redis (needed with several app replicas); default: files."),
    Var("SITE_TITLE", str, "notes",
        "The site's name: in the header, page titles, the feed and link previews."),
    Var("SITE_DESCRIPTION", str, "Notes, published with flaskstack.",
        "One sentence about the site: the home page's description, the feed's subtitle."),
    Var("SITE_URL", _site_url, "",
        "The site's public address, e.g. https://notes.example.org: canonical links, the feed "
        "and the sitemap use it (default: the address each request came to)."),
    Var("LANGUAGE", _language, "en",
        "The site's language: a note's language unless its writer chooses another, and the "
        "interface's for readers whose browser asks for none it has (en, zh-Hant, …)."),
    Var("TIMEZONE", _timezone, "UTC", "Time zone for displayed times (stored in UTC)."),
    Var("REGISTRATION", _choice("open", "closed"), "open", "Whether anyone may register."),
    Var("SECURE_COOKIES", _bool, "off",
        "Mark cookies Secure (also automatic for requests that arrived over HTTPS).",
        also=("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE")),
    Var("PER_PAGE", _int, "10", "Notes per page."),
    Var("MAX_IMAGE", _int, "9961472",
        "Largest image upload in bytes (9.5 MB: within the kit's default `max_upload`, 10 MB; "
        "raise both together)."),
    Var("MAX_IMAGE_PIXELS", _int, "40000000",
        "Largest image upload in pixels (width times height, all frames): decoding needs memory."),
    Var("IMAGE_SIDE", _range(480, 20000), "2560",
        "Longest side, in pixels, of a stored photo: larger ones are made this size at upload "
        "(not animations), with smaller copies for small screens (`srcset`)."),
    Var("IMPORT_MAX_SIZE", _int, "10485760", "Largest Excel file to import, in bytes."),
    Var("IMPORT_MAX_ROWS", _int, "10000", "Most notes (rows) in one Excel import."),
    Var("IMPORT_MAX_UNPACKED", _int, "33554432",
        "Most bytes an Excel import may unpack to (and characters of text it may hold)."),
    Var("LOGIN_ATTEMPTS", _int, "5",
        "Failed logins allowed per account from one address in 15 minutes (others can still "
        "sign in to that account)."),
    Var("LOGIN_ATTEMPTS_PER_ADDRESS", _int, "20",
        "Failed logins allowed per client address, whatever the account, in 15 minutes."),
    Var("SESSION_IDLE", _int, "3600",
        "Seconds without a request after which a session ends on the server."),
    Var("REMEMBER_DAYS", _int, "30",
        "Days a \"Remember me\" sign-in lasts (else the cookie ends with the browser session)."),
    Var("TRASH_DAYS", _range(1, 3650), "30",
        "Days a deleted note stays in its author's trash (restorable) before the site purges "
        "it, with the uploads only it showed."),
    Var("REVISIONS_KEEP", _range(1, 100000), "50",
        "Revisions kept per note (every saved change makes one); older ones are dropped."),
    Var("CACHE_SECONDS", _range(0, 10), "5",
        "Seconds shared caches (the kit's Nginx cache) may serve anonymous public pages "
        "(`Cache-Control: public, s-maxage=N, stale-while-revalidate=N`), unless a change "
        "purges them first (every change does); 0 turns it off."),
)


def load(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse every ``NOTES_*`` variable into a Flask config dict."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for var in VARS:
        raw = env.get(var.env, var.default)
        try:
            values[var.name] = var.parse(raw) if raw != "" else ""
        except ValueError as e:
            raise ConfigError(f"{var.env}={raw!r} is not valid: expected {e}") from None
    config = {var.env: values[var.name] for var in VARS}
    config.update({key: values[var.name] for var in VARS for key in var.also})
    data = Path(values["DATA_DIR"]).resolve()
    url = values["DATABASE_URL"] or f"sqlite:///{data / 'notes.db'}"
    if values["DATABASE_PASSWORD_FILE"]:
        url = _with_password(url, values["DATABASE_PASSWORD_FILE"])
    config.update(
        NOTES_DATA_DIR=str(data),
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(url),
    )
    return config


def _engine_options(url: str) -> dict[str, Any]:
    """Pooled connections are checked before use, so a restarted database is found again; a
    database that does not answer fails a new connection within 3 s (a 503) instead of holding
    the worker for the driver's default (PyMySQL 10 s, libpq for ever)."""
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 1800}
    if url.startswith(("mysql", "mariadb", "postgresql")):
        options["connect_args"] = {"connect_timeout": 3}
    return options


def _with_password(url: str, path: str) -> str:
    """The URL with the password read from a file (one trailing newline is not part of it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = Path(path).read_text().removesuffix("\n")
    except OSError as e:
        raise ConfigError(f"NOTES_DATABASE_PASSWORD_FILE: cannot read {path}: {e.strerror}"
                          ) from None
    if not password:
        raise ConfigError(f"NOTES_DATABASE_PASSWORD_FILE: {path} is empty")
    try:
        return make_url(url).set(password=password).render_as_string(hide_password=False)
    except ArgumentError:
        raise ConfigError(f"NOTES_DATABASE_URL={url!r} is not a valid database URL") from None


def secret_key(config: Mapping[str, Any]) -> str:
    """From the setting, the file, or generated once into the data folder (mode 0600).

    Generation is atomic (``O_EXCL``), so workers starting together agree on one key.
    """
    if config.get("NOTES_SECRET_KEY"):
        return str(config["NOTES_SECRET_KEY"])
    if config.get("NOTES_SECRET_KEY_FILE"):
        path = Path(config["NOTES_SECRET_KEY_FILE"])
        try:
            key = path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"NOTES_SECRET_KEY_FILE: cannot read {path}: {e.strerror}") from None
        if len(key) < 16:
            raise ConfigError(f"NOTES_SECRET_KEY_FILE: {path} holds fewer than 16 characters")
        return key
    path = Path(config["NOTES_DATA_DIR"]) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another worker is writing it right now
            key = path.read_text().strip()
            if key:
                return key
            import time

            time.sleep(0.02)
        raise ConfigError(f"{path} is empty: delete it to generate a new key") from None
    with os.fdopen(fd, "w") as f:
        key = secrets.token_urlsafe(48)
        f.write(key + "\n")
    return key


def markdown_table() -> str:
    lines = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for var in VARS:
        lines.append(f"| `{var.env}` | {var.default or '(none)'} | {var.help} |")
    return "\n".join(lines)
