"""A private stack for a benchmark: its own home and free ports, so that a stack already
running on this machine is neither used nor disturbed."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.settings import Settings

log = logging.getLogger("benchmarks")

#: The default stack's ports, never handed out.
RESERVED_PORTS = {3000, 5000, 8080, 8081, 8888, 9092, 9093}


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports on 127.0.0.1 that nothing listens on now, none of the stack's."""
    ports: set[int] = set()
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in RESERVED_PORTS:
            ports.add(port)
    return sorted(ports)


@contextlib.contextmanager
def private_stack(home: Path, services: list[str], **extra: str) -> Iterator[Settings]:
    """``services`` started in ``home``, every address on a free port, ``extra`` added to
    the environment; everything (supervisord too) stopped at the end, also on error."""
    from workbench import stack
    from workbench.settings import settings

    kafka, controller, mlflow, serving, flink, airflow, lab = free_ports(7)
    env = {
        "WORKBENCH_HOME": str(home),
        "WORKBENCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "WORKBENCH_KAFKA_CONTROLLER_PORT": str(controller),
        "WORKBENCH_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow}",
        "WORKBENCH_SERVING_URL": f"http://127.0.0.1:{serving}",
        "WORKBENCH_FLINK_URL": f"http://127.0.0.1:{flink}",
        "WORKBENCH_AIRFLOW_URL": f"http://127.0.0.1:{airflow}",
        "WORKBENCH_LAB_URL": f"http://127.0.0.1:{lab}",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        **extra,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    current = settings()
    try:
        log.info("starting %s in %s", ", ".join(services), home)
        stack.up(services, current)
        yield current
    finally:
        log.info("stopping the private stack in %s", home)
        stack.down(settings=current)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
