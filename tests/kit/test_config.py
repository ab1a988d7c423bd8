"""`flaskstack config`: effective settings, rendered files, nginx -t, site declarations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLASKSTACK = [sys.executable, "-m", "flaskstack"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLASKSTACK, *args], capture_output=True, text=True, check=False, env=env, timeout=60
    )


def test_config_check_passes_nginx_t(tmp_path: Path) -> None:
    site = Path(tempfile.mkdtemp(prefix="flaskstack-config-"))  # www-data can read it
    site.chmod(0o755)
    result = run("config", "--check", "--port", "8123", "--app-dir", str(site),
                 "--run-dir", str(tmp_path / "run"), "--app", "probe:application")
    site.rmdir()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "port                   8123" in out and "(flag --port)" in out
    assert "# ---- nginx.conf ----" in out and "# ---- uwsgi.ini ----" in out
    assert "server_tokens off;" in out
    # harakiri is checked each whole second: one more, so a request always gets its full 60 s
    assert "route-if = empty:${HTTP_UPGRADE} harakiri:61" in out  # not for WebSockets
    assert "uwsgi_read_timeout 65s;" in out
    assert "nginx -t: configuration ok" in out


def test_config_check_reports_nginx_rejection_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = run("config", "--check", "--app-dir", str(tmp_path), "--run-dir", str(tmp_path),
                 "--tls-cert", str(missing), "--tls-key", str(missing))
    assert result.returncode == 2
    # the kit checks the files itself before nginx -t sees them, naming the file
    assert result.stderr.startswith(f"flaskstack: error: setting tls_cert: {missing}: no such")
    assert result.stderr.strip().count("\n") == 0


def test_site_declaration_is_read_without_importing_the_site(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "mysite"
    (package / "assets").mkdir(parents=True)
    # importing this package would fail: the kit must only find it, never import it
    (package / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (package / "flaskstack.toml").write_text(
        'prestart = "echo migrate"\n'
        'writable = ["${MYSITE_DATA:-/tmp/mysite-data}"]\n'
        '[static]\n"/assets/" = "assets"\n"/media/" = "${MYSITE_DATA:-/tmp/mysite-data}/up"\n'
    )
    env = {"PATH": "/usr/bin:/bin", "MYSITE_DATA": str(tmp_path / "data")}
    result = run("config", "--app", "mysite:create_app()", "--app-dir", str(site),
                 "--run-dir", str(tmp_path / "run"), "--static", f"/extra/={tmp_path}", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"location ^~ /assets/ {{\n            alias {package}/assets/;" in out
    assert f"alias {tmp_path}/data/up/;" in out
    assert f"alias {tmp_path}/;" in out
    assert f"# prestart: echo migrate (from {package / 'flaskstack.toml'})" in out
    assert f"# writable: {tmp_path}/data (from {package / 'flaskstack.toml'})" in out
    assert "imported!" not in result.stderr


def test_every_role_renders_a_config_nginx_accepts(tmp_path: Path) -> None:
    site = Path(tempfile.mkdtemp(prefix="flaskstack-config-"))  # www-data can read it
    site.chmod(0o755)
    for role in ("all", "app", "proxy"):
        result = run("config", "--check", "--role", role, "--upstreams", "127.0.0.1:8001",
                     "--upstreams", "app2:8000", "--replica-name", "r1",
                     "--app-dir", str(site), "--run-dir", str(tmp_path / role))
        assert result.returncode == 0, (role, result.stderr)
        assert ("# ---- nginx.conf ----" in result.stdout) == (role != "app")
        assert ("# ---- uwsgi.ini ----" in result.stdout) == (role != "proxy")
    site.rmdir()


def test_exec_runs_the_command_as_the_stack_user_in_the_app_dir(tmp_path: Path) -> None:
    app_dir = tmp_path / "site"
    app_dir.mkdir()
    result = run("exec", "--app-dir", str(app_dir), "--run-dir", str(tmp_path / "run"),
                 "--", "sh", "-c", "id -u; pwd; exit 5")
    assert result.returncode == 5, result.stderr
    uid, cwd = result.stdout.split()
    assert uid == ("33" if os.geteuid() == 0 else str(os.geteuid()))  # www-data when root
    assert cwd == str(app_dir)
    missing = run("exec", "--app-dir", str(app_dir), "--", "no-such-command-xyz")
    assert missing.returncode != 0
    assert "no-such-command-xyz" in missing.stderr


def test_exec_prepares_the_sites_writable_directories_as_serve_does() -> None:
    """A site command (e.g. migrations) run before the first `serve` finds its folders."""
    # world-readable (pytest's tmp_path is not): the command runs as www-data when root
    tmp_path = Path(tempfile.mkdtemp(prefix="flaskstack-exec-"))
    site = tmp_path / "site"
    (site / "mysite").mkdir(parents=True)
    (site / "mysite" / "__init__.py").write_text("")
    data = tmp_path / "data" / "deep"
    (site / "mysite" / "flaskstack.toml").write_text(f'writable = ["{data}"]\n')
    for path in (tmp_path, site, site / "mysite"):
        path.chmod(0o755)
    try:
        result = run("exec", "--app", "mysite:app", "--app-dir", str(site), "--run-dir",
                     str(tmp_path / "run"), "--", "sh", "-c", f"touch {data}/made && echo ok")
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
        if os.geteuid() == 0:
            assert data.stat().st_uid == 33  # the stack's user (www-data) owns it
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
