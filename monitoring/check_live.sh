#!/usr/bin/env bash
# Evaluate every dashboard expression against a running petal, without Docker.
#
#   monitoring/check_live.sh [PETAL_URL]        (default http://127.0.0.1:9000)
#
# Starts Debian's Prometheus on 127.0.0.1:$PROM_PORT (default 19090) with
# monitoring/prometheus/prometheus.yml, its petal target pointed at PETAL_URL, sends petal a few
# predictions and some bad inputs (so that every panel has data), waits for a few scrapes, then
# runs monitoring/check_dashboards.py. Prometheus is stopped on exit. petal must already be
# running and ready. Needs curl and promtool's package, prometheus (monitoring/check_compose.sh
# installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

PETAL_URL="${1:-http://127.0.0.1:9000}"
PETAL_URL="${PETAL_URL%/}"
PROM_PORT="${PROM_PORT:-19090}"
petal_target="${PETAL_URL#*://}"
images=(tests/fixtures/images/*.jpg tests/fixtures/images/*.png)

command -v prometheus >/dev/null || { echo "prometheus is missing: apt-get install prometheus" >&2; exit 2; }
curl -fsS "$PETAL_URL/ready" >/dev/null || { echo "petal is not ready at $PETAL_URL" >&2; exit 2; }

work="$(mktemp -d)"
prom_pid=""
cleanup() {
    if [ -n "$prom_pid" ]; then kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The committed configuration, with only the two targets changed.
sed -e "s|- petal:9000|- $petal_target|" -e "s|- localhost:9090|- 127.0.0.1:$PROM_PORT|" \
    monitoring/prometheus/prometheus.yml > "$work/prometheus.yml"
grep -q -- "- $petal_target\$" "$work/prometheus.yml" || { echo "could not retarget prometheus.yml" >&2; exit 2; }
promtool check config "$work/prometheus.yml" >/dev/null

echo "== Prometheus on 127.0.0.1:$PROM_PORT scraping $petal_target"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" > "$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
    kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null || { echo "Prometheus did not start" >&2; exit 1; }

# What the traffic below must add to petal's counters: 3 + 2 + 1 images classified; 4 good
# calls to /predict and 1 to /predict/batch; one rejection of each kind sent; one unmatched path.
# They are increases over a baseline read from a scrape made before the traffic, so petal may
# have served requests before this script ran.
increases=(
    'petal_images_classified_total=6'
    'sum(petal_http_requests_total{route="/predict",status="2xx"})=4'
    'sum(petal_http_requests_total{route="/predict/batch",status="2xx"})=1'
    'sum(petal_http_requests_total{route="/predict",status="4xx"})=4'
    'sum(petal_http_requests_total{route="unmatched"})=1'
    'petal_rejected_inputs_total{kind="empty_image"}=1'
    'petal_rejected_inputs_total{kind="undecodable_image"}=1'
    'petal_rejected_inputs_total{kind="unsupported_content_type"}=1'
    'petal_rejected_inputs_total{kind="invalid_parameter"}=1'
    'petal_batch_size_count=7'
)
increase_args=()
for item in "${increases[@]}"; do increase_args+=(--expect-increase "$item"); done

echo "== baseline from a scrape made after $(date -u +%T)"
python3 monitoring/check_dashboards.py --prometheus "http://127.0.0.1:$PROM_PORT" \
    --write-baseline "$work/baseline.json" --after "$(date +%s)" "${increase_args[@]}" \
    monitoring/grafana/dashboards/*.json

# Each request prints its status; what matters is that petal counts it.
send() { curl -sS -o /dev/null -w "%{http_code}  $1\n" "${@:2}" || true; }
echo "== traffic to $PETAL_URL"
for image in "${images[@]:0:3}"; do
    send "predict $(basename "$image")" -F "image=@$image" "$PETAL_URL/predict"
done
send "batch of 2" -F "images=@${images[0]}" -F "images=@${images[1]}" "$PETAL_URL/predict/batch"
send "raw bytes" --data-binary "@${images[0]}" -H "content-type: image/jpeg" "$PETAL_URL/predict"
send "empty image (400)" --data-binary "" -H "content-type: image/jpeg" "$PETAL_URL/predict"
send "undecodable image (400)" --data-binary "not an image" -H "content-type: image/png" "$PETAL_URL/predict"
send "unsupported content type (415)" --data-binary "hello" -H "content-type: text/plain" "$PETAL_URL/predict"
send "invalid top_k (422)" -F "image=@${images[0]}" "$PETAL_URL/predict?top_k=0"
send "unmatched route (404)" "$PETAL_URL/no-such-route"
for route in health ready model; do send "$route" "$PETAL_URL/$route"; done

# Waiting for the increases to show up is also waiting for the scrapes; rate() over [1m] then
# needs a second scrape, for which the panel check retries.
echo "== promtool check metrics on a scrape of petal"
curl -fsS "$PETAL_URL/metrics" | promtool check metrics

echo "== scraped values and dashboard expressions"
python3 monitoring/check_dashboards.py --prometheus "http://127.0.0.1:$PROM_PORT" --wait 60 \
    --baseline "$work/baseline.json" "${increase_args[@]}" \
    --expect 'count(petal_model_info)=1' \
    monitoring/grafana/dashboards/*.json
