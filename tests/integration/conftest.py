"""Real services for the integration tests, started once per session.

The stack runs in a home of its own under pytest's temporary folder, on free ports,
so a developer's own `wb up` stack is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from workbench import stack
from workbench.settings import Settings, settings


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """WORKBENCH_* variables of the test stack, also set in this process."""
    env = {
        "WORKBENCH_HOME": str(tmp_path_factory.mktemp("home")),
        "WORKBENCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "WORKBENCH_KAFKA_CONTROLLER_PORT": str(free_port()),
        "WORKBENCH_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "WORKBENCH_SERVING_URL": f"http://127.0.0.1:{free_port()}",
        "WORKBENCH_FLINK_URL": f"http://127.0.0.1:{free_port()}",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def services(stack_env: dict[str, str]) -> Iterator[Settings]:
    """Kafka and MLflow, started through the same code as `wb up`."""
    current = settings()
    try:
        stack.up(["kafka", "mlflow"], current)
        yield current
    finally:  # also when a start failed: no supervisord outlives the session
        stack.down(settings=current)
