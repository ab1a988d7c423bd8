"""The plan and the rendered files, in process: no nginx, no uWSGI, host facts chosen here."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flaskstack import plan as planning
from flaskstack import process, render
from flaskstack.host import Account, HostFacts
from flaskstack.settings import SettingError, load
from flaskstack.site import SiteDeclaration

FACTS = HostFacts(somaxconn=4096, nofile_hard=1 << 20, root=False, account=None)
ROOT_FACTS = HostFacts(somaxconn=128, nofile_hard=1024, root=True,
                       account=Account("www-data", 33, 33, "www-data", "/var/www"))
SITE = SiteDeclaration(found=True, path=Path("/site/mysite/flaskstack.toml"), health="/healthz",
                       prestart="flask db upgrade", writable=["/data"],
                       static=[("/static/", "/site/mysite/static")])


def make(facts: HostFacts = FACTS, servers: tuple[str, ...] = (), **env: str) -> planning.Plan:
    base = {"FLASKSTACK_RUN_DIR": "/run/fs", "FLASKSTACK_APP_DIR": "/site",
            "FLASKSTACK_APP": "mysite:create_app()"}
    settings = load(env={**base, **{f"FLASKSTACK_{k.upper()}": v for k, v in env.items()}})
    return planning.make(settings, SITE, facts, servers)


def directive(conf: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name} ([^;\n]+);(?:\s*#.*)?$", conf, re.MULTILINE)


def test_role_all_renders_both_servers_on_a_unix_socket() -> None:
    plan = make()
    assert plan.services == ("prestart", "purge", "uwsgi", "nginx")
    files = render.render(plan)
    assert set(files) >= {"nginx.conf", "uwsgi.ini", "mime.types", "uwsgi_params",
                          "errors/502.html", "errors/502.json"}
    nginx, ini = files["nginx.conf"], files["uwsgi.ini"]
    assert directive(nginx, "server") == ["unix:/run/fs/uwsgi.sock"]
    assert "\nsocket =" not in ini  # each generation's own, in its folder (generation.py)
    assert "env = FLASKSTACK_APP=mysite:create_app()" in ini
    assert "disable-logging = true" in ini  # Nginx logs the requests
    assert directive(nginx, "uwsgi_read_timeout") == ["65s"]  # harakiri 60 + 5
    # checked each whole second: never before the timeout; for every request (lifted only by a
    # completed WebSocket handshake, in flaskstack.websocket), whatever its headers
    assert "route-run = harakiri:61" in ini
    hook = re.findall(r"^import = (.+)$", ini, re.MULTILINE)
    assert hook == [str(Path(planning.__file__).with_name("websocket.py"))]
    assert "route-if" not in ini
    assert "websockets-ping-freq = 30" in ini
    assert "location ^~ /static/ {\n            alias /site/mysite/static/;" in nginx
    assert "uwsgi_next_upstream" not in nginx and directive(nginx, "zone") == []
    assert plan.probe.url == "http://127.0.0.1:85" and plan.probe.path == "/healthz"
    # the app's purges go to the stack's own purger (flaskstack.purge)
    assert plan.purge_to == ("unix:/run/fs/purge.sock",)
    assert "uwsgi_cache_use_stale" not in nginx and "levels=1 " in nginx


def test_role_app_renders_uwsgi_only_on_an_inherited_socket() -> None:
    plan = make(role="app", app_listen="0.0.0.0:8001", replica_name="r1")
    assert plan.services == ("prestart", "uwsgi")
    files = render.render(plan)
    assert set(files) == {"uwsgi.ini"}
    ini = files["uwsgi.ini"]
    assert "\nsocket = fd://0\n" in ini and "handed to every generation as fd 0" in ini
    assert "add-header = X-Replica: r1" in ini
    assert "disable-logging" not in ini  # no Nginx here: uWSGI logs
    assert plan.app_listen == ("0.0.0.0", 8001)
    assert plan.purge_to == ()  # no proxy named: nothing to purge
    assert plan.probe.protocol == "uwsgi" and plan.probe.port == 8001


def test_role_proxy_renders_nginx_only_over_the_upstreams() -> None:
    plan = make(role="proxy", upstreams="app1:8000,app2:8000",
                servers=("10.0.0.1:8000", "10.0.0.2:8000"))
    assert plan.services == ("purge", "upstreams", "nginx")
    assert plan.prestart == () and plan.writable == ()
    files = render.render(plan)
    assert "uwsgi.ini" not in files
    nginx = files["nginx.conf"]
    assert directive(nginx, "server")[:2] == ["10.0.0.1:8000 max_fails=3 fail_timeout=5s",
                                              "10.0.0.2:8000 max_fails=3 fail_timeout=5s"]
    assert directive(nginx, "zone") == ["flaskstack_app 64k"]
    assert directive(nginx, "uwsgi_next_upstream_tries") == ["3"]
    assert directive(nginx, "uwsgi_connect_timeout") == ["1s"]


def test_proxy_without_upstreams_is_a_settings_error() -> None:
    with pytest.raises(SettingError, match="role proxy needs at least one"):
        make(role="proxy")


def test_host_limits_cap_backlog_and_connections_and_are_reported() -> None:
    plan = make(ROOT_FACTS)
    assert plan.nginx is not None and plan.uwsgi is not None
    assert plan.nginx.backlog == plan.uwsgi.backlog == 128
    assert plan.nginx.worker_connections == 1024 - 32
    assert any("somaxconn" in n for n in plan.notes)
    assert any("open-files limit is 1024" in n for n in plan.notes)
    files = render.render(plan)
    assert files["nginx.conf"].startswith("# Rendered") and "user www-data www-data;" in files[
        "nginx.conf"]
    assert "uid = www-data" in files["uwsgi.ini"]
    assert "listen = 128" in files["uwsgi.ini"]


def test_the_app_is_told_the_request_id_and_no_client_claims() -> None:
    nginx = render.render(make())["nginx.conf"]
    for header in ("FOR", "PROTO", "HOST", "PORT"):
        assert f'uwsgi_param HTTP_X_FORWARDED_{header} "" if_not_empty;' in nginx
    assert 'uwsgi_param HTTP_PROXY "" if_not_empty;' in nginx
    # a new id per request, or a trusted proxy's X-Request-ID (trusted_proxies)
    assert "uwsgi_param HTTP_X_REQUEST_ID $flaskstack_request_id;" in nginx
    assert 'default "0-$pid-$connection-$connection_requests";' in nginx
    # not $request_id: OpenSSL's random bytes for every request cost a static file ~15 %
    assert "$request_id" not in nginx


def test_templates_hold_no_arithmetic_and_no_role_tests() -> None:
    templates = Path(render.__file__).parent / "templates"
    for name in ("nginx.conf.j2", "uwsgi.ini.j2"):
        text = (templates / name).read_text()
        expressions = re.findall(r"\{[{%](.*?)[%}]\}", text, re.DOTALL)
        assert not [e for e in expressions if re.search(r"[-+*/]\s*\d|//", e)], name
        assert "s.role ==" not in text and "s.role !=" not in text, name


def test_rendering_is_pure() -> None:
    plan = make()
    assert render.render(plan) == render.render(plan)


def test_response_cache_in_roles_all_and_proxy_never_in_app() -> None:
    nginx = render.render(make())["nginx.conf"]
    assert directive(nginx, "uwsgi_cache") == ["flaskstack_cache"]
    assert "keys_zone=flaskstack_cache:1048576" in nginx and "max_size=104857600" in nginx
    assert "/run/fs/cache levels=1 " in nginx and "inactive=1h" in nginx
    assert 'map "$http_authorization$cookie_session$cookie_remember_token"' in nginx
    assert directive(nginx, "uwsgi_no_cache") == [
        "$flaskstack_cache_bypass $flaskstack_cache_refuse"]
    # staleness is the app's own (stale-while-revalidate, stale-if-error), never unbounded
    assert directive(nginx, "uwsgi_cache_use_stale") == []
    assert directive(nginx, "uwsgi_cache_background_update") == ["on"]
    assert "uwsgi_cache_lock" not in nginx  # off by default: see the setting's help
    locked = render.render(make(cache_lock="on"))["nginx.conf"]
    assert directive(locked, "uwsgi_cache_lock") == ["on"]
    assert directive(locked, "uwsgi_cache_lock_timeout") == ["1s"]
    proxy = render.render(make(role="proxy", upstreams="app1:8000",
                               servers=("10.0.0.1:8000",)))["nginx.conf"]
    assert directive(proxy, "uwsgi_cache") == ["flaskstack_cache"]
    assert make(role="app").nginx is None
    off = render.render(make(cache="off"))["nginx.conf"]
    assert "uwsgi_cache" not in off and "X-Cache-Status" not in off
    elsewhere = make(cache_path="/var/cache/fs", cache_size="10g",
                     cache_bypass_cookies="sid")
    assert elsewhere.nginx is not None and elsewhere.nginx.cache is not None
    assert elsewhere.nginx.cache.path == "/var/cache/fs"
    assert elsewhere.nginx.cache.keys_zone_size == 160 * 1024 * 1024
    assert elsewhere.nginx.cache.bypass == ("$http_authorization", "$cookie_sid")


@pytest.mark.parametrize(("name", "value"), [
    ("cache_bypass_cookies", "my-cookie"), ("cache_bypass_cookies", "a b"),
    ("cache_bypass_cookies", "x;y"), ("cache_size", "100k"), ("cache", "maybe"),
])
def test_bad_cache_settings_are_one_line_errors(name: str, value: str) -> None:
    with pytest.raises(SettingError) as e:
        make(**{name: value})
    assert f"setting {name}" in str(e.value) and "\n" not in str(e.value)


def test_preloaded_libraries_come_from_the_site_unless_the_setting_says_otherwise() -> None:
    site = SiteDeclaration(found=True, preload=["flask", "sqlalchemy.orm"])
    settings = load(env={"FLASKSTACK_RUN_DIR": "/run/fs", "FLASKSTACK_APP": "mysite"})
    ini = render.render(planning.make(settings, site, FACTS))["uwsgi.ini"]
    assert directive_ini(ini, "shared-import") == ["flask", "sqlalchemy.orm"]
    assert "lazy-apps" not in ini  # the master loads the app itself, once (see loader.py)
    assert directive_ini(ini, "env") == ["FLASKSTACK_APP=mysite:app"]
    chosen = load(env={"FLASKSTACK_RUN_DIR": "/run/fs", "FLASKSTACK_PRELOAD": "lxml"})
    assert planning.make(chosen, site, FACTS).uwsgi.preload == ("lxml",)  # type: ignore[union-attr]
    nothing = load(env={"FLASKSTACK_RUN_DIR": "/run/fs", "FLASKSTACK_PRELOAD": "none"})
    plan = planning.make(nothing, site, FACTS)
    assert plan.uwsgi is not None and plan.uwsgi.preload == ()
    assert "shared-import" not in render.render(plan)["uwsgi.ini"]
    with pytest.raises(SettingError, match="setting preload"):
        load(env={"FLASKSTACK_PRELOAD": "os; rm -rf /"})


def directive_ini(ini: str, name: str) -> list[str]:
    return re.findall(rf"^{name} = (.+)$", ini, re.MULTILINE)


def test_brotli_copies_are_sent_only_when_nginx_has_the_module() -> None:
    module = "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"
    with_module = dataclasses.replace(FACTS, brotli_static=module)
    nginx = render.render(make(with_module, static="/s/=/srv/static"))["nginx.conf"]
    assert nginx.startswith("# Rendered") and f"\nload_module {module};\n" in nginx
    assert directive(nginx, "brotli_static") == directive(nginx, "gzip_static") != []
    for conf in (render.render(make(static="/s/=/srv/static"))["nginx.conf"],
                 render.render(make(with_module, static="/s/=/srv/static",
                                    gzip="off"))["nginx.conf"]):
        assert "brotli" not in conf and "load_module" not in conf


def test_files_are_rendered_in_a_child_that_reports_its_failure(tmp_path: Path) -> None:
    """The supervisor renders in a forked child (it never loads Jinja2 itself)."""
    plan = make(run_dir=str(tmp_path / "run"))
    process.in_child(lambda: render.write_plan(plan))
    assert (tmp_path / "run" / "nginx.conf").read_text() == render.render(plan)["nginx.conf"]
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(OSError, match=r"^rendering the configuration failed: .*Not a directory"):
        process.in_child(lambda: render.write_plan(make(run_dir=str(blocked / "run"))))


def test_the_supervisor_does_not_load_jinja2(tmp_path: Path) -> None:
    code = f"""
import sys
from flaskstack import cli, plan, process, render, settings, supervisor
from flaskstack.host import HostFacts
from flaskstack.site import SiteDeclaration
env = {{"FLASKSTACK_RUN_DIR": {str(tmp_path)!r}, "FLASKSTACK_APP_DIR": {str(tmp_path)!r},
       "FLASKSTACK_APP": "mysite:app"}}
facts = HostFacts(somaxconn=128, nofile_hard=1024, root=False, account=None)
made = plan.make(settings.load(env=env), SiteDeclaration(), facts)
process.in_child(lambda: render.write_plan(made))
assert "jinja2" not in sys.modules, "jinja2 loaded"
assert "brotli" not in sys.modules, "brotli loaded"  # only `flaskstack precompress` needs it
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "uwsgi.ini").exists()


def test_tls_server_names_and_redirect_render_one_tls_policy_and_host_checks() -> None:
    """Issue 23: every TLS block (the 421 catch-all included) shares one TLS policy; every
    serving block (the redirect too) refuses a Host that does not name the routed host; the app's
    HSTS is hidden (the setting is the one source); Accept's JSON class is part of the key."""
    plan = make(tls_cert="/tls/site.crt", tls_key="/tls/site.key", server_names="site.example",
                http_redirect_port="8080", hsts="300", cache="on")
    nginx = render.render(plan)["nginx.conf"]
    first_server = nginx.index("    server {")
    assert directive(nginx, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert nginx.index("ssl_protocols") < first_server  # the http block: inherited by all
    assert len(directive(nginx, "ssl_ciphers")) == 1
    assert nginx.count("if ($flaskstack_bad_host)") == 2  # the site's block and the redirect's
    assert nginx.count("return 421") == 2  # a catch-all on the site's port and the redirect's
    assert directive(nginx, "return 301") == ["https://$host:85$request_uri"]
    assert "uwsgi_hide_header Strict-Transport-Security;" in nginx
    assert directive(nginx, "uwsgi_cache_key") == [
        '"$scheme://$http_host$request_uri $flaskstack_gzip $flaskstack_error_ext"']


def test_access_log_buffers_are_atomic_writes_to_the_fifo() -> None:
    """One Nginx worker writes 64k buffers (the relay wakes less often); several write at most
    PIPE_BUF at a time, so that their lines never interleave in the FIFO."""
    one = render.render(make())["nginx.conf"]
    two = render.render(make(nginx_workers="2"))["nginx.conf"]
    assert "flaskstack_combined buffer=65536 flush=1s;" in one
    assert f"flaskstack_combined buffer={planning.PIPE_BUF} flush=1s;" in two
