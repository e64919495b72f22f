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
import zipfile
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


def _environment(settings: Settings) -> dict[str, str]:
    # Operators in thread mode run in an interpreter inside the JVM, which knows
    # neither the flink environment's packages nor workbench unless told.
    python = flink_python(settings)
    site = next((python.parent.parent / "lib").glob("python3*/site-packages"), None)
    paths = [str(site)] if site else []
    paths.append(str(Path(__file__).resolve().parents[2]))
    return {"PYTHONUNBUFFERED": "1", "PYTHONPATH": ":".join(paths)}


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
    environment=lambda s: _environment(s),
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
    if _remote_url(settings.flink_url, "WORKBENCH_FLINK_URL"):
        # The cluster may run this job already, or the one of an earlier start.
        running = _running_job_id(settings, before.model) if before else None
        if running and (before != job or fresh):
            _cancel(settings, running)
            running = None
        if running is None:
            _submit(settings, job, fresh=fresh)
        return _wait_running(settings)
    stack.up([SERVICE], settings)
    return status(settings)


def _flink_cli(settings: Settings) -> Path:
    """The ``flink`` command that ships with PyFlink in the flink environment."""
    python = flink_python(settings)
    found = next(python.parent.parent.glob("lib/python3*/site-packages/pyflink/bin/flink"), None)
    if found is None:
        raise ServiceError(
            f"PyFlink's flink command is missing under {python.parent.parent}; "
            "`make envs` installs apache-flink"
        )
    return found


def _package(settings: Settings) -> Path:
    """workbench's source as a zip, shipped with the job to a remote cluster's workers."""
    package = Path(__file__).resolve().parents[1]
    target = settings.home / "stream" / "workbench.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*.py")):
            archive.write(path, path.relative_to(package.parent))
    return target


def _submit(settings: Settings, job: Job, *, fresh: bool = False) -> None:
    """Submit the job to the Flink cluster at ``WORKBENCH_FLINK_URL`` with ``flink run``.

    The cluster's workers run the job's Python with the flink environment's interpreter
    path (the same on the cluster's machines, as in the flink image) and get workbench's
    own source with the job.
    """
    import os
    from urllib.parse import urlsplit

    from workbench.stream import checkpoints

    python = flink_python(settings)
    url = urlsplit(settings.flink_url)
    resume = None if fresh else checkpoints.latest(settings)
    # The client compiles the job under the cluster's context, which takes the job's
    # options from the command line, not from the configuration the program builds.
    options = checkpoints.options(settings, job.model, resume, python=str(python))
    command = [
        str(_flink_cli(settings)),
        "run",
        "--detached",
        *(
            f"-D{key}={value}"
            for key, value in options.items()
            if key not in checkpoints.CLUSTER_OPTIONS
        ),
        "--jobmanager",
        f"{url.hostname}:{url.port or 8081}",
        "--pyExecutable",
        str(python),
        "--pyClientExecutable",
        str(python),
        "--pyFiles",
        str(_package(settings)),
        "--pyModule",
        "workbench.stream.job",
        *_command(settings)[3:],
        *(["--fresh"] if fresh else []),
        # Thread mode would need workbench and PyFlink on the cluster's own PYTHONPATH.
        "--python-mode",
        "process",
    ]
    environment = {
        **os.environ,
        **settings.environment(),
        # The client compiles the job with the flink environment's Python and packages.
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    log.info("submitting the stream job for %s to %s", job.model, settings.flink_url)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=settings.start_timeout,
        env=environment,
        check=False,
    )
    if result.returncode:
        output = f"{result.stdout}\n{result.stderr}"
        # Java's chain of causes says what went wrong; the stack frames rarely do.
        causes = dict.fromkeys(
            line.strip() for line in output.splitlines() if line.strip().startswith("Caused by:")
        )
        raise ServiceError(
            f"flink run against {settings.flink_url} failed (exit {result.returncode}):\n"
            + "\n".join(causes)
            + f"\n...\n{output[-1500:]}"
        )


def _running_job_id(settings: Settings, model: str) -> str | None:
    name = f"workbench-stream-{model}"
    found = [j for j in running_jobs(settings, timeout=3) if j.get("name") == name]
    return str(found[0]["jid"]) if found else None


def _cancel(settings: Settings, job_id: str) -> None:
    """Cancel a job on the cluster (its checkpoints are retained) and wait until it ends."""
    try:
        httpx.patch(
            f"{settings.flink_url}/jobs/{job_id}", params={"mode": "cancel"}, timeout=10
        ).raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"cancelling Flink job {job_id} at {settings.flink_url} failed: {exc}"
        ) from exc
    deadline = time.monotonic() + settings.start_timeout
    while _job_state(settings, job_id) not in ("CANCELED", "FAILED", "FINISHED"):
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"Flink job {job_id} at {settings.flink_url} did not stop within "
                f"{settings.start_timeout:.0f} s"
            )
        time.sleep(0.5)


def _job_state(settings: Settings, job_id: str) -> str | None:
    try:
        response = httpx.get(f"{settings.flink_url}/jobs/{job_id}", timeout=3)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return str(response.json().get("state"))


def _wait_running(settings: Settings) -> StreamStatus:
    deadline = time.monotonic() + settings.start_timeout
    while True:
        current = status(settings)
        if current.state == "running":
            return current
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"the stream job was submitted to {settings.flink_url} but is not running "
                f"after {settings.start_timeout:.0f} s; the cluster's web UI shows why"
            )
        time.sleep(1)


def stop(settings: Settings | None = None) -> bool:
    """Stop the job (its checkpoints stay; the next start resumes). True if it ran."""
    from workbench import stack

    settings = settings or read_settings()
    job = load(settings)
    if job is None:
        return False
    if _remote_url(settings.flink_url, "WORKBENCH_FLINK_URL"):
        running = _running_job_id(settings, job.model)
        if running:
            _cancel(settings, running)
        return running is not None
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
