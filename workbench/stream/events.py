"""What the streaming job does to one event, in plain Python.

The Flink job (:mod:`workbench.stream.job`) is a thin shell around these functions, so
they are tested without Flink and run the same way in the job's Python workers:

- :func:`parse` turns a Kafka message into a checked event or raises :class:`Rejected`
  with the reason the event goes to the dead-letter topic;
- :func:`dead_letter` is the dead-letter record: the reason, where the message came from
  and its original bytes;
- :func:`score_record` is what lands in ``scores``;
- :class:`ScoringClient` scores events through the serving service in micro-batches,
  with a timeout, retries with backoff and a bound on requests in flight.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from workbench.errors import DataError
from workbench.features import FeatureDefinition

try:
    import orjson

    _loads = orjson.loads
    _dumps: Callable[[Any], bytes] = orjson.dumps
    _DecodeError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is in the lab and flink extras
    import json

    _loads = json.loads  # type: ignore[assignment]

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()

    _DecodeError = json.JSONDecodeError

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
"""An event larger than this is rejected without being parsed."""


class Rejected(Exception):
    """An event the job cannot use; the message is the dead-letter reason."""


def parse(value: bytes | None, definition: FeatureDefinition) -> tuple[dict, dict]:
    """The event as sent and as checked by ``definition``; raises :class:`Rejected`.

    The checked event holds exactly the definition's inputs (timestamps as int
    nanoseconds); the sent one keeps every field, for the score record.
    """
    if value is None:
        raise Rejected("empty message (no value)")
    if len(value) > MAX_EVENT_BYTES:
        raise Rejected(f"oversized: {len(value)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        event = _loads(value)
    except (_DecodeError, UnicodeDecodeError) as error:
        event = _lenient(value, error)
    if not isinstance(event, dict):
        raise Rejected(f"not a JSON object: got {type(event).__name__}")
    try:
        checked = definition._checked_event(event)
    except DataError as error:
        raise Rejected(str(error)) from None
    return event, checked


def _lenient(value: bytes, error: Exception) -> Any:
    # Strict JSON has no NaN or Infinity, but many producers write them; read them so
    # the reason names the field ("'amount' should be a finite number").
    import json

    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(f"not JSON: {error}") from None


def dead_letter(
    reason: str, value: bytes | None, *, topic: str, partition: int, offset: int, timestamp: int
) -> bytes:
    """The dead-letter record of a rejected message, as JSON bytes.

    ``original`` holds the message's bytes in base64 (exact, whatever they were);
    ``original_text`` the same bytes as text when they are UTF-8, for reading.
    """
    record: dict[str, Any] = {
        "reason": reason,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_timestamp": timestamp,
        "rejected_time": _now_ms(),
        "original": base64.b64encode(value or b"").decode("ascii"),
    }
    if value is not None:
        with contextlib.suppress(UnicodeDecodeError):
            record["original_text"] = value.decode("utf-8")
    return _dumps(record)


def features_request(features: Mapping[str, Any], outputs: Mapping[str, str]) -> dict:
    """The features as the serving endpoint takes them (JSON numbers, strings)."""
    return {
        name: (float(features[name]) if kind == "float" else features[name])
        for name, kind in outputs.items()
    }


def score_record(
    event: Mapping[str, Any],
    checked: Mapping[str, Any],
    features: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    key: str,
    published_ms: int,
    processed_ms: int,
    scored_ms: int,
) -> bytes:
    """What the job writes to ``scores`` for one event."""
    return _dumps(
        {
            "event_id": event.get("event_id"),
            key: event.get(key),
            "score": result["score"],
            "model": result["model"],
            "version": result["version"],
            "reasons": result.get("reasons", []),
            "features": dict(features),
            "event_time": _iso(checked.get("event_time")),
            "published_time": published_ms,
            "processed_time": processed_ms,
            "scored_time": scored_ms,
        }
    )


def _iso(nanoseconds: Any) -> Any:
    if not isinstance(nanoseconds, int):
        return nanoseconds
    seconds, rest = divmod(nanoseconds, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ModelRefused(Exception):
    """The service answered 4xx for features the job built: the model cannot take them."""


@dataclass
class _Pending:
    features: dict
    future: asyncio.Future[dict]


class ScoringClient:
    """Scores feature rows through ``{url}/score`` in micro-batches.

    Rows that arrive while a request is being prepared go into the same request (up
    to ``batch_size``, waiting at most ``wait_ms`` for company). At most
    ``max_in_flight`` requests run at once. A request that fails to connect, times
    out after ``timeout`` seconds or gets a 5xx is retried with exponential backoff
    (up to ``max_backoff`` seconds between tries) until it succeeds: while the
    service is down the rows wait, and none is lost. A 4xx means the model cannot
    take these features; the rows of that batch fail with :class:`ModelRefused`.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 64,
        wait_ms: float = 2.0,
        max_in_flight: int = 4,
        timeout: float = 2.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/") + "/score"
        self.batch_size = batch_size
        self.wait = wait_ms / 1000
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._queue: list[_Pending] = []
        self._flusher: asyncio.TimerHandle | None = None
        self._slots: asyncio.Semaphore | None = None
        self._max_in_flight = max_in_flight
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="score")
        self._local = threading.local()  # a requests session per pool thread
        self.retries = 0

    async def score(self, features: dict) -> dict:
        """The service's result for one row of features: score, model, version, reasons."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict] = loop.create_future()
        self._queue.append(_Pending(features, future))
        if len(self._queue) >= self.batch_size:
            self._flush()
        elif self._flusher is None:
            self._flusher = loop.call_later(self.wait, self._flush)
        return await future

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _flush(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        while self._queue:
            batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[_Pending]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_in_flight)
        body = _dumps([pending.features for pending in batch])
        delay = 0.05
        async with self._slots:
            while True:
                try:
                    results = await asyncio.get_running_loop().run_in_executor(
                        self._pool, self._post, body
                    )
                    break
                except ModelRefused as refused:
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(refused)
                    return
                except Exception as error:  # down, timed out, 5xx: wait and try again
                    self.retries += 1
                    log.warning("scoring failed (%s); retrying in %.2f s", error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    def _post(self, body: bytes) -> list[dict]:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        response = session.post(
            self.url,
            data=body,
            headers={"content-type": "application/json"},
            timeout=self.timeout,
        )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise ModelRefused(f"the service refused the features: {response.text[:500]}")
        response.raise_for_status()
        results: list[dict] = response.json()["results"]
        return results
