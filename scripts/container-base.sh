#!/usr/bin/env bash
# Make a Debian base image with debootstrap when it is missing (no image registry is reachable
# here). The suite comes from the tag: localhost/debian:trixie-slim (Debian 13, Python 3.13, the
# default) or localhost/debian:bookworm-slim (Debian 12, Python 3.11). Cached: does nothing when
# the image exists.
# Usage: scripts/container-base.sh [IMAGE]   (needs CONTAINERS_CONF for podman on this host)
set -euo pipefail
image=${1:-localhost/debian:trixie-slim}
suite=${image##*:}
suite=${suite%-slim}
case "$suite" in
    bookworm|trixie) ;;
    *) echo "container-base: $image: the tag must be bookworm-slim or trixie-slim" >&2; exit 2 ;;
esac
if podman image exists "$image"; then
    exit 0
fi
dir=$(mktemp -d /var/tmp/flaskstack-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "container-base: debootstrap $suite into $dir" >&2
debootstrap --variant=minbase "$suite" "$dir" http://deb.debian.org/debian >/dev/null
# what Docker Hub's slim images leave out too: downloaded .debs, apt lists, docs, man pages and
# translations (33 MB of them in a trixie minbase)
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
       "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
       "$dir"/usr/share/locale/*
tar -C "$dir" -c . | podman import - "$image" >/dev/null
echo "container-base: made $image" >&2
