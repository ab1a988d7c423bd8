#!/usr/bin/env bash
# Install what is missing, then serve the default notes site with the whole stack (port 85 as root).
# Extra arguments go to `flaskstack serve` (see `flaskstack serve --help`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install.sh" run
exec "$root/.venv/bin/flaskstack" serve "$@"
