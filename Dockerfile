# Multi-stage build of the tfjob-operator image: a static (musl) binary on a distroless base,
# running as a non-root user. (Not built on the development machine, which has no Docker engine;
# built and used by tests/e2e/kind.sh and the e2e workflow.)
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin tfjob-operator \
 && cp target/x86_64-unknown-linux-musl/release/tfjob-operator /tfjob-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /tfjob-operator /usr/local/bin/tfjob-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tfjob-operator"]
CMD ["run", "--http-addr=0.0.0.0:8080"]
