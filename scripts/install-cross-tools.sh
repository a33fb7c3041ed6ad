#!/usr/bin/env bash
# Installs what `make cross` needs on a Debian/Ubuntu build host: the musl targets, zig (from
# PyPI, as the cross linker) and cargo-zigbuild. Idempotent; run as a user who can apt-get when
# qemu is wanted for the cross-architecture tests (`--with-qemu`).
set -euo pipefail

ZIG_VERSION="${ZIG_VERSION:-0.17.1}"
ZIGBUILD_VERSION="${ZIGBUILD_VERSION:-0.24.1}"
ZIG_VENV="${ZIG_VENV:-/var/cache/petal/zig-venv}"

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
# armv7: a prebuilt std where the toolchain mirror has one; scripts/cross-build.sh builds std from
# source otherwise (PETAL_BUILD_STD=1), which needs rust-src.
rustup target add armv7-unknown-linux-musleabihf 2>/dev/null \
    || rustup component add rust-src

if [ ! -x "$ZIG_VENV/bin/python-zig" ] && [ ! -x "$ZIG_VENV/bin/zig" ]; then
    python3 -m venv "$ZIG_VENV"
    "$ZIG_VENV/bin/pip" install --quiet "ziglang==$ZIG_VERSION"
fi
# The ziglang wheel ships the zig binary inside the package; expose it as `zig`.
zig_bin=$("$ZIG_VENV/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
ln -sf "$zig_bin" "$ZIG_VENV/bin/zig"

if ! cargo-zigbuild --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION"; then
    cargo install --locked cargo-zigbuild --version "$ZIGBUILD_VERSION"
fi

if [ "${1:-}" = "--with-qemu" ] && ! command -v qemu-aarch64-static >/dev/null; then
    apt-get update -qq && apt-get install -y -qq qemu-user-static binutils >/dev/null
fi
echo "cross tools ready: zig $("$ZIG_VENV/bin/zig" version), $(cargo-zigbuild --version)"
