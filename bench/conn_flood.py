#!/usr/bin/env python3
"""Floods a real `postern serve` with connections and measures whether others are still served.

Scenarios (each on a fresh server, on loopback only, bounded in count and time):

  console      1,200 connections to the console from one address (127.0.0.2): half say
               nothing, half send half a request's headers and stop.
  console-spread  the same 1,200 from 40 addresses (127.0.1.1-40, 30 each: under the
               per-address cap), so that the overall cap is what stops them; then waits for
               the server to drop them (header and idle timeouts).
  smtp         520 connections to port 25 from one address (127.0.0.2), each reading its
               greeting and then saying nothing.

During each flood it reads the server's open descriptors (/proc/PID/fd), and times a new
console client (GET /login, until the status line) and a new SMTP client (until the 220
greeting), both from 127.0.0.3, five times each. The server runs with an open-file limit of
--nofile (1,024 by default: the usual soft limit, which the cap must keep the floods under).

Usage: conn_flood.py [--binary target/release/postern] [--runs 3] [--nofile 1024]
                     [--scenarios console,console-spread,smtp]
Prints one line per run and a summary with the range of each figure over the runs.
"""

import argparse
import asyncio
import json
import os
import resource
import time

from postern_serve import start_server, stop_server

CONSOLE_FLOOD = 1200
SMTP_FLOOD = 520
SAMPLES = 5


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def connect_from(source, addr, timeout=5):
    return await asyncio.wait_for(
        asyncio.open_connection(addr[0], addr[1], local_addr=(source, 0)), timeout
    )


async def first_bytes(reader, timeout):
    """What the server says within `timeout`: bytes, b"" if it closed (or reset: a refused
    client that had sent half a request sees the close as a reset), None if it said nothing."""
    try:
        return await asyncio.wait_for(reader.read(200), timeout)
    except ConnectionError:
        return b""
    except asyncio.TimeoutError:
        return None


async def console_client(addr):
    """Seconds until a new console client has its status line, and that line."""
    start = time.monotonic()
    reader, writer = await connect_from("127.0.0.3", addr)
    writer.write(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    line = await asyncio.wait_for(reader.readline(), 10)
    took = time.monotonic() - start
    writer.close()
    return took, line.decode(errors="replace").strip()


async def smtp_client(addr):
    """Seconds until a new SMTP client has its greeting, and the greeting."""
    start = time.monotonic()
    reader, writer = await connect_from("127.0.0.3", addr)
    line = await asyncio.wait_for(reader.readline(), 10)
    took = time.monotonic() - start
    writer.write(b"QUIT\r\n")
    writer.close()
    return took, line.decode(errors="replace").strip()


async def probe(addrs):
    """The slowest of SAMPLES new console and SMTP clients, with what they got."""
    console, smtp = [], []
    for _ in range(SAMPLES):
        console.append(await console_client(addrs["console"]))
        smtp.append(await smtp_client(addrs["smtp"]))
    return {
        "console_ms": round(max(t for t, _ in console) * 1000, 1),
        "console_reply": sorted({r for _, r in console}),
        "smtp_ms": round(max(t for t, _ in smtp) * 1000, 1),
        "smtp_reply": sorted({r[:9] for _, r in smtp}),
    }


async def flood_console(addrs, sources):
    """Opens CONSOLE_FLOOD connections spread over `sources`; half send half a request."""
    conns = []
    half = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    for i in range(CONSOLE_FLOOD):
        try:
            reader, writer = await connect_from(sources[i % len(sources)], addrs["console"])
        except (OSError, asyncio.TimeoutError):
            conns.append(None)
            continue
        if i % 2:
            writer.write(half)
        conns.append((reader, writer))
    # What each got: a 503 at once, or nothing (held by the server).
    said = await asyncio.gather(*(first_bytes(c[0], 2) for c in conns if c))
    refused = sum(1 for s in said if s and s.startswith(b"HTTP/1.1 503"))
    closed = sum(1 for s in said if s == b"")
    held = sum(1 for s in said if s is None)
    failed = conns.count(None)
    counts = {"opened": len(conns) - failed, "refused_503": refused, "refused_closed": closed}
    counts.update({"held": held, "connect_failed": failed})
    return conns, counts


async def flood_smtp(addrs):
    conns, greeted, refused, other = [], 0, 0, 0
    for _ in range(SMTP_FLOOD):
        try:
            reader, writer = await connect_from("127.0.0.2", addrs["smtp"])
        except (OSError, asyncio.TimeoutError):
            other += 1
            continue
        conns.append((reader, writer))
    said = await asyncio.gather(*(first_bytes(r, 5) for r, _ in conns))
    for s in said:
        if s and s.startswith(b"220"):
            greeted += 1
        elif s and s.startswith(b"421 4.7.0"):
            refused += 1
        else:
            other += 1
    return conns, {"opened": len(conns), "greeted_220": greeted, "refused_421": refused, "other": other}


async def wait_closed(conns, within):
    """Seconds until the server has closed every connection in `conns`, at most `within`."""
    start = time.monotonic()

    async def closed(reader):
        try:
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass

    live = [c for c in conns if c]
    try:
        await asyncio.wait_for(asyncio.gather(*(closed(r) for r, _ in live)), within)
    except asyncio.TimeoutError:
        return None
    return round(time.monotonic() - start, 1)


def close_all(conns):
    for c in conns:
        if c:
            c[1].close()


async def run_scenario(name, binary, nofile):
    proc, addrs, work = start_server(binary, "postern-flood-", nofile=nofile)
    try:
        baseline = descriptors(proc.pid)
        if name == "smtp":
            conns, counts = await flood_smtp(addrs)
        elif name == "console":
            conns, counts = await flood_console(addrs, ["127.0.0.2"])
        else:
            sources = [f"127.0.1.{i}" for i in range(1, 41)]
            conns, counts = await flood_console(addrs, sources)
        result = {"scenario": name, "fds_before": baseline, "fds_during": descriptors(proc.pid)}
        result.update(counts)
        result.update(await probe(addrs))
        if name == "console-spread":
            result["all_dropped_after_s"] = await wait_closed(conns, 45)
            result["fds_after"] = descriptors(proc.pid)
        close_all(conns)
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
                if values:
                    lo, hi = min(values), max(values)
                    parts.append(f"{key}={lo}" if lo == hi else f"{key}={lo}..{hi}")
        replies = sorted({x for r in runs for x in r["console_reply"]})
        greetings = sorted({x for r in runs for x in r["smtp_reply"]})
        lines.append(f"{name} ({len(runs)} runs): " + " ".join(parts) + f" console_reply={replies} smtp_reply={greetings}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/postern")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--scenarios", default="console,console-spread,smtp")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < CONSOLE_FLOOD + 200:
        raise SystemExit(f"this client needs an open-file limit above {CONSOLE_FLOOD + 200}")
    results = []
    for run in range(args.runs):
        for name in args.scenarios.split(","):
            result = asyncio.run(run_scenario(name, args.binary, args.nofile))
            result["run"] = run + 1
            print(json.dumps(result), flush=True)
            results.append(result)
    print(summary(results))


if __name__ == "__main__":
    main()
