# Shared by .ci/run and deploy/demo.sh: a virtual environment with the project installed, and PostgreSQL and
# RabbitMQ running on 127.0.0.1 (started only if they are not already). Source it; it defines functions.
# shellcheck shell=bash

PG_HOST=127.0.0.1
PG_PORT=5432
AMQP_HOST=127.0.0.1
AMQP_PORT=5672

log() { printf '== %s\n' "$*"; }
die() { printf '!! %s\n' "$*" >&2; exit 1; }

ensure_venv() {  # ensure_venv [extra]: install the project (with the given extra) into .venv
    local extra=${1:-}
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        python3 -m venv .venv
    fi
    log "installing the project into .venv"
    .venv/bin/python -m pip install -q -e ".${extra:+[$extra]}" </dev/null
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

ensure_postgres() {
    if pg_up; then
        log "postgres already accepting connections on $PG_HOST:$PG_PORT"
        return
    fi
    command -v pg_ctlcluster >/dev/null || die "postgres is not running and pg_ctlcluster is not installed"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$version" ] || die "no cluster under /etc/postgresql"
    log "starting postgres $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_up && break; sleep 1; done
    pg_up || die "postgres did not accept connections on $PG_HOST:$PG_PORT within 60s"
}

ensure_database() {  # ensure_database NAME
    local name=$1 exists
    exists="$(psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atc \
        "SELECT 1 FROM pg_database WHERE datname = '$name'" 2>/dev/null || true)"
    if [ "$exists" != "1" ]; then
        log "creating database $name"
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE \"$name\"" >/dev/null
    fi
}

amqp_up() { timeout 3 bash -c "exec 3<>/dev/tcp/$AMQP_HOST/$AMQP_PORT" >/dev/null 2>&1; }

ensure_rabbitmq() {
    if amqp_up; then
        log "rabbitmq already listening on $AMQP_HOST:$AMQP_PORT"
        return
    fi
    command -v rabbitmq-server >/dev/null || die "rabbitmq is not running and rabbitmq-server is not installed"
    log "starting rabbitmq"
    rabbitmq-server -detached </dev/null >/dev/null 2>&1 || true
    for _ in $(seq 1 90); do amqp_up && break; sleep 1; done
    amqp_up || die "rabbitmq did not listen on $AMQP_HOST:$AMQP_PORT within 90s"
    # The listener opens near the end of boot; give the node a moment to settle.
    rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1 || sleep 2
}

ensure_chromium() {  # the browser the page tests drive: Debian's chromium, never a downloaded one
    if [ -x /usr/bin/chromium ]; then
        log "chromium already installed"
        return
    fi
    if ! command -v apt-get >/dev/null; then
        printf '!! %s\n' "no /usr/bin/chromium and no apt-get: the browser tests will be skipped" >&2
        return
    fi
    log "installing chromium"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if ! { $sudo apt-get install -y -q chromium </dev/null >/dev/null 2>&1 \
        || { $sudo apt-get update -q </dev/null >/dev/null 2>&1 \
             && $sudo apt-get install -y -q chromium </dev/null >/dev/null 2>&1; }; }; then
        printf '!! %s\n' "could not install chromium: the browser tests will be skipped" >&2
    fi
}
