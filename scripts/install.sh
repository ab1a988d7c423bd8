#!/usr/bin/env bash
# Install what flaskstack needs on a Debian 12 machine; safe to run again (it skips what is there).
#   scripts/install.sh run    nginx, a .venv with flaskstack (the kit, at the root) and the notes
#                             site (sites/notes, its own distribution), the site's browser assets
#   scripts/install.sh test   the above + test tools, database servers, Chromium, podman, and
#                             the documentation's tools (Sphinx, MyST, Furo)
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf 'install: %s\n' "$*" >&2; }

apt_missing() {  # print the packages of "$@" that dpkg does not have installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

apt_install() {
    local missing
    missing=$(apt_missing "$@")
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        say "missing Debian packages: $missing (run as root, or install them)"; exit 1
    fi
    say "apt-get install $missing"
    if [ ! -f /var/lib/apt/periodic/flaskstack-updated ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
        apt-get update -qq
        mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/flaskstack-updated
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Debian's own Python: world-readable, so the unprivileged workers (www-data) can load it.
python=/usr/bin/python3
# gcc, python3-dev, libssl-dev, libpcre2-dev: uWSGI compiles at install (scripts/install-uwsgi.sh)
run_pkgs=(nginx-light libnginx-mod-http-brotli-static ca-certificates python3 python3-dev gcc libc6-dev libssl-dev libpcre2-dev)
command -v npm >/dev/null || run_pkgs+=(npm)
[ -x "$python" ] && "$python" -c 'import ensurepip, venv' 2>/dev/null || run_pkgs+=(python3-venv)
test_pkgs=(wrk hyperfine mariadb-server redis-server postgresql chromium fonts-dejavu-core
           podman buildah runc debootstrap netavark aardvark-dns catatonit uidmap procps psmisc
           iptables)  # netavark sets up container networks with iptables

case "$mode" in
    run) apt_install "${run_pkgs[@]}" ;;
    test) apt_install "${run_pkgs[@]}" "${test_pkgs[@]}" ;;
    *) say "usage: scripts/install.sh run|test"; exit 2 ;;
esac

# Services installed by apt must not hold ports or run in the background: tests start their own.
if [ "$mode" = test ] && [ "$(id -u)" = 0 ]; then
    for svc in nginx mariadb redis-server postgresql; do
        systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
    done
fi

# Python: one .venv; pip runs only when pyproject.toml (or the mode) changed.
if [ ! -x .venv/bin/python ] || [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$python")" ]; then
    say "creating .venv with $python"
    rm -rf .venv
    "$python" -m venv .venv
fi
extras=""
[ "$mode" = test ] && extras="[test,docs]"
stamp=".venv/.flaskstack-$mode-$(cat pyproject.toml sites/notes/pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    say "pip install -e .$extras -e ./sites/notes"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    bash scripts/install-uwsgi.sh .venv/bin/python
    .venv/bin/python -m pip install -q -e ".$extras" -e ./sites/notes
    rm -f .venv/.flaskstack-"$mode"-*
    touch "$stamp"
fi

# Browser assets (CKEditor 4.22.1, Swagger UI) from npm, into the notes package.
bash sites/notes/assets.sh

# The interface's message catalogues (translations/*/LC_MESSAGES/messages.po) compiled to .mo.
.venv/bin/pybabel -q compile -d sites/notes/src/notes/translations

# Precompressed .gz copies of the site's static files (and Flask-Admin's) for Nginx's
# gzip_static; quick when they are up to date.
.venv/bin/flaskstack precompress --app-dir "$PWD" >/dev/null
