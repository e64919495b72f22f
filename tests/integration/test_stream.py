"""The PyFlink job on a real Flink mini cluster, real Kafka and a real BentoML service.

One job serves the whole module (a Flink start costs about half a minute). The
events go in three rounds: with poison of every kind, while the job's processes are
killed with SIGKILL, and while the scoring service is down for ten seconds. After
them: exactly one score per valid event, each the service's own score, and every
poison event in the dead-letter topic with its reason and source offset.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench import stack, stream
from workbench.serving import deployments
from workbench.settings import Settings
from workbench.stream.events import MAX_EVENT_BYTES

VALID = 20_000
ROUNDS = (8_000, 14_000, VALID)  # where each round of valid events ends
POISON_EACH = 29  # 7 kinds: 203 poison events, 1% of the valid ones
TIMEOUT = 300.0


@dataclass
class Run:
    settings: Settings
    model: str
    events: pd.DataFrame
    poison: dict[tuple[int, int], str] = field(default_factory=dict)  # where -> reason words
    failures_before_kill: list[str] | None = None
    job_before_kill: str = ""
    job_after_kill: str = ""
    scoring_retried: bool = False


def _poison() -> list[tuple[bytes, str]]:
    good = {
        "card_id": "card-poison",
        "event_id": "poison",
        "event_time": "2026-01-01T00:00:00",
        "amount": 10.0,
        "currency": "EUR",
        "merchant_id": "m",
        "mcc": "5411",
        "country": "FR",
        "channel": "pos",
    }

    def with_(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    missing = {k: v for k, v in good.items() if k != "merchant_id"}
    kinds = [
        (b'{"card_id": "card-1", "amount": ', "not JSON"),
        (json.dumps(missing).encode(), "missing fields 'merchant_id'"),
        (with_(amount="12.50"), "'amount' should be a finite number"),
        (with_(amount=float("nan")), "'amount' should be a finite number"),
        (with_(amount=-5.0), "'amount' should be within"),
        (with_(currency="XTS"), "'currency' should be one of"),
        (with_(note="x" * (MAX_EVENT_BYTES + 10)), "oversized"),
    ]
    return [kind for kind in kinds for _ in range(POISON_EACH)]


def _publish_raw(settings: Settings, values: list[tuple[bytes, str]]) -> dict[tuple[int, int], str]:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.max.bytes": 2_000_000,
        }
    )
    where: dict[tuple[int, int], str] = {}
    for value, reason in values:

        def delivered(error: object, message: object, reason: str = reason) -> None:
            assert error is None, error
            where[(message.partition(), message.offset())] = reason  # type: ignore[attr-defined]

        producer.produce("transactions", value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return where


def _scores(prefix: str) -> pd.DataFrame:
    frame = wb.tail("scores", timeout=20)
    if "event_id" not in frame.columns:  # nothing scored yet
        return frame.assign(event_id=pd.Series(dtype="str"))
    return frame[frame["event_id"].astype(str).str.startswith(prefix)]


def _wait_for_scores(prefix: str, count: int, timeout: float = TIMEOUT) -> pd.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        found = _scores(prefix)
        if found["event_id"].nunique() >= count or time.monotonic() > deadline:
            return found
        time.sleep(3)


def _job_id(settings: Settings) -> str:
    current = stream.status(settings)
    assert current.state == "running", current
    assert current.job_id
    return current.job_id


def _failures(settings: Settings, job_id: str) -> list[str]:
    """The failures Flink recorded for the job (each one restarts it)."""
    answer = httpx.get(f"{settings.flink_url}/jobs/{job_id}/exceptions", timeout=5).json()
    entries = answer["exceptionHistory"]["entries"]
    return [str(entry.get("exceptionName")) for entry in entries]


def _kill_job_processes(settings: Settings) -> None:
    pid_file = settings.run_dir / "stream.pid"
    pid = int(pid_file.read_text().strip())
    os.killpg(os.getpgid(pid), signal.SIGKILL)


def _wait_running_again(settings: Settings, old_job: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = stream.status(settings)
        if current.state == "running" and current.job_id and current.job_id != old_job:
            return current.job_id
        time.sleep(1)
    raise AssertionError(f"the stream job did not come back within {timeout} s")


def _publish_in_background(frame: pd.DataFrame, rate: float) -> threading.Thread:
    thread = threading.Thread(
        target=wb.publish,
        args=(frame, "transactions"),
        kwargs={"key": "card_id", "rate": rate, "progress": False},
    )
    thread.start()
    return thread


@pytest.fixture(scope="module")
def run(services: Settings) -> Iterator[Run]:
    model = f"stream-{uuid.uuid4().hex[:6]}"
    history = wb.datasets.card_transactions(20_000, seed=5)
    X = wb.features.CARD_FRAUD.transform(history)
    fitted = wb.classifier(X, n_estimators=40).fit(X, history["is_fraud"])
    version = wb.log_model(fitted, model, X, history["is_fraud"], features=wb.features.CARD_FRAUD)
    wb.promote(model, version.version)

    events = wb.datasets.card_transactions(VALID, seed=77).drop(columns=["is_fraud"])
    events = events.sort_values(["event_time", "event_id"], ignore_index=True)
    # Cards of this module's own: earlier tests publish payments of the same generated
    # cards, and a card's payment older than its latest would rightly be a dead letter.
    events["card_id"] = "tx77-" + events["card_id"]
    result = Run(services, model, events)
    stream.start(model, fresh=True, settings=services)
    service = deployments.load(services)[model].service
    try:
        # Round 1: valid events with poison of every kind among them.
        poison = _poison()
        wb.publish(events[: ROUNDS[0] // 2], "transactions", key="card_id", progress=False)
        result.poison = _publish_raw(services, poison)
        wb.publish(
            events[ROUNDS[0] // 2 : ROUNDS[0]], "transactions", key="card_id", progress=False
        )
        _wait_for_scores("tx77-", ROUNDS[0])
        result.job_before_kill = _job_id(services)
        result.failures_before_kill = _failures(services, result.job_before_kill)

        # Round 2: every process of the job killed mid-stream; it restarts on its own.
        sender = _publish_in_background(events[ROUNDS[0] : ROUNDS[1]], rate=1500)
        time.sleep(2)
        _kill_job_processes(services)
        sender.join()
        result.job_after_kill = _wait_running_again(services, result.job_before_kill)

        # Round 3: the scoring service down for ten seconds mid-stream.
        sender = _publish_in_background(events[ROUNDS[1] : ROUNDS[2]], rate=1500)
        time.sleep(1)
        stack.down([service], services)
        time.sleep(10)
        stack.up([service], services)
        sender.join()
        yield result
    finally:
        stream.stop(services)


def test_every_valid_event_is_scored_exactly_once(run: Run) -> None:
    scores = _wait_for_scores("tx77-", VALID)
    time.sleep(5)  # a duplicate would come after the last first copy
    scores = _scores("tx77-")

    assert scores["event_id"].nunique() == VALID
    assert len(scores) == VALID, scores[scores["event_id"].duplicated(keep=False)].head()
    assert set(scores["event_id"]) == set(run.events["event_id"])
    assert run.job_after_kill != run.job_before_kill  # the kill did take the job down


def test_each_score_is_the_services_score_for_the_same_features(run: Run) -> None:
    scores = _scores("tx77-").sample(300, random_state=3)
    url = deployments.url(run.settings, deployments.load(run.settings)[run.model])

    answer = httpx.post(f"{url}/score", json=list(scores["features"]), timeout=30).json()

    assert [r["score"] for r in answer["results"]] == list(scores["score"])
    assert set(scores["version"].astype(str)) == {answer["version"]}
    for record in scores.itertuples():
        assert len(record.reasons) == 3
        assert record.processed_time <= record.scored_time


def test_poison_events_are_dead_letters_with_reason_and_offset(run: Run) -> None:
    dead = wb.tail("transactions.dlq", timeout=20)
    found = {
        (int(row["source_partition"]), int(row["source_offset"])): row["reason"]
        for row in dead.to_dict(orient="records")
    }

    for where, words in run.poison.items():
        assert where in found, f"poison at partition/offset {where} is not a dead letter"
        assert words in found[where], (words, found[where])
    assert run.failures_before_kill == []  # no event made the job fail or restart


def test_streaming_features_equal_pandas_features(run: Run) -> None:
    scores = _scores("tx77-").drop_duplicates("event_id").set_index("event_id")
    first = run.events.head(10_000)
    expected = wb.features.CARD_FRAUD.transform(first).set_axis(first["event_id"])
    streamed = pd.DataFrame(
        list(scores.loc[first["event_id"], "features"]), index=first["event_id"]
    )

    for column, kind in wb.features.CARD_FRAUD.outputs.items():
        if kind == "float":
            np.testing.assert_allclose(streamed[column], expected[column], rtol=1e-9, atol=1e-9)
        else:
            assert streamed[column].tolist() == expected[column].tolist(), column


def test_wb_stream_status_reports_the_running_job(run: Run) -> None:
    from tests.conftest import run_wb

    result = run_wb("stream", "status", "--json")

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["state"], status["model"]) == ("running", run.model)
    assert status["job_id"] == run.job_after_kill
    assert status["checkpoints"] > 0


def test_the_stream_notebook_publishes_reads_scores_and_shows_dead_letters(
    run: Run, tmp_path: Path
) -> None:
    executed = wb.run_notebook(
        "stream_card_fraud",
        {"model_name": run.model, "events": 400, "rate": 400, "poison": 6},
        tmp_path / "stream.ipynb",
        progress=False,
    )

    cells = nbformat.read(executed.output, as_version=4).cells
    printed = "".join(
        output.get("text", "")
        for cell in cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "400 of 400 payments scored" in printed
    assert any(
        "image/png" in output.get("data", {})
        for cell in cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    tables = [
        output["data"].get("text/plain", "")
        for cell in cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "execute_result"
    ]
    assert any("should be within" in table or "should be one of" in table for table in tables)
