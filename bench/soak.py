"""Soak (issue 15): a `postern serve` under steady load for a while, watched for growth.

Clients send RATE messages a second over loopback (sizes mixed: 70 % 2 KB, 25 % 20 KB, 5 %
300 KB), relayed (trusted loopback) to a next hop that answers 451 to 10 % of the recipients,
so deferrals pile up and are retried; every 30 s an administrator acts on the queue (hold,
release, retry, flush). Every 10 s a row goes to the CSV: resident memory and open descriptors
of the server, messages in the queue, and the latency of the messages accepted since the last row
(median, 95th percentile, as the client sees it from connecting to the 250). At the end: an SVG
of the rows, and a verdict: growth fails the run.

Growth means, comparing the last third of the rows with the first third after the first minute
of warm-up: resident memory up by more than 50 % and 20 MB, descriptors up by more than 50, or a
queue that only grew (the last row above twice the first third's highest and above 100).
"""

import argparse
import asyncio
import csv
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from postern_serve import start_server, stop_server  # noqa: E402


class NextHop:
    """A next hop: 250 to everything but 10 % of the recipients, which get a 451."""

    def __init__(self, refuse=0.10):
        self.refuse = refuse
        self.accepted = 0
        self.deferred = 0

    async def handle(self, reader, writer):
        writer.write(b"220 hop.bench.test ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO", b"LHLO"):
                    writer.write(b"250-hop.bench.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == b"RCPT":
                    if random.random() < self.refuse:
                        self.deferred += 1
                        writer.write(b"451 4.3.0 try again later\r\n")
                    else:
                        writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    while True:
                        data = await reader.readline()
                        if not data or data == b".\r\n":
                            break
                    self.accepted += 1
                    writer.write(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        writer.close()


def body(size):
    line = b"x" * 76 + b"\r\n"
    lines = max(1, size // len(line))
    return b"Subject: soak\r\n\r\n" + line * lines


SIZES = [(0.70, 2_000), (0.25, 20_000), (0.05, 300_000)]


def pick_size():
    r = random.random()
    for share, size in SIZES:
        if r < share:
            return size
        r -= share
    return SIZES[-1][1]


async def expect(reader, code):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            if not line.startswith(code):
                raise RuntimeError(f"wanted {code!r}, got {line!r}")
            return


async def send_one(addr, latencies, failures):
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(*addr)
        await expect(reader, b"220")
        writer.write(b"EHLO soak.bench.test\r\n")
        await expect(reader, b"250")
        n = random.randint(1, 3)
        writer.write(b"MAIL FROM:<soak@source.test>\r\n")
        await expect(reader, b"250")
        for i in range(n):
            writer.write(f"RCPT TO:<user{i}@dest.test>\r\n".encode())
            await expect(reader, b"250")
        writer.write(b"DATA\r\n")
        await expect(reader, b"354")
        writer.write(body(pick_size()) + b".\r\n")
        await expect(reader, b"250")
        latencies.append(time.monotonic() - start)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        writer.close()
    except Exception as e:  # noqa: BLE001 - counted and shown, the soak goes on
        failures.append(str(e))


def cli(binary, work, *args):
    return subprocess.run(
        [binary, "--config", os.path.join(work, "postern.toml"), *args],
        cwd=work, capture_output=True, text=True, check=False,
    )


def queue_size(binary, work):
    out = cli(binary, work, "queue", "list", "--json", "--limit", "1")
    try:
        import json

        return json.loads(out.stdout)["total"]
    except Exception:  # noqa: BLE001
        return -1


def process_stats(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def queue_actions(binary, work, stop):
    """Every 30 s: hold the oldest message, release it, retry everything, flush."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 30)
            return
        except asyncio.TimeoutError:
            pass
        import json

        listed = await asyncio.to_thread(cli, binary, work, "queue", "list", "--json", "--limit", "5")
        try:
            ids = [m["id"] for m in json.loads(listed.stdout)["messages"]]
        except Exception:  # noqa: BLE001
            ids = []
        if ids:
            await asyncio.to_thread(cli, binary, work, "queue", "hold", ids[0])
            await asyncio.to_thread(cli, binary, work, "queue", "release", ids[0])
        await asyncio.to_thread(cli, binary, work, "queue", "retry", "--all")
        await asyncio.to_thread(cli, binary, work, "queue", "flush")


def svg(rows, path):
    """One small chart per measure, side by side, without any plotting library."""
    measures = ["rss_mb", "fds", "queue", "p95_ms"]
    width, height, pad = 300, 180, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(measures)}" '
             f'height="{height}" font-family="sans-serif" font-size="11">']
    for i, m in enumerate(measures):
        xs = [r["t"] for r in rows]
        ys = [float(r[m]) for r in rows]
        x0 = i * width
        top = max(ys + [1.0])
        span = max(xs[-1] - xs[0], 1) if xs else 1
        points = " ".join(
            f"{x0 + pad + (x - xs[0]) / span * (width - 2 * pad):.1f},"
            f"{height - pad - y / top * (height - 2 * pad):.1f}"
            for x, y in zip(xs, ys)
        )
        parts.append(f'<text x="{x0 + pad}" y="15">{m} (max {top:g})</text>')
        parts.append(f'<line x1="{x0 + pad}" y1="{height - pad}" x2="{x0 + width - pad}" '
                     f'y2="{height - pad}" stroke="#888"/>')
        parts.append(f'<polyline fill="none" stroke="#2a6" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{x0 + pad}" y="{height - 8}">0 to {span:.0f} s</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def verdict(rows, warmup):
    rows = [r for r in rows if r["t"] >= warmup]
    if len(rows) < 3:
        return ["too short to judge growth (run at least 2 minutes past the warm-up)"], True
    third = max(1, len(rows) // 3)
    first, last = rows[:third], rows[-third:]
    problems = []
    rss0, rss1 = max(r["rss_mb"] for r in first), max(r["rss_mb"] for r in last)
    if rss1 > rss0 * 1.5 and rss1 - rss0 > 20:
        problems.append(f"resident memory grew from {rss0:.1f} MB to {rss1:.1f} MB")
    fd0, fd1 = max(r["fds"] for r in first), max(r["fds"] for r in last)
    if fd1 > fd0 + 50:
        problems.append(f"open descriptors grew from {fd0} to {fd1}")
    q0, q1 = max(r["queue"] for r in first), rows[-1]["queue"]
    if q1 > 2 * q0 and q1 > 100:
        problems.append(f"the queue only grew: {q0} then {q1}")
    return problems, False


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default="target/release/postern")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=float, default=50, help="messages a second")
    p.add_argument("--out", default="soak")
    args = p.parse_args()
    binary = os.path.abspath(args.binary)

    hop = NextHop()
    hop_server = await asyncio.start_server(hop.handle, "127.0.0.1", 0)
    hop_port = hop_server.sockets[0].getsockname()[1]
    proc, addrs, work = start_server(binary, "postern-soak-", log_level="warn")
    try:
        cli(binary, work, "network", "add", "127.0.0.0/8")
        cli(binary, work, "transport", "set", "*", f"smtp:[127.0.0.1]:{hop_port}", "--tls", "none")
        time.sleep(1)
        addr = addrs["smtp"]
        stop = asyncio.Event()
        actions = asyncio.create_task(queue_actions(binary, work, stop))
        latencies, failures, rows, tasks = [], [], [], set()
        start = time.monotonic()
        next_row = start + 10
        end = start + args.minutes * 60
        sent = 0
        os.makedirs(args.out, exist_ok=True)
        csv_path = os.path.join(args.out, "soak.csv")
        with open(csv_path, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=["t", "rss_mb", "fds", "queue", "sent", "accepted",
                                                "failed", "p50_ms", "p95_ms", "hop_deferred"])
            out.writeheader()
            while time.monotonic() < end:
                now = time.monotonic()
                due = int((now - start) * args.rate)
                while sent < due:
                    t = asyncio.create_task(send_one(addr, latencies, failures))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                    sent += 1
                if now >= next_row:
                    next_row += 10
                    rss, fds = process_stats(proc.pid)
                    window, latencies[:] = list(latencies), []
                    row = {
                        "t": round(now - start),
                        "rss_mb": round(rss / 1e6, 1),
                        "fds": fds,
                        "queue": await asyncio.to_thread(queue_size, binary, work),
                        "sent": sent,
                        "accepted": len(window),
                        "failed": len(failures),
                        "p50_ms": round(statistics.median(window) * 1000, 1) if window else 0,
                        "p95_ms": round(statistics.quantiles(window, n=20)[-1] * 1000, 1)
                        if len(window) >= 2 else 0,
                        "hop_deferred": hop.deferred,
                    }
                    rows.append(row)
                    out.writerow(row)
                    f.flush()
                    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                await asyncio.sleep(0.01)
            stop.set()
            await actions
            if tasks:
                await asyncio.wait(tasks, timeout=30)
        svg(rows, os.path.join(args.out, "soak.svg"))
        problems, short = verdict(rows, warmup=60)
        if failures:
            print(f"{len(failures)} messages failed, e.g. {failures[:3]}")
        print(f"rows: {csv_path}, chart: {os.path.join(args.out, 'soak.svg')}")
        for problem in problems:
            print(("note: " if short else "GROWTH: ") + problem)
        if problems and not short:
            return 1
        if len(failures) > max(5, sent // 100):
            print("FAILED: more than 1 % of the messages were not accepted")
            return 1
        return 0
    finally:
        stop_server(proc, work)
        hop_server.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
