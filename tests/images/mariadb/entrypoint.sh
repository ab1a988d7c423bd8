#!/bin/bash
# First start: create the data directory, the database and the user from MARIADB_* (as the
# official image does); every start: run mariadbd in the foreground on all addresses.
set -euo pipefail
for var in MARIADB_PASSWORD MARIADB_ROOT_PASSWORD; do
    file="${var}_FILE"
    if [ -n "${!file:-}" ]; then export "$var=$(cat "${!file}")"; fi
done
args=(--user=mysql --bind-address=0.0.0.0 --skip-name-resolve --datadir=/var/lib/mysql)
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
    root="${MARIADB_ROOT_PASSWORD:-$(head -c 18 /dev/urandom | base64)}"
    init=/var/lib/mysql/.init.sql
    {
        echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$root');"
        if [ -n "${MARIADB_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
        fi
        if [ -n "${MARIADB_USER:-}" ]; then
            echo "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '${MARIADB_PASSWORD:?MARIADB_PASSWORD is required with MARIADB_USER}';"
            echo "GRANT ALL ON \`${MARIADB_DATABASE:-*}\`.* TO '$MARIADB_USER'@'%';"
        fi
    } > "$init"
    chown mysql:mysql "$init" && chmod 600 "$init"
    args+=(--init-file="$init")
fi
exec mariadbd "${args[@]}"
