"""One settings object for every part of workbench.

Values come from ``WORKBENCH_*`` environment variables, then an optional ``.env`` file in
the working directory, then the local defaults below (everything on 127.0.0.1). The
compose file sets the same names, so a notebook runs unchanged on a laptop, in compose
and against a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workbench.errors import ConfigError

ENV_PREFIX = "WORKBENCH_"


def _default_home() -> Path:
    # In a checkout the home sits beside the code; an installed package uses the cwd.
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():
        return repo / ".workbench"
    return Path.cwd() / ".workbench"


class Settings(BaseSettings):
    """Where each service lives and how workbench behaves.

    Every field is read from the environment variable ``WORKBENCH_<FIELD>``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=_default_home, description="state, logs, jars")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="local KRaft port")
    kafka_partitions: int = Field(3, ge=1, le=1000, description="partitions per topic")
    mlflow_tracking_uri: str = Field("http://127.0.0.1:5000", description="MLflow server")
    serving_url: str = Field("http://127.0.0.1:3000", description="BentoML scoring service")
    airflow_url: str = Field("http://127.0.0.1:8080", description="Airflow api-server")
    flink_url: str = Field("http://127.0.0.1:8081", description="Flink REST API and web UI")
    lab_url: str = Field("http://127.0.0.1:8888", description="JupyterLab")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to wait for a service")
    start_timeout: float = Field(120.0, gt=0, description="seconds for a service to be healthy")
    telemetry: bool = Field(False, description="let MLflow and BentoML send usage data")
    admin_token: SecretStr | None = Field(
        None, description="bearer token for admin calls (default: generated in the home)"
    )
    serving_poll_seconds: float = Field(2.0, gt=0, description="how often serving checks aliases")
    serving_max_records: int = Field(1000, ge=1, description="records per scoring request")
    serving_max_body_bytes: int = Field(1_048_576, ge=1024, description="request body limit")
    stream_parallelism: int = Field(2, ge=1, le=64, description="parallelism of the stream job")
    stream_checkpoint_ms: int = Field(
        1000, ge=100, description="checkpoint interval; scores become visible per checkpoint"
    )
    stream_batch_size: int = Field(64, ge=1, le=1000, description="events per scoring request")
    stream_max_in_flight: int = Field(4, ge=1, le=64, description="scoring requests at once")
    stream_request_timeout: float = Field(2.0, gt=0, description="seconds per scoring request")
    airflow_retries: int = Field(2, ge=0, le=20, description="retries of a failed DAG task")
    airflow_retry_delay: float = Field(
        300.0, ge=0, description="seconds between a failed DAG task and its retry"
    )
    airflow_schedules: bool = Field(
        True, description="DAGs run on their schedules (off: only triggers and asset events)"
    )
    batch_database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL of the batch results (default: SQLite in the home)"
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"expected host:port[,host:port...], got {value!r} (for example 127.0.0.1:9092)"
                )
        return value

    @field_validator("serving_url", "airflow_url", "flink_url", "lab_url", "mlflow_tracking_uri")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http(s) URL such as http://127.0.0.1:5000, got {value!r}"
            )
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"the port in {value!r} is not a number") from exc
        return value.rstrip("/")

    @property
    def run_dir(self) -> Path:
        """Supervisor's socket, pid file and generated configuration."""
        return self.home / "run"

    @property
    def logs_dir(self) -> Path:
        """One log file per service."""
        return self.home / "logs"

    @property
    def jars_dir(self) -> Path:
        """JVM artifacts fetched from Maven Central by ``images/pom.xml``."""
        return self.home / "jars"

    def public(self) -> dict[str, Any]:
        """The resolved values, as ``wb status`` shows them; secrets are masked."""
        return {name: str(value) for name, value in self.model_dump().items()}

    def environment(self) -> dict[str, str]:
        """The ``WORKBENCH_*`` variables that reproduce these settings in a child process."""
        values = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            values[ENV_PREFIX + name.upper()] = str(value)
        return values

    def admin_secret(self) -> str:
        """The admin token: the setting, else one generated once and kept in the home."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        return generated_secret(self.run_dir / "admin-token")


def generated_secret(path: Path) -> str:
    """The secret kept in ``path``: generated on first use into a file only its owner
    can read, then read from it."""
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def settings(**overrides: Any) -> Settings:
    """Read the settings now, from the environment, ``.env`` and defaults.

    Keyword arguments override single fields (``settings(kafka_partitions=6)``). A bad
    value raises :class:`ConfigError` naming the environment variable to fix.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        variable = ENV_PREFIX + field.upper()
        shown = os.environ.get(variable, error.get("input"))
        lines.append(f"{variable}={shown!r}: {error['msg']}")
    return (
        "invalid workbench settings:\n  "
        + "\n  ".join(lines)
        + ("\nFix or unset these environment variables (or the .env file) and try again.")
    )


def apply_telemetry_policy(current: Settings | None = None) -> dict[str, str]:
    """Switch MLflow and BentoML usage tracking off unless ``WORKBENCH_TELEMETRY`` is set.

    Returns the variables it set; a variable the user set explicitly is left alone.
    """
    enabled = (current or settings()).telemetry
    wanted = {
        "MLFLOW_DISABLE_TELEMETRY": "false" if enabled else "true",
        "BENTOML_DO_NOT_TRACK": "false" if enabled else "true",
    }
    applied = {}
    for name, value in wanted.items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied
