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
#   scripts/chaos.sh --instances 2 --ledger-url postgres://postgres@127.0.0.1:5432/postgres [N]
#                                   # the cluster run: two daemons on one fresh PostgreSQL
#                                   # database (created on that server, dropped when the run
#                                   # passes), the one holding polyfac.ingest SIGKILLed while
#                                   # the export flows; prints the failover time
#
# With --rabbitmq-cluster (or CHAOS_RABBITMQ_CLUSTER=1) the script first starts a three-node
# RabbitMQ cluster of its own on this machine (nodes chaos-a, chaos-b, chaos-c on AMQP ports
# 5701-5703, data under a temporary directory, the user's Erlang cookie), runs against
# chaos-a and restarts chaos-a (the other two keep the quorum queues' majority), then stops
# the three nodes. If the cluster cannot be formed the run uses the single local node and
# says so.
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

invoices=20000
instances=1
ledger_url=""
rabbit_cluster="${CHAOS_RABBITMQ_CLUSTER:-0}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --instances) instances="$2"; shift 2 ;;
        --ledger-url) ledger_url="$2"; shift 2 ;;
        --rabbitmq-cluster) rabbit_cluster=1; shift ;;
        -*) echo "chaos.sh: unknown option $1" >&2; exit 2 ;;
        *) invoices="$1"; shift ;;
    esac
done
cluster_args=()
if [[ "$instances" -gt 1 ]]; then
    if [[ -z "$ledger_url" ]]; then
        echo "chaos.sh: --instances $instances needs --ledger-url postgres://…" >&2
        exit 2
    fi
    cluster_args=(--instances "$instances" --ledger-url "$ledger_url")
fi
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

# A three-node RabbitMQ cluster of the run's own (opt-in): distinct node names, ports and
# data directories on this machine.
cluster_dir=""
stop_cluster() {
    [[ -n "$cluster_dir" ]] || return 0
    for n in a b c; do
        rabbitmqctl -n "chaos-$n@$(hostname -s)" stop >/dev/null 2>&1 || true
    done
    rm -rf "$cluster_dir"
}
start_cluster() {
    command -v rabbitmq-server >/dev/null || return 1
    cluster_dir="$(mktemp -d -t encaisse-rabbit-XXXXXX)"
    local host i=0
    host="$(hostname -s)"
    for n in a b c; do
        i=$((i + 1))
        mkdir -p "$cluster_dir/$n"
        RABBITMQ_NODENAME="chaos-$n@$host" RABBITMQ_NODE_PORT=$((5700 + i)) \
            RABBITMQ_DIST_PORT=$((25700 + i)) RABBITMQ_BASE="$cluster_dir/$n" \
            RABBITMQ_MNESIA_BASE="$cluster_dir/$n/mnesia" RABBITMQ_LOG_BASE="$cluster_dir/$n/log" \
            RABBITMQ_PID_FILE="$cluster_dir/$n/pid" RABBITMQ_ENABLED_PLUGINS_FILE="$cluster_dir/$n/plugins" \
            RABBITMQ_SERVER_START_ARGS="-rabbitmq_management listener [{port,$((15700 + i))}]" \
            rabbitmq-server -detached >/dev/null 2>&1 || return 1
    done
    for n in a b c; do
        rabbitmqctl -n "chaos-$n@$host" await_startup --timeout 60 >/dev/null 2>&1 || return 1
    done
    for n in b c; do
        rabbitmqctl -n "chaos-$n@$host" stop_app >/dev/null &&
            rabbitmqctl -n "chaos-$n@$host" join_cluster "chaos-a@$host" >/dev/null &&
            rabbitmqctl -n "chaos-$n@$host" start_app >/dev/null || return 1
    done
    export ENCAISSE_AMQP_URL="amqp://guest:guest@127.0.0.1:5701/%2f"
    export ENCAISSE_BENCH_RABBITMQ_NODE="chaos-a@$host"
    node=(-n "$ENCAISSE_BENCH_RABBITMQ_NODE")
}
if [[ "$rabbit_cluster" == 1 ]]; then
    trap 'restore_broker; stop_cluster' EXIT
    if start_cluster; then
        echo "== broker: a three-node RabbitMQ cluster (chaos-a/b/c, AMQP 5701-5703); chaos-a is restarted" >&2
    else
        echo "== broker: the three-node cluster could not be formed; running on the single local node" >&2
        stop_cluster
        cluster_dir=""
    fi
else
    echo "== broker: the single local node (--rabbitmq-cluster for three nodes)" >&2
fi

echo "== chaos run: $invoices invoices, $instances daemon(s)" >&2
# shellcheck disable=SC2086 # CHAOS_ARGS holds several options
"$CHAOS_BENCH_BIN" chaos "$invoices" --encaisse "$CHAOS_ENCAISSE_BIN" "${cluster_args[@]}" ${CHAOS_ARGS:-}
