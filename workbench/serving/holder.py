"""The model version a service serves, and how it follows its alias in the registry.

The holder polls the registry for the version behind the alias. A new version is
loaded beside the one serving, then swapped in with one assignment; requests that
already hold the old scorer finish on it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

from workbench.serving.scorer import Field, Scorer
from workbench.settings import Settings

log = logging.getLogger(__name__)


def load_scorer(name: str, version: str) -> Scorer:
    """Load a registered version from MLflow, with its signature and reason texts."""
    import mlflow

    from workbench import features

    uri = f"models:/{name}/{version}"
    model = mlflow.sklearn.load_model(uri)
    info = mlflow.models.get_model_info(uri)
    if info.signature is None:
        raise ValueError(f"{uri} has no signature; log it with wb.log_model")
    fields = [Field(str(c["name"]), str(c["type"])) for c in info.signature.inputs.to_dict()]
    registry = mlflow.MlflowClient()
    definition = registry.get_model_version(name, version).tags.get("workbench.features")
    texts: dict[str, str] = {}
    if definition:
        try:
            texts = dict(features.get_definition(definition).reasons)
        except features.FeatureDefinitionNotFound:
            log.warning("%s names unknown feature definition %r", uri, definition)
    return Scorer(name, str(version), model, fields, texts)


def _settle_garbage() -> None:
    # Imports and the model leave hundreds of thousands of long-lived objects; full
    # collections walking them all paused requests for 200-500 ms. Collect once now
    # (freeing the previous version too), then exempt what is left from later passes.
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHolder:
    """Holds the scorer for ``name@alias`` and swaps it when the alias moves."""

    def __init__(self, name: str, alias: str, settings: Settings) -> None:
        self.name = name
        self.alias = alias
        self.settings = settings
        self.current: Scorer | None = None
        self.loaded_at: float | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        """Load in the background and keep following the alias."""
        threading.Thread(target=self._follow, name=f"follow-{self.name}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # keep serving the old version; report and retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not follow %s@%s: %s", self.name, self.alias, self.last_error)
            self._stop.wait(self.settings.serving_poll_seconds)

    def refresh(self) -> str:
        """Check the alias now; load and swap in its version if it moved. Returns it."""
        import mlflow

        with self._lock:
            client = mlflow.MlflowClient(self.settings.mlflow_tracking_uri)
            version = str(client.get_model_version_by_alias(self.name, self.alias).version)
            if self.current is not None and self.current.version == version:
                return version
            started = time.monotonic()
            scorer = load_scorer(self.name, version)
            previous = self.current
            self.current = scorer
            self.loaded_at = time.time()
            self.last_error = None
            _settle_garbage()
            log.info(
                "serving %s version %s (was %s), loaded in %.1f s",
                self.name,
                version,
                previous.version if previous else "nothing",
                time.monotonic() - started,
            )
            return version

    @property
    def ready(self) -> bool:
        return self.current is not None

    def describe(self) -> dict[str, Any]:
        current = self.current
        return {
            "model": self.name,
            "alias": self.alias,
            "version": current.version if current else None,
            "ready": current is not None,
            "reasons": current.explains if current else None,
            "inputs": [{"name": f.name, "type": f.type} for f in current.fields] if current else [],
            "loaded_at": self.loaded_at,
            "last_error": self.last_error,
        }
