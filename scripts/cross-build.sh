#!/usr/bin/env bash
# Builds static musl `petal` binaries for the given target triples (default: the three petal
# ships) with cargo-zigbuild, on any build host, without emulation. Used by `make cross` and by
# the Dockerfile's build stage, so CI tests exactly what the image build does.
#
# Output: ${CARGO_TARGET_DIR:-target}/<triple>/release/petal
set -euo pipefail

ZIG_VENV="${ZIG_VENV:-/var/cache/petal/zig-venv}"
[ -x "$ZIG_VENV/bin/cargo-zigbuild" ] && export PATH="$ZIG_VENV/bin:$PATH"

triples=("$@")
[ ${#triples[@]} -gt 0 ] || triples=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

for triple in "${triples[@]}"; do
    args=(zigbuild --locked --release --bin petal --target "$triple")
    if ! rustup target list --installed | grep -qx "$triple"; then
        # Some toolchain mirrors have no prebuilt std for a target (armv7 musl, seen in CI):
        # build std from source instead. Opt-in, because it needs nightly features.
        if [ "${PETAL_BUILD_STD:-0}" != 1 ]; then
            echo "no std for $triple: run 'rustup target add $triple', or set PETAL_BUILD_STD=1" >&2
            exit 1
        fi
        export RUSTC_BOOTSTRAP=1
        args+=(-Zbuild-std=std,panic_abort)
        var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
        export "$var=-C link-self-contained=no"
    fi
    echo "building $triple"
    cargo "${args[@]}"
done
