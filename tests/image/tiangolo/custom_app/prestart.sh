#! /usr/bin/env sh
echo "custom prestart.sh running as uid $(id -u)"
id -u > /tmp/prestart-uid
export PRESTART_GREETING="exported by prestart.sh"
