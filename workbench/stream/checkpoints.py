"""Where the streaming job keeps its checkpoints, and which one a start resumes from."""

from __future__ import annotations

from pathlib import Path

from workbench.settings import Settings


def folder(settings: Settings) -> Path:
    """The checkpoint folder: ``<home>/stream/checkpoints/<job id>/chk-<n>``."""
    return settings.home / "stream" / "checkpoints"


def latest(settings: Settings) -> str | None:
    """The newest complete checkpoint of any earlier run, or ``None``.

    A checkpoint is complete once Flink has written its ``_metadata`` file; Flink
    removes older ones as newer complete, keeping a few.
    """
    done = [meta.parent for meta in folder(settings).glob("*/chk-*/_metadata")]
    if not done:
        return None
    newest = max(done, key=lambda path: (path.stat().st_mtime, int(path.name.split("-")[1])))
    return str(newest)
