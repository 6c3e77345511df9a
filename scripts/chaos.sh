#!/usr/bin/env bash
# The chaos run (README "Benchmark", docs/benchmark.md): while N invoices flow through a real
# daemon (`encaisse run`), kill it with SIGKILL once and restart it, and restart the broker once
# (rabbitmqctl stop_app / start_app); then check the end state strictly — every valid invoice in
# exactly one titre of exactly one PES file, every PES file valid (XSD via xmllint, PES rules),
# the ledger agreeing with the files, no message left in any queue, nothing parked. The verdict
# waits (bounded) for the daemon to reconnect after the broker restart and for the queues to
# drain; it prints the reconnection delay and the counts; exits 0 only when every check holds.
#
#   scripts/chaos.sh [N]            # N invoices, default 20000
#
# It restarts the broker: nothing else may use it meanwhile (scripts/test.sh runs its test,
# chaos_run_exclusive, alone). The broker is always started again, even if the run fails.
#
# Environment:
#   ENCAISSE_AMQP_URL               the broker (default amqp://guest:guest@127.0.0.1:5672/%2f)
#   ENCAISSE_BENCH_RABBITMQ_NODE    its node for rabbitmqctl -n (default: rabbitmqctl's default)
#   CHAOS_ENCAISSE_BIN, CHAOS_BENCH_BIN
#                                   prebuilt `encaisse` and `encaisse-bench` (the CI test passes
#                                   its own); otherwise both are built with --release
#   CHAOS_ARGS                      more options for `encaisse-bench chaos` (--keep, --json,
#                                   --broker-down-secs S, --work-dir DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

invoices="${1:-20000}"
if [[ -z "${CHAOS_ENCAISSE_BIN:-}" || -z "${CHAOS_BENCH_BIN:-}" ]]; then
    echo "== cargo build --release --bin encaisse --bin encaisse-bench" >&2
    cargo build --release --bin encaisse --bin encaisse-bench
    target="${CARGO_TARGET_DIR:-target}"
    CHAOS_ENCAISSE_BIN="$target/release/encaisse"
    CHAOS_BENCH_BIN="$target/release/encaisse-bench"
fi

node=()
if [[ -n "${ENCAISSE_BENCH_RABBITMQ_NODE:-}" ]]; then
    node=(-n "$ENCAISSE_BENCH_RABBITMQ_NODE")
fi
# The harness starts the broker again itself; this covers a harness killed half-way.
restore_broker() {
    rabbitmqctl "${node[@]}" start_app >/dev/null 2>&1 || true
}
trap restore_broker EXIT

echo "== chaos run: $invoices invoices" >&2
# shellcheck disable=SC2086 # CHAOS_ARGS holds several options
"$CHAOS_BENCH_BIN" chaos "$invoices" --encaisse "$CHAOS_ENCAISSE_BIN" ${CHAOS_ARGS:-}
