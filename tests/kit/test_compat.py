"""tiangolo/uwsgi-nginx-flask's variables and files as the kit's settings (the mode itself is
tested on the image: tests/image/test_tiangolo.py), and stray UWSGI_* variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from flaskstack import compat, runtime
from flaskstack.settings import SettingError, load


def derived(env: dict[str, str], cwd: str = "/web/web_data") -> dict[str, str]:
    return {name: raw for name, (raw, _) in compat.layout(env, cwd, "test").derived.items()}


def test_their_defaults() -> None:
    got = derived({})
    assert got["app"] == "main:app" and got["app_dir"] == "/app"
    assert got["port"] == "80" and got["max_upload"] == "0"
    assert got["static"] == "/static/=/app/static"
    assert "root_page" not in got and "workers" not in got and "cheaper" not in got


def test_their_variables(tmp_path: Path) -> None:
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmodule = custom_app.main\ncallable = custom_app\n"
                   "enable-threads = true\nprocesses = 6\nharakiri = 30\nbuffer-size = 65535\n")
    layout = compat.layout({
        "UWSGI_INI": str(ini), "LISTEN_PORT": "8080", "STATIC_URL": "/content/",
        "STATIC_PATH": "/application/content", "STATIC_INDEX": "1", "NGINX_MAX_UPLOAD": "1m",
        "NGINX_WORKER_PROCESSES": "3", "NGINX_WORKER_CONNECTIONS": "512",
        "NGINX_WORKER_OPEN_FILES": "900", "UWSGI_CHEAPER": "2"}, "/application", "test")
    got = {name: raw for name, (raw, _) in layout.derived.items()}
    assert got["app"] == "custom_app.main:custom_app" and got["app_dir"] == "/application"
    assert got["workers"] == "6"  # the ini's processes (UWSGI_PROCESSES would win)
    assert got["cheaper"] == "2" and got["port"] == "8080"
    assert got["static"] == "/content/=/application/content"
    assert got["root_page"] == "/content/index.html"
    settings = load(env={}, derived=layout.derived)
    assert settings.max_upload == 1024 * 1024 and settings.nginx_workers == 3
    assert settings.nginx_connections == 512 and settings.nginx_open_files == 900
    assert settings.sources["cheaper"] == "tiangolo UWSGI_CHEAPER"
    # our own variables still win over theirs
    assert load(env={"FLASKSTACK_PORT": "9000"}, derived=layout.derived).port == 9000
    assert layout.notes == (f"{ini}: not used (the kit renders uWSGI's configuration; see "
                            "docs/start/tiangolo.md): buffer-size",)


def test_cheaper_alone_gets_their_processes() -> None:
    got = derived({"UWSGI_CHEAPER": "2"})
    assert got["workers"] == "16" and got["cheaper"] == "2"
    with pytest.raises(SettingError, match=r"setting cheaper \(from tiangolo UWSGI_CHEAPER\): "
                       r"4 must be less than workers \(4\)"):
        load(env={}, derived=compat.layout(
            {"UWSGI_CHEAPER": "4", "UWSGI_PROCESSES": "4"}, "/app", "test").derived)


def test_a_missing_or_broken_uwsgi_ini_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match=r"^UWSGI_INI /nowhere/uwsgi.ini: no such file$"):
        compat.layout({"UWSGI_INI": "/nowhere/uwsgi.ini"}, "/app", "test")
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("module = main\n")
    with pytest.raises(SettingError, match="cannot read it"):
        compat.layout({"UWSGI_INI": str(ini)}, "/app", "test")


def test_the_mode_is_off_when_an_app_is_named_or_the_setting_says_so() -> None:
    env = {"UWSGI_INI": "/app/uwsgi.ini"}
    assert compat.detect(load(env={}), env) == "UWSGI_INI is set"
    assert compat.detect(load(env={"FLASKSTACK_APP": "mysite:app"}), env) is None
    assert compat.detect(load(env={"FLASKSTACK_COMPAT": "off"}), env) is None
    assert compat.detect(load(env={"FLASKSTACK_COMPAT": "tiangolo"}), {}) is not None


def test_a_whole_nginx_conf_keeps_its_lines_but_daemon(tmp_path: Path) -> None:
    from flaskstack.render import own_nginx_conf

    conf = tmp_path / "nginx.conf"
    conf.write_text("user nginx;\nevents {}\nhttp { server { listen 8080; } }\ndaemon off;\n")
    text = own_nginx_conf(conf)
    assert "user nginx;\n" in text and "listen 8080;" in text
    assert "# daemon off;  (flaskstack runs Nginx in the foreground)" in text
    assert compat.nginx_port(conf) == "8080"


def test_no_uwsgi_variable_reaches_the_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UWSGI_CHEAPER", "2")
    monkeypatch.setenv("uwsgi_processes", "4")
    env = runtime.child_env(None, "/opt/site")
    assert not [k for k in env if k.upper().startswith("UWSGI_")]
    assert env["PATH"].startswith("/opt/site/bin:") and env["VIRTUAL_ENV"] == "/opt/site"
    assert compat.stray({"UWSGI_CHEAPER": "2", "UWSGI_LOGTO": "x"}, None) == [
        "UWSGI_CHEAPER", "UWSGI_LOGTO"]


def test_the_sites_own_venv_and_no_stray_uwsgi_variable(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Natively too: the workers run with the site's venv (setting venv), and UWSGI_* variables
    (which uWSGI would read as options: this pair made it exit 3) are ignored with a warning."""
    stack = make_stack("--app", "venvprobe:app", UWSGI_CHEAPER="2", UWSGI_PROCESSES="4")
    venv = stack.root / "sitevenv"
    # on the kit's own Python (uWSGI is linked to its libpython)
    subprocess.run([str(Path(sys.executable).resolve()), "-m", "venv", "--without-pip",
                    str(venv)], check=True)
    site_packages = next(venv.glob("lib/python3.*/site-packages"))
    (site_packages / "sitemarker.py").write_text("WHERE = 'from the site venv'\n")
    (stack.app_dir / "venvprobe.py").write_text(
        "import sys\n\nimport sitemarker\n\n\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [f'{sys.prefix} {sitemarker.WHERE}'.encode()]\n")
    (stack.app_dir / "venvprobe.py").chmod(0o644)
    stack.args += ["--venv", str(venv)]
    stack.start()
    assert requests.get(stack.url, timeout=10).text == f"{venv} from the site venv"
    assert ("ignoring UWSGI_CHEAPER, UWSGI_PROCESSES: uWSGI reads only the configuration the "
            "kit renders") in stack.output()
