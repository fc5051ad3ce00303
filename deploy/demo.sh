#!/usr/bin/env bash
# The README's "run the center" command: installs the project into .venv, makes sure PostgreSQL and RabbitMQ are
# up, migrates the database, then runs the demo walkthrough and keeps every service running (Ctrl-C stops).
#
#   bash deploy/demo.sh            (RCC_DATABASE_URL / RCC_AMQP_URL override the local defaults)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# shellcheck source=local.sh
source deploy/local.sh

ensure_venv
if [ -z "${RCC_DATABASE_URL:-}" ]; then
    ensure_postgres
    ensure_database rcc
fi
[ -n "${RCC_AMQP_URL:-}" ] || ensure_rabbitmq
exec .venv/bin/rcc demo "$@"
