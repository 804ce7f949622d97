# syntax=docker/dockerfile:1
#
# sidecache's container image: built in a Rust image, run from a distroless one (glibc and
# libgcc, no shell, no package manager) as an unprivileged user.
#
# The admin port listens on every interface inside the container, so the image needs an admin
# token (every admin call but /healthz, /readyz and /metrics sends it) and refuses to start
# without one (exit 64). It bakes none in: a token in a public image is no secret. Pass your own:
#
#   docker build -t sidecache .
#   export SIDECACHE_ADMIN_TOKEN=$(openssl rand -hex 32)
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:8081:8081 -e SIDECACHE_ADMIN_TOKEN -e SIDECACHE_ORIGIN=http://origin:9000 sidecache
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:8081:8081 -e SIDECACHE_ADMIN_TOKEN -e SIDECACHE_DEMO=true sidecache
#
# The second runs the embedded demo origin: without SIDECACHE_ORIGIN or SIDECACHE_DEMO the image
# refuses to start (exit 64), as its proxy port listens on every interface. `-e
# SIDECACHE_ADMIN_TOKEN` passes the variable from the shell; publish beyond 127.0.0.1 only where
# the network is yours.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# The image has no .git: pass the commit for `sidecache --version` and sidecache_build_info
# (docker build --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) .); "unknown" without it.
ARG GIT_COMMIT
COPY src ./src
COPY benches ./benches
# The registry and target caches survive between builds (BuildKit cache mounts); the binary is
# copied out of the cached target directory, which is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sidecache \
    && cp target/release/sidecache /usr/local/bin/sidecache

# Debian 12 matches the build image's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/sidecache /usr/local/bin/sidecache
# Inside a container the ports must listen on every interface (the binary's defaults are loopback);
# with the admin port on every interface, sidecache also needs SIDECACHE_ADMIN_TOKEN (see above).
ENV SIDECACHE_LISTEN=0.0.0.0:8080 \
    SIDECACHE_ADMIN_LISTEN=0.0.0.0:8081
# 8080: the proxy. 8081: admin (metrics, stats, health, readiness, purge).
EXPOSE 8080 8081
# distroless's "nonroot" user: uid and gid 65532.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sidecache"]
