"""Starting, stopping and watching the stream job: ``wb.stream.start(model)`` and co.

``start`` deploys the model's scoring service (as :func:`workbench.deploy`), then runs
the PyFlink job of :mod:`workbench.stream.job` as the ``stream`` service of the local
stack: it reads ``transactions``, keeps per-card features from the model's feature
definition, scores through the service and writes ``scores`` and the dead letters,
exactly once. The job restarts on its own if its process dies and resumes from its
latest checkpoint. With ``WORKBENCH_FLINK_URL`` pointing at another machine, the job
is submitted to that Flink cluster instead.

This module runs in the lab environment; the job itself runs in the flink one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from workbench.errors import DataError, ServiceError, ServiceUnavailable
from workbench.settings import Settings
from workbench.settings import settings as read_settings
from workbench.stack.services import Service, _remote_url, _url_address

log = logging.getLogger(__name__)

__all__ = ["StreamStatus", "start", "status", "stop"]

SERVICE = "stream"


@dataclass(frozen=True)
class Job:
    """What the stream service runs: which model, its definition, where it is served."""

    model: str
    alias: str
    definition: str
    url: str


def _job_file(settings: Settings) -> Path:
    return settings.home / "stream" / "job.json"


def load(settings: Settings) -> Job | None:
    """The configured job, or ``None`` before the first ``start``."""
    path = _job_file(settings)
    if not path.exists():
        return None
    return Job(**json.loads(path.read_text()))


def _save(settings: Settings, job: Job) -> None:
    path = _job_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(job), indent=2))


def flink_python(settings: Settings | None = None) -> Path:
    """The flink environment's Python, beside the lab environment's."""
    python = Path(sys.prefix).parent / "flink" / "bin" / "python"  # .venvs/lab -> .venvs/flink
    if not python.exists():
        raise ServiceError(f"the flink environment is missing ({python}); `make envs` creates it")
    return python


def _command(settings: Settings) -> list[str]:
    job = load(settings)
    if job is None:
        raise ServiceError("no stream job configured; start one with `wb stream start MODEL`")
    return [
        str(flink_python(settings)),
        "-m",
        "workbench.stream.job",
        "--model",
        job.model,
        "--definition",
        job.definition,
        "--url",
        job.url,
    ]


def running_jobs(settings: Settings, timeout: float = 1.0) -> list[dict[str, Any]]:
    """The Flink jobs the REST API reports as running; empty when it does not answer."""
    try:
        response = httpx.get(f"{settings.flink_url}/jobs/overview", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError:
        return []
    return [job for job in response.json().get("jobs", []) if job.get("state") == "RUNNING"]


def _healthy(settings: Settings) -> bool:
    job = load(settings)
    if job is None:
        return False
    name = f"workbench-stream-{job.model}"
    return any(found.get("name") == name for found in running_jobs(settings))


STREAM = Service(
    name=SERVICE,
    group="stream",
    description="PyFlink scoring job on Flink's mini cluster (web UI on WORKBENCH_FLINK_URL)",
    command=_command,
    addresses=lambda s: [_url_address(s.flink_url, "WORKBENCH_FLINK_URL")],
    healthy=_healthy,
    prepare=lambda s: _prepare(s),
    environment=lambda s: {"PYTHONUNBUFFERED": "1"},
    remote=lambda s: _remote_url(s.flink_url, "WORKBENCH_FLINK_URL"),
    restart=True,
    stop_timeout=60,
)


def _prepare(settings: Settings) -> None:
    from workbench import jvm
    from workbench.stream import checkpoints

    jvm.check_java()
    jvm.fetch_jars(settings)
    checkpoints.folder(settings).mkdir(parents=True, exist_ok=True)


def _definition_of(model: str, alias: str, settings: Settings) -> str:
    from workbench import tracking

    holder = tracking._holder(tracking.client(settings), model, alias)
    if holder is None:
        raise DataError(
            f"no version of {model!r} has the alias {alias!r}; "
            f"give one with wb.promote({model!r}, version, alias={alias!r})"
        )
    name = (holder.tags or {}).get("workbench.features")
    if not name:
        raise DataError(
            f"{model} version {holder.version} was logged without a feature definition; "
            "the stream needs one to compute features: wb.log_model(..., features=...)"
        )
    return str(name)


def start(
    model: str, alias: str = "champion", *, fresh: bool = False, settings: Settings | None = None
) -> StreamStatus:
    """Deploy ``model`` and run the stream job that scores through it; wait until it runs.

    The job resumes from its latest checkpoint unless ``fresh`` (which forgets them:
    the job then starts from the consumer group's committed offsets).
    """
    from workbench import stack
    from workbench.serving import deploy
    from workbench.stream import checkpoints

    settings = settings or read_settings()
    definition = _definition_of(model, alias, settings)
    endpoint = deploy(model, alias, settings=settings)
    job = Job(model, alias, definition, endpoint.url)
    before = load(settings)
    if before is not None and (before != job or fresh):
        stack.down([SERVICE], settings)
    if fresh:
        shutil.rmtree(checkpoints.folder(settings), ignore_errors=True)
    if before != job:
        _save(settings, job)
    remote = _remote_url(settings.flink_url, "WORKBENCH_FLINK_URL")
    if remote:
        _submit(settings, job)
    else:
        stack.up([SERVICE], settings)
    return status(settings)


def _submit(settings: Settings, job: Job) -> None:
    """Submit the job to the Flink cluster at ``WORKBENCH_FLINK_URL`` with ``flink run``."""
    from urllib.parse import urlsplit

    from workbench import jvm

    flink = flink_python(settings).parent / "flink"
    if not flink.exists():
        raise ServiceError(f"{flink} is missing; `make envs` installs apache-flink")
    url = urlsplit(settings.flink_url)
    command = [
        str(flink),
        "run",
        "--detached",
        "-m",
        f"{url.hostname}:{url.port or 8081}",
        "-pyexec",
        str(flink_python(settings)),
        "-pym",
        "workbench.stream.job",
        "-j",
        *[str(jar) for jar in jvm.flink_connector_jars(settings)],
        "--",
        *_command(settings)[3:],
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode:
        raise ServiceError(f"flink run failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def stop(settings: Settings | None = None) -> bool:
    """Stop the job (its checkpoints stay; the next start resumes). True if it ran."""
    from workbench import stack

    settings = settings or read_settings()
    if load(settings) is None:
        return False
    return bool(stack.down([SERVICE], settings))


@dataclass(frozen=True)
class StreamStatus:
    """The job's state as Flink reports it."""

    model: str | None
    state: str
    flink_url: str
    job_id: str | None = None
    started: float | None = None
    checkpoints: int = 0
    last_checkpoint: float | None = None
    records_in: int | None = None

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in asdict(self).items())
        return f"<table>{rows}</table>"


def status(settings: Settings | None = None) -> StreamStatus:
    """Whether the job runs, its checkpoints, and where its web UI is."""
    settings = settings or read_settings()
    job = load(settings)
    if job is None:
        return StreamStatus(None, "not configured", settings.flink_url)
    name = f"workbench-stream-{job.model}"
    found = [j for j in running_jobs(settings, timeout=3) if j.get("name") == name]
    if not found:
        return StreamStatus(job.model, "stopped", settings.flink_url)
    info = found[0]
    counts: dict[str, Any] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError):
        counts = httpx.get(f"{settings.flink_url}/jobs/{info['jid']}/checkpoints", timeout=3).json()
    completed = counts.get("counts", {}).get("completed", 0)
    latest = (counts.get("latest") or {}).get("completed") or {}
    return StreamStatus(
        job.model,
        "running",
        settings.flink_url,
        job_id=info["jid"],
        started=info.get("start-time", 0) / 1000,
        checkpoints=int(completed),
        last_checkpoint=(latest.get("latest_ack_timestamp") or 0) / 1000 or None,
    )


def wait_for_checkpoint(settings: Settings | None = None, timeout: float = 120) -> StreamStatus:
    """Wait until the running job has completed a checkpoint; return its status."""
    settings = settings or read_settings()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = status(settings)
        if current.state == "running" and current.checkpoints > 0:
            return current
        time.sleep(1)
    raise ServiceUnavailable(
        f"the stream job made no checkpoint within {timeout:.0f} s; `wb logs stream` shows why"
    )
