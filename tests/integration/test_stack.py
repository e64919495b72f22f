"""`wb up`, `wb status`, `wb down` against real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, run_wb
from workbench.settings import Settings


def _status(env: dict[str, str] | None = None) -> dict:
    result = run_wb("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_for_state(service: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = _status()["services"][service]
        if current["state"] == state or time.monotonic() > deadline:
            return current
        time.sleep(0.5)


def test_status_reports_each_service_with_pid_address_health_and_log(services: Settings) -> None:
    report = _status()

    for name in ("kafka", "mlflow"):
        service = report["services"][name]
        assert service["state"] == "up"
        assert service["healthy"] is True
        assert isinstance(service["pid"], int)
        assert Path(service["log"]).is_file()
    assert report["services"]["kafka"]["address"].startswith(services.kafka_bootstrap)
    assert report["settings"]["mlflow_tracking_uri"] == services.mlflow_tracking_uri


def test_wb_up_twice_starts_nothing_twice(services: Settings) -> None:
    before = {name: s["pid"] for name, s in _status()["services"].items()}

    result = run_wb("up")

    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    after = {name: s["pid"] for name, s in _status()["services"].items()}
    assert after == before


@pytest.mark.parametrize("service", ["mlflow", "kafka"])
def test_a_killed_service_shows_as_down_and_wb_up_brings_it_back(
    services: Settings, service: str
) -> None:
    pid = _status()["services"][service]["pid"]

    os.kill(pid, signal.SIGKILL)
    down = _wait_for_state(service, "down")

    assert down["state"] == "down"
    assert down["pid"] is None
    assert "exited" in down["detail"]

    result = run_wb("up", service)

    assert result.returncode == 0, result.stderr
    back = _status()["services"][service]
    assert back["state"] == "up"
    assert back["healthy"] is True
    assert back["pid"] != pid


@pytest.fixture
def spare_home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A second, empty workbench home on its own ports; stopped afterwards."""
    env = {
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "WORKBENCH_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "WORKBENCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "WORKBENCH_KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    yield env
    run_wb("down", env=env)


def test_a_taken_port_is_reported_with_who_holds_it(spare_home: dict[str, str]) -> None:
    port = int(spare_home["WORKBENCH_MLFLOW_TRACKING_URI"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()

        result = run_wb("up", "mlflow", env=spare_home)

    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert f"127.0.0.1:{port} is already in use by pid {os.getpid()}" in message
    assert "WORKBENCH_MLFLOW_TRACKING_URI" in message


def test_a_service_that_is_not_healthy_in_time_fails_with_its_log(
    spare_home: dict[str, str],
) -> None:
    result = run_wb("up", "mlflow", env={**spare_home, "WORKBENCH_START_TIMEOUT": "0.5"})

    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "mlflow did not become healthy within 0.5 s" in message
    assert "last lines of" in message or "is empty" in message


def test_a_stale_pid_file_is_cleaned_up(spare_home: dict[str, str]) -> None:
    run_dir = Path(spare_home["WORKBENCH_HOME"]) / "run"
    run_dir.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run_dir / "supervisord.pid").write_text(f"{gone.pid}\n")

    result = run_wb("up", "mlflow", env=spare_home)

    assert result.returncode == 0, result.stderr
    assert "removing stale pid file" in " ".join(result.stderr.split())
    assert int((run_dir / "supervisord.pid").read_text()) != gone.pid
    assert _status(spare_home)["services"]["mlflow"]["state"] == "up"


def test_wb_down_stops_everything_in_a_home(spare_home: dict[str, str]) -> None:
    assert run_wb("up", "mlflow", env=spare_home).returncode == 0

    result = run_wb("down", env=spare_home)

    assert result.returncode == 0, result.stderr
    assert "mlflow" in result.stdout
    report = _status(spare_home)
    assert report["services"]["mlflow"]["state"] == "down"
    assert report["services"]["mlflow"]["healthy"] is False
