"""The BentoML service that serves one registered model: ``bentoml serve`` target.

Which model is read from ``WORKBENCH_SERVE_MODEL`` and ``WORKBENCH_SERVE_ALIAS``
(``wb.deploy`` sets both). The scoring API itself is the ASGI app of
:mod:`workbench.serving.app`; BentoML hosts it with its health (``/livez``), readiness
(``/readyz``, false until the model is loaded) and Prometheus (``/metrics``) endpoints.
"""

from __future__ import annotations

import os

import bentoml

from workbench.serving.app import create_app
from workbench.serving.holder import ModelHolder
from workbench.serving.scorer import Scorer
from workbench.settings import apply_telemetry_policy, settings

MODEL_ENV = "WORKBENCH_SERVE_MODEL"
ALIAS_ENV = "WORKBENCH_SERVE_ALIAS"

_settings = settings()
apply_telemetry_policy(_settings)
holder = ModelHolder(
    os.environ.get(MODEL_ENV, ""), os.environ.get(ALIAS_ENV, "champion"), _settings
)
# BentoML's own request metrics do not know models and versions; these do.
_requests = bentoml.metrics.Counter(
    name="workbench_score_requests",
    documentation="Scoring requests answered, by model and version",
    labelnames=["model", "version"],
)
_records = bentoml.metrics.Counter(
    name="workbench_scored_records",
    documentation="Records scored, by model and version",
    labelnames=["model", "version"],
)
_latency = bentoml.metrics.Histogram(
    name="workbench_score_seconds",
    documentation="Time to answer a scoring request",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)


def _observe(scorer: Scorer, records: int, seconds: float) -> None:
    _requests.labels(model=scorer.name, version=scorer.version).inc()
    _records.labels(model=scorer.name, version=scorer.version).inc(records)
    _latency.observe(seconds)


app = create_app(
    holder,
    admin_token=_settings.admin_secret(),
    max_records=_settings.serving_max_records,
    max_body_bytes=_settings.serving_max_body_bytes,
    observe=_observe,
)


@bentoml.service(
    name="workbench-scoring",
    workers=1,
    # BentoML keeps a timer per request alive for the whole timeout: a short one keeps
    # that garbage, and the collector pauses it causes, small. Scoring takes milliseconds.
    traffic={"timeout": 10},
    # A log line per request costs more than scoring it; errors still reach the log.
    logging={"access": {"enabled": False}},
    # Tracing every scoring request halves throughput; health and admin calls keep it.
    tracing={"excluded_urls": ["/score"]},
)
@bentoml.asgi_app(app, path="/")
class Scoring:
    """Scores records with the registered model ``WORKBENCH_SERVE_MODEL@ALIAS``."""

    def __init__(self) -> None:
        if not holder.name:
            raise RuntimeError(f"set {MODEL_ENV} to the registered model to serve")
        import mlflow

        mlflow.set_tracking_uri(_settings.mlflow_tracking_uri)
        holder.start()

    def __is_ready__(self) -> bool:
        return holder.ready
