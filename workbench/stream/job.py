"""The streaming scoring job, on PyFlink (runs in the flink environment).

    transactions --parse--> (dead letters)
                 --key by card--> features from the definition, state per card
                 --async, micro-batched--> the serving service
                 --> scores (exactly once), transactions.dlq (exactly once)

Run by ``wb stream start`` (a service of the local stack) as
``python -m workbench.stream.job --model NAME``; settings come from ``WORKBENCH_*``.
Locally the job runs on Flink's embedded mini cluster with its web UI on the port of
``WORKBENCH_FLINK_URL``; checkpoints are kept under ``<home>/stream/checkpoints`` and a
start resumes from the latest one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Types
from pyflink.common.serialization import SimpleStringSchema
from pyflink.common.time import Time
from pyflink.datastream import OutputTag, StreamExecutionEnvironment
from pyflink.datastream.async_data_stream import AsyncDataStream
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
from pyflink.datastream.functions import (
    AsyncFunction,
    KeyedProcessFunction,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor
from pyflink.table import StreamTableEnvironment

from workbench.errors import DataError
from workbench.events import DEAD_LETTERS, SCORES, TRANSACTIONS
from workbench.features import FeatureDefinition, get_definition
from workbench.settings import Settings, settings
from workbench.stream import checkpoints
from workbench.stream.checkpoints import options
from workbench.stream.events import (
    ModelRefused,
    Rejected,
    ScoringClient,
    dead_letter,
    features_request,
    parse,
    score_record,
)

log = logging.getLogger("workbench.stream.job")

DEAD = OutputTag("dead-letters", Types.STRING())
STATE_TTL_HOURS = 48  # longer than the longest feature window (24 h)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Parse(ProcessFunction):
    """Kafka rows to (key, event) pairs; anything unusable to the dead letters."""

    def __init__(self, definition: str) -> None:
        self.name = definition

    def open(self, runtime_context: RuntimeContext) -> None:
        self.definition = get_definition(self.name)

    def process_element(self, row: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        value = bytes(row[0]) if row[0] is not None else None
        meta = {"partition": row[1], "offset": row[2], "timestamp": _ms(row[3])}
        try:
            event, checked = parse(value, self.definition)
        except Rejected as rejected:
            yield DEAD, _dead(str(rejected), value, meta)
            return
        except Exception as error:  # no event may fail the job
            yield DEAD, _dead(f"could not be read: {error!r}", value, meta)
            return
        assert self.definition.key is not None
        payload = {"event": event, "checked": checked, "meta": meta, "processed": _now_ms()}
        yield str(checked[self.definition.key]), json.dumps(payload)


class Features(KeyedProcessFunction):
    """Per-key streaming features from the definition, with the key's state in Flink."""

    def __init__(self, definition: str) -> None:
        self.name = definition

    def open(self, runtime_context: RuntimeContext) -> None:
        self.definition: FeatureDefinition = get_definition(self.name)
        descriptor = ValueStateDescriptor("state", Types.STRING())
        ttl = (
            StateTtlConfig.new_builder(Time.hours(STATE_TTL_HOURS))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .build()
        )
        descriptor.enable_time_to_live(ttl)
        self.state = runtime_context.get_state(descriptor)

    def process_element(self, pair: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        payload = json.loads(pair[1])
        stored = self.state.value()
        state = json.loads(stored) if stored else self.definition.initial_state()
        try:
            state, features = self.definition.step(state, payload["checked"])
        except Exception as error:  # out of order or repeated; no event may fail the job
            # The key's state is left as it was.
            reason = str(error) if isinstance(error, DataError) else f"features failed: {error!r}"
            original = json.dumps(payload["event"]).encode()
            yield DEAD, _dead(reason, original, payload["meta"])
            return
        self.state.update(json.dumps(state))
        payload["features"] = features_request(features, self.definition.outputs)
        yield json.dumps(payload)


class Score(AsyncFunction):
    """Scores through the serving service, micro-batched, retried while it is down."""

    def __init__(self, url: str, key: str, batch_size: int, max_in_flight: int, timeout: float):
        self.url, self.key = url, key
        self.batch_size, self.max_in_flight, self.request_timeout = (
            batch_size,
            max_in_flight,
            timeout,
        )

    def open(self, runtime_context: RuntimeContext) -> None:
        self.client = ScoringClient(
            self.url,
            batch_size=self.batch_size,
            max_in_flight=self.max_in_flight,
            timeout=self.request_timeout,
        )

    def close(self) -> None:
        self.client.close()

    async def async_invoke(self, value: str) -> list[str]:
        payload = json.loads(value)
        try:
            result = await self.client.score(payload["features"])
        except ModelRefused as refused:
            original = json.dumps(payload["event"]).encode()
            return ["D" + _dead(str(refused), original, payload["meta"])]
        record = score_record(
            payload["event"],
            payload["checked"],
            payload["features"],
            result,
            key=self.key,
            published_ms=payload["meta"]["timestamp"],
            processed_ms=payload["processed"],
            scored_ms=_now_ms(),
        )
        return ["S" + record.decode()]


class Route(ProcessFunction):
    """Scores to the main output, refusals to the dead letters."""

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
        if value[0] == "S":
            yield value[1:]
        else:
            yield DEAD, value[1:]


def _ms(timestamp: Any) -> int:
    if timestamp is None:
        return 0
    if hasattr(timestamp, "to_epoch_milli"):  # pyflink's Instant (process mode)
        return int(timestamp.to_epoch_milli())
    if hasattr(timestamp, "toEpochMilli"):  # java.time.Instant itself (thread mode)
        return int(timestamp.toEpochMilli())
    if hasattr(timestamp, "timestamp"):
        return int(timestamp.timestamp() * 1000)
    return int(timestamp)


def _dead(reason: str, value: bytes | None, meta: dict) -> str:
    return dead_letter(
        reason,
        value,
        topic=TRANSACTIONS,
        partition=meta["partition"],
        offset=meta["offset"],
        timestamp=meta["timestamp"],
    ).decode()


def configuration(current: Settings, model: str, resume: str | None) -> Configuration:
    """The Flink configuration of the job: checkpoints, the web UI, jars, Python."""
    values = options(current, model, resume, python=sys.executable)
    if not values["pipeline.jars"]:
        raise SystemExit(f"no Flink Kafka connector jar under {current.jars_dir}; run `wb jars`")
    config = Configuration()
    for key, value in values.items():
        config.set_string(key, value)
    return config


def build(
    env: StreamExecutionEnvironment,
    current: Settings,
    model: str,
    definition_name: str,
    url: str,
    python_mode: str = "thread",
) -> None:
    """The job's graph on ``env``."""
    definition = get_definition(definition_name)
    assert definition.key is not None
    tables = StreamTableEnvironment.create(env)
    tables.execute_sql(
        f"""
        CREATE TABLE source_events (
            `value` BYTES,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL,
            `ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{TRANSACTIONS}',
            'properties.bootstrap.servers' = '{current.kafka_bootstrap}',
            'properties.group.id' = 'workbench-stream-{model}',
            'properties.isolation.level' = 'read_committed',
            'properties.auto.offset.reset' = 'earliest',
            'scan.startup.mode' = 'group-offsets',
            'format' = 'raw'
        )
        """
    )
    rows = tables.to_data_stream(tables.from_path("source_events"))

    # Python in the JVM's own threads ("thread" mode) saves a serialisation round trip
    # per operator; PyFlink's async I/O needs a Python process, so only it gets one. A
    # cluster of its own runs everything in processes: its JVMs' embedded Python knows
    # neither the flink environment nor workbench.
    _python_mode(env, python_mode)
    pairs = rows.process(
        Parse(definition.name), output_type=Types.TUPLE([Types.STRING(), Types.STRING()])
    ).uid("parse")
    featured = (
        pairs.key_by(lambda pair: pair[0], key_type=Types.STRING())
        .process(Features(definition.name), output_type=Types.STRING())
        .uid("features")
    )
    _python_mode(env, "process")
    scored = AsyncDataStream.unordered_wait(
        featured,
        Score(
            url,
            definition.key,
            current.stream_batch_size,
            current.stream_max_in_flight,
            current.stream_request_timeout,
        ),
        # No per-event timeout: PyFlink would start a timer thread for every event. The
        # client times out each request and retries until the service answers.
        Time.milliseconds(0),
        capacity=current.stream_batch_size * current.stream_max_in_flight * 2,
        output_type=Types.STRING(),
    ).uid("score")
    _python_mode(env, python_mode)
    routed = scored.process(Route(), output_type=Types.STRING()).uid("route")
    dead = pairs.get_side_output(DEAD).union(
        featured.get_side_output(DEAD), routed.get_side_output(DEAD)
    )

    routed.sink_to(_sink(current, SCORES, f"workbench-{model}-scores")).uid("scores-sink")
    dead.sink_to(_sink(current, DEAD_LETTERS, f"workbench-{model}-dlq")).uid("dlq-sink")


def _python_mode(env: StreamExecutionEnvironment, mode: str) -> None:
    # PyFlink picks an operator's mode from the environment's configuration when the
    # operator is added, so the mode can differ from one operator to the next.
    from pyflink.util.java_utils import get_j_env_configuration

    get_j_env_configuration(env._j_stream_execution_environment).setString(
        "python.execution-mode", mode
    )


def _sink(current: Settings, topic: str, prefix: str) -> KafkaSink:
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(current.kafka_bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(prefix)
        # Above the checkpoint interval plus the time a restart takes; the broker
        # allows up to an hour (transaction.max.timeout.ms).
        .set_property("transaction.timeout.ms", "900000")
        .build()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="registered model the service serves")
    parser.add_argument("--definition", required=True, help="the model's feature definition")
    parser.add_argument("--url", required=True, help="the serving service's URL")
    parser.add_argument("--fresh", action="store_true", help="ignore retained checkpoints")
    parser.add_argument(
        "--python-mode",
        choices=["thread", "process"],
        default="thread",
        help="where parse, features and routing run (async scoring runs in a process)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    current = settings()
    resume = None if args.fresh else checkpoints.latest(current)
    if resume:
        log.info("resuming from %s", resume)
    else:
        log.info("starting without a checkpoint")
    env = StreamExecutionEnvironment.get_execution_environment(
        configuration(current, args.model, resume)
    )
    build(env, current, args.model, args.definition, args.url, args.python_mode)
    Path(checkpoints.folder(current)).mkdir(parents=True, exist_ok=True)
    env.execute(f"workbench-stream-{args.model}")


if __name__ == "__main__":
    main()
