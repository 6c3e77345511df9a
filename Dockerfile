# syntax=docker/dockerfile:1
# Multi-stage build of the encaisse daemon.
#   docker build -t encaisse .
# compose.yaml runs it beside RabbitMQ, with the configuration and the file tree mounted
# from the host. The build context is filtered by .dockerignore; tests/docker_context.rs
# fails when a file the build embeds (include_str!/include_bytes!) is not copied below.

# --- build: the Rust toolchain, then a release binary -----------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# 1. Dependencies only, in their own layer: the manifests and stub targets, so that a change
#    of our sources does not rebuild the ~300 crates we depend on.
COPY Cargo.toml Cargo.lock ./
COPY schemas/Cargo.toml schemas/
COPY ledger/Cargo.toml ledger/
COPY adapters/polyfac/Cargo.toml adapters/polyfac/
COPY adapters/payfip/Cargo.toml adapters/payfip/
COPY adapters/helios/Cargo.toml adapters/helios/
COPY adapters/sepa/Cargo.toml adapters/sepa/
COPY adapters/xml/Cargo.toml adapters/xml/
COPY pipelines/Cargo.toml pipelines/
RUN set -eu; \
    for crate in . schemas ledger adapters/polyfac adapters/payfip adapters/helios \
                 adapters/sepa adapters/xml pipelines; do \
        mkdir -p "$crate/src" && : > "$crate/src/lib.rs"; \
    done; \
    echo 'fn main() {}' > src/main.rs; \
    mkdir -p adapters/polyfac/examples && echo 'fn main() {}' > adapters/polyfac/examples/parse_bench.rs; \
    cargo build --release --locked --bin encaisse; \
    rm -rf src schemas/src ledger/src adapters/*/src adapters/polyfac/examples pipelines/src

# 2. Our sources, and every file they embed (demo exports and overlay, ledger migrations,
#    the example configuration).
COPY schemas schemas
COPY ledger ledger
COPY adapters adapters
COPY pipelines pipelines
COPY src src
COPY demo demo
COPY config config
# COPY keeps the context's modification times, which may be older than the stub build:
# touching the sources makes cargo rebuild our crates.
RUN find src schemas ledger adapters pipelines -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin encaisse \
    && strip target/release/encaisse

# --- run: a slim Debian with the binary and an unprivileged user -------------------------------
FROM debian:bookworm-slim
# A fixed uid/gid, so that the host's file tree (inboxes and outboxes shared with a transfer
# tool) can be given to it: chown -R 10001:10001 <dir>, or run as another uid (compose.yaml).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 encaisse \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/encaisse \
       --shell /usr/sbin/nologin encaisse \
    && mkdir -p /etc/encaisse /var/lib/encaisse \
    && chown encaisse:encaisse /var/lib/encaisse
COPY --from=build /src/target/release/encaisse /usr/local/bin/encaisse
# The configuration is mounted from the host at /etc/encaisse/encaisse.toml (its [http]
# listen must be 0.0.0.0:8080 to be reached from outside the container); the data tree at
# /var/lib/encaisse.
ENV ENCAISSE_CONFIG=/etc/encaisse/encaisse.toml \
    ENCAISSE_DATA_DIR=/var/lib/encaisse
VOLUME /var/lib/encaisse
USER encaisse
WORKDIR /var/lib/encaisse
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM (docker stop) → graceful stop, exit 0; give it more than shutdown_grace_secs.
STOPSIGNAL SIGTERM
ENTRYPOINT ["encaisse", "--log-format", "json"]
CMD ["run"]
