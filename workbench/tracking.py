"""MLflow: runs, registered models and their aliases, as the notebook API uses them."""

from __future__ import annotations

import getpass
import html
import json
import logging
import math
import os
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from workbench.errors import DataError, MissingDependency, ServiceUnavailable, WorkbenchError
from workbench.settings import Settings, apply_telemetry_policy
from workbench.settings import settings as read_settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from workbench.features import FeatureDefinition

log = logging.getLogger(__name__)


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


# --- runs ----------------------------------------------------------------------------

#: Tags every workbench run carries, read from where the run happens.
NOTEBOOK_ENV = "WORKBENCH_NOTEBOOK"
PARAMETERS_ENV = "WORKBENCH_NOTEBOOK_PARAMETERS"


def run_context() -> dict[str, str]:
    """Where this run happens: git commit, notebook, its parameters and the host."""
    context = {"workbench.host": socket.gethostname()}
    commit = _git_commit()
    if commit:
        context["workbench.git_commit"] = commit
    notebook = os.environ.get(NOTEBOOK_ENV) or os.environ.get("JPY_SESSION_NAME")
    if notebook:
        context["workbench.notebook"] = notebook
    parameters = os.environ.get(PARAMETERS_ENV)
    if parameters:
        context["workbench.parameters"] = parameters
    return context


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@contextmanager
def experiment(name: str, run_name: str | None = None) -> Iterator[Any]:
    """An MLflow run in experiment ``name``, tagged with commit, notebook, parameters, host.

    >>> with wb.experiment("card-fraud"):
    ...     version = wb.log_model(model, "card-fraud", X_test, y_test)
    """
    import mlflow

    client()
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name=run_name, tags=run_context()) as run:
        parameters = os.environ.get(PARAMETERS_ENV)
        if parameters:
            mlflow.log_params({k: str(v)[:500] for k, v in json.loads(parameters).items()})
        yield run


# --- models --------------------------------------------------------------------------

CHALLENGER = "challenger"
CHAMPION = "champion"
_TRUSTED_PREFIXES = ("sklearn.", "lightgbm.", "numpy.", "scipy.", "collections.OrderedDict")
_SAMPLE_ROWS = 100
#: Artifact of every logged model: held-out rows with the scores the model gave them.
SAMPLE_SCORES = "workbench/sample_scores.json"


class PromotionRefused(WorkbenchError):
    """The promotion gate kept the current champion."""


@dataclass(frozen=True)
class Version:
    """A registered model version, as :func:`log_model` and :func:`promote` return it."""

    name: str
    version: int
    run_id: str
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def _repr_html_(self) -> str:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(self.metrics.items()))
        aliases = ", ".join(self.aliases) or "no alias"
        return (
            f"<b>{html.escape(self.name)}</b> version {self.version} "
            f"({html.escape(aliases)})<br><small>{html.escape(metrics)}</small>"
        )


def log_model(
    model: Any,
    name: str,
    X: pd.DataFrame,
    y: Any = None,
    features: FeatureDefinition | None = None,
    metrics: dict[str, float] | None = None,
    *,
    training_data: pd.DataFrame | None = None,
) -> Version:
    """Log a fitted classifier, register it as a new version of ``name`` and give that
    version the alias ``challenger``.

    ``X`` (and ``y``) are held-out rows: the signature and input example come from ``X``,
    and with ``y`` the held-out metrics (AUC, Gini, KS, recall at 1% FPR, precision at top
    1%) are computed and logged. ``features`` records the feature definition's name and
    version and checks ``X`` against it. ``training_data`` is fingerprinted (default:
    ``X``). Bad input raises :class:`DataError` before anything is logged.
    """
    import mlflow

    from workbench import modeling

    # Check everything before anything reaches the server.
    expected = dict(features.outputs) if features is not None else None
    modeling.check_training_data(X, y, expected)
    _check_fitted_columns(model, X)
    score = modeling.scores(model, X)
    evaluation = modeling.evaluate(y, score) if y is not None else {}
    evaluation.update(metrics or {})
    trusted = _trusted_types(model)
    registry = client()

    tags = {
        "workbench.data_fingerprint": modeling.fingerprint(
            training_data if training_data is not None else X
        ),
        "workbench.rows": str(len(training_data if training_data is not None else X)),
        "workbench.model_class": type(model).__name__,
    }
    if features is not None:
        tags["workbench.features"] = features.name
        tags["workbench.features_version"] = str(features.version)

    own_run = mlflow.active_run() is None
    if own_run:
        mlflow.set_experiment(name)
        mlflow.start_run(tags=run_context())
    try:
        info = _log(model, name, X, score, evaluation, tags, trusted, features)
    finally:
        if own_run:
            mlflow.end_run()

    version = str(info.registered_model_version)
    for key, value in {
        **tags,
        **{f"metric.{k}": f"{v:.6g}" for k, v in evaluation.items()},
    }.items():
        registry.set_model_version_tag(name, version, key, value)
    registry.set_registered_model_alias(name, CHALLENGER, version)
    log.info("registered %s version %s as %s", name, version, CHALLENGER)
    return _version(registry, name, version)


def _log(
    model: Any,
    name: str,
    X: pd.DataFrame,
    score: np.ndarray,
    evaluation: dict[str, float],
    tags: dict[str, str],
    trusted: list[str],
    features: FeatureDefinition | None,
) -> Any:
    import mlflow

    mlflow.set_tags(tags)
    if evaluation:
        mlflow.log_metrics(evaluation)
    # Rows and the scores this very model gave them, to check any later copy against.
    sample = X.head(_SAMPLE_ROWS).assign(score=score[:_SAMPLE_ROWS])
    mlflow.log_text(json.dumps(sample.to_dict(orient="records")), SAMPLE_SCORES)
    if features is not None:
        mlflow.log_dict(features.schema(), "workbench/features.json")
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; workbench checks
        # inputs itself and refuses missing values, so the hint only adds noise.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        return _log_sklearn(model, name, X, score, trusted)


def _log_sklearn(
    model: Any, name: str, X: pd.DataFrame, score: np.ndarray, trusted: list[str]
) -> Any:
    import mlflow
    from mlflow.models import infer_signature

    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(X, score),
        input_example=X.head(5),
        registered_model_name=name,
        serialization_format="skops",
        skops_trusted_types=trusted,
        pip_requirements=_requirements(model),
        pyfunc_predict_fn="predict_proba",
    )


def _check_fitted_columns(model: Any, X: pd.DataFrame) -> None:
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        return
    fitted = [str(c) for c in fitted]
    missing = [c for c in fitted if c not in X.columns]
    extra = [str(c) for c in X.columns if c not in fitted]
    if missing or extra:
        raise DataError(
            f"X does not have the columns the model was fitted on: missing {missing}, extra {extra}"
        )


def _trusted_types(model: Any) -> list[str]:
    # skops refuses types it does not know; trust exactly the ones this model needs, and
    # only from libraries workbench serves.
    import skops.io

    needed = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in needed if not t.startswith(_TRUSTED_PREFIXES)]
    if foreign:
        raise DataError(
            f"the model holds types skops does not trust and workbench will not vouch for: "
            f"{foreign}. Build it from scikit-learn and LightGBM parts (see wb.classifier)."
        )
    return list(needed)


def _requirements(model: Any) -> list[str]:
    from importlib.metadata import version

    packages = ["scikit-learn", "skops", "pandas", "numpy", "scipy"]
    if "lightgbm" in repr(type(model)) or "lightgbm" in str(model):
        packages.append("lightgbm")
    return [f"{p}=={version(p)}" for p in packages]


def _version(registry: MlflowClient, name: str, version: str) -> Version:
    found = registry.get_model_version(name, version)
    metrics = {
        key.removeprefix("metric."): float(value)
        for key, value in found.tags.items()
        if key.startswith("metric.")
    }
    return Version(name, int(found.version), found.run_id or "", tuple(found.aliases), metrics)


def models(name: str) -> pd.DataFrame:
    """The registered versions of ``name``, newest first: aliases, held-out metrics,
    feature definition, data fingerprint, run id and creation time."""
    import pandas as pd

    registry = client()
    found_versions = registry.search_model_versions(f"name = '{_quoted(name)}'")
    if not found_versions:
        raise DataError(
            f"no registered model named {name!r}; log one with wb.log_model(model, {name!r}, X, y)"
        )
    # Search results carry no aliases; the registered model maps each alias to a version.
    aliases: dict[str, list[str]] = {}
    for alias, number in registry.get_registered_model(name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for found in found_versions:
        tags = found.tags
        rows.append(
            {
                "version": int(found.version),
                "aliases": ", ".join(sorted(aliases.get(str(found.version), []))),
                "auc": _float(tags.get("metric.auc")),
                "gini": _float(tags.get("metric.gini")),
                "ks": _float(tags.get("metric.ks")),
                "features": tags.get("workbench.features", ""),
                "fingerprint": tags.get("workbench.data_fingerprint", ""),
                "run_id": found.run_id,
                "created": pd.Timestamp(found.creation_timestamp, unit="ms"),
            }
        )
    return pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True)


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def _float(value: str | None) -> float:
    return float(value) if value is not None else float("nan")


def promote(
    name: str,
    version: int | str,
    alias: str = CHAMPION,
    force: bool = False,
    reason: str | None = None,
) -> Version:
    """Move ``alias`` of model ``name`` to ``version``.

    Promoting to ``champion`` a version whose held-out AUC is below the current
    champion's is refused with both figures; ``force=True`` (with a ``reason``) overrides
    and records who and why on the version.
    """
    registry = client()
    target = registry.get_model_version(name, str(version))
    current = _holder(registry, name, alias)
    if current is not None and current.version == target.version:
        return _version(registry, name, target.version)
    if force and not reason:
        raise DataError("force=True needs a reason=... that is recorded with the promotion")

    if alias == CHAMPION and current is not None and not force:
        _gate(name, target, current)
    if force:
        registry.set_model_version_tag(
            name, target.version, "workbench.forced_by", getpass.getuser()
        )
        registry.set_model_version_tag(name, target.version, "workbench.forced_reason", str(reason))

    _remember_previous(registry, name, alias, current)
    registry.set_registered_model_alias(name, alias, target.version)
    log.info("%s: %s now points at version %s", name, alias, target.version)
    return _version(registry, name, target.version)


def _holder(registry: Any, name: str, alias: str) -> Any:
    try:
        return registry.get_model_version_by_alias(name, alias)
    except Exception as exc:  # MLflow raises a bare MlflowException for a missing alias
        if (
            "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", ""))
            or "not found" in str(exc).lower()
        ):
            return None
        raise


def _gate(name: str, target: Any, current: Any) -> None:
    new_auc = _float(target.tags.get("metric.auc"))
    old_auc = _float(current.tags.get("metric.auc"))
    if math.isnan(new_auc) or math.isnan(old_auc):
        raise PromotionRefused(
            f"cannot compare {name} version {target.version} (AUC {new_auc}) with champion "
            f"version {current.version} (AUC {old_auc}): both need a held-out AUC (log_model "
            "with y). Use force=True with a reason to promote anyway."
        )
    if new_auc < old_auc:
        raise PromotionRefused(
            f"refused: {name} version {target.version} has held-out AUC {new_auc:.4f}, below "
            f"champion version {current.version} at {old_auc:.4f}. Use force=True with a "
            "reason to promote anyway."
        )


def _remember_previous(registry: Any, name: str, alias: str, current: Any) -> None:
    # The alias history makes rollback possible after the alias has moved.
    if current is None:
        return
    key = f"workbench.history.{alias}"
    model = registry.get_registered_model(name)
    history = json.loads(model.tags.get(key, "[]"))
    history.append(int(current.version))
    registry.set_registered_model_tag(name, key, json.dumps(history[-50:]))


def rollback(name: str, alias: str = CHAMPION) -> Version:
    """Move ``alias`` back to the version that held it before the last move.

    The gate is not applied: going back is always allowed, and recorded on the version
    that lost the alias.
    """
    registry = client()
    key = f"workbench.history.{alias}"
    history = json.loads(registry.get_registered_model(name).tags.get(key, "[]"))
    if not history:
        raise DataError(
            f"{name}: no earlier version held {alias!r}, so there is nothing to roll back to"
        )
    previous = str(history.pop())
    current = _holder(registry, name, alias)
    registry.set_registered_model_alias(name, alias, previous)
    registry.set_registered_model_tag(name, key, json.dumps(history))
    if current is not None:
        registry.set_model_version_tag(name, current.version, "workbench.rolled_back", alias)
    log.info("%s: %s rolled back to version %s", name, alias, previous)
    return _version(registry, name, previous)
