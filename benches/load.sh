#!/usr/bin/env bash
# Load test of a petal binary over HTTP with wrk: throughput and latency at 1, 2 and 4
# concurrent connections posting one photo, and the server's memory (VmRSS) after start-up,
# after the load, and at its peak (/usr/bin/time -v). BENCHMARKS.md records the figures.
#
#   benches/load.sh [BINARY] [SECONDS]
#
# BINARY defaults to the x86_64 musl release build of `make cross`. Needs wrk and GNU time
# (Debian packages wrk and time).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
binary="${1:-$target_dir/x86_64-unknown-linux-musl/release/petal}"
seconds="${2:-20}"
port="${PORT:-19300}"
export IMAGE="${IMAGE:-tests/fixtures/images/espresso-coffee.png}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }

RUST_LOG=warn /usr/bin/time -v -o "$work/time" "$binary" serve --host 127.0.0.1 --port "$port" &
server=$!
for _ in $(seq 120); do
    "$binary" healthcheck --url "http://127.0.0.1:$port/ready" 2>/dev/null && break
    sleep 0.5
done
pid=$(pgrep -P "$server" petal || echo "$server")
echo "binary: $binary ($("$binary" --version)), image: $IMAGE, $(nproc) cores"
echo "resident after start-up: $(rss "$pid")"

for connections in 1 2 4; do
    echo "== $connections connection(s), ${seconds}s"
    wrk -t "$connections" -c "$connections" -d "${seconds}s" --latency \
        -s benches/post-image.lua "http://127.0.0.1:$port/predict" \
        | grep -E 'Requests/sec|^ +(50|90|99)%|non-200|requests in'
done

echo "resident after the load: $(rss "$pid")"
kill -INT "$pid"
wait "$server" || true
grep -E 'Maximum resident' "$work/time"
