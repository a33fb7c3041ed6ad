# syntax=docker/dockerfile:1
#
# petal's container image for linux/amd64, linux/arm64 and linux/arm/v7, built from one host.
#
# Nothing here runs under emulation: every stage with a RUN runs on the build host
# ($BUILDPLATFORM) and cross-compiles a static musl binary for the target platform with
# cargo-zigbuild, through scripts/cross-build.sh, the script `make cross` runs. The final stage
# only copies that binary and the bundled model into a distroless, non-root image.
#
#   docker build -t petal .                      # the build host's platform
#   make multiarch IMAGE=registry/petal TAG=x    # every platform, pushed under one tag

ARG RUST_VERSION=1.95

# Rust, the musl targets, zig (the cross linker, from PyPI) and cargo-zigbuild.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV ZIG_VENV=/opt/zig
COPY scripts/install-cross-tools.sh scripts/
RUN scripts/install-cross-tools.sh

# Dependencies, fetched once and shared by every platform: no platform argument is declared yet.
FROM toolchain AS deps
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN cargo fetch --locked

# The binary for the target platform, compiled on the build platform. Each platform keeps its
# own cache of compiled dependencies.
FROM deps AS build
ARG TARGETARCH
ARG TARGETVARIANT
COPY build.rs ./
COPY src src
COPY scripts/cross-build.sh scripts/
RUN --mount=type=cache,id=petal-target-${TARGETARCH}${TARGETVARIANT},target=/src/target \
    case "${TARGETARCH}${TARGETVARIANT}" in \
      amd64) triple=x86_64-unknown-linux-musl ;; \
      arm64) triple=aarch64-unknown-linux-musl ;; \
      armv7) triple=armv7-unknown-linux-musleabihf ;; \
      *) echo "unsupported platform: ${TARGETARCH}${TARGETVARIANT}" >&2; exit 1 ;; \
    esac \
 && scripts/cross-build.sh "$triple" \
 && mkdir -p /out \
 && cp "target/$triple/release/petal" /out/petal

# The image: the static binary and the model, nothing else (no shell, no package manager).
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="petal" \
      org.opencontainers.image.description="Image classification over REST with any self-describing ONNX classifier" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/petal /usr/local/bin/petal
COPY model/efficientnet-lite0.onnx /opt/petal/model/efficientnet-lite0.onnx
ENV PETAL_MODEL=/opt/petal/model/efficientnet-lite0.onnx \
    PETAL_HOST=0.0.0.0 \
    PETAL_PORT=9000
USER 65532:65532
EXPOSE 9000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/petal", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/petal"]
CMD ["serve"]
