#!/usr/bin/env python3
"""Floods a real `postern serve` with bad logins and bad SMTP AUTHs; measures its memory and
whether new clients are still served.

Scenarios (each on a fresh server with a temporary data directory, on loopback only, bounded in
count and time):

  console  200 concurrent workers, each from its own address (127.0.10-19.x), post a login
           form with an unknown name and a wrong password over a new connection, again and
           again for --seconds.
  smtp     200 concurrent workers, each from its own address, open a TLS session on the
           implicit-TLS submission port (465 style), EHLO, and send AUTH PLAIN with an unknown
           user and a wrong password, on a new session each time, for --seconds.

Unknown names from many addresses are the costly case: each is checked against a decoy hash at
full cost, and no per-account or per-address count slows them down; only the bound on checks at
once does. Memory is the server's resident set: idle before the flood (VmRSS), the peak over
the whole run (VmHWM, which the kernel keeps), and a second after the flood. During the flood a
new console client (GET /login, until its status line) and a new SMTP client (port 25, until
the 220 greeting) are timed, from 127.0.0.3, five times each, in a process of their own; the
slowest is reported.

Usage: auth_flood.py [--binary target/release/postern] [--runs 3] [--seconds 5]
                     [--scenarios console,smtp]
Prints one line per run and a summary with the range of each figure over the runs.
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import ssl
import time

from postern_serve import start_server, stop_server

WORKERS = 200
SAMPLES = 5


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def source(worker):
    """A loopback address of its own for each worker, 20 to a /24 (under SMTP's per-network
    session cap)."""
    return f"127.0.{10 + worker // 20}.{1 + worker % 20}"


async def connect_from(src, addr, tls=None, timeout=10):
    return await asyncio.wait_for(
        asyncio.open_connection(
            addr[0], addr[1], local_addr=(src, 0), ssl=tls,
            server_hostname="bench.example.test" if tls else None,
        ),
        timeout,
    )


async def console_login(addr, src, n):
    """One bad login on a new connection; the status code (0 if it failed)."""
    body = f"name=nobody{n}&password=wrong+password+{n}".encode()
    try:
        reader, writer = await connect_from(src, addr)
        writer.write(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        return int(line.split()[1])
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        return 0


async def smtp_reply(reader):
    """One whole reply's code and last line."""
    while True:
        line = await asyncio.wait_for(reader.readline(), 30)
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()


async def smtp_auth(addr, src, n, tls):
    """One bad AUTH PLAIN on a new implicit-TLS session; the reply's code and enhanced code."""
    plain = base64.b64encode(f"\0nobody{n}@bench.example.test\0wrong password {n}".encode())
    try:
        reader, writer = await connect_from(src, addr, tls)
        await smtp_reply(reader)
        writer.write(b"EHLO bench.client\r\n")
        await smtp_reply(reader)
        writer.write(b"AUTH PLAIN " + plain + b"\r\n")
        reply = await smtp_reply(reader)
        writer.write(b"QUIT\r\n")
        writer.close()
        return " ".join(reply.split()[:2])
    except (OSError, asyncio.TimeoutError, ConnectionError, ssl.SSLError):
        return "failed"


async def flood(kind, addrs, seconds):
    """WORKERS workers, each trying again and again until `seconds` have passed."""
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + seconds
    counts = {}

    async def worker(w):
        n = 0
        while time.monotonic() < deadline:
            if kind == "console":
                got = await console_login(addrs["console"], source(w), w * 100000 + n)
            else:
                got = await smtp_auth(addrs["submissions"], source(w), w * 100000 + n, tls)
            counts[got] = counts.get(got, 0) + 1
            n += 1

    await asyncio.gather(*(worker(w) for w in range(WORKERS)))
    return {str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}


async def console_client(addr):
    start = time.monotonic()
    reader, writer = await connect_from("127.0.0.3", addr)
    writer.write(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    line = await asyncio.wait_for(reader.readline(), 10)
    took = time.monotonic() - start
    writer.close()
    return took, line.decode(errors="replace").strip()


async def smtp_client(addr):
    start = time.monotonic()
    reader, writer = await connect_from("127.0.0.3", addr)
    line = await asyncio.wait_for(reader.readline(), 10)
    took = time.monotonic() - start
    writer.write(b"QUIT\r\n")
    writer.close()
    return took, line.decode(errors="replace").strip()


async def probe(addrs, delay):
    """Starts after `delay` (the flood under way); the slowest of SAMPLES new clients each."""
    await asyncio.sleep(delay)
    console, smtp = [], []
    for _ in range(SAMPLES):
        console.append(await console_client(addrs["console"]))
        smtp.append(await smtp_client(addrs["smtp"]))
        await asyncio.sleep(0.2)
    return {
        "console_ms": round(max(t for t, _ in console) * 1000, 1),
        "console_reply": sorted({r for _, r in console}),
        "smtp_ms": round(max(t for t, _ in smtp) * 1000, 1),
        "smtp_reply": sorted({r[:9] for _, r in smtp}),
    }


def probe_process(addrs, delay, out):
    """The probes in a process of their own, so that the flood's own event loop (busy with 200
    workers) does not delay them: what is timed is the server."""
    out.put(asyncio.run(probe(addrs, delay)))


async def sample_rss(pid, stop):
    """The highest VmRSS seen while `stop` is unset, polled every 10 ms (VmHWM covers the
    moments between polls)."""
    peak = 0
    while not stop.is_set():
        peak = max(peak, memory_kib(pid, "VmRSS"))
        await asyncio.sleep(0.01)
    return peak


async def run_scenario(name, binary, seconds):
    proc, addrs, work = start_server(
        binary, "postern-auth-flood-", submissions=True, log_level="error"
    )
    try:
        await asyncio.sleep(1)
        idle = memory_kib(proc.pid, "VmRSS")
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(proc.pid, stop))
        probed = multiprocessing.Queue()
        prober = multiprocessing.Process(
            target=probe_process, args=(addrs, min(1.0, seconds / 4), probed)
        )
        prober.start()
        counts = await flood(name, addrs, seconds)
        stop.set()
        polled = await sampler
        result = {"scenario": name, "idle_mb": round(idle / 1024, 1)}
        hwm = memory_kib(proc.pid, "VmHWM")
        result["peak_mb"] = round(max(hwm, polled) / 1024, 1)
        result["peak_above_idle_mb"] = round((max(hwm, polled) - idle) / 1024, 1)
        await asyncio.sleep(1)
        result["after_mb"] = round(memory_kib(proc.pid, "VmRSS") / 1024, 1)
        result["attempts"] = sum(counts.values())
        result["replies"] = counts
        result.update(probed.get(timeout=60))
        prober.join()
        return result
    finally:
        stop_server(proc, work)


def summary(results):
    by = {}
    for r in results:
        by.setdefault(r["scenario"], []).append(r)
    lines = []
    for name, runs in by.items():
        parts = []
        for key, value in runs[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values = [r[key] for r in runs if r.get(key) is not None]
                lo, hi = min(values), max(values)
                parts.append(f"{key}={lo}" if lo == hi else f"{key}={lo}..{hi}")
        replies = sorted({k for r in runs for k in r["replies"]})
        console = sorted({x for r in runs for x in r["console_reply"]})
        greetings = sorted({x for r in runs for x in r["smtp_reply"]})
        lines.append(
            f"{name} ({len(runs)} runs): " + " ".join(parts)
            + f" replies={replies} console_reply={console} smtp_reply={greetings}"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/postern")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--scenarios", default="console,smtp")
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        for name in args.scenarios.split(","):
            result = asyncio.run(run_scenario(name, args.binary, args.seconds))
            result["run"] = run + 1
            print(json.dumps(result), flush=True)
            results.append(result)
    print(summary(results))


if __name__ == "__main__":
    main()
