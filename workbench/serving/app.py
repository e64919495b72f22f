"""The scoring API: a small ASGI app on the hot path, hosted by the BentoML service.

``POST /score`` takes a JSON array of records (or ``{"records": [...]}``) and answers one
result per record: score, model name and version, and the top reasons. Concurrent
requests are scored together: while one batch is being scored the next ones queue, and
the queue is taken as one batch, so batches grow with load and add no wait when idle.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workbench.serving.holder import ModelHolder
from workbench.serving.scorer import Scorer, validate

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

    _loads = orjson.loads
    _DecodeError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is in the lab extra
    import json

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()

    _loads = json.loads  # type: ignore[assignment]
    _DecodeError = json.JSONDecodeError

log = logging.getLogger(__name__)

# Batches of at least this many rows are scored off the event loop.
_THREAD_FROM = 128


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(body), status, headers=headers, media_type="application/json")


def _error(status: int, message: str, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


# A queued request: its model version, records, whether to give reasons, its answer.
_Queued = tuple[Scorer, list[dict], bool, "asyncio.Future[list[dict]]"]


class Batcher:
    """Scores queued requests together, each on the model version it started with."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._queue: deque[_Queued] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def score(self, scorer: Scorer, records: list[dict], reasons: bool) -> list[dict]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[list[dict]] = asyncio.get_running_loop().create_future()
        self._queue.append((scorer, records, reasons, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                if sum(len(items) for _, items, _, _ in batch) < _THREAD_FROM:
                    _deliver(batch, _score(batch))
                    # Let waiting requests enqueue before the next batch is taken.
                    await asyncio.sleep(0)
                else:
                    # LightGBM and numpy let go of the GIL: a large batch is scored
                    # in a thread while this loop reads and checks the next requests.
                    _deliver(batch, await asyncio.to_thread(_score, batch))

    def _take(self) -> list[_Queued]:
        batch = [self._queue.popleft()]
        rows = len(batch[0][1])
        while self._queue and rows + len(self._queue[0][1]) <= self.max_rows:
            item = self._queue[0]
            if item[0] is not batch[0][0] or item[2] != batch[0][2]:
                break
            batch.append(self._queue.popleft())
            rows += len(item[1])
        return batch


def _score(batch: list[_Queued]) -> list[dict] | Exception:
    scorer, _, reasons, _ = batch[0]
    records = [record for _, items, _, _ in batch for record in items]
    try:
        return scorer.score(records, reasons=reasons)
    except Exception as exc:  # one bad batch must not stop the loop
        return exc


def _deliver(batch: list[_Queued], results: list[dict] | Exception) -> None:
    start = 0
    for _, items, _, future in batch:
        if future.done():  # the client went away
            pass
        elif isinstance(results, Exception):
            future.set_exception(results)
        else:
            future.set_result(results[start : start + len(items)])
        start += len(items)


class Latency:
    """Recent request latencies, for the status the panel and `wb status` show."""

    def __init__(self, size: int = 2000) -> None:
        self._seconds: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._seconds.append(seconds)

    def summary(self) -> dict[str, float | int]:
        if not self._seconds:
            return {"requests": 0}
        values = np.fromiter(self._seconds, dtype=float) * 1000
        return {
            "requests": len(values),
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3),
        }


def create_app(
    holder: ModelHolder,
    *,
    admin_token: str,
    max_records: int,
    max_body_bytes: int,
    observe: Callable[[Scorer, int, float], None] | None = None,
) -> Starlette:
    """The ASGI app serving ``holder``'s current model.

    ``observe(scorer, records, seconds)`` is called after each scored request, for the
    host's metrics.
    """
    batcher = Batcher(max_rows=max(max_records, 256))
    latency = Latency()

    async def score(request: Request) -> Response:
        started = time.perf_counter()
        scorer = holder.current
        if scorer is None:
            return _error(503, f"model {holder.name!r} is still loading; retry shortly")
        body = await _read_body(request, max_body_bytes)
        if isinstance(body, Response):
            return body
        records = _records(body, max_records)
        if isinstance(records, Response):
            return records
        problems = validate(records, scorer.fields)
        if problems:
            named = (f"record {p.record} field {p.field!r}: {p.error}" for p in problems[:10])
            return _error(
                422,
                "records do not match the model's inputs: " + "; ".join(named),
                problems=[p.to_dict() for p in problems[:100]],
            )
        reasons = request.query_params.get("reasons", "true").lower() != "false"
        results = await batcher.score(scorer, records, reasons)
        seconds = time.perf_counter() - started
        latency.add(seconds)
        if observe is not None:
            observe(scorer, len(records), seconds)
        return _json(
            {"model": scorer.name, "version": scorer.version, "results": results},
            headers={"x-model-version": scorer.version},
        )

    async def model(request: Request) -> Response:
        return _json({**holder.describe(), "latency": latency.summary()})

    async def reload(request: Request) -> Response:
        supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not supplied or not hmac.compare_digest(supplied, admin_token):
            return _error(401, "admin calls need 'Authorization: Bearer <WORKBENCH_ADMIN_TOKEN>'")
        version = await asyncio.to_thread(holder.refresh)
        return _json({**holder.describe(), "version": version})

    routes = [
        Route("/score", score, methods=["POST"]),
        Route("/model", model, methods=["GET"]),
        Route("/admin/reload", reload, methods=["POST"]),
    ]
    return Starlette(routes=routes)


async def _read_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            return _error(413, f"request body of {declared} bytes is over the limit of {limit}")
        body = await request.body()
    else:
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _error(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    try:
        return _loads(body)
    except (_DecodeError, UnicodeDecodeError, ValueError) as exc:
        return _error(400, f"the body is not valid JSON: {exc}")


def _records(body: Any, limit: int) -> list[Any] | Response:
    records = body.get("records") if isinstance(body, dict) else body
    if not isinstance(records, list):
        return _error(
            422,
            "expected a JSON array of records, or an object with a 'records' array",
            problems=[{"record": None, "field": "records", "error": "expected an array"}],
        )
    if not records:
        return _error(422, "no records to score", problems=[])
    if len(records) > limit:
        return _error(
            413, f"{len(records)} records is over the limit of {limit} per request; split it"
        )
    return records
