#!/bin/bash
# Replace the app replicas of a Compose deployment one by one, with no failed request — after
# building or pulling a new image, or changing the app's settings.
#
# For each replica in turn: take it out of every proxy's rotation (`flaskstack drain`: no new
# requests, not even ones the proxy could not retry elsewhere, such as POSTs), stop it gracefully
# (it finishes the requests it has), remove it, have the proxies look up the replicas again
# (SIGHUP), let Compose create it again from the current image and settings, and wait until
# every replica is healthy before the next one.
#
#   bash deploy/rolling-update.sh                                   # docker compose
#   ENGINE=podman COMPOSE=podman-compose bash deploy/rolling-update.sh
# Environment: ENGINE (docker), COMPOSE ("docker compose"), PROJECT (flaskstack), SERVICE (app),
# PROXY_SERVICE (proxy), STOP_TIMEOUT (20 s), HEALTH_TIMEOUT (180 s); COMPOSE_YAML (deploy/compose.yaml).
set -euo pipefail
engine="${ENGINE:-docker}"
read -r -a compose <<< "${COMPOSE:-docker compose}"
file="${COMPOSE_YAML:-$(dirname "$0")/compose.yaml}"
project="${PROJECT:-flaskstack}"
service="${SERVICE:-app}"

replicas() {  # the containers of service $1 (default: the app service)
    "$engine" ps -a --format '{{.Names}}' \
        --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.service=${1:-$service}" | sort
}

reresolve() {  # proxies look the app replicas up again now instead of within 5 s
    local proxy
    for proxy in $(replicas "${PROXY_SERVICE:-proxy}"); do
        "$engine" kill -s HUP "$proxy" >/dev/null
    done
}

wait_healthy() {
    local deadline=$((SECONDS + ${HEALTH_TIMEOUT:-180})) name
    for name in $(replicas); do
        until "$engine" exec "$name" flaskstack health >/dev/null 2>&1; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                echo "rolling-update: $name is not healthy after ${HEALTH_TIMEOUT:-180} s" >&2
                exit 1
            fi
            sleep 1
        done
    done
}

old="$(replicas)"
if [ -z "$old" ]; then
    echo "rolling-update: project $project has no $service containers" >&2
    exit 1
fi
wait_healthy
for name in $old; do
    echo "rolling-update: replacing $name"
    listen="$("$engine" exec "$name" printenv FLASKSTACK_APP_LISTEN)"
    for proxy in $(replicas "${PROXY_SERVICE:-proxy}"); do
        "$engine" exec "$proxy" flaskstack drain "$name:${listen##*:}" >/dev/null
    done
    "$engine" stop -t "${STOP_TIMEOUT:-20}" "$name" >/dev/null
    "$engine" rm "$name" >/dev/null
    reresolve
    "${compose[@]}" -p "$project" -f "$file" up -d --no-deps --no-recreate "$service" >/dev/null
    wait_healthy
    reresolve
done
echo "rolling-update: $(replicas | wc -l) $service replicas replaced and healthy"
