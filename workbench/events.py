"""Events in Kafka: the topics workbench uses, publishing DataFrames and reading them back.

confluent-kafka is imported inside the functions that use it, so the rest of the core
still imports in an environment without it (Airflow's); pandas too, so that `wb status`,
which checks the broker through this module, starts quickly.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import DataError, MissingDependency, ServiceUnavailable, WorkbenchError
from workbench.settings import Settings
from workbench.settings import settings as read_settings

if TYPE_CHECKING:
    import pandas as pd
    from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)
_client_log = logging.getLogger("workbench.kafka_client")

TRANSACTIONS = "transactions"
SCORES = "scores"
DEAD_LETTERS = "transactions.dlq"

#: The topics ``wb up kafka`` creates, with what each holds.
TOPICS: dict[str, str] = {
    TRANSACTIONS: "card and transfer events to score, JSON, keyed by card",
    SCORES: "one score per event, written exactly once by the streaming job",
    DEAD_LETTERS: "events the streaming job rejected, with the reason and source offset",
}


class PublishError(WorkbenchError):
    """Some events could not be delivered to Kafka."""


@dataclass(frozen=True)
class TopicInfo:
    """A topic's partitions and how many messages it holds."""

    name: str
    partitions: int
    end_offsets: tuple[int, ...]

    @property
    def messages(self) -> int:
        return sum(self.end_offsets)


def _kafka() -> Any:
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError:
        raise MissingDependency(
            "confluent-kafka is not installed in this environment; use the lab environment "
            "(make envs, then .venvs/lab/bin/python) or pip install confluent-kafka"
        ) from None
    return confluent_kafka


def _config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "logger": _client_log,
        "socket.connection.setup.timeout.ms": int(settings.connect_timeout * 1000),
        **extra,
    }


def _unavailable(settings: Settings, waited: float, cause: object) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Kafka at {settings.kafka_bootstrap} did not answer within {waited:g} s ({cause}). "
        "Start the local broker with `wb up kafka`, or set WORKBENCH_KAFKA_BOOTSTRAP "
        "to a reachable cluster."
    )


def admin(settings: Settings | None = None, *, timeout: float | None = None) -> AdminClient:
    """An admin client whose cluster has answered a metadata request.

    Raises :class:`ServiceUnavailable` within ``timeout`` seconds (default: the
    ``connect_timeout`` setting) when no broker answers.
    """
    settings = settings or read_settings()
    waited = settings.connect_timeout if timeout is None else timeout
    kafka = _kafka()
    client = kafka.admin.AdminClient(_config(settings, log_level=0))
    try:
        client.list_topics(timeout=waited)
    except kafka.KafkaException as exc:
        raise _unavailable(settings, waited, exc.args[0]) from None
    return client


def ensure_topics(
    names: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    settings: Settings | None = None,
) -> list[str]:
    """Create the named topics (default: :data:`TOPICS`) that do not exist yet.

    Returns the names it created. Existing topics are left as they are.
    """
    settings = settings or read_settings()
    wanted = list(names or TOPICS)
    kafka = _kafka()
    client = admin(settings)
    existing = set(client.list_topics(timeout=settings.connect_timeout).topics)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []

    count = partitions or settings.kafka_partitions
    new = [
        kafka.admin.NewTopic(name, num_partitions=count, replication_factor=1) for name in missing
    ]
    for name, future in client.create_topics(new, request_timeout=settings.connect_timeout).items():
        try:
            future.result()
        except kafka.KafkaException as exc:
            if exc.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise WorkbenchError(f"could not create topic {name!r}: {exc.args[0]}") from None
        log.info("created topic %s with %d partitions", name, count)
    _wait_for_leaders(client, missing, settings)
    return missing


def _wait_for_leaders(client: AdminClient, names: list[str], settings: Settings) -> None:
    # A new topic is usable once every partition has a leader in the metadata.
    deadline = time.monotonic() + settings.connect_timeout
    while True:
        known = client.list_topics(timeout=settings.connect_timeout).topics
        if all(
            name in known
            and known[name].partitions
            and all(p.leader >= 0 for p in known[name].partitions.values())
            for name in names
        ):
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"topics {names} were created but have no leader after "
                f"{settings.connect_timeout:g} s; see `wb logs kafka`"
            )
        time.sleep(0.1)


def topics(settings: Settings | None = None) -> pd.DataFrame:
    """The cluster's topics with their partitions and end offsets, one row per topic."""
    import pandas as pd

    settings = settings or read_settings()
    rows = [
        {
            "topic": info.name,
            "partitions": info.partitions,
            "messages": info.messages,
            "end_offsets": list(info.end_offsets),
        }
        for info in topic_info(settings)
    ]
    return pd.DataFrame(rows, columns=["topic", "partitions", "messages", "end_offsets"])


def topic_info(settings: Settings | None = None) -> list[TopicInfo]:
    """:class:`TopicInfo` for every topic that is not internal to Kafka."""
    settings = settings or read_settings()
    kafka = _kafka()
    metadata = admin(settings).list_topics(timeout=settings.connect_timeout)
    consumer = kafka.Consumer(_config(settings, **{"group.id": f"wb-topics-{uuid.uuid4()}"}))
    try:
        infos = []
        for name in sorted(metadata.topics):
            if name.startswith("__"):
                continue
            partitions = sorted(metadata.topics[name].partitions)
            ends = tuple(
                consumer.get_watermark_offsets(
                    kafka.TopicPartition(name, p), timeout=settings.connect_timeout
                )[1]
                for p in partitions
            )
            infos.append(TopicInfo(name, len(partitions), ends))
        return infos
    finally:
        consumer.close()


def _require_topic(client: AdminClient, topic: str, settings: Settings) -> Any:
    metadata = client.list_topics(topic, timeout=settings.connect_timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise DataError(
            f"topic {topic!r} does not exist; wb.topics() lists the topics there are, and "
            "`wb up kafka` creates workbench's own"
        )
    return metadata


def _records(data: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[bytes]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if data.empty:
            return []
        lines = data.to_json(orient="records", lines=True, date_format="iso", date_unit="ms")
        return [line.encode() for line in lines.splitlines() if line]
    return [json.dumps(record, default=str).encode() for record in data]


def _keys(data: pd.DataFrame | Iterable[Mapping[str, Any]], key: str | None) -> list[Any]:
    import pandas as pd

    if key is None:
        return []
    if isinstance(data, pd.DataFrame):
        if key not in data.columns:
            raise DataError(
                f"key column {key!r} is not in the data; columns are {list(data.columns)!r}"
            )
        return [None if pd.isna(v) else str(v).encode() for v in data[key]]
    return [str(record[key]).encode() for record in data]


def publish(
    data: pd.DataFrame | Iterable[Mapping[str, Any]],
    topic: str,
    *,
    key: str | None = None,
    rate: float | None = None,
    progress: bool = True,
    settings: Settings | None = None,
) -> int:
    """Send rows to a Kafka topic as JSON and return how many were delivered.

    Uses the idempotent producer with ``acks=all``; a full local queue is waited out,
    never dropped. ``key`` names the column to key messages by (per-key order holds);
    ``rate`` paces the send to that many events a second. Any delivery failure raises
    :class:`PublishError` with the count and the first error.

    >>> wb.publish(wb.datasets.card_transactions(1_000), "transactions", key="card_id")
    1000
    """
    import pandas as pd

    settings = settings or read_settings()
    if isinstance(data, pd.DataFrame):
        frame: pd.DataFrame | list[Mapping[str, Any]] = data
    else:
        frame = list(data)
    values = _records(frame)
    keys = _keys(frame, key)
    if rate is not None and rate <= 0:
        raise DataError(f"rate must be a positive number of events per second, got {rate!r}")

    kafka = _kafka()
    _require_topic(admin(settings), topic, settings)
    producer = kafka.Producer(
        _config(
            settings,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            },
        )
    )
    failures: list[str] = []
    delivered = 0

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1
        else:
            failures.append(str(error))

    bar = _progress(len(values), f"publish {topic}", enabled=progress)
    started = time.monotonic()
    for index, value in enumerate(values):
        if rate is not None:
            _pace(started, index, rate)
        while True:
            try:
                producer.produce(
                    topic, value=value, key=keys[index] if keys else None, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        bar.update(1)
    remaining = producer.flush(max(30.0, settings.connect_timeout))
    bar.close()

    if failures or remaining:
        lost = len(values) - delivered
        first = failures[0] if failures else f"{remaining} still queued after the flush timeout"
        raise PublishError(
            f"{lost} of {len(values)} events were not delivered to {topic!r}: {first}"
        )
    log.info("published %d events to %s", delivered, topic)
    return delivered


def _pace(started: float, index: int, rate: float) -> None:
    due = started + index / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, description: str, *, enabled: bool) -> Any:
    if not enabled or total == 0:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, desc=description, unit="event", leave=False)


def tail(
    topic: str,
    n: int | None = None,
    *,
    timeout: float = 10.0,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Read committed messages of a topic into a DataFrame.

    With ``n``, the last ``n`` messages of each partition are read, and the newest ``n``
    overall are returned; without it, everything up to the end. Reading stops at the end
    of every partition or after ``timeout`` seconds. JSON objects become columns; the
    columns ``partition``, ``offset``, ``timestamp`` and ``key`` say where each came from.
    """
    settings = settings or read_settings()
    kafka = _kafka()
    metadata = _require_topic(admin(settings), topic, settings)

    consumer = kafka.Consumer(
        _config(
            settings,
            **{
                "group.id": f"wb-tail-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
        )
    )
    try:
        assignment = []
        for partition in sorted(metadata.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(
                kafka.TopicPartition(topic, partition), timeout=settings.connect_timeout
            )
            start = low if n is None else max(low, high - n)
            assignment.append(kafka.TopicPartition(topic, partition, start))
        consumer.assign(assignment)
        rows = _read_until_end(consumer, kafka, len(assignment), timeout)
    finally:
        consumer.close()

    frame = _frame(rows)
    if n is not None and len(frame) > n:
        frame = frame.sort_values("timestamp", kind="stable").tail(n).reset_index(drop=True)
    return frame


def _read_until_end(consumer: Any, kafka: Any, partitions: int, timeout: float) -> list[dict]:
    rows: list[dict] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(at_end) < partitions and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.2):
            error = message.error()
            if error is not None:
                if error.code() == kafka.KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                raise WorkbenchError(f"reading {message.topic()!r} failed: {error}")
            at_end.discard(message.partition())
            rows.append(_row(message))
    return rows


def _row(message: Any) -> dict[str, Any]:
    import pandas as pd

    raw = message.value()
    try:
        value = json.loads(raw) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = None
    payload = value if isinstance(value, dict) else {"value": raw if value is None else value}
    meta = {
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": pd.Timestamp(message.timestamp()[1], unit="ms"),
        "key": message.key().decode(errors="replace") if message.key() is not None else None,
    }
    for name, item in meta.items():
        payload[f"kafka_{name}" if name in payload else name] = item
    return payload


def _frame(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    if not rows:
        return pd.DataFrame(columns=["partition", "offset", "timestamp", "key"])
    return pd.DataFrame(rows)
