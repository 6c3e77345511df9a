# syntax=docker/dockerfile:1
# Multi-stage build of the encaisse daemon.
#   docker build -t encaisse .
#   docker run --rm -e ENCAISSE_AMQP_URL=amqp://user:pass@broker:5672/%2f -p 8080:8080 encaisse
# compose.yaml runs it beside RabbitMQ.

# --- build: the Rust toolchain, the whole workspace, a release binary ------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY schemas schemas
COPY ledger ledger
COPY adapters adapters
COPY pipelines pipelines
COPY src src
RUN cargo build --release --locked --bin encaisse \
    && strip target/release/encaisse
# The image listens on every interface (the example listens on loopback only).
COPY config/encaisse.toml /src/encaisse.toml
RUN sed -i 's/^listen = "127.0.0.1:8080"/listen = "0.0.0.0:8080"/' /src/encaisse.toml \
    && grep -q '^listen = "0.0.0.0:8080"' /src/encaisse.toml

# --- run: a slim Debian with the binary, an unprivileged user, a data volume ------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/encaisse --shell /usr/sbin/nologin encaisse
COPY --from=build /src/target/release/encaisse /usr/local/bin/encaisse
COPY --from=build /src/encaisse.toml /etc/encaisse/encaisse.toml
ENV ENCAISSE_DATA_DIR=/var/lib/encaisse
VOLUME /var/lib/encaisse
USER encaisse
WORKDIR /var/lib/encaisse
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM (docker stop) → graceful stop, exit 0; give it more than shutdown_grace_secs.
STOPSIGNAL SIGTERM
ENTRYPOINT ["encaisse", "--config", "/etc/encaisse/encaisse.toml", "--log-format", "json"]
CMD ["run"]
