#!/usr/bin/env bash
# Builds static musl `petal` binaries for the given target triples (default: the three petal
# ships) with cargo-zigbuild, on any build host, without emulation. Used by `make cross` and by
# the Dockerfile's build stage, so CI tests exactly what the image build does.
#
# Output: ${CARGO_TARGET_DIR:-target}/<triple>/release/petal
set -euo pipefail
cd "$(dirname "$0")/.."

ZIG_VENV="${ZIG_VENV:-/var/cache/petal/zig-venv}"
[ -x "$ZIG_VENV/bin/cargo-zigbuild" ] && export PATH="$ZIG_VENV/bin:$PATH"

triples=("$@")
[ ${#triples[@]} -gt 0 ] || triples=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

target_dir="${CARGO_TARGET_DIR:-target}"
installed="$(rustup target list --installed)"

# Every target is checked before any is built, so a missing one fails at once, not after the
# others' builds.
for triple in "${triples[@]}"; do
    if ! grep -qx "$triple" <<<"$installed" && [ "${PETAL_BUILD_STD:-0}" != 1 ]; then
        echo "no std for $triple: run 'rustup target add $triple'; where the toolchain mirror has" \
            "none (it answers 404), set PETAL_BUILD_STD=1 to build it from source" >&2
        exit 1
    fi
done

for triple in "${triples[@]}"; do
    args=(zigbuild --locked --release --bin petal --target "$triple")
    if grep -qx "$triple" <<<"$installed"; then
        echo "building $triple"
        cargo "${args[@]}"
        continue
    fi

    # Some toolchain mirrors have no prebuilt std for a target (armv7 musl, seen in CI): build
    # std from source instead. Opt-in, because it needs nightly features (RUSTC_BOOTSTRAP).
    # RUSTC_BOOTSTRAP changes what the host's build scripts and proc macros (proc-macro2, for
    # one) compile to, so this build keeps them in a directory of its own: sharing them would
    # rebuild every dependency of the other targets on the next run. The binary is then copied
    # where the other targets' binaries are.
    var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
    echo "building $triple, with std from source"
    env RUSTC_BOOTSTRAP=1 "$var=-C link-self-contained=no" \
        CARGO_TARGET_DIR="$target_dir/build-std" \
        cargo "${args[@]}" -Zbuild-std=std,panic_abort
    install -D "$target_dir/build-std/$triple/release/petal" "$target_dir/$triple/release/petal"
done
