"""A single-node Kafka broker in KRaft mode, run from the jars in the workbench home."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path

from workbench import jvm
from workbench.errors import ServiceError
from workbench.settings import Settings

log = logging.getLogger(__name__)

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
"""


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: URL-safe base64 of a UUID, never starting
    with "-" (the storage tool would read such an id as an option and fail)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not found.startswith("-"):
            return found


def broker_address(settings: Settings) -> tuple[str, int]:
    """Host and port of the local broker, taken from the bootstrap setting."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    return host, int(port)


def _dir(settings: Settings) -> Path:
    return settings.home / "kafka"


def _properties(settings: Settings) -> str:
    host, port = broker_address(settings)
    controller = f"{host}:{settings.kafka_controller_port}"
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(_dir(settings) / "data"),
        # Topics are created by workbench with explicit partitions, never by accident.
        "auto.create.topics.enable": "false",
        "num.partitions": str(settings.kafka_partitions),
        # One node: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Flink's exactly-once sink keeps transactions open across checkpoints and restarts.
        "transaction.max.timeout.ms": "3600000",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def prepare(settings: Settings) -> None:
    """Write the broker's configuration and format its storage on first start."""
    jvm.fetch_jars(settings)
    folder = _dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server.properties").write_text(_properties(settings))
    (folder / "log4j2.properties").write_text(_LOG4J2)
    if (folder / "data" / "meta.properties").exists():
        return

    cluster_id = _cluster_id()
    log.info("formatting Kafka storage in %s (cluster %s)", folder / "data", cluster_id)
    command = [
        *_java(settings, jvm.check_java()),
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "--cluster-id",
        cluster_id,
        "--config",
        str(folder / "server.properties"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage failed (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def _java(settings: Settings, java: str) -> list[str]:
    folder = _dir(settings)
    return [
        java,
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}",
        "-cp",
        jvm.kafka_classpath(settings),
    ]


def command(settings: Settings, java: str) -> list[str]:
    """The broker's command line."""
    return [*_java(settings, java), "kafka.Kafka", str(_dir(settings) / "server.properties")]


def broker_ready(settings: Settings) -> bool:
    """True when the broker answers a metadata request."""
    from workbench import events

    try:
        events.admin(settings, timeout=1.0)
    except Exception:  # any failure here just means "not ready yet"
        return False
    return True


def ensure_topics(settings: Settings) -> None:
    """Create the topics workbench uses, with the configured partitions."""
    from workbench import events

    events.ensure_topics(settings=settings)
