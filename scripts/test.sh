#!/usr/bin/env bash
# The whole test suite: what CI runs after its lint steps (README, "Set-up").
#
#   scripts/test.sh
#
# 1. scripts/setup.sh (installs what is missing, starts RabbitMQ);
# 2. every test of the workspace (they use the broker on 127.0.0.1:5672 with their own
#    queue prefixes, so they can run in parallel);
# 3. the exclusive tests, one at a time: ignored by default because they disturb what others
#    rely on (they restart the broker, say); their names contain `exclusive`;
# 4. one line saying how many checks were skipped for lack of the official schemas and
#    samples (not in the repository: docs/schemas.md). ENCAISSE_REQUIRE_SPECS=1 (CI) makes
#    such a check fail instead. Likewise for the ledger's contract tests on PostgreSQL,
#    skipped without ENCAISSE_TEST_POSTGRES_URL (required in CI: ENCAISSE_REQUIRE_POSTGRES=1).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every skipped check appends one line here (encaisse_xml::specs); counted at the end, even
# when a test failed.
mkdir -p target
export ENCAISSE_SPECS_SKIP_LOG="$PWD/target/specs-skipped.txt"
: > "$ENCAISSE_SPECS_SKIP_LOG"
export ENCAISSE_POSTGRES_SKIP_LOG="$PWD/target/postgres-skipped.txt"
: > "$ENCAISSE_POSTGRES_SKIP_LOG"
summarise_skips() {
    local specs="${ENCAISSE_SPECS_DIR:-../shared/specs}"
    local checks tests
    checks=$(wc -l < "$ENCAISSE_SPECS_SKIP_LOG")
    tests=$(cut -f1 "$ENCAISSE_SPECS_SKIP_LOG" | sort -u | wc -l)
    if [ "$checks" -eq 0 ]; then
        echo "== no check skipped: the official schemas and samples were all found in $specs" >&2
    else
        echo "== $checks checks skipped in $tests tests for lack of the official schemas/samples (not in $specs); docs/schemas.md says how to get them; the list: target/specs-skipped.txt" >&2
    fi
    local pg
    pg=$(wc -l < "$ENCAISSE_POSTGRES_SKIP_LOG")
    if [ "$pg" -gt 0 ]; then
        echo "== $pg ledger contract tests skipped on PostgreSQL: ENCAISSE_TEST_POSTGRES_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/postgres); the list: target/postgres-skipped.txt" >&2
    fi
}
trap summarise_skips EXIT

scripts/setup.sh

# The tests' queues (prefixes `t-<uuid>`, `test-…`, `encaisse-bench-…`, `encaisse-chaos-…`)
# outlive a failed or killed test. A policy lets the broker delete them after an hour without
# consumers, so they do not pile up run after run (some 300 leftover quorum queues once made
# a broker restart hang). The daemon's own queues use other prefixes and no policy.
sudo_ctl=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo_ctl="sudo"
fi
if ! timeout -s KILL 60 $sudo_ctl rabbitmqctl -q set_policy --apply-to queues --priority 0 \
        encaisse-test-queues '^(t-[0-9a-f]{32}[.]|test-|encaisse-(bench|chaos)-)' \
        '{"expires":3600000}' >/dev/null 2>&1; then
    echo "== warning: could not set the expiry policy of the tests' queues (rabbitmqctl)" >&2
fi

echo "== cargo test --workspace --no-fail-fast" >&2
cargo test --workspace --no-fail-fast

echo "== exclusive tests (one at a time)" >&2
cargo test --workspace -- --ignored --test-threads=1 exclusive
