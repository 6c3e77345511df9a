#!/usr/bin/env bash
# The README's first command: the main job, end to end, on this machine.
#
# 1. scripts/setup.sh: installs what is missing (RabbitMQ from the distribution, xmllint,
#    build tools; sudo when not root) and starts RabbitMQ;
# 2. builds encaisse;
# 3. runs `encaisse demo` with config/encaisse.toml: the PayFiP simulator and the daemon in
#    one process against the real RabbitMQ (queues `encaisse-demo.*`), two communes'
#    exports, online payments, the Trésorerie's and the bank's answers, and a report.
#    Files are left in var/demo (wiped at the start of each run) for you to open.
#
#   scripts/demo.sh                          # exit 0 only if every expectation held
#   scripts/demo.sh --keep-running           # then explore: encaisse dlq list, encaisse trace …
#   ENCAISSE_DATA_DIR=/tmp/demo scripts/demo.sh
#
# Arguments are passed to `encaisse demo` (`encaisse demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== building encaisse" >&2
cargo build --bin encaisse
bin="${CARGO_TARGET_DIR:-target}/debug/encaisse"

echo "== encaisse demo" >&2
exec "$bin" --config config/encaisse.toml demo "$@"
