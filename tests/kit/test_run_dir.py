"""One stack per run directory, a run directory per site, the commands that find the running
stack, and the checks made as the workers' account before anything starts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flaskstack import preflight, running
from flaskstack.host import account
from flaskstack.rundir import Busy, RunDir, take
from flaskstack.settings import SETTINGS, SettingError, load, run_dir_base
from tests.conftest import free_port
from tests.kit.conftest import APPS, FLASKSTACK

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the workers drop to www-data as root")


def flaskstack(*args: str, cwd: Path | None = None, timeout: float = 60,
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLASKSTACK, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, check=False)


@pytest.fixture
def site() -> Iterator[Path]:
    """The fixture apps in a world-readable folder (the workers run as www-data when root)."""
    root = Path(tempfile.mkdtemp(prefix="flaskstack-rundir-"))
    root.chmod(0o755)
    shutil.copytree(APPS, root / "site")
    for path in [root / "site", *(root / "site").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root / "site"
    shutil.rmtree(root, ignore_errors=True)


def test_two_sites_get_two_run_directories_and_one_site_always_the_same() -> None:
    a = load(env={}, flags={"app_dir": "/srv/blog"})
    b = load(env={}, flags={"app_dir": "/srv/shop"})
    assert a.run_dir != b.run_dir
    assert a.run_dir == load(env={}, flags={"app_dir": "/srv/blog/"}).run_dir
    assert Path(a.run_dir).parent == Path(run_dir_base())
    assert Path(a.run_dir).name.startswith("blog-")
    assert a.sources["run_dir"] == "default"
    chosen = load(env={"FLASKSTACK_RUN_DIR": "/run/mine"}, flags={"app_dir": "/srv/blog"})
    assert chosen.run_dir == "/run/mine"


def test_every_setting_is_recorded_as_text_that_reads_back_the_same() -> None:
    """What serve records for the other commands parses back to the values it ran with."""
    given = load(env={}, flags={
        "static": ["/a/=/srv/a", "/b/=/srv/b"], "gzip": "off", "max_upload": "2m",
        "server_names": ["example.com"], "trusted_proxies": ["10.0.0.0/8"],
        "app_listen": "127.0.0.1:9000", "nginx_workers": "2", "hsts": "0",
    })
    texts = {s.name: running.raw(s, given.values[s.name]) for s in SETTINGS}
    again = load(env={}, flags=texts)
    for s in SETTINGS:
        assert again.values[s.name] == given.values[s.name], s.name


def test_find_names_the_only_running_stack_or_asks_which(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running, "run_dir_base", lambda: str(tmp_path))
    elsewhere = load(env={}, flags={"app_dir": "/srv/other", "run_dir": str(tmp_path / "x")})
    default = load(env={}, flags={"app_dir": "/srv/other"})
    default.sources["run_dir"] = "default"
    assert running.find(default, anywhere=True) is None
    first = take(RunDir(tmp_path / "one"))
    try:
        assert running.find(default, anywhere=True) == RunDir(tmp_path / "one")
        assert running.find(default) is None  # only with anywhere
        assert running.find(elsewhere, anywhere=True) is None  # a run dir given is exact
        with pytest.raises(Busy, match="another flaskstack serve"):
            take(RunDir(tmp_path / "one"))
        second = take(RunDir(tmp_path / "two"))
        try:
            with pytest.raises(running.Ambiguous, match="several stacks are running"):
                running.find(default, anywhere=True)
        finally:
            os.close(second)
    finally:
        os.close(first)
    assert running.find(default, anywhere=True) is None  # a lock ends with its holder


def test_a_second_serve_on_one_run_directory_leaves_the_first_serving(make_stack) -> None:  # type: ignore[no-untyped-def]
    first = make_stack("--app", "probe:application").start()
    pid = first.proc.pid
    began = time.monotonic()
    second = subprocess.run(
        [*FLASKSTACK, "serve", "--app", "probe:application", "--app-dir", str(first.app_dir),
         "--run-dir", str(first.run_dir), "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True, text=True, env=first.env, timeout=60, check=False,
    )
    assert second.returncode == 3, second.stderr
    assert time.monotonic() - began < 5  # at once: not after a 5 s "address in use"
    message = second.stderr.strip()
    assert message.count("\n") == 0
    assert f"pid {pid}" in message and first.url.replace("127.0.0.1", "") in message.replace(
        "127.0.0.1", "")
    assert str(first.run_dir) in message
    for _ in range(5):  # the first stack's socket and files are untouched
        assert requests.get(first.url + "/", timeout=10).status_code == 200
    assert first.cli("status").returncode == 0
    assert first.stop() == 0
    assert not (first.run_dir / "flaskstack.json").exists()


def test_commands_use_the_running_stacks_settings(site: Path, tmp_path: Path) -> None:
    """Served with --app and --app-dir once, the other commands need neither again: they are
    found from the site's folder (its default run directory) or with --run-dir."""
    (site / "mysite").mkdir()
    (site / "mysite" / "__init__.py").write_text("from probe import application\n")
    data = site.parent / "data"
    (site / "mysite" / "flaskstack.toml").write_text(
        f'prestart = "echo prestart-ran"\nwritable = ["{data}"]\n'
        '[static]\n"/assets/" = "uploadsite"\n'
    )
    port = free_port()
    serve = subprocess.Popen(
        [*FLASKSTACK, "serve", "--app", "mysite:application", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1"], cwd=site, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert serve.stdout is not None
        for line in serve.stdout:
            if line.startswith("ready: "):
                break
        else:
            pytest.fail("serve did not start")
        config = flaskstack("config", cwd=site)
        assert config.returncode == 0, config.stderr
        out = config.stdout
        assert f"# running stack: pid {serve.pid}" in out
        assert re.search(r"^app\s+mysite:application\s+\(flag --app\)", out, re.M)
        assert f"{port}" in out
        assert "# prestart: echo prestart-ran (from " in out
        assert f"# writable: {data} (from " in out
        assert "# ---- nginx.conf ----" in out and f"listen 127.0.0.1:{port}" in out
        ran = flaskstack("exec", "--", "sh", "-c", "pwd", cwd=site)
        assert (ran.returncode, ran.stdout.strip()) == (0, str(site)), ran.stderr
        assert flaskstack("status", cwd=site).returncode == 0
        assert flaskstack("precompress", cwd=site).returncode == 0
        healthy = flaskstack("health", cwd=site)
        assert healthy.returncode == 0, healthy.stderr
        # --run-dir alone finds it too (from any folder)
        run = running.find(load(env={}, flags={"app_dir": str(site)}))
        assert run is not None
        ran = flaskstack("exec", "--run-dir", str(run), "--", "sh", "-c", "pwd", cwd=tmp_path)
        assert ran.stdout.strip() == str(site), ran.stderr
        # with flags, config shows what these flags would make
        what_if = flaskstack("config", "--app", "mysite:application", "--port", "9",
                             cwd=site)
        assert "# running stack" not in what_if.stdout and "listen 0.0.0.0:9" in what_if.stdout
    finally:
        serve.terminate()
        assert serve.wait(60) == 0


@root_only
def test_a_site_the_workers_cannot_read_is_named_before_anything_starts(site: Path) -> None:
    private = site.parent / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(site, private / "site")
    result = flaskstack("serve", "--app", "probe:application", "--app-dir",
                        str(private / "site"), "--run-dir", str(site.parent / "run"),
                        "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0
    assert f"user www-data, which runs the workers, cannot enter {private}" in line
    assert "the site directory (app_dir)" in line and f"chmod o+x {private}" in line
    assert not (site.parent / "run" / "uwsgi.sock").exists()


@root_only
def test_every_path_the_workers_need_is_checked_as_their_account() -> None:
    www = account("www-data")
    readable = Path(tempfile.mkdtemp())  # (pytest's tmp_path is private: 0700)
    readable.chmod(0o755)
    hidden = readable / "hidden"
    (hidden / "lib").mkdir(parents=True)
    hidden.chmod(0o700)
    try:
        preflight.check_access(www, [(str(readable), "read", "x"),
                                     (str(readable / "not-yet" / "deeper"), "write", "y")])
        with pytest.raises(SettingError, match=f"cannot enter {hidden} .Python's standard"):
            preflight.check_access(www, [(str(readable), "read", "x"),
                                         (str(hidden / "lib"), "read", "Python's standard lib")])
        (readable / "secret").mkdir(mode=0o700)
        with pytest.raises(SettingError, match=f"cannot read {readable / 'secret'} "):
            preflight.check_access(www, [(str(readable / "secret"), "read", "z")])
    finally:
        shutil.rmtree(readable)


def test_a_uwsgi_built_for_another_python_is_refused(tmp_path: Path) -> None:
    """A real uWSGI binary whose libpython is another Python's (its DT_NEEDED entry changed,
    as a wheel built elsewhere would have it) is named, with the command that rebuilds it."""
    ours = Path(sys.executable).parent / "uwsgi"
    preflight.check_uwsgi_python(str(ours))  # the one install-uwsgi.sh built: fine
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    other = "3.99" if version != "3.99" else "3.98"
    data = ours.read_bytes()
    needle = f"libpython{version}.so".encode()
    assert needle in data
    foreign = tmp_path / "uwsgi"
    foreign.write_bytes(data.replace(needle, f"libpython{other}.so".encode()[:len(needle)]))
    foreign.chmod(0o755)
    with pytest.raises(SettingError, match=f"built for Python {other}.*install-uwsgi.sh"):
        preflight.check_uwsgi_python(str(foreign))


def test_a_commands_environment_and_flags_go_on_top_of_the_running_stacks_settings(
        tmp_path: Path) -> None:
    """Recorded at the start < this command's FLASKSTACK_* variables < its flags: e.g.
    `podman exec -e FLASKSTACK_APP=notes:create_app() … flaskstack exec -- flask --app notes`."""
    from flaskstack.plan import Probe
    from flaskstack.rundir import write_state

    started = load(env={"FLASKSTACK_WORKERS": "4"},
                   flags={"app": "mysite:app", "app_dir": "/srv/mysite", "port": "8085"})
    run = RunDir(tmp_path / "run")
    lock = take(run)
    try:
        plan = type("P", (), {"settings": started, "probe": Probe("http", "127.0.0.1", 8085, "/"),
                              "site": type("S", (), {"path": None})(), "prestart": (),
                              "writable": ()})()
        write_state(run, running.state(plan))  # type: ignore[arg-type]
        now = running.settings_of(run, {}, env={})
        assert (now.app, now.workers, now.port) == ("mysite:app", 4, 8085)
        assert now.sources["workers"] == "env FLASKSTACK_WORKERS"
        assert now.sources["app"] == "flag --app"
        mine = running.settings_of(run, {"port": "9000"},
                                   env={"FLASKSTACK_APP": "notes:create_app()"})
        assert (mine.app, mine.port, mine.workers) == ("notes:create_app()", 9000, 4)
        assert mine.sources["app"] == "env FLASKSTACK_APP"
        assert mine.sources["port"] == "flag --port"
    finally:
        os.close(lock)
