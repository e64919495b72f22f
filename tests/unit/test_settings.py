from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import workbench as wb
from workbench.settings import apply_telemetry_policy


def test_defaults_bind_every_service_to_loopback(clean_env: Path) -> None:
    current = wb.settings()

    assert current.kafka_bootstrap == "127.0.0.1:9092"
    for url in (
        current.mlflow_tracking_uri,
        current.serving_url,
        current.airflow_url,
        current.flink_url,
        current.lab_url,
    ):
        assert url.startswith("http://127.0.0.1:")
    assert current.telemetry is False


def test_environment_variables_override_defaults(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_KAFKA_BOOTSTRAP", "broker-1:29092,broker-2:29092")
    monkeypatch.setenv("WORKBENCH_MLFLOW_TRACKING_URI", "http://mlflow.internal:5000/")
    monkeypatch.setenv("WORKBENCH_KAFKA_PARTITIONS", "12")
    monkeypatch.setenv("WORKBENCH_HOME", str(clean_env / "elsewhere"))

    current = wb.settings()

    assert current.kafka_bootstrap == "broker-1:29092,broker-2:29092"
    assert current.mlflow_tracking_uri == "http://mlflow.internal:5000"
    assert current.kafka_partitions == 12
    assert current.home == clean_env / "elsewhere"


def test_a_dotenv_file_is_read_but_the_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        "WORKBENCH_SERVING_URL=http://127.0.0.1:3100\nWORKBENCH_KAFKA_PARTITIONS=6\n"
    )
    monkeypatch.setenv("WORKBENCH_KAFKA_PARTITIONS", "4")

    current = wb.settings()

    assert current.serving_url == "http://127.0.0.1:3100"
    assert current.kafka_partitions == 4


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKBENCH_KAFKA_PARTITIONS", "three"),
        ("WORKBENCH_KAFKA_PARTITIONS", "0"),
        ("WORKBENCH_KAFKA_BOOTSTRAP", "localhost"),
        ("WORKBENCH_KAFKA_BOOTSTRAP", "127.0.0.1:99999"),
        ("WORKBENCH_MLFLOW_TRACKING_URI", "127.0.0.1:5000"),
        ("WORKBENCH_SERVING_URL", "http://127.0.0.1:port"),
        ("WORKBENCH_CONNECT_TIMEOUT", "-1"),
        ("WORKBENCH_TELEMETRY", "perhaps"),
    ],
    ids=[
        "word-for-int",
        "zero-partitions",
        "no-port",
        "port-too-big",
        "no-scheme",
        "port-not-a-number",
        "negative-timeout",
        "not-a-bool",
    ],
)
def test_a_malformed_value_is_rejected_with_the_variable_name(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(wb.ConfigError, match=re.escape(f"{variable}={value!r}")) as caught:
        wb.settings()

    assert "unset these environment variables" in str(caught.value)


def test_telemetry_is_switched_off_unless_asked_for(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    monkeypatch.delenv("BENTOML_DO_NOT_TRACK", raising=False)

    apply_telemetry_policy()

    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["BENTOML_DO_NOT_TRACK"] == "true"


def test_telemetry_setting_turns_it_back_on(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    monkeypatch.delenv("BENTOML_DO_NOT_TRACK", raising=False)
    monkeypatch.setenv("WORKBENCH_TELEMETRY", "true")

    apply_telemetry_policy()

    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert os.environ["BENTOML_DO_NOT_TRACK"] == "false"
