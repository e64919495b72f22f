"""The exceptions workbench raises.

Every error derives from :class:`WorkbenchError`, so a notebook can catch one name.
Messages say what was expected, what came instead, and what to do next.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Root of every error workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A setting is malformed or points somewhere unusable."""


class DataError(WorkbenchError):
    """Input data does not fit what a model, feature definition or topic expects."""


class ServiceError(WorkbenchError):
    """A local service failed to start, stop or become healthy."""


class ServiceUnavailable(WorkbenchError):
    """A service (Kafka, MLflow, ...) did not answer within the time allowed."""


class MissingDependency(WorkbenchError):
    """A tool or package that this call needs is not installed."""
