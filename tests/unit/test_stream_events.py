"""What the stream job does to one event, without Flink: parse, dead letters, scoring."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workbench.features import CARD_FRAUD
from workbench.settings import Settings
from workbench.stream import checkpoints
from workbench.stream.events import (
    MAX_EVENT_BYTES,
    ModelRefused,
    Rejected,
    ScoringClient,
    dead_letter,
    parse,
    score_record,
)

GOOD = {
    "card_id": "card-1",
    "event_id": "e1",
    "event_time": "2026-01-01T10:00:00",
    "amount": 12.5,
    "currency": "EUR",
    "merchant_id": "m1",
    "mcc": "5411",
    "country": "FR",
    "channel": "pos",
}


def _bytes(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_a_good_event_parses_to_the_definitions_inputs() -> None:
    event, checked = parse(_bytes(account_id="a1"), CARD_FRAUD)

    assert event["account_id"] == "a1"  # kept for the score record
    assert set(checked) == set(CARD_FRAUD.inputs)
    assert checked["event_time"] == 1_767_261_600_000_000_000


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty message"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "amount"}).encode(), "'amount'"),
        (_bytes(amount="12"), "'amount' should be a finite number"),
        (b'{"amount": NaN}', "missing fields"),
        (_bytes(amount=float("nan")), "'amount' should be a finite number"),
        (_bytes(amount=float("inf")), "'amount' should be a finite number"),
        (_bytes(amount=-0.01), "'amount' should be within"),
        (_bytes(currency="XTS"), "'currency' should be one of"),
        (_bytes(channel="fax"), "'channel' should be one of"),
        (_bytes(event_time="yesterday"), "'event_time' should be a datetime"),
        (_bytes(note="x" * MAX_EVENT_BYTES), "oversized"),
    ],
)
def test_a_bad_event_is_rejected_with_a_reason_naming_the_problem(
    value: bytes | None, reason: str
) -> None:
    with pytest.raises(Rejected, match=reason.replace("(", r"\(")):
        parse(value, CARD_FRAUD)


def test_a_dead_letter_keeps_the_original_bytes_and_where_they_came_from() -> None:
    original = b"\xff\xfe not utf-8"

    record = json.loads(
        dead_letter("not JSON", original, topic="t", partition=2, offset=41, timestamp=5)
    )

    assert base64.b64decode(record["original"]) == original
    assert "original_text" not in record
    assert (record["source_partition"], record["source_offset"]) == (2, 41)
    assert record["reason"] == "not JSON"


def test_a_score_record_carries_ids_score_version_features_and_times() -> None:
    event, checked = parse(_bytes(), CARD_FRAUD)
    result = {"score": 0.25, "model": "m", "version": "3", "reasons": [{"feature": "amount"}]}

    record = json.loads(
        score_record(
            event,
            checked,
            {"amount": 12.5},
            result,
            key="card_id",
            published_ms=1,
            processed_ms=2,
            scored_ms=3,
        )
    )

    assert (record["event_id"], record["card_id"]) == ("e1", "card-1")
    assert (record["score"], record["model"], record["version"]) == (0.25, "m", "3")
    assert record["features"] == {"amount": 12.5}
    assert record["event_time"] == "2026-01-01T10:00:00.000000"
    assert (record["published_time"], record["processed_time"], record["scored_time"]) == (1, 2, 3)


def test_the_latest_complete_checkpoint_is_the_one_to_resume_from(tmp_path: Path) -> None:
    current = Settings(home=tmp_path)
    assert checkpoints.latest(current) is None
    old = checkpoints.folder(current) / "job-a" / "chk-7"
    new = checkpoints.folder(current) / "job-b" / "chk-2"
    partial = checkpoints.folder(current) / "job-b" / "chk-3"  # no _metadata: in progress
    for folder in (old, new, partial):
        folder.mkdir(parents=True)
    (old / "_metadata").write_text("x")
    (new / "_metadata").write_text("x")
    os.utime(old / "_metadata", (1, 1))
    os.utime(old, (1, 1))

    assert checkpoints.latest(current) == str(new)


class _Service:
    """A scoring endpoint on loopback that fails its first ``failures`` requests."""

    def __init__(self, failures: int, status: int = 503) -> None:
        self.failures, self.status, self.batches = failures, status, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if owner.failures > 0:
                    owner.failures -= 1
                    self.send_response(owner.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "no"}')
                    return
                owner.batches.append(len(body))
                results = [{"score": row["x"] / 10, "model": "m", "version": "1"} for row in body]
                payload = json.dumps({"results": results}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def service() -> Iterator[_Service]:
    running = _Service(failures=3)
    yield running
    running.server.shutdown()


def test_rows_arriving_together_are_scored_in_batches_each_getting_its_own_result(
    service: _Service,
) -> None:
    client = ScoringClient(service.url, batch_size=16, max_backoff=0.1)

    async def run() -> list[dict]:
        return await asyncio.gather(*(client.score({"x": i}) for i in range(40)))

    results = asyncio.run(run())
    client.close()

    assert [r["score"] for r in results] == [i / 10 for i in range(40)]
    assert max(service.batches) <= 16
    assert sum(service.batches) == 40
    assert client.retries == 3  # the service's three 503s were retried, nothing lost


def test_a_refusal_by_the_service_fails_the_batch_without_retrying() -> None:
    refusing = _Service(failures=1, status=422)
    client = ScoringClient(refusing.url, wait_ms=1)
    try:
        with pytest.raises(ModelRefused, match="refused the features"):
            asyncio.run(client.score({"x": 1}))
    finally:
        client.close()
        refusing.server.shutdown()
    assert client.retries == 0
