"""A fixed-rate (open-loop) HTTP load generator, for benchmarks/serving.py.

Requests are scheduled at a constant rate whatever the server does. Each latency runs
from the request's scheduled send time to the end of its response, so a server that
stalls is charged for every request that should have gone out meanwhile, not only for
the one it held up (no coordinated omission). A pool of keep-alive connections sends
them; a request that finds every connection busy waits, and that wait counts too.

    python benchmarks/_load.py --url http://127.0.0.1:3000/score --body body.json \\
        --rate 500 --seconds 15

Prints one JSON line: requests scheduled and completed, errors, the achieved rate,
latency percentiles in ms, and how late the generator itself sent (its own lag).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

START_DELAY = 0.2  # seconds for the connections to open before the first send
DRAIN_SECONDS = 30.0  # how long requests still queued at the end may take


@dataclass
class Tally:
    """What happened to the scheduled requests."""

    latencies: list[float] = field(default_factory=list)  # seconds, from scheduled time
    lags: list[float] = field(default_factory=list)  # seconds the generator ran late
    errors: Counter[str] = field(default_factory=Counter)


def request_bytes(url: str, body: bytes) -> bytes:
    """One HTTP/1.1 keep-alive POST of ``body`` as JSON to ``url``."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    head = (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep = value != b"close"
    if chunked:
        await _read_chunks(reader)
    elif length:
        await reader.readexactly(length)
    return status, keep


async def _read_chunks(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)


async def _sender(
    url: str, request: bytes, queue: asyncio.Queue[float | None], tally: Tally
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    while (scheduled := await queue.get()) is not None:
        try:
            writer.write(request)
            status, keep = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            tally.errors[type(exc).__name__] += 1
            keep = False
        else:
            if status == 200:
                tally.latencies.append(time.perf_counter() - scheduled)
            else:
                tally.errors[f"HTTP {status}"] += 1
        if not keep:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()


async def generate(
    url: str, body: bytes, rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """Send ``rate`` requests a second for ``seconds``; return the figures."""
    tally = Tally()
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    request = request_bytes(url, body)
    coroutines = [_sender(url, request, queue, tally) for _ in range(connections)]
    senders = [asyncio.create_task(coroutine) for coroutine in coroutines]

    # The schedule: request i is due at start + i / rate, however the server is doing.
    total = round(rate * seconds)
    start = time.perf_counter() + START_DELAY
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.lags.append(time.perf_counter() - due)
        queue.put_nowait(due)
    for _ in senders:
        queue.put_nowait(None)

    # Let the queue drain; what is still unanswered after that counts as an error.
    done, pending = await asyncio.wait(senders, timeout=DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            tally.errors[type(task.exception()).__name__] += 1
    elapsed = time.perf_counter() - start
    unanswered = total - len(tally.latencies) - sum(tally.errors.values())
    if unanswered > 0:
        tally.errors["unanswered"] += unanswered
    return summary(tally, total, elapsed, rate)


def summary(tally: Tally, total: int, elapsed: float, rate: float) -> dict[str, Any]:
    latencies = sorted(tally.latencies)
    lags = sorted(tally.lags)
    return {
        "target_rate": rate,
        "scheduled": total,
        "completed": len(latencies),
        "errors": dict(tally.errors),
        "achieved_rate": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "p999_ms": percentile(latencies, 99.9) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "generator_lag_p99_ms": percentile(lags, 99) * 1000,
    }


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN when empty)."""
    if not ordered:
        return float("nan")
    rank = math.ceil(share / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="where to POST")
    parser.add_argument("--body", required=True, type=Path, help="file with the JSON body")
    parser.add_argument("--rate", required=True, type=float, help="requests per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.rate <= 0:
        parser.error(f"--rate must be above 0, got {args.rate}")

    work = generate(args.url, args.body.read_bytes(), args.rate, args.seconds, args.connections)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
