#!/usr/bin/env bash
# Throughput and memory, Postern against Postfix on this machine, in one run.
#
# End-to-end: Postfix's smtp-source sends messages over loopback to each MTA, which relays them
# (trusted network, smarthost transport) to one smtp-sink. The clock runs from the first
# connection until the MTA's queue is empty again, so it covers receiving (durable before 250:
# Postfix fsyncs its queue file, Postern commits with SQLite synchronous=FULL) and delivering.
# Every delivery is checked in the MTA's log: each message must have reached the sink.
#
# Ingest-only (--full): the same, with both MTAs delivering to `discard` (Postern: transport
# `*` -> discard; Postfix: default_transport = discard). The clock stops when smtp-source has
# had its last 250, so it measures messages accepted durably per second.
#
# Idle sessions (--full): a fresh Postern holds IDLE (10,000) SMTP sessions that have had the
# greeting and EHLO (bench/idle_connections.py); its resident memory before and after, per session.
#
# Usage: bench/throughput.sh [--full] [MESSAGES] [SESSIONS...]
#   default: end-to-end, 2 KB messages, 5000 messages per run, 20 and 50 sessions
#   --full:  end-to-end with 2 KB (MESSAGES, default 5000) and 100 KB (MESSAGES/5) messages at
#            20, 50 and 100 sessions (the 50-session 2 KB case twice, as Postfix varies from run
#            to run), ingest-only with both sizes at 50 sessions, and the idle sessions
#   IDLE=N   idle sessions to hold (default 10000)
#   SIZE=N   the message size in bytes without --full (default 2048): SIZE=102400 measures 100 KB
#            messages alone
#   DKIM=ALG Postern signs every relayed message for the sender's domain with an active key of
#            ALG (ed25519 or rsa), as it signs what trusted networks send; unset: no key, no
#            signature (run the script both ways to see signing's cost)
# Prints Markdown tables, then checks a scrape of `/metrics` (on a listener of its own, with a
# token) against the delivery log: the recipients counted as delivered must equal the lines logged
# as sent, and a scrape without the token must be refused. Needs: root (Postfix runs its own
# instance), the Debian package postfix, python3, a release build (built here). Sends nothing beyond 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

full=false
if [ "${1:-}" = --full ]; then full=true; shift; fi
messages=${1:-5000}
shift || true
sessions=("$@")
if [ ${#sessions[@]} -eq 0 ]; then
    if $full; then sessions=(20 50 100); else sessions=(20 50); fi
fi
idle=${IDLE:-10000}

for tool in smtp-source smtp-sink postfix python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (Debian package postfix)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (Postfix needs it for its own instance)" >&2; exit 1; }
# 10,000 idle sessions need as many descriptors in Postern and in the client holding them:
# raise the limit as far as allowed (a container may cap the hard limit).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if $full && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle + 100)) ]; then
    echo "bench: $idle idle sessions need a file limit above $((idle + 100)); ulimit -n allows $(ulimit -n)" >&2
    exit 1
fi

cargo build --release --quiet
postern=$PWD/target/release/postern

work=$(mktemp -d /tmp/postern-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -d "$work/postfix" ] && postfix -c "$work/postfix" stop >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "bench: nothing on port $1" >&2; exit 1; }
now() { date +%s.%N; }
lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
commas() { python3 -c "print(f'{int($1):,}')"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at start: $(load)" >&2

# The sink: accepts everything, keeps nothing.
sink_port=$(free_port)
smtp-sink -u postfix "127.0.0.1:$sink_port" 1000 &
pids+=($!)
wait_port "$sink_port"

# Postfix, as its own instance relaying everything to the sink.
pf=$work/postfix
pf_port=$(free_port)
mkdir -p "$pf/queue" "$pf/data"
chown postfix "$pf/data"
cat > "$pf/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sink_port
smtp_tls_security_level = none
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
message_size_limit = 26214400
CONF
sed -e '/^smtp *inet/d' -e '/^#/d' -e '/^postlog/d' /etc/postfix/master.cf.proto > "$pf/master.cf"
cat >> "$pf/master.cf" <<CONF
127.0.0.1:$pf_port inet n - n - - smtpd
postlog unix-dgram n - n - 1 postlogd
CONF
sed -i 's/^\([a-z]* *[a-z-]* *[n-] *[n-] *\)y/\1n/' "$pf/master.cf"   # chroot off
postfix -c "$pf" check
postfix -c "$pf" start >/dev/null
wait_port "$pf_port"
pf_version=$(postconf -c "$pf" -h mail_version | cut -d. -f1-2)

# Postern, same job: 127.0.0.1 is trusted, everything goes to the sink.
pt=$work/postern
pt_port=$(free_port)
write_postern_config() { # DIR PORT METRICS_PORT
    mkdir -p "$1"
    cat > "$1/postern.toml" <<CONF
hostname = "postern.bench.test"
data_dir = "data"
[smtp]
listen = ["127.0.0.1:$2"]
submission = []
submissions = []
[metrics]
listen = "127.0.0.1:$3"
token = "bench-scrape-token-0123"
[log]
format = "json"
# One line per delivery, as Postfix writes its maillog: counted below to prove delivery.
level = "warn,postern_server::queue::scheduler=info"
CONF
}
metrics_port=$(free_port)
write_postern_config "$pt" "$pt_port" "$metrics_port"
"$postern" --config "$pt/postern.toml" transport set '*' "smtp:[127.0.0.1]:$sink_port" --tls none >/dev/null
if [ -n "${DKIM:-}" ]; then
    # smtp-source writes From: with its envelope sender: sign for that domain.
    "$postern" --config "$pt/postern.toml" domain add source.test >/dev/null
    "$postern" --config "$pt/postern.toml" dkim generate source.test --algorithm "$DKIM" --selector bench >/dev/null
    "$postern" --config "$pt/postern.toml" dkim activate source.test bench --force >/dev/null
fi
"$postern" --config "$pt/postern.toml" serve > "$pt/serve.log" 2>&1 &
postern_pid=$!
pids+=($postern_pid)
wait_port "$pt_port"

queue_empty_postfix() { [ -z "$(find "$pf/queue/incoming" "$pf/queue/active" "$pf/queue/deferred" "$pf/queue/maildrop" -type f 2>/dev/null | head -n1)" ]; }
queue_empty_postern() { [ "$("$postern" --config "$pt/postern.toml" queue list --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 0 ]; }

# Deliveries logged since line FROM of LOG that match PATTERN.
delivered_postern() { tail -n "+$(($2 + 1))" "$1" | grep '"status":"sent"' | grep -c -- "$3" || true; }
delivered_postfix() { tail -n "+$(($2 + 1))" "$1" | grep 'status=sent' | grep -c -- "$3" || true; }
failed_postern() { tail -n "+$(($2 + 1))" "$1" | grep '"status":' | grep -vc '"status":"sent"' || true; }
failed_postfix() { tail -n "+$(($2 + 1))" "$1" | grep -E 'status=(deferred|bounced)' -c || true; }

# run MTA PORT SESSIONS SIZE MESSAGES MODE: sends, waits for the queue to drain, checks the
# deliveries in the log, prints messages per second. MODE e2e stops the clock at an empty queue,
# ingest when the last message has been accepted.
run() {
    local mta=$1 port=$2 n=$3 size=$4 count=$5 mode=$6 start end log mark got bad relay
    if [ "$mta" = postern ]; then log=$pt/serve.log; else log=$pf/maillog; fi
    mark=$(lines "$log")
    start=$(now)
    smtp-source -s "$n" -l "$size" -m "$count" -f bench@source.test -t someone@sink.test "127.0.0.1:$port"
    if [ "$mode" = ingest ]; then end=$(now); fi
    until "queue_empty_$mta"; do sleep 0.1; done
    if [ "$mode" = e2e ]; then end=$(now); fi
    # Every message must show up once in the log as delivered where it should go.
    if [ "$mta" = postern ]; then
        if [ "$mode" = e2e ]; then relay="127.0.0.1:$sink_port"; else relay='"relay":"discard"'; fi
    else
        if [ "$mode" = e2e ]; then relay="relay=127.0.0.1\[127.0.0.1\]:$sink_port"; else relay='relay=none'; fi
    fi
    for _ in $(seq 1 50); do # Postfix's log daemon writes a moment later
        got=$("delivered_$mta" "$log" "$mark" "$relay")
        [ "$got" -ge "$count" ] && break
        sleep 0.1
    done
    bad=$("failed_$mta" "$log" "$mark")
    if [ "$got" != "$count" ] || [ "$bad" != 0 ]; then
        echo "bench: $mta, $mode, $n sessions, $size bytes: $got of $count messages delivered as expected, $bad failed" >&2
        tail -n "+$((mark + 1))" "$log" | grep -v -- "$relay" | tail -n 5 >&2
        exit 1
    fi
    python3 -c "print(f'{$count / ($end - $start):.0f}')"
}

human_size() { if [ "$1" -ge 1024 ]; then echo "$(($1 / 1024)) KB"; else echo "$1 B"; fi; }

# row LABEL SIZE SESSIONS MESSAGES MODE: one line of the table, Postern first.
row() {
    local label=$1 size=$2 n=$3 count=$4 mode=$5 pt_rate pf_rate ratio
    pt_rate=$(run postern "$pt_port" "$n" "$size" "$count" "$mode")
    pf_rate=$(run postfix "$pf_port" "$n" "$size" "$count" "$mode")
    ratio=$(python3 -c "print(f'{$pt_rate / $pf_rate:.1f}')")
    printf '| %s | %s | %s | %s | %s msg/s | %s msg/s | %sx |\n' "$label" "$(human_size "$size")" "$n" \
        "$(commas "$count")" "$(commas "$pt_rate")" "$(commas "$pf_rate")" "$ratio"
}

echo "| test | message | sessions | messages | Postern | Postfix $pf_version | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
if ! $full; then
    for n in "${sessions[@]}"; do row end-to-end "${SIZE:-2048}" "$n" "$messages" e2e; done
else
    big=$((messages / 5))
    for n in "${sessions[@]}"; do
        row end-to-end 2048 "$n" "$messages" e2e
        # Postfix's rate moves a lot between runs: measure the target case twice.
        if [ "$n" = 50 ]; then row end-to-end 2048 "$n" "$messages" e2e; fi
    done
    for n in "${sessions[@]}"; do row end-to-end 102400 "$n" "$big" e2e; done
    # Ingest-only: both deliver to discard from here on.
    "$postern" --config "$pt/postern.toml" transport set '*' discard >/dev/null
    postconf -c "$pf" -e default_transport=discard
    postfix -c "$pf" reload >/dev/null 2>&1
    sleep 3 # Postern applies the change within a second; Postfix restarts its daemons
    row "ingest-only (discard)" 2048 50 "$messages" ingest
    row "ingest-only (discard)" 102400 50 "$big" ingest
fi
echo
# The scrape taken after the runs must agree with the delivery log: every recipient logged as
# sent is counted as delivered, and a scrape without the token is refused.
scrape() { curl -fsS ${1:+-H "Authorization: Bearer $1"} "http://127.0.0.1:$metrics_port/metrics"; }
if scrape >/dev/null 2>&1; then echo "bench: a scrape without the token was answered" >&2; exit 1; fi
counted=$(scrape bench-scrape-token-0123 | sed -n 's/^postern_recipients_delivery_total{result="delivered"} \([0-9]*\)$/\1/p')
logged=$(grep -c '"status":"sent"' "$pt/serve.log" || true)
echo "Metrics scraped after the runs: $(commas "${counted:-0}") recipients delivered; the delivery log: $(commas "$logged")."
[ "${counted:-0}" = "$logged" ] || { echo "bench: the scrape ($counted) and the delivery log ($logged) disagree" >&2; exit 1; }
peak=$(awk '/VmHWM/ {print $2}' "/proc/$postern_pid/status")
echo "Postern's peak memory (VmHWM) over these runs: $(commas $((peak / 1024))) MB. Load average at the end: $(load)."

if $full; then
    # A fresh Postern, so that the heap left over from the runs above does not hide the cost.
    kill "$postern_pid"
    idle_dir=$work/postern-idle
    idle_port=$(free_port)
    write_postern_config "$idle_dir" "$idle_port" "$(free_port)"
    "$postern" --config "$idle_dir/postern.toml" serve > "$idle_dir/serve.log" 2>&1 &
    idle_pid=$!
    pids+=($idle_pid)
    wait_port "$idle_port"
    sleep 1
    result=$(python3 bench/idle_connections.py --port "$idle_port" --pid "$idle_pid" --count "$idle")
    echo "bench: idle sessions: $result" >&2
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" <<< "$result" | head -n1; }
    echo
    echo "| idle SMTP sessions (after EHLO) | held | Postern RSS before | RSS with them | per session |"
    echo "| --- | --- | --- | --- | --- |"
    printf '| %s | %s | %s KB | %s KB | %s KB |\n' "$(commas "$idle")" "$(commas "$(field alive)")" \
        "$(commas "$(field rss_before_kb)")" "$(commas "$(field rss_after_kb)")" "$(field kb_per_connection)"
    if [ "$(field alive)" != "$idle" ]; then
        echo "bench: only $(field alive) of $idle idle sessions held: $result" >&2
    fi
fi
