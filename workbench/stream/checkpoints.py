"""The stream job's Flink options: where it keeps its checkpoints, which one a start
resumes from, and the rest of its configuration. Free of PyFlink, so that both the
job (flink environment) and ``wb stream start`` (lab environment) read them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from workbench import jvm
from workbench.settings import Settings

#: Options a cluster of its own decides: its web UI and its task slots.
CLUSTER_OPTIONS = frozenset(
    {"rest.address", "rest.bind-address", "rest.port", "taskmanager.numberOfTaskSlots"}
)


def options(current: Settings, model: str, resume: str | None, *, python: str) -> dict[str, str]:
    """The job's Flink options: checkpoints, restarts, the web UI, jars, ``python``."""
    url = urlsplit(current.flink_url)
    values = {
        "parallelism.default": str(current.stream_parallelism),
        "taskmanager.numberOfTaskSlots": str(current.stream_parallelism),
        "rest.address": url.hostname or "127.0.0.1",
        "rest.bind-address": url.hostname or "127.0.0.1",
        "rest.port": str(url.port or 8081),
        "pipeline.name": f"workbench-stream-{model}",
        "pipeline.jars": ";".join(path.as_uri() for path in jvm.flink_connector_jars(current)),
        "python.executable": python,
        "python.client.executable": python,
        "python.fn-execution.bundle.time": "10",
        "python.fn-execution.bundle.size": "1000",
        "execution.checkpointing.interval": f"{current.stream_checkpoint_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": folder(current).as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "execution.checkpointing.min-pause": "100 ms",
        "restart-strategy.type": "exponential-delay",
    }
    if resume:
        values["execution.state-recovery.path"] = resume
    return values


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
