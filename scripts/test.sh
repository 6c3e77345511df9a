#!/usr/bin/env bash
# The whole test suite: what CI runs after its lint steps (README, "Set-up").
#
#   scripts/test.sh
#
# 1. scripts/setup.sh (installs what is missing, starts RabbitMQ);
# 2. every test of the workspace (they use the broker on 127.0.0.1:5672 with their own
#    queue prefixes, so they can run in parallel);
# 3. the exclusive tests, one at a time: ignored by default because they disturb what others
#    rely on (they restart the broker, say); their names contain `exclusive`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo test --workspace --no-fail-fast" >&2
cargo test --workspace --no-fail-fast

echo "== exclusive tests (one at a time)" >&2
cargo test --workspace -- --ignored --test-threads=1 exclusive
