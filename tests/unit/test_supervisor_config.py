from __future__ import annotations

from pathlib import Path

import pytest

from workbench.settings import settings
from workbench.stack import supervisor
from workbench.stack.services import SERVICES


@pytest.fixture
def config(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    monkeypatch.setenv("WORKBENCH_HOME", str(clean_env / "home 100%"))
    current = settings()
    return supervisor.render_config(current, [SERVICES["mlflow"]])


def test_the_control_socket_is_private(config: str) -> None:
    assert "chmod=0700" in config
    assert "inet_http_server" not in config


def test_a_crashed_service_stays_down_until_wb_up(config: str) -> None:
    assert "autorestart=false" in config
    assert "stopasgroup=true" in config


def test_percent_signs_in_paths_are_escaped_for_supervisord(config: str) -> None:
    assert "home 100%%" in config
    assert "home 100%/" not in config


def test_services_get_the_resolved_settings_and_no_telemetry(config: str) -> None:
    assert 'WORKBENCH_MLFLOW_TRACKING_URI="http://127.0.0.1:5000"' in config
    assert 'MLFLOW_DISABLE_TELEMETRY="true"' in config
