#!/bin/bash
# Healthy when the server answers a query over its socket (the official image's
# `healthcheck.sh --connect --innodb_initialized` means the same; its flags are accepted).
exec mariadb --protocol=socket -uroot -e 'SELECT 1 FROM information_schema.ENGINES WHERE ENGINE="InnoDB"' >/dev/null 2>&1
