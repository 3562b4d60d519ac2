#!/usr/bin/env python3
"""Holds many idle SMTP sessions open and reports what they cost the server in memory.

Each connection reads the greeting, sends EHLO and reads the whole reply, so that every session
is fully alive, and then stays silent. The server's resident memory (VmRSS in
/proc/PID/status) is read before the first connection and once all of them are established;
the difference divided by the number of live sessions is the cost of one idle session.

Usage: idle_connections.py --port PORT --pid PID [--count 10000] [--hold SECONDS]
Prints one line of key=value pairs. Needs a file limit above COUNT (ulimit -n).
"""

import argparse
import asyncio
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def read_reply(reader):
    """Reads one SMTP reply (all its lines); returns its code, or None if the peer closed."""
    while True:
        line = await reader.readline()
        if not line:
            return None
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3].decode(errors="replace")


async def open_session(host, port, sessions, failures, timeout):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        failures.append(f"connect: {type(e).__name__}: {e}")
        return
    try:
        greeting = await asyncio.wait_for(read_reply(reader), timeout)
        if greeting != "220":
            failures.append(f"greeting: {greeting}")
            writer.close()
            return
        writer.write(b"EHLO idle.bench.test\r\n")
        ehlo = await asyncio.wait_for(read_reply(reader), timeout)
        if ehlo != "250":
            failures.append(f"ehlo: {ehlo}")
            writer.close()
            return
    except (OSError, asyncio.TimeoutError) as e:
        failures.append(f"session: {type(e).__name__}: {e}")
        writer.close()
        return
    sessions.append((reader, writer))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process ID")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500, help="connections opened at once")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--hold", type=float, default=2.0, help="seconds to wait before reading RSS")
    args = parser.parse_args()

    before = rss_kb(args.pid)
    sessions, failures = [], []
    start = time.monotonic()
    for first in range(0, args.count, args.batch):
        n = min(args.batch, args.count - first)
        await asyncio.gather(
            *(open_session(args.host, args.port, sessions, failures, args.timeout) for _ in range(n))
        )
    opened = time.monotonic() - start
    # Let the server settle, then check that the sessions are still there: a server that
    # closes idle sessions early would otherwise look cheap.
    await asyncio.sleep(args.hold)
    after = rss_kb(args.pid)
    alive = sum(1 for reader, _ in sessions if not reader.at_eof())
    for _, writer in sessions:
        writer.close()
    per = (after - before) / alive if alive else float("nan")
    reasons = {}
    for f in failures:
        reasons[f] = reasons.get(f, 0) + 1
    first_reasons = "; ".join(f"{n}x {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])[:3])
    print(
        f"asked={args.count} established={len(sessions)} alive={alive} failed={len(failures)} "
        f"open_seconds={opened:.1f} rss_before_kb={before} rss_after_kb={after} "
        f"kb_per_connection={per:.1f}" + (f" failures=[{first_reasons}]" if failures else "")
    )


if __name__ == "__main__":
    asyncio.run(main())
