#!/bin/sh
# Refuse to start a container whose secrets still hold the `change-me`
# placeholder of .env.example, then run its real command.
#
#   check-secrets.sh VAR [VAR ...] -- command [args ...]
#
# Each VAR that is set is checked (case-insensitively, anywhere in the value:
# a URL whose password is change-me counts); unset ones are skipped (each
# container is given only the variables it needs). On a placeholder it prints
# one sentence naming the variables -- never their values -- and exits 78
# (EX_CONFIG), so `restart: unless-stopped` shows the message in
# `docker compose logs` instead of starting with a guessable password.
# POSIX sh and shell builtins only: it runs in the postgres, minio, mc and
# ice-pipeline images alike.
set -eu

placeholders=""
while [ "$#" -gt 0 ]; do
    name="$1"
    shift
    if [ "$name" = "--" ]; then
        break
    fi
    case "$name" in
        ''|[0-9]*|*[!A-Za-z0-9_]*)
            echo "check-secrets.sh: '$name' is not a variable name (usage: check-secrets.sh VAR ... -- command)" >&2
            exit 64 ;;
    esac
    eval "value=\${$name-}"
    case "$value" in
        *[Cc][Hh][Aa][Nn][Gg][Ee]-[Mm][Ee]*) placeholders="${placeholders:+$placeholders, }$name" ;;
    esac
done

if [ -n "$placeholders" ]; then
    echo "Refusing to start: $placeholders still hold the change-me placeholder of .env.example; set real secrets in .env (see deploy/README.md)." >&2
    exit 78
fi

if [ "$#" -eq 0 ]; then
    exit 0
fi
exec "$@"
