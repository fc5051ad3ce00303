# Shared by .ci/run and deploy/demo.sh: a virtual environment with the project installed from the lock files, and
# PostgreSQL and RabbitMQ running on 127.0.0.1. What is missing is installed with apt-get (as root, or through
# passwordless sudo), so on a fresh Debian or Ubuntu machine the two commands are all the set-up; elsewhere the
# error says what to install. Source it; it defines functions and runs nothing.
# shellcheck shell=bash

PG_HOST=127.0.0.1
PG_PORT=5432
# Debian's layout: each cluster's settings under PG_ETC/VERSION/NAME, each major version's server under PG_LIB.
PG_ETC=/etc/postgresql
PG_LIB=/usr/lib/postgresql
AMQP_HOST=127.0.0.1
AMQP_PORT=5672

log() { printf '== %s\n' "$*"; }
die() { printf '!! %s\n' "$*" >&2; exit 1; }

as_root() {  # as_root CMD...: run a command as root: directly when we are root, else through `sudo -n` (no prompt)
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo -n "$@"
    fi
}

apt_install() {  # apt_install PACKAGE...: install Debian packages; the package lists are refreshed only if needed
    command -v apt-get >/dev/null || return 1
    log "installing $* with apt-get"
    # A fresh machine or image may have no (or stale) package lists: update once and try again.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" </dev/null >/dev/null 2>&1 \
        || { as_root apt-get update -q </dev/null >/dev/null 2>&1 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" </dev/null >/dev/null 2>&1; }
}

NO_APT_HINT="or run both in Docker: \
docker run -d -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15 and \
docker run -d -p 127.0.0.1:5672:5672 rabbitmq:3 (see README, 'The two commands')"

venv_stamp() {  # venv_stamp SET: a line naming the lock files (and pyproject.toml) a set was installed from
    printf '%s %s\n' "$1" "$(cat requirements/app.lock.txt "requirements/$1.lock.txt" pyproject.toml | sha256sum \
        | cut -d ' ' -f 1)"
}

ensure_venv() {  # ensure_venv [app|test]: .venv with requirements/<set>.lock.txt's pins, and the project
    local set=${1:-app} stamp=.venv/.rcc-installed
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "Python >= 3.11 is needed as python3 (found: $(python3 --version 2>&1 || echo none))"
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        # Debian and Ubuntu ship venv (ensurepip) as a package of its own.
        python3 -m venv .venv >/dev/null 2>&1 \
            || { rm -rf .venv; apt_install python3-venv && python3 -m venv .venv; } \
            || die "python3 -m venv failed: install your Python's venv module (Debian/Ubuntu: python3-venv)"
    fi
    # Nothing to do when the lock files and pyproject.toml (the editable install carries its entry points) are those
    # of the last install. pip adds and changes but never removes: a package dropped from the lock stays in an old
    # .venv (a fresh clone, as CI's, has none; deptry still sees an import of it as undeclared).
    if grep -qxF "$(venv_stamp "$set")" "$stamp" 2>/dev/null; then
        log ".venv already has requirements/$set.lock.txt"
        return
    fi
    log "installing requirements/$set.lock.txt and the project into .venv"
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --require-hashes -r "requirements/$set.lock.txt" </dev/null \
        || die "pip could not install requirements/$set.lock.txt"
    .venv/bin/python -m pip install -q --no-deps -e . </dev/null || die "pip could not install the project"
    # The test set is held to the app set's pins (requirements/lock.sh): a venv installed for the tests serves the
    # demo too.
    { venv_stamp "$set"; [ "$set" != test ] || venv_stamp app; } >"$stamp"
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

pg_newest_server() {  # the newest PostgreSQL server version installed from Debian's packages, e.g. 15
    local bin
    for bin in "$PG_LIB"/*/bin/postgres; do
        if [ -x "$bin" ]; then basename "$(dirname "$(dirname "$bin")")"; fi
    done | sort -V | tail -n 1
}

pg_trust_loopback() {  # pg_trust_loopback VERSION NAME: passwordless TCP connections from this machine only
    local hba="$PG_ETC/$1/$2/pg_hba.conf"
    log "letting connections from 127.0.0.1 and ::1 into cluster $1/$2 without a password ($hba)"
    # pg_hba.conf is read top-down and the first matching line wins, so these go first.
    as_root sed -i '1i # Added by deploy/local.sh, which created this cluster: the tests and the demo connect as\
# postgres over loopback without a password. Nothing from another machine is trusted.\
host    all    all    127.0.0.1/32    trust\
host    all    all    ::1/128         trust' "$hba" || die "could not edit $hba"
}

pg_cluster_on_port() {  # "VERSION NAME" of the cluster set to listen on $PG_PORT, if there is one
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'
}

ensure_postgres() {
    if pg_up; then
        log "postgres already accepting connections on $PG_HOST:$PG_PORT"
        pg_check_login
        return
    fi
    local installed_now="" cluster version name action=start
    if ! command -v pg_ctlcluster >/dev/null; then
        command -v apt-get >/dev/null || die "PostgreSQL is not running on $PG_HOST:$PG_PORT and there is no apt-get \
to install it: install PostgreSQL 15 or newer (server and psql), let user postgres connect from 127.0.0.1 without \
a password (pg_hba.conf: host all all 127.0.0.1/32 trust) and start it; $NO_APT_HINT"
        apt_install postgresql || die "could not install postgresql with apt-get (needs root or passwordless sudo): \
run 'sudo apt-get install postgresql rabbitmq-server' once, or $NO_APT_HINT"
        command -v pg_ctlcluster >/dev/null || die "postgresql is installed but pg_ctlcluster is not on PATH"
        installed_now=1
    fi
    cluster="$(pg_cluster_on_port)"
    if [ -z "$cluster" ]; then
        version="$(pg_newest_server)"
        [ -n "$version" ] || die "no PostgreSQL server under $PG_LIB: apt-get install postgresql"
        name=main
        if pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" { f = 1 } END { exit !f }'; then
            name=rcc
        fi
        log "creating postgres cluster $version/$name on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$version" "$name" >/dev/null \
            || die "pg_createcluster $version $name failed"
        pg_trust_loopback "$version" "$name"
    else
        read -r version name <<<"$cluster"
        # Debian's package makes a cluster 'main' as it installs, and may start it: one made a moment ago is ours as
        # much as one pg_createcluster made. It only takes passwords over TCP, which the tests do not send, and a
        # started server reads pg_hba.conf again when restarted.
        if [ -n "$installed_now" ]; then
            pg_trust_loopback "$version" "$name"
            action=restart
        fi
    fi
    log "starting postgres $version/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" "$action" || true
    for _ in $(seq 1 60); do pg_up && break; sleep 1; done
    pg_up || die "postgres did not accept connections on $PG_HOST:$PG_PORT within 60s (pg_lsclusters; its log is \
under /var/log/postgresql)"
    pg_check_login
}

pg_psql() {  # psql as the tests and the demo connect: user postgres over TCP, never asking for a password
    psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_check_login() {  # fail early, and say why, when the tests' passwordless login as postgres is refused
    if ! command -v psql >/dev/null && ! apt_install postgresql-client; then
        printf '!! %s\n' "no psql to check that user postgres can log in over $PG_HOST without a password" >&2
        return
    fi
    pg_psql -Atc 'SELECT 1' >/dev/null 2>&1 || die "user postgres cannot log in to $PG_HOST:$PG_PORT without a \
password, as the tests and the demo do: add 'host all all 127.0.0.1/32 trust' at the top of that cluster's \
pg_hba.conf and reload it (pg_ctlcluster VERSION NAME reload)"
}

ensure_database() {  # ensure_database NAME
    local name=$1 exists
    command -v psql >/dev/null || apt_install postgresql-client \
        || die "psql is not installed (Debian/Ubuntu: postgresql-client)"
    exists="$(pg_psql -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'" 2>/dev/null || true)"
    if [ "$exists" != "1" ]; then
        log "creating database $name"
        pg_psql -c "CREATE DATABASE \"$name\"" >/dev/null
    fi
}

amqp_up() { timeout 3 bash -c "exec 3<>/dev/tcp/$AMQP_HOST/$AMQP_PORT" >/dev/null 2>&1; }

ensure_rabbitmq() {
    if amqp_up; then
        log "rabbitmq already listening on $AMQP_HOST:$AMQP_PORT"
        return
    fi
    if ! command -v rabbitmq-server >/dev/null; then
        command -v apt-get >/dev/null || die "RabbitMQ is not running on $AMQP_HOST:$AMQP_PORT and there is no \
apt-get to install it: install RabbitMQ 3.10 or newer (its default guest/guest user is allowed from localhost) and \
start it; $NO_APT_HINT"
        apt_install rabbitmq-server || die "could not install rabbitmq-server with apt-get (needs root or \
passwordless sudo): run 'sudo apt-get install postgresql rabbitmq-server' once, or $NO_APT_HINT"
        # The package starts the broker where the machine has an init system; a container has none.
        for _ in $(seq 1 10); do amqp_up && return; sleep 1; done
    fi
    log "starting rabbitmq"
    as_root rabbitmq-server -detached </dev/null >/dev/null 2>&1 || true
    for _ in $(seq 1 90); do amqp_up && break; sleep 1; done
    amqp_up || die "rabbitmq did not listen on $AMQP_HOST:$AMQP_PORT within 90s (its log is under /var/log/rabbitmq)"
    # The listener opens near the end of boot; give the node a moment to settle.
    as_root rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1 || sleep 2
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
    apt_install chromium || printf '!! %s\n' "could not install chromium: the browser tests will be skipped" >&2
}
