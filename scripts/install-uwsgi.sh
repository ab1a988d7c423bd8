#!/usr/bin/env bash
# Compile uWSGI from its source release into a Python environment, with what the kit needs:
# OpenSSL (the WebSocket handshake's SHA-1; without it uWSGI refuses every WebSocket) and PCRE2
# (internal routing: request_timeout applies to every request except WebSocket upgrades).
# No XML/YAML/JSON libraries: nothing the kit uses, and no extra runtime packages.
# Needs gcc, python3-dev, libssl-dev and libpcre2-dev; at run time libpython3.X, libssl3 and
# libpcre2-8-0 only. Why this build and not the pyuwsgi wheel or Debian's: docs/design.md.
#   scripts/install-uwsgi.sh PYTHON     e.g. .venv/bin/python or /opt/flaskstack/bin/python
set -euo pipefail
python=${1:?usage: install-uwsgi.sh PYTHON}
root=$(cd "$(dirname "$0")/.." && pwd)
# the requirement as the kit's pyproject.toml declares it (one place for the version bound)
requirement=$("$python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(next(d for d in deps if d.split(">")[0].split("=")[0].strip() == "uwsgi"))
PY
)
bindir=$(dirname "$python")
# the libpython this Python loads: a uWSGI linked to another one (another version, another
# installation's, e.g. a wheel built elsewhere) is rebuilt, never used
libpython=$("$python" -c 'import os, sysconfig as s
print(os.path.realpath(os.path.join(s.get_config_var("LIBDIR") or "", s.get_config_var("INSTSONAME") or "")))')
linked_to_ours() {
    local linked
    linked=$(ldd "$bindir/uwsgi" 2>/dev/null | awk '/libpython/ {print $3}')
    [ -z "$linked" ] && return 0  # statically linked: it carries its Python
    [ "$(readlink -f "$linked")" = "$libpython" ]
}
if [ -x "$bindir/uwsgi" ] && "$bindir/uwsgi" --cflags 2>/dev/null | grep -q -- -DUWSGI_SSL \
   && "$python" -m pip show -q uwsgi >/dev/null 2>&1 && linked_to_ours; then
    exit 0  # already built with SSL, against this Python
fi
"$python" -m pip uninstall -q -y pyuwsgi >/dev/null 2>&1 || true  # the wheel has no SSL
# ssl=true fails the build when the OpenSSL headers are missing, rather than a build that
# refuses WebSockets later; --no-cache-dir: never reuse a wheel built with other options
UWSGI_PROFILE_OVERRIDE="ssl=true;pcre=true;routing=true;xml=false;yaml=embedded;json=false" \
    "$python" -m pip install -q --no-cache-dir --no-binary uwsgi "$requirement"
if ! "$bindir/uwsgi" --cflags | grep -q -- -DUWSGI_SSL; then
    echo "install-uwsgi: uWSGI was built without OpenSSL (install libssl-dev)" >&2; exit 1
fi
