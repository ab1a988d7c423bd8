"""Settings: declared once, precedence, validation, README table."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flaskstack import settings as S
from flaskstack.host import gather
from flaskstack.plan import make
from flaskstack.readme import kit_blocks
from flaskstack.site import SiteDeclaration

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_original_system() -> None:
    s = S.load(env={})
    assert s.port == 85
    # the site is the current directory (as for gunicorn and `flask run`); the image keeps the
    # original /web/web_data by setting the variable
    assert s.app_dir == os.getcwd()
    assert "FLASKSTACK_APP_DIR=/web/web_data" in (ROOT / "Dockerfile").read_text()
    assert s.app == "notes:create_app()"
    assert s.max_upload == 10 * 1024 * 1024
    assert s.keepalive_timeout == 50
    assert s.client_body_timeout == 15
    assert s.workers >= 1
    assert all(source == "default" for source in s.sources.values())


def test_env_beats_default_and_flag_beats_env() -> None:
    s = S.load(env={"FLASKSTACK_PORT": "8080", "FLASKSTACK_WORKERS": "3"}, flags={"port": "9090"})
    assert s.port == 9090 and s.sources["port"] == "flag --port"
    assert s.workers == 3 and s.sources["workers"] == "env FLASKSTACK_WORKERS"
    assert s.threads == 1 and s.sources["threads"] == "default"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FLASKSTACK_PORT": "abc"}, "port"),
        ({"FLASKSTACK_PORT": "70000"}, "port"),
        ({"FLASKSTACK_MAX_UPLOAD": "ten megs"}, "max_upload"),
        ({"FLASKSTACK_GZIP": "maybe"}, "gzip"),
        ({"FLASKSTACK_ROLE": "database"}, "role"),
        ({"FLASKSTACK_STATIC": "static=/srv"}, "static"),
        ({"FLASKSTACK_APP": "not an import string"}, "app"),
        ({"FLASKSTACK_UPSTREAMS": "app1"}, "upstreams"),
        ({"FLASKSTACK_BUFFER_SIZE": "1m"}, "buffer_size"),
    ],
)
def test_bad_values_name_the_setting_and_source(env: dict[str, str], name: str) -> None:
    with pytest.raises(S.SettingError) as info:
        S.load(env=env)
    message = str(info.value)
    assert f"setting {name} (from env {S.ENV_PREFIX}{name.upper()})" in message
    assert "allowed:" in message
    assert "\n" not in message


def test_sizes_and_lists_parse() -> None:
    s = S.load(
        env={"FLASKSTACK_MAX_UPLOAD": "64k", "FLASKSTACK_STATIC": "/a=/srv/a, /b/=/srv/b"},
        flags={"upstreams": ["app1:8000", "app2:8000"]},
    )
    assert s.max_upload == 65536
    assert s.static == [("/a/", "/srv/a"), ("/b/", "/srv/b")]
    assert s.upstreams == ["app1:8000", "app2:8000"]


def test_unknown_variable_and_inconsistent_settings_are_errors() -> None:
    with pytest.raises(S.SettingError, match="FLASKSTACK_PROT"):
        S.load(env={"FLASKSTACK_PROT": "85"})
    with pytest.raises(S.SettingError, match="upstreams"):  # what each role needs: the plan's
        make(S.load(env={"FLASKSTACK_ROLE": "proxy"}), SiteDeclaration(), gather("root"))
    with pytest.raises(S.SettingError, match="tls_cert and tls_key"):
        S.load(env={"FLASKSTACK_TLS_CERT": "/x.pem"})


def test_cli_bad_value_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flaskstack", "config", "--workers", "0"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "setting workers (from flag --workers)" in result.stderr


def test_every_setting_is_a_documented_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flaskstack", "serve", "--help"],
        capture_output=True, text=True, check=True,
    )
    for s in S.SETTINGS:
        assert s.flag in result.stdout
        assert s.env in result.stdout
    assert "Exit codes" in result.stdout


def test_docs_settings_and_exit_codes_are_in_sync() -> None:
    """The generated reference pages (tests/docs checks every generated block)."""
    made = {name: make() for name, make in kit_blocks().items()}
    for page, name in (("docs/reference/settings.md", "settings"),
                       ("docs/reference/commands.md", "exit-codes"), ("README.md", "exit-codes")):
        assert f"<!-- generated:{name} -->\n{made[name]}\n" in (ROOT / page).read_text(), (
            f"{page}: the {name} block is stale: run `python -m flaskstack.readme`"
        )


def test_each_limit_is_written_once_in_its_parser() -> None:
    """The allowed text, the error message and --help all come from the parser."""
    port = S.BY_NAME["port"]
    assert port.allowed == "1-65535"
    assert S.BY_NAME["grace"].allowed == "1-3600 seconds"
    assert S.BY_NAME["buffer_size"].allowed.startswith("a size 8k-32k")
    assert S.BY_NAME["upstreams"].allowed.startswith("HOST:PORT, several")
    with pytest.raises(S.SettingError, match=r"allowed: 1-65535$"):
        S.load(env={"FLASKSTACK_PORT": "70000"})


def test_replica_name_can_be_the_host_name() -> None:
    settings = S.load(env={"FLASKSTACK_REPLICA_NAME": "web-{hostname}"})
    assert settings.replica_name == f"web-{socket.gethostname()}"
    with pytest.raises(S.SettingError, match="replica_name"):
        S.load(env={"FLASKSTACK_REPLICA_NAME": 'a"b'})
