# Multi-stage build: a static-ish release binary on a small, non-root runtime image.
#   docker build -t dhan-keeper .
#   docker run --rm dhan-keeper demo                     # try it: no credentials needed
#   docker run -d --name dhan-keeper -v dhan-keeper:/data \
#     -e DHAN_KEEPER_CLIENT_ID=... -e DHAN_KEEPER_PIN_FILE=/run/secrets/pin ... dhan-keeper
# The token, lock and state live in the /data volume; the config may live there too
# (/data/dhan_config.json, mode 0600) or come entirely from DHAN_KEEPER_* variables.
#
# Getting the token out (docs/guide.md, "Handing the token over"):
#   host, one-off:       docker exec dhan-keeper dhan-keeper token      (reads /data, no config needed)
#   another container:   mount the volume read-only and run as the same uid:
#                        docker run --user 10001:10001 -v dhan-keeper:/data:ro your-algo
#                        (or a group-readable file with token_file_mode/token_file_group)
#   over HTTP:           --network host with "http_listen": "127.0.0.1:8765" (Linux), or listen
#                        beyond loopback with http_allow_remote + http_token and publish the port.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crates ./crates
RUN cargo build --release --locked -p dhan-keeper \
    && strip target/release/dhan-keeper

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin keeper \
    && install -d -o keeper -g keeper -m 0700 /data
COPY --from=build /src/target/release/dhan-keeper /usr/local/bin/dhan-keeper
USER keeper
WORKDIR /data
VOLUME ["/data"]
ENV DHAN_KEEPER_CONFIG=/data/dhan_config.json \
    DHAN_KEEPER_TOKEN_FILE=/data/dhan_token.json
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/dhan-keeper"]
CMD ["run", "--log-format", "json"]
