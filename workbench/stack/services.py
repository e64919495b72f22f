"""The local services, declared once.

A service is a command line, the ports it binds, a health probe and, optionally, a
one-time preparation and a step after it becomes healthy. Adding a service to the
local stack is adding one :class:`Service` to :data:`SERVICES`; supervision, ``wb
status`` and ``wb logs`` follow from the declaration. Deployed models add a scoring
service each (see :mod:`workbench.serving.deployments`).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from workbench import jvm
from workbench.settings import Settings
from workbench.stack import kafka

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Address:
    """A host and port a service listens on, and the setting that chose it."""

    host: str
    port: int
    setting: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Service:
    """One process of the local stack.

    ``command`` and ``environment`` are built from the settings at start time;
    ``healthy`` must answer quickly (within about a second) and never raise.
    """

    name: str
    description: str
    command: Callable[[Settings], list[str]]
    addresses: Callable[[Settings], list[Address]]
    healthy: Callable[[Settings], bool]
    prepare: Callable[[Settings], None] | None = None
    after_start: Callable[[Settings], None] | None = None
    environment: Callable[[Settings], dict[str, str]] = field(default=lambda s: {})
    remote: Callable[[Settings], str | None] = field(default=lambda s: None)
    stop_timeout: int = 30
    #: ``wb up`` with no names starts the services whose group is in DEFAULT_GROUPS;
    #: the others start when their group or their own name is given (``wb up airflow``).
    group: str = "core"
    #: Start the process again when it exits on its own (the stream job, which then
    #: resumes from its latest checkpoint); otherwise a crash stays visible as down.
    restart: bool = False

    def log_path(self, settings: Settings) -> Path:
        """Where the service's output goes."""
        return settings.logs_dir / f"{self.name}.log"


def _bin(name: str) -> str:
    # Console scripts of the environment workbench runs in (the lab environment).
    return str(Path(sys.executable).parent / name)


def _url_address(url: str, setting: str) -> Address:
    parts = urlsplit(url)
    return Address(parts.hostname or "127.0.0.1", parts.port or 80, setting)


def _remote_url(url: str, setting: str) -> str | None:
    host = urlsplit(url).hostname
    if host in LOOPBACK:
        return None
    return f"{setting} points at {url}, not this machine"


def _tcp_open(address: Address, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """True when a server could bind ``host:port`` now (as uvicorn and the JVMs do)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 200 within ``timeout``; never raises."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


# --- MLflow ------------------------------------------------------------------------


def _mlflow_dir(settings: Settings) -> Path:
    return settings.home / "mlflow"


def _mlflow_prepare(settings: Settings) -> None:
    (_mlflow_dir(settings) / "artifacts").mkdir(parents=True, exist_ok=True)


def _mlflow_command(settings: Settings) -> list[str]:
    address = _url_address(settings.mlflow_tracking_uri, "WORKBENCH_MLFLOW_TRACKING_URI")
    data = _mlflow_dir(settings)
    return [
        _bin("mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination",
        str(data / "artifacts"),
        "--host",
        address.host,
        "--port",
        str(address.port),
        "--workers",
        "1",
    ]


MLFLOW = Service(
    name="mlflow",
    description="MLflow tracking server and model registry (SQLite, local artifacts)",
    command=_mlflow_command,
    addresses=lambda s: [_url_address(s.mlflow_tracking_uri, "WORKBENCH_MLFLOW_TRACKING_URI")],
    healthy=lambda s: http_ok(f"{s.mlflow_tracking_uri}/health"),
    prepare=_mlflow_prepare,
    environment=lambda s: {
        # `mlflow server` looks for uvicorn on PATH.
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        # The GenAI job runner adds eight worker processes workbench has no use for.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    },
    remote=lambda s: _remote_url(s.mlflow_tracking_uri, "WORKBENCH_MLFLOW_TRACKING_URI"),
)


# --- Kafka -------------------------------------------------------------------------


def _kafka_addresses(settings: Settings) -> list[Address]:
    host, port = kafka.broker_address(settings)
    return [
        Address(host, port, "WORKBENCH_KAFKA_BOOTSTRAP"),
        Address(host, settings.kafka_controller_port, "WORKBENCH_KAFKA_CONTROLLER_PORT"),
    ]


def _kafka_remote(settings: Settings) -> str | None:
    servers = settings.kafka_bootstrap.split(",")
    host = servers[0].strip().rpartition(":")[0]
    if len(servers) > 1 or host not in LOOPBACK:
        return f"WORKBENCH_KAFKA_BOOTSTRAP points at {settings.kafka_bootstrap}, not this machine"
    return None


def _kafka_healthy(settings: Settings) -> bool:
    return _tcp_open(_kafka_addresses(settings)[0]) and kafka.broker_ready(settings)


KAFKA = Service(
    name="kafka",
    description="Apache Kafka broker in KRaft mode (single node)",
    command=lambda s: kafka.command(s, jvm.check_java()),
    addresses=_kafka_addresses,
    healthy=_kafka_healthy,
    prepare=kafka.prepare,
    after_start=kafka.ensure_topics,
    remote=_kafka_remote,
    stop_timeout=60,
)


#: The groups ``wb up`` starts when no service is named.
DEFAULT_GROUPS = frozenset({"core", "serving"})

SERVICES: dict[str, Service] = {service.name: service for service in (KAFKA, MLFLOW)}


def services(settings: Settings) -> dict[str, Service]:
    """The fixed services, Airflow's (group ``airflow``), one scoring service per deployed
    model and the stream job once one is configured (``wb stream start``)."""
    from workbench import airflow, stream
    from workbench.lab import LAB
    from workbench.serving import deployments

    found = list(airflow.SERVICES)
    found.extend(deployments.service(d) for d in deployments.load(settings).values())
    if stream.load(settings) is not None:
        found.append(stream.STREAM)
    return {**SERVICES, LAB.name: LAB, **{service.name: service for service in found}}
