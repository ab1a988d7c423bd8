#!/bin/bash
# Make the Compose secrets once: DIR/db_password and DIR/secret_key (default DIR: deploy/secrets).
# The folder is 0700 (only root on the host gets in); the files are 0644 because the site reads
# them as its unprivileged user inside the containers. Existing files are kept.
set -euo pipefail
dir="${1:-$(dirname "$0")/secrets}"
mkdir -p "$dir"
chmod 700 "$dir"
for name in db_password secret_key; do
    if [ ! -s "$dir/$name" ]; then
        head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$dir/$name.tmp"
        chmod 644 "$dir/$name.tmp"
        mv "$dir/$name.tmp" "$dir/$name"
        echo "made $dir/$name"
    fi
done
