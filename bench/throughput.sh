#!/usr/bin/env bash
# End-to-end throughput, Postern against Postfix on this machine, in one run.
#
# For each session count, Postfix's smtp-source sends 2 KB messages over loopback to each MTA,
# which relays them (trusted network, smarthost transport) to one smtp-sink. The clock runs
# from the first connection until the MTA's queue is empty again, so it covers receiving
# (durable before 250: Postfix fsyncs its queue file, Postern commits with SQLite
# synchronous=FULL) and delivering. Prints messages per second for both, their ratio, and
# Postern's peak memory (VmHWM).
#
# Usage: bench/throughput.sh [MESSAGES] [SESSIONS...]   (default: 5000 messages, 20 and 50)
# Needs: root (Postfix runs its own instance), the Debian package postfix, a release build
# (built here). Sends nothing beyond 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

messages=${1:-5000}
shift || true
sessions=("$@")
[ ${#sessions[@]} -gt 0 ] || sessions=(20 50)
size=2048

for tool in smtp-source smtp-sink postfix; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (Debian package postfix)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (Postfix needs it for its own instance)" >&2; exit 1; }

cargo build --release --quiet
postern=$PWD/target/release/postern

work=$(mktemp -d /tmp/postern-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -d "$work/postfix" ] && postfix -c "$work/postfix" stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "bench: nothing on port $1" >&2; exit 1; }
now() { date +%s.%N; }

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

# Postern, same job: 127.0.0.1 is trusted, everything goes to the sink.
pt=$work/postern
pt_port=$(free_port)
mkdir -p "$pt"
cat > "$pt/postern.toml" <<CONF
hostname = "postern.bench.test"
data_dir = "data"
[smtp]
listen = ["127.0.0.1:$pt_port"]
submission = []
submissions = []
[log]
format = "json"
# One line per delivery, as Postfix writes its maillog: counted below to prove delivery.
level = "warn,postern_server::queue::scheduler=info"
CONF
"$postern" --config "$pt/postern.toml" transport set '*' "smtp:[127.0.0.1]:$sink_port" --tls none >/dev/null
"$postern" --config "$pt/postern.toml" serve > "$pt/serve.log" 2>&1 &
postern_pid=$!
pids+=($postern_pid)
wait_port "$pt_port"

queue_empty_postfix() { [ -z "$(find "$pf/queue/incoming" "$pf/queue/active" "$pf/queue/deferred" "$pf/queue/maildrop" -type f 2>/dev/null | head -n1)" ]; }
queue_empty_postern() { [ "$("$postern" --config "$pt/postern.toml" queue list --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 0 ]; }

# Runs smtp-source against PORT and waits for the queue to drain; prints messages per second.
run() {
    local port=$1 n=$2 empty=$3 start end
    start=$(now)
    smtp-source -s "$n" -l "$size" -m "$messages" -f bench@source.test -t someone@sink.test "127.0.0.1:$port"
    until $empty; do sleep 0.2; done
    end=$(now)
    python3 -c "print(f'{$messages / ($end - $start):.0f}')"
}

printf '%-9s %10s %10s %7s\n' sessions postern postfix ratio
for n in "${sessions[@]}"; do
    pt_rate=$(run "$pt_port" "$n" queue_empty_postern)
    pf_rate=$(run "$pf_port" "$n" queue_empty_postfix)
    ratio=$(python3 -c "print(f'{$pt_rate / $pf_rate:.2f}')")
    printf '%-9s %10s %10s %7s\n' "$n" "$pt_rate/s" "$pf_rate/s" "${ratio}x"
done
peak=$(awk '/VmHWM/ {print $2, $3}' "/proc/$postern_pid/status")
echo "postern peak memory (VmHWM): $peak"
# An empty queue also follows bounces: say how many messages were really delivered.
sent=$(grep -c '"status":"sent"' "$pt/serve.log" || true)
other=$(grep '"status":' "$pt/serve.log" | grep -vc '"status":"sent"' || true)
echo "postern deliveries: $sent sent to the sink, $other not sent (of $((messages * ${#sessions[@]})) messages)"
[ "$other" = 0 ] || { grep '"status":' "$pt/serve.log" | grep -v '"status":"sent"' | head -5; exit 1; }
