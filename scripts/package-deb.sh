#!/usr/bin/env bash
# Builds the Debian package target/debian/encaisse_<version>_amd64.deb, then checks its
# contents (scripts/check-deb.sh). Run by CI; docs/operating.md, "Installing", says how to
# install it.
#
#   scripts/package-deb.sh
#
# Installs cargo-deb (`cargo install cargo-deb --locked`, from crates.io) when it is missing.
# Builds the release binary (a few minutes), its man page and shell completions.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'package-deb: %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install cargo-deb --locked
fi

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
deb="target/debian/encaisse_${version}_${arch}.deb"

log "building the release binary"
cargo build --release --locked --bin encaisse

log "man page and completions"
mkdir -p target/debian-assets target/debian
target/release/encaisse man | gzip -9n > target/debian-assets/encaisse.1.gz
target/release/encaisse completions bash > target/debian-assets/encaisse.bash

log "packaging"
rm -f "$deb"
cargo deb --no-build --strip --locked -p encaisse --output "$deb"

scripts/check-deb.sh "$deb"
log "$deb"
