"""Static files at Nginx's speed (one Cache-Control header, versioned URLs kept for a year,
precompressed copies, a library's own static folder declared by package name) and a lighter
start (libraries preloaded once by uWSGI's master)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import brotli
import pytest
import requests

from flaskstack import precompress
from flaskstack.settings import SettingError
from flaskstack.site import load as load_site
from tests.load import wait_for

from .conftest import REQUEST_ID

CSS = "body { color: #333; }\n" * 200


def assets_stack(make_stack, *args: str):  # type: ignore[no-untyped-def]
    stack = make_stack("--app", "probe:application", *args)
    assets = stack.root / "assets"
    assets.mkdir()
    (assets / "style.css").write_text(CSS)
    (assets / "logo.png").write_bytes(os.urandom(4000))
    for path in [assets, *assets.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    stack.args += ["--static", f"/assets/={assets}"]
    return stack, assets


def test_one_cache_control_versioned_urls_for_a_year(make_stack) -> None:
    stack, _ = assets_stack(make_stack)
    stack.start()
    plain = requests.get(f"{stack.url}/assets/style.css", timeout=10)
    versioned = requests.get(f"{stack.url}/assets/style.css?v=3f2a91", timeout=10)
    ckeditor = requests.get(f"{stack.url}/assets/logo.png?t=N2KB", timeout=10)
    for r in (plain, versioned, ckeditor):
        assert r.status_code == 200
        assert len(r.raw.headers.getlist("Cache-Control")) == 1
        assert "Expires" not in r.headers
    assert plain.headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert ckeditor.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # revalidation of an unversioned file is a 304 from Nginx
    again = requests.get(f"{stack.url}/assets/style.css", timeout=10,
                         headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304
    missing = requests.get(f"{stack.url}/assets/none.css?v=1", timeout=10)
    assert missing.status_code == 404 and "immutable" not in missing.headers.get(
        "Cache-Control", "")
    assert stack.seen() == []


@pytest.mark.parametrize("log_static", [False, True])
def test_static_files_are_logged_when_they_fail_or_when_asked(make_stack, log_static) -> None:
    stack, _ = assets_stack(make_stack, "--access-log-static", "on" if log_static else "off")
    stack.start()
    answered = [requests.get(f"{stack.url}/assets/style.css?v=1", timeout=10)]
    etag = requests.get(f"{stack.url}/assets/logo.png", timeout=10).headers["ETag"]
    answered.append(requests.get(f"{stack.url}/assets/logo.png", timeout=10,
                                 headers={"If-None-Match": etag}))
    failed = [requests.get(f"{stack.url}/assets/none.css", timeout=10),
              requests.get(f"{stack.url}/assets/.env", timeout=10),
              requests.post(f"{stack.url}/assets/style.css", timeout=10),
              requests.get(f"{stack.url}/assets/logo.png", timeout=10,
                           headers={"Range": "bytes=999999-"})]
    assert [r.status_code for r in answered + failed] == [200, 304, 404, 404, 405, 416]
    # the request id names a log line: sent with what is logged
    assert all(("X-Request-ID" in r.headers) is log_static for r in answered)
    # (Nginx runs a 416 through its header filters twice: added headers may come twice)
    ids = [r.headers["X-Request-ID"].split(", ")[0] for r in failed]
    assert all(REQUEST_ID.fullmatch(i) for i in ids)
    page = requests.get(f"{stack.url}/app-page", timeout=10)
    assert page.status_code == 200 and REQUEST_ID.fullmatch(page.headers["X-Request-ID"])
    assert wait_for(lambda: '"GET /app-page HTTP/1.1"' in stack.output(), 10)  # 1 s flush
    log = stack.output()
    for line in ('"GET /assets/none.css HTTP/1.1" 404', '"GET /assets/.env HTTP/1.1" 404',
                 '"POST /assets/style.css HTTP/1.1" 405', '"GET /assets/logo.png HTTP/1.1" 416'):
        assert line in log
    for i in ids:
        assert f'"{i}"' in log
    for line in ('"GET /assets/style.css?v=1 HTTP/1.1" 200',
                 '"GET /assets/logo.png HTTP/1.1" 200', '"GET /assets/logo.png HTTP/1.1" 304'):
        assert (line in log) is log_static


def test_precompressed_copies_are_sent_as_they_are_and_never_outdated(make_stack) -> None:
    stack, assets = assets_stack(make_stack, "--static-max-age", "60")
    made = subprocess.run(
        [sys.executable, "-m", "flaskstack", "precompress", *stack.args],
        capture_output=True, text=True, timeout=60, env=stack.env,
    )
    assert made.returncode == 0, made.stderr
    assert "2 .gz/.br copies written" in made.stdout  # style.css; the PNG is left alone
    copy, br = assets / "style.css.gz", assets / "style.css.br"
    assert gzip.decompress(copy.read_bytes()).decode() == CSS
    assert brotli.decompress(br.read_bytes()).decode() == CSS
    assert not (assets / "logo.png.gz").exists() and not (assets / "logo.png.br").exists()
    stack.start()
    r = requests.get(f"{stack.url}/assets/style.css", timeout=10, stream=True,
                     headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.raw.read() == copy.read_bytes()  # the copy itself, not compressed again
    assert r.headers["Cache-Control"] == "public, max-age=60, must-revalidate"
    # Brotli to browsers that take it (Nginx's brotli_static module: installed by the scripts)
    r = requests.get(f"{stack.url}/assets/style.css", timeout=10, stream=True,
                     headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.headers["Content-Encoding"] == "br" and r.raw.read() == br.read_bytes()
    assert r.headers["Vary"] == "Accept-Encoding"
    plain = requests.get(f"{stack.url}/assets/style.css", timeout=10,
                         headers={"Accept-Encoding": "identity"})
    assert plain.text == CSS and "Content-Encoding" not in plain.headers
    # the file changes after its copy was made: a restart drops the outdated copy
    stack.stop()
    (assets / "style.css").write_text("body { color: red; }\n" * 50)
    stack.ready.clear()
    stack.stdout.clear()
    stack.stderr.clear()
    stack.start()
    assert "removed 2 outdated .gz/.br copies" in stack.output()
    assert not copy.exists() and not br.exists()
    r = requests.get(f"{stack.url}/assets/style.css", timeout=10)
    assert r.text == "body { color: red; }\n" * 50


def test_precompress_is_atomic_idempotent_and_skips_what_does_not_shrink(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("let x = 1;\n" * 100)
    (tmp_path / "tiny.css").write_text("a{}")
    (tmp_path / "random.svg").write_bytes(os.urandom(5000))  # incompressible
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.css").write_text("p { margin: 0 }\n" * 100)
    assert precompress.precompress([tmp_path]) == (4, 4)
    assert precompress.precompress([tmp_path]) == (0, 4)  # up to date: nothing rewritten
    assert sorted(p.name for p in tmp_path.rglob("*.gz")) == ["a.js.gz", "b.css.gz"]
    assert sorted(p.name for p in tmp_path.rglob("*.br")) == ["a.js.br", "b.css.br"]
    assert not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "a.js").unlink()
    assert precompress.drop_stale([tmp_path]) == 2  # its original is gone
    assert precompress.drop_stale([tmp_path]) == 0


def test_a_library_static_folder_is_declared_by_package_without_importing_it(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "mysite").mkdir(parents=True)
    (site / "lib" / "static").mkdir(parents=True)
    (site / "lib" / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (site / "mysite" / "__init__.py").write_text("")
    toml = site / "mysite" / "flaskstack.toml"
    toml.write_text('[static]\n"/lib/static/" = { package = "lib", path = "static" }\n')
    decl = load_site("mysite:app", str(site), env={})
    assert decl.static == [("/lib/static/", str(site / "lib" / "static"))]
    for bad, message in [
        ('{ package = "nowhere_xyz" }', "package 'nowhere_xyz' is not installed"),
        ('{ package = "lib", path = "../.." }', "{ package = NAME"),
        ('{ package = "a.b" }', "{ package = NAME"),
        ('{ package = 3 }', "{ package = NAME"),
        ('{ package = "lib", other = 1 }', "{ package = NAME"),
    ]:
        toml.write_text(f'[static]\n"/x/" = {bad}\n')
        with pytest.raises(SettingError) as e:
            load_site("mysite:app", str(site), env={})
        assert message in str(e.value) and "\n" not in str(e.value)


def test_notes_serves_flask_admin_static_files_from_the_installed_package() -> None:
    import importlib.util

    decl = load_site("notes:create_app()", os.getcwd(), env={})
    spec = importlib.util.find_spec("flask_admin")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    assert ("/admin/static/", str(folder)) in decl.static
    assert (folder / "admin").is_dir()


def test_preload_setting_imports_a_library_once_in_the_master(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--workers", "2",
                       "--preload", "preloaded").start()
    loaded = [line for line in stack.seen() if line.startswith("preloaded in ")]
    assert len(loaded) == 1  # once, not per worker
    workers = {requests.get(f"{stack.url}/pid", timeout=10).text for _ in range(20)}
    assert loaded[0].removeprefix("preloaded in ") not in workers
    assert requests.get(f"{stack.url}/dynamic", timeout=10).text == "v1 /dynamic"


def test_site_preload_must_be_a_list_of_module_names(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "mysite").mkdir(parents=True)
    (site / "mysite" / "__init__.py").write_text("")
    toml = site / "mysite" / "flaskstack.toml"
    toml.write_text('preload = ["flask", "sqlalchemy.orm"]\n')
    assert load_site("mysite:app", str(site), env={}).preload == ["flask", "sqlalchemy.orm"]
    for bad, message in [('preload = "flask"', "preload lists"),
                         ('preload = ["flask", "../x"]', "'../x' is not a module name")]:
        toml.write_text(bad + "\n")
        with pytest.raises(SettingError) as e:
            load_site("mysite:app", str(site), env={})
        assert message in str(e.value) and "\n" not in str(e.value)
