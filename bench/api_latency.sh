#!/usr/bin/env bash
# Latency of the REST API under load: `postern serve` (release build) on a temporary directory
# with 100 domains, and wrk asking for all of them at once (GET /api/v1/domains?limit=100) with
# a read-only token, from 16 connections on 2 threads for 15 s. Prints p50, p99 and requests/s.
#
# Usage: bench/api_latency.sh [DURATION]   (default 15s)
# Needs: wrk (installed with apt-get when missing, as root). Sends nothing beyond 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-15s}

if ! command -v wrk >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "bench: wrk is missing (Debian package wrk)" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --quiet --bin postern
postern=$PWD/target/release/postern

work=$(mktemp -d /tmp/postern-api-bench.XXXXXX)
serve_pid=
cleanup() {
    if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/postern.toml" <<EOF
hostname = "mail.bench.test"
data_dir = "$work/data"
[smtp]
listen = ["127.0.0.1:0"]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
[console]
listen = ["127.0.0.1:0"]
[log]
level = "warn"
EOF
run() { env -u POSTERN_CONFIG -u POSTERN_DATABASE "$postern" --config "$work/postern.toml" "$@"; }

# Not through `run`: $! must be serve itself, for the cleanup to stop it.
env -u POSTERN_CONFIG -u POSTERN_DATABASE "$postern" --config "$work/postern.toml" serve \
    >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 300); do
    grep -q '^ready' "$work/serve.out" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.out" "$work/serve.err" >&2; exit 1; }
    sleep 0.1
done
console=$(awk '$1 == "console" { print $2; exit }' "$work/serve.out")
[ -n "$console" ] || { echo "bench: serve did not start" >&2; cat "$work/serve.err" >&2; exit 1; }

for i in $(seq -w 1 100); do run domain add "d$i.bench.test" >/dev/null; done
token=$(run token create --owner admin --name bench --read-only 2>/dev/null)
url="http://$console/api/v1/domains?limit=100"

count=$(curl -fsS -H "Authorization: Bearer $token" "$url" | grep -o '"name"' | wc -l)
[ "$count" = 100 ] || { echo "bench: the API lists $count domains, not 100" >&2; exit 1; }

echo "wrk -t2 -c16 -d$duration --latency GET /api/v1/domains?limit=100 (100 domains, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
wrk -t2 -c16 -d"$duration" --latency -H "Authorization: Bearer $token" "$url" >"$work/wrk.out"
cat "$work/wrk.out"
p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk.out")
p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")
rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$work/wrk.out")
errors=$(grep -E 'Non-2xx|Socket errors' "$work/wrk.out" || true)
echo
echo "p50 $p50  p99 $p99  $rps requests/s"
if [ -n "$errors" ]; then
    echo "bench: wrk saw errors: $errors" >&2
    exit 1
fi
