#!/usr/bin/env bash
# Checks what the Debian package holds (run by scripts/package-deb.sh, so by CI):
#
#   scripts/check-deb.sh target/debian/encaisse_<version>_amd64.deb
#
# Fails naming the first thing missing: a file, a conffile, a mode, a unit setting.
set -euo pipefail
deb=${1:?usage: scripts/check-deb.sh PACKAGE.deb}

fail() { printf 'check-deb: %s: %s\n' "$deb" "$*" >&2; exit 1; }

contents=$(dpkg-deb -c "$deb")
info=$(dpkg-deb -I "$deb")

has_file() {   # path [mode]
    local line
    line=$(printf '%s\n' "$contents" | awk -v p="./$1" '$6 == p { print; exit }')
    [ -n "$line" ] || fail "no $1 in the package"
    if [ $# -ge 2 ]; then
        case "$line" in
            "$2"*) ;;
            *) fail "$1 has mode ${line%% *}, expected $2" ;;
        esac
    fi
}

has_file usr/bin/encaisse -rwxr-xr-x
has_file etc/encaisse/encaisse.toml -rw-r--r--
has_file etc/encaisse/encaisse.env -rw-------
has_file etc/profile.d/encaisse.sh
has_file usr/share/man/man1/encaisse.1.gz
has_file usr/share/bash-completion/completions/encaisse
unit_path=$(printf '%s\n' "$contents" | awk '$6 ~ /systemd\/system\/encaisse\.service$/ { print $6; exit }')
[ -n "$unit_path" ] || fail "no encaisse.service in the package"

printf '%s\n' "$info" | grep -q '^ Package: encaisse$' || fail "package name is not encaisse"
printf '%s\n' "$info" | grep -q '^ Architecture: ' || fail "no architecture"
for conffile in /etc/encaisse/encaisse.toml /etc/encaisse/encaisse.env; do
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles 2>/dev/null | grep -qx "$conffile" \
        || fail "$conffile is not a conffile"
done
postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)
printf '%s\n' "$postinst" | grep -q 'adduser --system' || fail "postinst creates no system user"
printf '%s\n' "$postinst" | grep -q '/var/lib/encaisse' || fail "postinst creates no /var/lib/encaisse"

unit=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO "$unit_path")
for setting in 'User=encaisse' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/encaisse' \
               'NoNewPrivileges=yes' 'Restart=on-failure' \
               'EnvironmentFile=/etc/encaisse/encaisse.env' \
               'Environment=ENCAISSE_CONFIG=/etc/encaisse/encaisse.toml'; do
    printf '%s\n' "$unit" | grep -qx "$setting" || fail "the unit lacks $setting"
done
# The stop timeout must exceed the configured grace period (plus the daemon's 5 s margin).
grace=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/encaisse/encaisse.toml \
    | sed -n 's/^shutdown_grace_secs *= *\([0-9]*\).*/\1/p')
grace=${grace:-20}
stop=$(printf '%s\n' "$unit" | sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p')
[ -n "$stop" ] || fail "the unit has no TimeoutStopSec in seconds"
[ "$stop" -gt $((grace + 5)) ] || fail "TimeoutStopSec=$stop is not above shutdown_grace_secs=$grace + 5"

echo "check-deb: $deb: binary, unit, conffiles, 0600 secrets file, man page: ok" >&2
