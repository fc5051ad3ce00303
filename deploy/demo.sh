#!/usr/bin/env bash
# The README's "run the center" command: installs the locked runtime set (requirements/app.lock.txt) and the project
# into .venv, makes sure PostgreSQL and RabbitMQ are up (installing them with apt-get on Debian/Ubuntu when missing),
# migrates the database, then runs the demo walkthrough and keeps every service and the pages running (Ctrl-C
# stops). It ends by printing the page URLs and the demo tokens to paste into them.
#
#   bash deploy/demo.sh            (RCC_DATABASE_URL / RCC_AMQP_URL override the local defaults)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# shellcheck source=deploy/local.sh
source deploy/local.sh

ensure_venv app
if [ -z "${RCC_DATABASE_URL:-}" ]; then
    ensure_postgres
    ensure_database rcc
fi
[ -n "${RCC_AMQP_URL:-}" ] || ensure_rabbitmq
pages="http://127.0.0.1:${RCC_PAGES_PORT:-8080}"
log "pages: $pages/kiosk  $pages/volunteer  $pages/coordinator  (tokens to paste are printed at the end)"
exec .venv/bin/rcc demo "$@"
