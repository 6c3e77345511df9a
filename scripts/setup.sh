#!/usr/bin/env bash
# Installs what encaisse needs to build and test, and starts RabbitMQ. Idempotent: run it as
# often as you like; it only installs what is missing and only starts what is stopped.
#
#   scripts/setup.sh
#
# Debian/Ubuntu (apt). Uses sudo only when not root. Needs a Rust toolchain (rustup) already.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "not root and no sudo: missing packages cannot be installed"
    fi
fi

# Packages: xmllint (XSD validation in tests), RabbitMQ (the broker), build dependencies of
# crates with C code (rusqlite's bundled SQLite, aws-lc-rs for rustls), curl for scripts/demo.sh,
# promtool (package prometheus) to check deploy/prometheus/encaisse.rules.yml, dpkg-dev for
# the Debian package (scripts/package-deb.sh); PostgreSQL only when the ledger's contract
# tests are to run on it (below), so the demo never needs it.
packages=(libxml2-utils rabbitmq-server build-essential pkg-config curl ca-certificates
          prometheus dpkg-dev)
if [ -n "${ENCAISSE_TEST_POSTGRES_URL:-}" ]; then
    packages+=(postgresql)
fi
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "packages present"
fi

# --- Browser for the console's tests (tests/console_browser.rs): Debian's Chromium and its
# WebDriver. Installed only when missing; CI sets ENCAISSE_REQUIRE_BROWSER=1 so that a missing
# browser fails the test instead of skipping it.
browser_missing=()
for package in chromium chromium-driver; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        browser_missing+=("$package")
    fi
done
if [ "${#browser_missing[@]}" -gt 0 ]; then
    log "installing ${browser_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${browser_missing[@]}" >/dev/null
else
    log "chromium and chromium-driver present"
fi
# --- end of the browser block

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install Rust with rustup (https://rustup.rs), then run this again"
    exit 1
fi

# cargo-deny (licences, bans and sources of the dependencies, in CI): built from crates.io
# once, only when missing.
if ! cargo deny --version >/dev/null 2>&1; then
    log "installing cargo-deny (cargo install --locked)"
    cargo install cargo-deny --locked --quiet
fi

# PostgreSQL, when ENCAISSE_TEST_POSTGRES_URL asks for the ledger's contract tests on it
# (.ci/run sets it to postgres://postgres:postgres@127.0.0.1:5432/postgres): start it when it
# does not answer (no init system in containers: `service`).
if [ -n "${ENCAISSE_TEST_POSTGRES_URL:-}" ]; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        log "starting PostgreSQL"
        $SUDO service postgresql start >/dev/null 2>&1 || true
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 1
        done
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        log "PostgreSQL does not answer on 127.0.0.1:5432; see /var/log/postgresql/"
        exit 1
    fi
    # A fresh cluster asks a password over TCP (scram) and the role has none: give it the
    # one the CI URL carries. Where 127.0.0.1 is trusted nothing changes.
    if ! psql "$ENCAISSE_TEST_POSTGRES_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
        log "setting the postgres role's password for the tests"
        if [ -n "$SUDO" ]; then
            sudo -u postgres psql -q -c "ALTER ROLE postgres PASSWORD 'postgres'"
        else
            runuser -u postgres -- psql -q -c "ALTER ROLE postgres PASSWORD 'postgres'"
        fi
    fi
    if ! psql "$ENCAISSE_TEST_POSTGRES_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
        log "cannot connect to ENCAISSE_TEST_POSTGRES_URL as given"
        exit 1
    fi
    log "PostgreSQL running"
fi

# RabbitMQ: start it when it does not answer.
if $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
    log "RabbitMQ running"
else
    log "starting RabbitMQ"
    # The Debian package may leave a node half-started (no init system in containers).
    $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
    started=no
    for _ in $(seq 1 30); do
        if $SUDO rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
            started=yes
            break
        fi
        sleep 2
    done
    if [ "$started" != yes ]; then
        log "RabbitMQ did not start; see /var/log/rabbitmq/"
        exit 1
    fi
    log "RabbitMQ started"
fi

# Quorum queues with at-least-once dead-lettering need these feature flags (on by default on
# a fresh 3.10 node, off on a node upgraded from an older version).
for flag in quorum_queue stream_queue; do
    if ! $SUDO rabbitmqctl -q list_feature_flags name state 2>/dev/null | grep -qE "^${flag}\s+enabled"; then
        log "enabling feature flag ${flag}"
        $SUDO rabbitmqctl -q enable_feature_flag "$flag"
    fi
done

# The AMQP port must answer before tests start.
for _ in $(seq 1 30); do
    if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
        log "ready"
        exit 0
    fi
    sleep 1
done
log "RabbitMQ runs but 127.0.0.1:5672 does not answer"
exit 1
