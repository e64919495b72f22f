"""Streaming scoring: ``wb.stream.start(model)``, ``.stop()``, ``.status()``.

The control functions live in :mod:`workbench.stream.control` (lab environment); the
PyFlink job in :mod:`workbench.stream.job` and what it does to each event in
:mod:`workbench.stream.events` (flink environment). This package imports neither
until asked, so the job's workers do not need the lab's packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.stream.control import (
        STREAM,
        StreamStatus,
        load,
        start,
        status,
        stop,
        wait_for_checkpoint,
    )

__all__ = ["STREAM", "StreamStatus", "load", "start", "status", "stop", "wait_for_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from workbench.stream import control

        return getattr(control, name)
    raise AttributeError(f"module 'workbench.stream' has no attribute {name!r}")
