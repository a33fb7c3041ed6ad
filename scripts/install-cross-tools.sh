#!/usr/bin/env bash
# Installs what `make cross` needs on a Debian/Ubuntu build host: the musl targets, and zig (the
# cross linker) with cargo-zigbuild, both as prebuilt wheels from PyPI into one venv, so nothing
# is compiled here. Idempotent. `--with-qemu` also installs qemu-user-static and binutils for the
# cross-architecture tests (needs root for apt-get).
set -euo pipefail

ZIG_VERSION="${ZIG_VERSION:-0.17.1}"
ZIGBUILD_VERSION="${ZIGBUILD_VERSION:-0.24.1}"
ZIG_VENV="${ZIG_VENV:-/var/cache/petal/zig-venv}"

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
# armv7: a prebuilt std where the toolchain mirror has one; scripts/cross-build.sh builds std from
# source otherwise (PETAL_BUILD_STD=1), which needs rust-src.
if ! rustup target add armv7-unknown-linux-musleabihf 2>/dev/null; then
    rustup component add rust-src
    echo "note: this toolchain mirror has no prebuilt std for armv7-unknown-linux-musleabihf;" \
        "build with PETAL_BUILD_STD=1 (make cross, make cross-test) to compile it from source" >&2
fi

# The venv is (re)made when the pinned versions change; the stamp records them.
stamp="ziglang==$ZIG_VERSION cargo-zigbuild==$ZIGBUILD_VERSION"
if [ "$(cat "$ZIG_VENV/.petal-stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$ZIG_VENV"
    python3 -m venv "$ZIG_VENV"
    "$ZIG_VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary :all: \
        "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
    echo "$stamp" > "$ZIG_VENV/.petal-stamp"
fi
# The ziglang wheel ships the zig binary inside the package; expose it as `zig`.
zig_bin=$("$ZIG_VENV/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
ln -sf "$zig_bin" "$ZIG_VENV/bin/zig"

if [ "${1:-}" = "--with-qemu" ] && ! { command -v qemu-aarch64-static && command -v readelf; } >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq qemu-user-static binutils >/dev/null
fi
echo "cross tools ready in $ZIG_VENV: zig $("$ZIG_VENV/bin/zig" version), $("$ZIG_VENV/bin/cargo-zigbuild" --version)"
