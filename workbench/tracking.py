"""MLflow: reaching the tracking server within a bounded time."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import httpx

from workbench.errors import MissingDependency, ServiceUnavailable
from workbench.settings import Settings, apply_telemetry_policy
from workbench.settings import settings as read_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def check_server(settings: Settings | None = None, *, timeout: float | None = None) -> None:
    """Raise :class:`ServiceUnavailable` unless the tracking server answers its health check."""
    settings = settings or read_settings()
    waited = settings.connect_timeout if timeout is None else timeout
    uri = settings.mlflow_tracking_uri
    try:
        response = httpx.get(f"{uri}/health", timeout=waited)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"the MLflow server at {uri} did not answer within {waited:g} s ({exc}). "
            "Start it with `wb up mlflow`, or set WORKBENCH_MLFLOW_TRACKING_URI to a "
            "running server."
        ) from None
    if response.status_code != 200:
        raise ServiceUnavailable(
            f"the MLflow server at {uri} is not healthy: /health answered "
            f"{response.status_code} {response.text[:200]!r}. See `wb logs mlflow`."
        )


def client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client for the configured server, after checking that it answers.

    Also points MLflow's fluent API (``mlflow.start_run`` ...) at the same server.
    """
    settings = settings or read_settings()
    apply_telemetry_policy(settings)
    check_server(settings)
    try:
        import mlflow
    except ImportError:
        raise MissingDependency(
            "mlflow is not installed in this environment; use the lab environment (make envs)"
        ) from None
    # Fail fast instead of MLflow's minutes of retries when the server goes away mid-call.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return mlflow.MlflowClient(settings.mlflow_tracking_uri)
