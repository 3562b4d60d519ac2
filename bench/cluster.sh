#!/usr/bin/env bash
# Throughput of 1, 2 and 3 engines sharing one Postgres on this machine (docs/cluster.md).
#
# For each engine count N, a fresh Postgres database and N `postern serve` processes (their own
# data directories and ports, `node` n1…nN), relaying everything (127.0.0.1 is a trusted
# network) to one smtp-sink. N Postfix smtp-source processes send MESSAGES in all, split evenly,
# SESSIONS sessions in all, one smtp-source per engine. The clock runs from the first connection
# until every engine's queue is empty (`postern node list`: no node holds a message), so it
# covers receiving (each 250 after the Postgres commit) and delivering (each result committed).
#
# On one machine the engines share its cores with each other and with Postgres: the figures are
# ratios for this box, not what N machines give. What limits them is written up in
# docs/cluster.md (Postgres commits, row contention on the queue).
#
# Usage: bench/cluster.sh [MESSAGES] [SESSIONS]     default 3000 messages, 30 sessions
#   PGURL   the server (default postgres://postgres@127.0.0.1:5432); databases
#           postern_bench_1..3 are created and dropped there
#   ENGINES the engine counts to run (default "1 2 3")
# Prints a Markdown table. Needs: the Debian packages postfix (smtp-source, smtp-sink) and
# postgresql-client (psql), python3, a release build (built here). Sends nothing beyond 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

messages=${1:-3000}
sessions=${2:-30}
pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432}
engines=${ENGINES:-1 2 3}

for tool in smtp-source smtp-sink psql python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (postfix, postgresql-client)" >&2; exit 1; }
done

cargo build --release --quiet
postern=$PWD/target/release/postern

work=$(mktemp -d /tmp/postern-cluster.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for n in 1 2 3; do psql -q "$pgurl/postgres" -c "DROP DATABASE IF EXISTS postern_bench_$n WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
    echo "bench: nothing on port $1" >&2
    tail -n 5 "$work"/*/*/serve.log >&2 2>/dev/null || true
    exit 1
}
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at start: $(load)" >&2

sink_port=$(free_port)
if [ "$(id -u)" = 0 ]; then smtp-sink -u postfix "127.0.0.1:$sink_port" 1000 & else smtp-sink "127.0.0.1:$sink_port" 1000 & fi
pids+=($!)
wait_port "$sink_port"

# write_config DIR NODE PORT: one engine.
write_config() {
    mkdir -p "$1"
    cat > "$1/postern.toml" <<CONF
hostname = "postern.bench.test"
node = "$2"
data_dir = "data"
[smtp]
listen = ["127.0.0.1:$3"]
submission = []
submissions = []
[console]
# Each engine its own console port: the default 8080 would collide.
listen = ["127.0.0.1:0"]
[cluster]
dead_after = "10s"
[log]
format = "json"
level = "warn"
CONF
}

queued() { # the messages any node holds, read through the first engine's config
    "$postern" --config "$1" node list --json | python3 -c 'import json,sys; print(sum(n["messages"] for n in json.load(sys.stdin)))'
}

# run N: prints messages per second with N engines.
run() {
    local n=$1 db="postern_bench_$1" dir ports=() start end per sess i first
    psql -q "$pgurl/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql -q "$pgurl/postgres" -c "CREATE DATABASE $db" >/dev/null
    export POSTERN_DATABASE="$pgurl/$db"
    for i in $(seq 1 "$n"); do
        dir=$work/$n/n$i
        ports[$i]=$(free_port)
        write_config "$dir" "n$i" "${ports[$i]}"
        if [ "$i" = 1 ]; then
            # The first engine's CLI creates the schema before the others start.
            "$postern" --config "$dir/postern.toml" transport set '*' "smtp:[127.0.0.1]:$sink_port" --tls none >/dev/null
        fi
        "$postern" --config "$dir/postern.toml" serve > "$dir/serve.log" 2>&1 &
        pids+=($!)
        wait_port "${ports[$i]}"
    done
    first=$work/$n/n1/postern.toml
    per=$((messages / n))
    sess=$(( (sessions + n - 1) / n ))
    start=$(now)
    local senders=()
    for i in $(seq 1 "$n"); do
        smtp-source -s "$sess" -l 2048 -m "$per" -f bench@source.test -t someone@sink.test "127.0.0.1:${ports[$i]}" &
        senders+=($!)
    done
    for pid in "${senders[@]}"; do wait "$pid"; done
    until [ "$(queued "$first")" = 0 ]; do sleep 0.1; done
    end=$(now)
    # Every message must have been delivered: the delivery log counts them.
    local sent
    sent=$(psql -qtA "$pgurl/$db" -c "SELECT COUNT(*) FROM delivery_log WHERE status = 'delivered'")
    if [ "$sent" != "$((per * n))" ]; then
        echo "bench: $n engine(s): $sent of $((per * n)) messages delivered" >&2
        exit 1
    fi
    python3 -c "print(f'{$((per * n)) / ($end - $start):.0f}')"
    for pid in "${pids[@]:1}"; do kill "$pid" 2>/dev/null || true; done
    wait "${pids[@]:1}" 2>/dev/null || true
    pids=("${pids[0]}")
    unset POSTERN_DATABASE
}

echo "| engines | messages | sessions | throughput | vs 1 engine |"
echo "| --- | --- | --- | --- | --- |"
base=
for n in $engines; do
    rate=$(run "$n")
    [ -n "$base" ] || base=$rate
    ratio=$(python3 -c "print(f'{$rate / $base:.2f}')")
    echo "| $n | $messages | $sessions | $rate msg/s | ${ratio}x |"
done
echo "load average at end: $(load)" >&2
