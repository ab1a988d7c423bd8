#!/usr/bin/env bash
# Make the base image localhost/debian:bookworm-slim with debootstrap when it is missing
# (no image registry is reachable here). Cached: does nothing when the image exists.
# Usage: scripts/container-base.sh [IMAGE]   (needs CONTAINERS_CONF for podman on this host)
set -euo pipefail
image=${1:-localhost/debian:bookworm-slim}
if podman image exists "$image"; then
    exit 0
fi
dir=$(mktemp -d /var/tmp/flaskstack-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "container-base: debootstrap bookworm into $dir" >&2
debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >/dev/null
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | podman import - "$image" >/dev/null
echo "container-base: made $image" >&2
