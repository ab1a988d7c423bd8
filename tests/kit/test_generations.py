"""App generations: a reload loads the new code beside the running one, switches once it
answers, and says truthfully how it ended (docs/operating/reload.md)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import requests
from bench.run import tree

from tests.conftest import free_port
from tests.load import Load, wait_for

pytestmark = pytest.mark.slow

BROKEN = "\ndef broken(:\n"


def set_version(stack, version: str, broken: bool = False) -> None:  # type: ignore[no-untyped-def]
    probe = stack.app_dir / "probe.py"
    text = Path(stack.root / "probe.orig").read_text() if (stack.root / "probe.orig").exists() \
        else probe.read_text()
    (stack.root / "probe.orig").write_text(text)
    text = text.replace('VERSION = "v1"', f'VERSION = "{version}"')
    probe.write_text(text + (BROKEN if broken else ""))


def uwsgi_processes(stack) -> list[str]:  # type: ignore[no-untyped-def]
    """The command lines of the uWSGI processes under the stack's supervisor."""
    found = []
    for pid in tree(stack.proc.pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "uwsgi" in title.split(" ", 1)[0]:
            found.append(title)
    return found


def test_a_reload_under_load_switches_to_the_new_code_when_it_returns(make_stack) -> None:
    stack = make_stack("--app", "probe:application", "--workers", "2").start()
    before = len(uwsgi_processes(stack))
    assert before == 3  # one generation: its master and two workers
    with Load(stack.url, threads=4) as load:
        assert wait_for(lambda: load.ok > 50)
        set_version(stack, "v2")
        result = stack.cli("reload")
        returned = time.monotonic()
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("reload: generation 2 serving, generation 1 stopped (")
        count = load.ok
        assert wait_for(lambda: load.ok > count + 200)
    assert load.failures == []
    assert load.sent_after(returned) == {"v2 /"}  # nothing from the old code once it returned
    assert {"v1 /", "v2 /"} <= load.bodies
    # memory: back to one generation, its folder the only one left
    assert len(uwsgi_processes(stack)) == before
    assert sorted(p.name for p in stack.run_dir.glob("gen-*")) == ["gen-2"]
    assert (stack.run_dir / "uwsgi.sock").resolve().parent.name == "gen-2"


def test_a_broken_version_is_refused_under_load_and_the_old_one_keeps_serving(make_stack
                                                                               ) -> None:
    stack = make_stack("--app", "probe:application", "--workers", "2").start()
    with Load(stack.url, threads=4) as load:
        assert wait_for(lambda: load.ok > 50)
        set_version(stack, "v2", broken=True)
        result = stack.cli("reload")
        assert result.returncode == 6
        lines = result.stderr.splitlines()
        assert lines[0] == ("flaskstack: error: reload refused, generation 1 keeps serving: "
                            "the new code cannot be loaded")
        assert lines[-1].strip() == "SyntaxError: invalid syntax"  # the app's own error
        assert any("probe.py" in line for line in lines)
        assert "loader.py" not in result.stderr and "importlib" not in result.stderr
        count = load.ok
        assert wait_for(lambda: load.ok > count + 100)
        # SIGHUP does the same and logs the same outcome
        stack.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: stack.output().count("reload refused") == 2, 30)
        set_version(stack, "v3")  # mended: the next reload goes through
        mended = stack.cli("reload")
        assert mended.returncode == 0, mended.stderr
        assert "generation 4 serving, generation 1 stopped" in mended.stdout
    assert load.failures == []
    assert load.bodies == {"v1 /", "v3 /"}
    assert stack.proc.poll() is None
    assert sorted(p.name for p in stack.run_dir.glob("gen-*")) == ["gen-4"]


def test_a_reload_with_no_wait_returns_at_once(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    set_version(stack, "v2")
    result = stack.cli("reload", "--no-wait")
    assert (result.returncode, result.stdout) == (0, "reload requested\n")
    assert wait_for(lambda: requests.get(stack.url, timeout=10).text == "v2 /", 30)


def test_role_app_hands_its_socket_to_the_new_generation(make_stack) -> None:
    listen = f"127.0.0.1:{free_port()}"
    app = make_stack("--role", "app", "--app", "probe:application", "--workers", "2",
                     "--app-listen", listen).start()
    proxy = make_stack("--role", "proxy", "--upstreams", listen).start()
    with Load(proxy.url, threads=4) as load:
        assert wait_for(lambda: load.ok > 50)
        set_version(app, "v2")
        result = app.cli("reload", *app.args)
        returned = time.monotonic()
        assert result.returncode == 0, result.stderr
        assert "generation 2 serving" in result.stdout
        set_version(app, "v3", broken=True)
        refused = app.cli("reload", *app.args)
        assert refused.returncode == 6 and "SyntaxError" in refused.stderr
        count = load.ok
        assert wait_for(lambda: load.ok > count + 200)
    assert load.failures == []
    assert load.sent_after(returned) == {"v2 /"}
    assert app.proc.poll() is None


def test_autoreload_loads_changed_code_and_keeps_serving_when_it_is_broken(make_stack
                                                                            ) -> None:
    stack = make_stack("--app", "probe:application", "--autoreload", "on").start()
    assert requests.get(stack.url, timeout=10).text == "v1 /"
    time.sleep(1.1)  # a new modification time
    set_version(stack, "v2", broken=True)
    assert wait_for(lambda: "reload refused" in stack.output(), 60)
    assert "SyntaxError" in stack.output()
    assert requests.get(stack.url, timeout=10).text == "v1 /"
    set_version(stack, "v2")
    assert wait_for(lambda: requests.get(stack.url, timeout=10).text == "v2 /", 60)
    assert stack.proc.poll() is None
