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
    "ServiceError",
    "ServiceUnavailable",
    "Settings",
    "WorkbenchError",
    "publish",
    "settings",
    "tail",
    "topics",
]

# Imported on first use, so `import workbench` stays light in every environment.
_LAZY = {
    "publish": ("workbench.events", "publish"),
    "tail": ("workbench.events", "tail"),
    "topics": ("workbench.events", "topics"),
}

if TYPE_CHECKING:
    from workbench.events import publish, tail, topics


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
