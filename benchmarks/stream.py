"""Streaming scoring two ways: the workbench Flink job and the plain loop a user would write.

Starts Kafka and MLflow in a private home on free ports (a stack already running on
this machine is left alone), trains and deploys a card-fraud model, then runs each
contender alone against the same BentoML service:

- workbench: ``wb.stream.start`` (PyFlink on the mini cluster; per-card features in
  Flink state, micro-batched async scoring, exactly-once Kafka sink);
- plain loop: one confluent-kafka consumer, the same per-card features from the same
  definition in a dict, one HTTP call per event to the same service, a producer, and
  offsets committed after the produced scores are flushed (every 100 events).

Two measurements each:

1. sustained throughput: a backlog of events already in Kafka, consumed from the
   start; events/s from the first to the last score (the job's ~30 s start excluded,
   reported apart);
2. latency at a fixed rate: events published at ``--rate`` events/s; for each score,
   the time from publishing the event to reading its score with read_committed (what
   a downstream consumer sees), and to the score being made (before the commit).

    .venvs/lab/bin/python benchmarks/stream.py [--events 20000] [--rate 500] [--seconds 20]

Goals for workbench: throughput >= 2x the plain loop; p99 < 250 ms at 500 events/s,
exactly once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _machine
import numpy as np
from _stack import private_stack

if TYPE_CHECKING:
    from workbench.settings import Settings

log = logging.getLogger("benchmarks.stream")

MODEL = "bench-stream"
PLAIN_OUT = "bench.plain.scores"


@dataclass
class Figures:
    name: str
    events_per_s: float = 0.0
    startup_s: float = 0.0
    visible_p50_ms: float = 0.0
    visible_p99_ms: float = 0.0
    made_p50_ms: float = 0.0
    made_p99_ms: float = 0.0
    scored: int = 0
    duplicates: int = 0


def train_and_deploy(current: Settings) -> str:
    import workbench as wb

    events = wb.datasets.card_transactions(100_000, seed=7)
    X = wb.features.CARD_FRAUD.transform(events)
    model = wb.classifier(X, n_estimators=300, learning_rate=0.05).fit(X, events["is_fraud"])
    version = wb.log_model(model, MODEL, X, events["is_fraud"], features=wb.features.CARD_FRAUD)
    wb.promote(MODEL, version.version)
    return wb.deploy(MODEL, settings=current).url


def events_for(count: int, seed: int) -> Any:
    import workbench as wb

    frame = wb.datasets.card_transactions(count, seed=seed).drop(columns=["is_fraud"])
    return frame.sort_values(["event_time", "event_id"], ignore_index=True)


# --- reading scores --------------------------------------------------------------------


class Reader(threading.Thread):
    """Reads a score topic with read_committed from its end, noting when each arrives."""

    def __init__(self, current: Settings, topic: str, prefix: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.prefix = prefix
        self.seen: dict[str, tuple[int, int, int]] = {}  # id -> (published, made, read) ms
        self.duplicates = 0
        self.stopping = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": current.kafka_bootstrap,
                "group.id": f"bench-reader-{time.time_ns()}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])

    def run(self) -> None:
        while not self.stopping.is_set():
            for message in self.consumer.consume(500, timeout=0.2):
                if message.error():
                    continue
                read = time.time_ns() // 1_000_000
                record = json.loads(message.value())
                event_id = str(record.get("event_id"))
                if not event_id.startswith(self.prefix):
                    continue
                if event_id in self.seen:
                    self.duplicates += 1
                    continue
                self.seen[event_id] = (record["published_time"], record["scored_time"], read)
        self.consumer.close()

    def wait_for(self, count: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        if len(self.seen) < count:
            log.warning("only %d of %d scores within %.0f s", len(self.seen), count, timeout)
        return time.monotonic()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


# --- the plain loop ----------------------------------------------------------------------


def plain_loop(current: Settings, url: str, stop: threading.Event, group: str) -> None:
    """The loop a user would write: consume, featurize, call the service, produce, commit."""
    import httpx
    from confluent_kafka import Consumer, Producer

    import workbench as wb

    definition = wb.features.CARD_FRAUD
    states: dict[str, dict] = {}
    consumer = Consumer(
        {
            "bootstrap.servers": current.kafka_bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["transactions"])
    producer = Producer(
        {"bootstrap.servers": current.kafka_bootstrap, "enable.idempotence": True, "acks": "all"}
    )
    client = httpx.Client(timeout=5)
    pending = 0
    while not stop.is_set():
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        event = json.loads(message.value())
        card = event["card_id"]
        state, features = definition.update(states.get(card, definition.initial_state()), event)
        states[card] = state
        row = {
            k: (float(v) if definition.outputs[k] == "float" else v) for k, v in features.items()
        }
        result = client.post(f"{url}/score", json=[row]).json()["results"][0]
        producer.produce(
            PLAIN_OUT,
            json.dumps(
                {
                    "event_id": event["event_id"],
                    "score": result["score"],
                    "version": result["version"],
                    "published_time": message.timestamp()[1],
                    "scored_time": time.time_ns() // 1_000_000,
                }
            ).encode(),
        )
        producer.poll(0)
        pending += 1
        if pending >= 100:
            producer.flush()
            consumer.commit(asynchronous=False)
            pending = 0
    producer.flush()
    consumer.close()


def run_plain(current: Settings, url: str, backlog: Any, live: Any, rate: float) -> Figures:
    from workbench.events import ensure_topics

    ensure_topics([PLAIN_OUT], settings=current)
    figures = Figures("plain loop")
    prefix = backlog["event_id"].iloc[0].split("-")[0]
    reader = Reader(current, PLAIN_OUT, prefix)
    reader.start()
    stop = threading.Event()
    worker = threading.Thread(target=plain_loop, args=(current, url, stop, "bench-plain"))
    started = time.monotonic()
    worker.start()
    first = _first_score(reader, 120)
    ended = reader.wait_for(len(backlog), timeout=900)
    figures.events_per_s = (len(reader.seen) - 1) / max(ended - first, 1e-9)
    figures.startup_s = first - started
    log.info("plain loop: %.0f events/s on the backlog", figures.events_per_s)

    figures_live(current, figures, reader, live, rate)
    stop.set()
    worker.join(30)
    reader.stop()
    figures.scored, figures.duplicates = len(reader.seen), reader.duplicates
    return figures


def run_workbench(current: Settings, backlog: Any, live: Any, rate: float) -> Figures:
    from workbench import stream

    figures = Figures("workbench (Flink)")
    prefix = backlog["event_id"].iloc[0].split("-")[0]
    reader = Reader(current, "scores", prefix)
    reader.start()
    started = time.monotonic()
    stream.start(MODEL, fresh=True, settings=current)
    first = _first_score(reader, 300)
    ended = reader.wait_for(len(backlog), timeout=900)
    figures.events_per_s = (len(reader.seen) - 1) / max(ended - first, 1e-9)
    figures.startup_s = first - started
    log.info("workbench: %.0f events/s on the backlog", figures.events_per_s)

    figures_live(current, figures, reader, live, rate)
    stream.stop(current)
    reader.stop()
    figures.scored, figures.duplicates = len(reader.seen), reader.duplicates
    return figures


def skip_to_end(current: Settings, group: str) -> None:
    """Commit the end of ``transactions`` for ``group``: it starts after what is there."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": current.kafka_bootstrap, "group.id": group})
    partitions = consumer.list_topics("transactions", timeout=10).topics["transactions"].partitions
    ends = []
    for number in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition("transactions", number), timeout=10)
        ends.append(TopicPartition("transactions", number, high))
    consumer.commit(offsets=ends, asynchronous=False)
    consumer.close()


def _first_score(reader: Reader, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not reader.seen and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.monotonic()


def figures_live(
    current: Settings, figures: Figures, reader: Reader, live: Any, rate: float
) -> None:
    import workbench as wb

    before = set(reader.seen)
    wb.publish(live, "transactions", key="card_id", rate=rate, progress=False, settings=current)
    reader.wait_for(len(before) + len(live), timeout=120)
    ids = set(live["event_id"])
    timings = np.array([t for i, t in reader.seen.items() if i in ids], dtype=float)
    if len(timings) == 0:
        return
    visible = timings[:, 2] - timings[:, 0]
    made = timings[:, 1] - timings[:, 0]
    figures.visible_p50_ms, figures.visible_p99_ms = np.percentile(visible, [50, 99])
    figures.made_p50_ms, figures.made_p99_ms = np.percentile(made, [50, 99])
    log.info(
        "%s at %.0f events/s: p99 %.0f ms visible, %.0f ms made",
        figures.name, rate, figures.visible_p99_ms, figures.made_p99_ms,
    )  # fmt: skip


def report(rows: list[Figures], args: argparse.Namespace, expected: int) -> None:
    print(f"machine: {_machine.describe()}")
    from workbench.settings import settings

    print(
        f"backlog of {args.events:,} card events, then {args.rate:g} events/s for "
        f"{args.seconds:g} s; one BentoML service; latencies from publish to score; "
        f"checkpoints every {settings().stream_checkpoint_ms} ms"
    )
    print(
        f"\n{'contender':<20}{'events/s':>10}{'start s':>9}{'visible p50':>13}"
        f"{'p99 ms':>8}{'made p50':>10}{'p99 ms':>8}{'scores':>8}{'dups':>6}"
    )
    for f in rows:
        print(
            f"{f.name:<20}{f.events_per_s:>10.0f}{f.startup_s:>9.1f}{f.visible_p50_ms:>13.0f}"
            f"{f.visible_p99_ms:>8.0f}{f.made_p50_ms:>10.0f}{f.made_p99_ms:>8.0f}"
            f"{f.scored:>8}{f.duplicates:>6}"
        )
    flink, plain = rows
    ratio = flink.events_per_s / max(plain.events_per_s, 1e-9)
    once = flink.scored == expected and flink.duplicates == 0
    print("\nworkbench against the goals:")
    print(f"  throughput vs plain loop        {ratio:6.2f}x   goal >= 2x      {_met(ratio >= 2)}")
    print(
        f"  p99 at {args.rate:g}/s (visible)      {flink.visible_p99_ms:6.0f} ms goal < 250 ms"
        f"   {_met(flink.visible_p99_ms < 250)}"
    )
    print(
        f"  exactly once                    {flink.scored}/{expected} scores, "
        f"{flink.duplicates} duplicates   {_met(once)}"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="backlog size")
    parser.add_argument("--rate", type=float, default=500, help="events/s for latency")
    parser.add_argument("--seconds", type=float, default=20, help="how long at that rate")
    parser.add_argument(
        "--checkpoint-ms",
        type=int,
        default=None,
        help="the job's checkpoint interval (scores become visible per checkpoint)",
    )
    args = parser.parse_args()
    if args.checkpoint_ms is not None:
        os.environ["WORKBENCH_STREAM_CHECKPOINT_MS"] = str(args.checkpoint_ms)
    # Ctrl-C and kill both unwind through the private stack's cleanup.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    live_count = int(args.rate * args.seconds)

    with (
        tempfile.TemporaryDirectory(prefix="wb-stream-bench-") as work,
        private_stack(Path(work) / "home", ["kafka", "mlflow"]) as current,
    ):
        import workbench as wb

        url = train_and_deploy(current)
        # Each contender gets its own events (ids with their own prefix); the live
        # ones come after the backlog in time, as a card's events must.
        plain_all = events_for(args.events + live_count, 1)
        flink_all = events_for(args.events + live_count, 3)
        plain_backlog, plain_live = plain_all[: args.events], plain_all[args.events :]
        flink_backlog, flink_live = flink_all[: args.events], flink_all[args.events :]

        log.info("publishing the plain loop's backlog of %d events", args.events)
        wb.publish(plain_backlog, "transactions", key="card_id", progress=False)
        plain = run_plain(current, url, plain_backlog, plain_live, args.rate)

        skip_to_end(current, f"workbench-stream-{MODEL}")  # not the plain loop's events
        log.info("publishing the Flink job's backlog of %d events", args.events)
        wb.publish(flink_backlog, "transactions", key="card_id", progress=False)
        flink = run_workbench(current, flink_backlog, flink_live, args.rate)
        report([flink, plain], args, args.events + live_count)


if __name__ == "__main__":
    main()
