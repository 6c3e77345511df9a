# encaisse: the ops commands (encaisse check, dlq, trace) read the daemon's configuration.
export ENCAISSE_CONFIG=/etc/encaisse/encaisse.toml
export ENCAISSE_DATA_DIR=/var/lib/encaisse
