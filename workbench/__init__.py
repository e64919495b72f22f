"""workbench: deploy fraud and credit models from a notebook.

>>> import workbench as wb
>>> wb.settings().kafka_bootstrap
'127.0.0.1:9092'

The names below are the notebook API; everything else is internal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.errors import (
    ConfigError,
    DataError,
    MissingDependency,
    ServiceError,
    ServiceUnavailable,
    WorkbenchError,
)
from workbench.settings import Settings, settings

__all__ = [
    "ConfigError",
    "DataError",
    "MissingDependency",
    "NotebookFailed",
    "PromotionRefused",
    "ServiceError",
    "ServiceUnavailable",
    "Settings",
    "Version",
    "WorkbenchError",
    "classifier",
    "datasets",
    "deploy",
    "experiment",
    "features",
    "log_model",
    "models",
    "panel",
    "promote",
    "publish",
    "rollback",
    "run_notebook",
    "settings",
    "stream",
    "tail",
    "topics",
]

# Imported on first use, so `import workbench` stays light in every environment.
_LAZY: dict[str, tuple[str, str | None]] = {
    "NotebookFailed": ("workbench.notebooks", "NotebookFailed"),
    "PromotionRefused": ("workbench.tracking", "PromotionRefused"),
    "Version": ("workbench.tracking", "Version"),
    "classifier": ("workbench.modeling", "classifier"),
    "datasets": ("workbench.datasets", None),
    "stream": ("workbench.stream", None),
    "deploy": ("workbench.serving", "deploy"),
    "rollback": ("workbench.serving", "rollback"),
    "experiment": ("workbench.tracking", "experiment"),
    "features": ("workbench.features", None),
    "log_model": ("workbench.tracking", "log_model"),
    "models": ("workbench.tracking", "models"),
    "panel": ("workbench.panels", "panel"),
    "promote": ("workbench.tracking", "promote"),
    "run_notebook": ("workbench.notebooks", "run_notebook"),
    "publish": ("workbench.events", "publish"),
    "tail": ("workbench.events", "tail"),
    "topics": ("workbench.events", "topics"),
}

if TYPE_CHECKING:
    from workbench import datasets, features, stream
    from workbench.events import publish, tail, topics
    from workbench.modeling import classifier
    from workbench.notebooks import NotebookFailed, run_notebook
    from workbench.panels import panel
    from workbench.serving import deploy, rollback
    from workbench.tracking import (
        PromotionRefused,
        Version,
        experiment,
        log_model,
        models,
        promote,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        imported = importlib.import_module(module)
        value = imported if attribute is None else getattr(imported, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
