"""What a site declares for the kit in a ``flaskstack.toml`` beside its code.

The kit never imports the site: it finds the top-level module with
:func:`importlib.util.find_spec` (which does not execute it) and reads the file next to it::

    prestart = "flask --app notes db upgrade"
    preload = ["flask", "sqlalchemy"]
    health = "/healthz"
    writable = ["${NOTES_DATA_DIR:-/web/data}"]
    [static]
    "/static/" = "static"
    "/media/" = { path = "${NOTES_DATA_DIR:-/web/data}/uploads", untrusted = true }
    "/admin/static/" = { package = "flask_admin", path = "static" }

``${VAR:-default}`` and ``${VAR}`` are expanded from the environment; relative directories are
relative to the file's folder. A mapping marked ``untrusted`` holds files people uploaded: Nginx
serves them with a sandboxing Content-Security-Policy, so an HTML or SVG file among them runs no
script in the site's origin. A mapping with ``package`` names a folder inside an installed
top-level package (a library's own static files), found with ``find_spec`` like the site.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from pathlib import Path

from .settings import ModuleName, SettingError, static_mapping

FILENAME = "flaskstack.toml"
module_name = ModuleName()
_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::-([^}]*))?\}")


@dataclass
class SiteDeclaration:
    found: bool = False  # the app's top-level module exists (it is never imported)
    path: Path | None = None  # its flaskstack.toml, if it has one
    prestart: str = ""
    health: str = "/"
    writable: list[str] = field(default_factory=list)
    preload: list[str] = field(default_factory=list)  # modules uWSGI's master imports
    static: list[tuple[str, str]] = field(default_factory=list)
    untrusted: set[str] = field(default_factory=set)  # prefixes of uploaded (hostile) files
    # [nginx] server = "FILE" / http = "FILE": the site's own Nginx lines, included inside the
    # site's server block / the http block (absolute paths)
    nginx_server: str | None = None
    nginx_http: str | None = None


def expand(value: str, env: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def find_spec(top: str, app_dir: str) -> ModuleSpec | None:
    """Where the top-level module ``top`` is, with ``app_dir`` first on the path as uWSGI has
    it; found without importing (executing) it."""
    sys.path.insert(0, app_dir)
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    finally:
        sys.path.remove(app_dir)


def find(app: str, app_dir: str) -> tuple[bool, Path | None]:
    """Whether the app's top-level module exists, and the ``flaskstack.toml`` beside it."""
    spec = find_spec(app.split(":", 1)[0].split(".", 1)[0], app_dir)
    if spec is None:
        return False, None
    if not spec.origin or spec.origin in {"built-in", "frozen"}:
        return True, None
    candidate = Path(spec.origin).parent / FILENAME
    return True, candidate if candidate.is_file() else None


def load(app: str, app_dir: str, env: Mapping[str, str] | None = None) -> SiteDeclaration:
    """Read the site's declaration; an absent file is an empty declaration."""
    env = os.environ if env is None else env
    found, path = find(app, app_dir)
    if path is None:
        return SiteDeclaration(found=found)
    try:
        import tomllib  # here: the supervisor, which only holds the declaration, never loads it

        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingError(f"{path}: {e}") from None
    base = path.parent
    decl = SiteDeclaration(found=True, path=path)
    prestart = data.get("prestart", "")
    health = data.get("health", "/")
    writable = data.get("writable", [])
    static = data.get("static", {})
    preload = data.get("preload", [])
    if (not isinstance(prestart, str) or not isinstance(writable, list)
            or not isinstance(static, dict) or not isinstance(health, str)
            or not health.startswith("/") or not isinstance(preload, list)):
        raise SettingError(
            f"{path}: prestart must be a string, health a path starting with /, writable and "
            "preload lists, [static] a table"
        )
    for module in preload:
        try:
            decl.preload.append(module_name(str(module)))
        except ValueError:
            raise SettingError(f"{path}: preload: {module!r} is not a module name") from None
    decl.health = health
    decl.prestart = expand(prestart, env)
    decl.writable = [str(base / expand(str(d), env)) for d in writable]
    for prefix, value in static.items():
        options = value if isinstance(value, dict) else {"path": value}
        package = options.get("package")
        directory = options.get("path", "" if package is not None else None)
        untrusted = options.get("untrusted", False)
        if (not isinstance(directory, str) or not isinstance(untrusted, bool)
                or set(options) - {"path", "untrusted", "package"}
                or (package is not None and (not isinstance(package, str)
                                             or not package.isidentifier()
                                             or ".." in Path(directory).parts))):
            raise SettingError(f"{path}: static mapping {prefix!r} must be a directory, "
                               "{ path = DIR, untrusted = true|false } or { package = NAME, "
                               "path = DIR inside that top-level package }")
        if package is not None:
            folder = package_folder(path, prefix, package, app_dir) / directory
        else:
            folder = base / expand(directory, env)
        try:
            mapping = static_mapping(f"{prefix}={folder}")
        except ValueError:
            raise SettingError(f"{path}: bad static mapping {prefix!r}") from None
        decl.static.append(mapping)
        if untrusted:
            decl.untrusted.add(mapping[0])
    nginx = data.get("nginx", {})
    if not isinstance(nginx, dict) or set(nginx) - {"server", "http"} or not all(
            isinstance(v, str) and v.strip() for v in nginx.values()):
        raise SettingError(f'{path}: [nginx] takes server = "FILE" and http = "FILE" only')
    for key, value in nginx.items():
        snippet = base / expand(value, env)  # relative to the flaskstack.toml
        if not snippet.is_file():
            raise SettingError(f"{path}: [nginx] {key} = {value!r}: {snippet} is not a file")
        setattr(decl, f"nginx_{key}", str(snippet))
    return decl


def package_folder(path: Path, prefix: str, package: str, app_dir: str) -> Path:
    """The folder of an installed top-level package, found without importing it."""
    spec = find_spec(package, app_dir)
    if spec is None or not spec.submodule_search_locations:
        raise SettingError(f"{path}: static {prefix!r}: package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))
