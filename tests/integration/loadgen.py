"""A fixed-rate load generator, run as its own process by the serving tests.

    python loadgen.py URL BODY_FILE RATE SECONDS OUT_FILE

Sends POST requests at RATE a second for SECONDS and writes one JSON line per request:
the wall-clock time it was due, its status (-1 for a connection error) and the version
the response named.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def _one(client: httpx.AsyncClient, url: str, body: bytes, due: float, out: list) -> None:
    try:
        response = await client.post(
            url, content=body, headers={"content-type": "application/json"}
        )
        version = response.json().get("version") if response.status_code == 200 else None
        out.append({"due": due, "status": response.status_code, "version": version})
    except httpx.HTTPError as exc:
        out.append({"due": due, "status": -1, "version": None, "error": repr(exc)})


async def _run(url: str, body: bytes, rate: float, seconds: float) -> list[dict]:
    results: list[dict] = []
    # Idle connections are dropped by the client before the server's keep-alive timeout
    # (uvicorn: 5 s) can close them under a request in flight.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        tasks = []
        started = time.time()
        for index in range(int(rate * seconds)):
            due = started + index / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            tasks.append(asyncio.create_task(_one(client, url, body, due, results)))
        await asyncio.gather(*tasks)
    return results


def main() -> None:
    url, body_file, rate, seconds, out_file = sys.argv[1:6]
    with open(body_file, "rb") as handle:
        body = handle.read()
    results = asyncio.run(_run(url, body, float(rate), float(seconds)))
    with open(out_file, "w") as handle:
        for result in results:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
