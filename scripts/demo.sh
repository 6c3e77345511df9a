#!/usr/bin/env bash
# Runs the main job end to end on this machine: installs what is missing, starts RabbitMQ,
# builds encaisse, checks the example configuration, and runs the daemon with it until
# Ctrl-C (or for DEMO_SECONDS seconds when not on a terminal, default 20), showing its health,
# readiness and metrics endpoints. Issue 7 will replace it with `encaisse demo`.
#
#   scripts/demo.sh                 # until Ctrl-C
#   DEMO_SECONDS=5 scripts/demo.sh  # a short run
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== building encaisse" >&2
cargo build --bin encaisse
bin="${CARGO_TARGET_DIR:-target}/debug/encaisse"
config=config/encaisse.toml

# Demo state lives in var/demo (ignored by git); the example tokens are for this demo only.
export ENCAISSE_DATA_DIR="${ENCAISSE_DATA_DIR:-var/demo}"
export ENCAISSE_TOKEN_VITRY="${ENCAISSE_TOKEN_VITRY:-demo-token-vitry}"
export ENCAISSE_TOKEN_IVRY="${ENCAISSE_TOKEN_IVRY:-demo-token-ivry}"

echo "== encaisse check --connect" >&2
"$bin" --config "$config" check --connect

listen=$(sed -n 's/^listen *= *"\(.*\)"/\1/p' "$config" | head -n1)
echo "== encaisse run (HTTP on $listen, data in $ENCAISSE_DATA_DIR)" >&2
# Own session: Ctrl-C reaches this script only, which sends the daemon one SIGTERM.
setsid "$bin" --config "$config" run &
daemon=$!
stop() {
    if kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon" 2>/dev/null || true
    fi
}
trap stop INT TERM

# Wait until the daemon is ready (broker connected, directories and ledger fine).
ready=no
for _ in $(seq 1 60); do
    if ! kill -0 "$daemon" 2>/dev/null; then
        break
    fi
    if curl -fsS "http://$listen/readyz" >/dev/null 2>&1; then
        ready=yes
        break
    fi
    sleep 0.5
done
if kill -0 "$daemon" 2>/dev/null; then
    echo "== GET /healthz" >&2
    curl -sS "http://$listen/healthz"; echo
    echo "== GET /readyz (ready: $ready)" >&2
    curl -sS "http://$listen/readyz"; echo
    echo "== GET /metrics (encaisse_*)" >&2
    curl -sS "http://$listen/metrics" | grep '^encaisse_' || true
    echo "== tenant directories" >&2
    find "$ENCAISSE_DATA_DIR" -maxdepth 3 -type d | sort | head -n 30
    if [ -t 0 ] && [ -z "${DEMO_SECONDS:-}" ]; then
        echo "== running; press Ctrl-C to stop" >&2
    else
        seconds="${DEMO_SECONDS:-20}"
        echo "== running for ${seconds} s" >&2
        sleep "$seconds" &
        wait $! || true
        stop
    fi
fi
set +e
wait "$daemon"
code=$?
# A Ctrl-C interrupts `wait` before the daemon has finished: wait for it for real.
while kill -0 "$daemon" 2>/dev/null; do
    wait "$daemon"
    code=$?
done
set -e
echo "== encaisse exited with code $code" >&2
exit "$code"
