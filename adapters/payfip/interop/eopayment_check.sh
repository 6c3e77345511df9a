#!/bin/sh
# Interoperability check of the PayFiP simulator with the third-party eopayment client.
#
# Installs eopayment (pinned) into a virtualenv under /tmp (never into the repository), builds
# and starts the simulator example on a free local port, runs eopayment_check.py against it,
# stops the simulator. Exit status: that of the check (0 = every check passed).
#
# Usage: adapters/payfip/interop/eopayment_check.sh
# Environment: EOP_VENV (default /tmp/encaisse-eopayment-venv), EOP_VERSION (default 3.15),
#              SIM_PORT (default 18091).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
venv=${EOP_VENV:-/tmp/encaisse-eopayment-venv}
version=${EOP_VERSION:-3.15}
port=${SIM_PORT:-18091}

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import eopayment" 2>/dev/null || "$venv/bin/pip" install --quiet "eopayment==$version"

cd "$repo"
cargo build --quiet -p encaisse-payfip --example payfip_sim
log=$(mktemp)
"$repo/target/debug/examples/payfip_sim" --listen "127.0.0.1:$port" 2>"$log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; rm -f "$log"' EXIT INT TERM

tries=0
until "$venv/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ]; then
        echo "simulator did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

"$venv/bin/python" "$here/eopayment_check.py" --sim "http://127.0.0.1:$port"
