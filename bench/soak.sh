#!/usr/bin/env bash
# Soak (issue 15): `postern serve` under steady load, watched for growth; see bench/soak.py.
#
# Usage: bench/soak.sh [MINUTES] [RATE]   (default 30 minutes at 50 messages a second; the
#   issue asks for half the measured peak: take bench/throughput.sh's ingest figure and halve it)
#   OUT=dir  where soak.csv and soak.svg go (default soak-<date>)
# Needs python3 and a release build (built here). Sends nothing beyond 127.0.0.1. Exits non-zero
# on growth (memory, descriptors, a queue that only grows) or more than 1 % of messages refused.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
rate=${2:-50}
out=${OUT:-soak-$(date -u +%Y%m%dT%H%M%S)}
bin=${POSTERN_BIN:-target/release/postern}
if [ -z "${POSTERN_BIN:-}" ]; then
    cargo build --locked --release --bin postern
fi
exec python3 bench/soak.py --binary "$bin" --minutes "$minutes" --rate "$rate" --out "$out"
