#!/usr/bin/env bash
# Install what is missing, lint, type-check, then run the whole test suite with the real parts
# (nginx, uWSGI, MariaDB, PostgreSQL, Redis, Chromium, podman). Extra arguments go to pytest.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install.sh test || exit 1
export PATH="$root/.venv/bin:$PATH"
echo "== ruff" && ruff check . || exit 1
echo "== mypy" && mypy || exit 1
echo "== pytest"
pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
