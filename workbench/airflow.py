"""Airflow on this machine, and the calls workbench makes to it.

``wb up airflow`` runs Airflow 3 from its own environment (``.venvs/airflow``) as three
services of the local stack: ``airflow-api`` (UI and REST API), ``airflow-scheduler``
(with the LocalExecutor) and ``airflow-dag-processor`` (reads ``dags/``). The metadata
database, logs, output notebooks and the generated credentials live under
``<home>/airflow``. Papermill in Airflow finds the lab environment's kernel
``workbench`` through ``JUPYTER_PATH``, so a scheduled notebook runs with the packages
it ran with in JupyterLab.

:class:`Client` triggers DAG runs through the REST API (``/api/v2``, a JWT from
``/auth/token``) and waits for them, as ``make demo`` and the tests do.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from workbench.errors import MissingDependency, ServiceError, ServiceUnavailable, WorkbenchError
from workbench.settings import Settings
from workbench.settings import settings as read_settings
from workbench.stack.services import Address, Service, _remote_url, _url_address, http_ok

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
USER = "admin"
#: Airflow's states in which a run or task is over.
FINISHED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


class AirflowRunFailed(WorkbenchError):
    """A DAG run ended in a state other than success."""

    def __init__(self, message: str, *, run: dict[str, Any]) -> None:
        super().__init__(message)
        self.run = run


# --- where things are ----------------------------------------------------------------


def airflow_home(settings: Settings) -> Path:
    """``AIRFLOW_HOME``: metadata database, logs, credentials."""
    return settings.home / "airflow"


def runs_dir(settings: Settings) -> Path:
    """Output notebooks of scheduled runs: ``<dag>/<run>/<task>-try<n>.ipynb``."""
    return airflow_home(settings) / "runs"


def _passwords_file(settings: Settings) -> Path:
    return airflow_home(settings) / "passwords.json"


def _jwt_secret_file(settings: Settings) -> Path:
    return airflow_home(settings) / "jwt-secret"


def _airflow_bin(settings: Settings) -> Path:
    # .venvs/lab -> .venvs/airflow: the environments sit side by side.
    return Path(sys.prefix).parent / "airflow" / "bin" / "airflow"


def _lab_jupyter_path() -> str:
    # The kernelspec `make envs` installs with --sys-prefix.
    return str(Path(sys.prefix) / "share" / "jupyter")


def credentials(settings: Settings | None = None) -> tuple[str, str] | None:
    """The UI and REST API user and password, once ``wb up airflow`` generated them."""
    settings = settings or read_settings()
    path = _passwords_file(settings)
    if not path.exists():
        return None
    return USER, str(json.loads(path.read_text())[USER])


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _ensure_credentials(settings: Settings) -> None:
    # Generated once per home, never a default: the simple auth manager reads the file
    # (and prints nothing, as every user already has a password in it).
    if not _passwords_file(settings).exists():
        _write_secret(_passwords_file(settings), json.dumps({USER: secrets.token_urlsafe(18)}))
    if not _jwt_secret_file(settings).exists():
        _write_secret(_jwt_secret_file(settings), secrets.token_urlsafe(32))


# --- the services --------------------------------------------------------------------


def _address(settings: Settings) -> Address:
    return _url_address(settings.airflow_url, "WORKBENCH_AIRFLOW_URL")


def environment(settings: Settings) -> dict[str, str]:
    """Airflow's configuration for every component, as environment variables."""
    home = airflow_home(settings)
    url = settings.airflow_url
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_file(settings)),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__BASE_URL": url,
        # The secret stays in its file: Airflow runs the command when it needs the value.
        "AIRFLOW__API_AUTH__JWT_SECRET_CMD": f"cat {_jwt_secret_file(settings)}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        # Papermill in the tasks finds the lab kernel; workbench's core is importable.
        "JUPYTER_PATH": _lab_jupyter_path(),
        "PYTHONPATH": str(REPO),
        "PATH": f"{_airflow_bin(settings).parent}:/usr/local/bin:/usr/bin:/bin",
        "NO_PROXY": "127.0.0.1,localhost",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def prepare(settings: Settings) -> None:
    """Credentials, folders, and the metadata database migrated to this Airflow version."""
    binary = _airflow_bin(settings)
    if not binary.exists():
        raise MissingDependency(
            f"Airflow is not installed at {binary}; `make envs` syncs the airflow environment"
        )
    _ensure_credentials(settings)
    runs_dir(settings).mkdir(parents=True, exist_ok=True)
    marker = airflow_home(settings) / ".migrated"
    if marker.exists() and (airflow_home(settings) / "airflow.db").exists():
        return
    log.info("migrating Airflow's metadata database in %s", airflow_home(settings))
    result = subprocess.run(
        [str(binary), "db", "migrate"],
        env={**os.environ, **settings.environment(), **environment(settings)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise ServiceError(f"`airflow db migrate` failed:\n{tail}")
    marker.touch()


def _health(settings: Settings) -> dict[str, Any]:
    try:
        response = httpx.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=1.0)
        return dict(response.json()) if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def _component_healthy(settings: Settings, component: str) -> bool:
    return _health(settings).get(component, {}).get("status") == "healthy"


def _api_command(settings: Settings) -> list[str]:
    address = _address(settings)
    return [
        str(_airflow_bin(settings)),
        "api-server",
        "--host",
        address.host,
        "--port",
        str(address.port),
        "--workers",
        "1",
    ]


def _remote(settings: Settings) -> str | None:
    return _remote_url(settings.airflow_url, "WORKBENCH_AIRFLOW_URL")


API = Service(
    name="airflow-api",
    description="Airflow api-server: UI and REST API",
    command=_api_command,
    addresses=lambda s: [_address(s)],
    healthy=lambda s: http_ok(f"{s.airflow_url}/api/v2/monitor/health"),
    prepare=prepare,
    environment=environment,
    remote=_remote,
    group="airflow",
)

SCHEDULER = Service(
    name="airflow-scheduler",
    description="Airflow scheduler with the LocalExecutor",
    # The log server it would start binds every interface; the api-server reads the
    # task logs from the shared folder instead.
    command=lambda s: [str(_airflow_bin(s)), "scheduler", "--skip-serve-logs"],
    addresses=lambda s: [],
    healthy=lambda s: _component_healthy(s, "scheduler"),
    prepare=prepare,
    environment=environment,
    remote=_remote,
    group="airflow",
)

DAG_PROCESSOR = Service(
    name="airflow-dag-processor",
    description="Airflow dag-processor: parses dags/",
    command=lambda s: [str(_airflow_bin(s)), "dag-processor"],
    addresses=lambda s: [],
    healthy=lambda s: _component_healthy(s, "dag_processor"),
    prepare=prepare,
    environment=environment,
    remote=_remote,
    group="airflow",
)

SERVICES = (API, SCHEDULER, DAG_PROCESSOR)


# --- the REST API --------------------------------------------------------------------


@dataclass
class Client:
    """The Airflow REST API (``/api/v2``) as the generated user."""

    settings: Settings
    _token: str | None = None

    @classmethod
    def connect(cls, settings: Settings | None = None) -> Client:
        """A client for the configured Airflow, after logging in."""
        client = cls(settings or read_settings())
        client._login()
        return client

    def _login(self) -> None:
        found = credentials(self.settings)
        if found is None:
            raise ServiceUnavailable(
                f"no Airflow credentials in {_passwords_file(self.settings)}; "
                "`wb up airflow` generates them"
            )
        user, password = found
        response = self._send(
            "POST", "/auth/token", json={"username": user, "password": password}, auth=False
        )
        self._token = str(response.json()["access_token"])

    def _send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        url = f"{self.settings.airflow_url}{path}"
        headers = {"authorization": f"Bearer {self._token}"} if auth else {}
        try:
            response = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"Airflow at {self.settings.airflow_url} did not answer ({exc}); "
                "`wb up airflow` starts it, `wb logs airflow-api` shows why it stopped"
            ) from None
        if response.status_code >= 400:
            raise ServiceError(
                f"Airflow refused {method} {path}: {response.status_code} {response.text[:500]}"
            )
        return response

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2<path>`` and return the decoded JSON."""
        response = self._send(method, f"/api/v2{path}", **kwargs)
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; raise on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return dict(self.api("GET", f"/dags/{quote(dag_id)}"))
            except ServiceError:
                errors = self.api("GET", "/importErrors")["import_errors"]
                if errors:
                    raise ServiceError(
                        f"dags/ has import errors: {errors[0]['filename']}: "
                        f"{errors[0]['stack_trace'][-800:]}"
                    ) from None
                if time.monotonic() > deadline:
                    known = sorted(d["dag_id"] for d in self.api("GET", "/dags")["dags"])
                    raise ServiceUnavailable(
                        f"Airflow has not parsed a DAG {dag_id!r} within {timeout:g} s (it "
                        f"knows {known}); see `wb logs airflow-dag-processor`"
                    ) from None
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        """Let the scheduler run ``dag_id`` (DAGs start paused)."""
        self.api("PATCH", f"/dags/{quote(dag_id)}", json={"is_paused": False})

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None
    ) -> str:
        """Start a run of ``dag_id`` now with ``conf``; returns its run id."""
        self.wait_for_dag(dag_id)
        self.unpause(dag_id)
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        run = self.api("POST", f"/dags/{quote(dag_id)}/dagRuns", json=body)
        log.info("triggered %s run %s with %s", dag_id, run["dag_run_id"], conf)
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The DAG run as Airflow describes it (``state`` among others)."""
        return dict(self.api("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}"))

    def tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances."""
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return list(self.api("GET", path)["task_instances"])

    def wait(self, dag_id: str, run_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Wait until the run is over; raise :class:`AirflowRunFailed` unless it succeeded."""
        deadline = time.monotonic() + timeout
        while (run := self.run(dag_id, run_id))["state"] not in FINISHED:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"{dag_id} run {run_id} is still {run['state']} after {timeout:g} s; "
                    f"see the UI at {self.settings.airflow_url}"
                )
            time.sleep(1)
        if run["state"] != "success":
            failed = [t["task_id"] for t in self.tasks(dag_id, run_id) if t["state"] == "failed"]
            raise AirflowRunFailed(
                f"{dag_id} run {run_id} ended {run['state']} (failed tasks: {failed}); "
                f"`Client.log({dag_id!r}, {run_id!r}, task)` or the UI at "
                f"{self.settings.airflow_url} shows why",
                run=run,
            )
        return run

    def result(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """What a task returned (its ``return_value`` XCom)."""
        path = (
            f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
            f"{quote(task_id)}/xcomEntries/return_value"
        )
        return self.api("GET", path)["value"]

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The text of one try of a task's log."""
        path = (
            f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
            f"{quote(task_id)}/logs/{try_number}"
        )
        found = self.api("GET", path, params={"full_content": "true"})
        content = found.get("content", "")
        if isinstance(content, str):
            return content
        return "\n".join(_log_line(line) for line in content)

    def asset_event(self, uri: str, extra: dict[str, Any]) -> None:
        """Record that the asset ``uri`` changed; DAGs scheduled on it start a run."""
        found = self.api("GET", "/assets", params={"uri_pattern": uri})["assets"]
        matching = [asset for asset in found if asset["uri"] == uri]
        if not matching:
            raise ServiceError(
                f"Airflow knows no asset {uri!r}; it appears once a parsed DAG names it"
            )
        self.api("POST", "/assets/events", json={"asset_id": matching[0]["id"], "extra": extra})


def announce_input(run_date: str, settings: Settings | None = None, **extra: Any) -> None:
    """Tell Airflow that ``run_date``'s input file has landed: ``batch_score`` starts for
    it (``extra`` may name ``model_name``, ``model_alias`` or ``input_path`` too)."""
    from workbench import batch

    Client.connect(settings).asset_event(batch.INPUT_ASSET, {"run_date": run_date, **extra})


def _log_line(line: Any) -> str:
    # Structured log lines: the event, and for an exception its type and message.
    if not isinstance(line, dict):
        return str(line)
    text = str(line.get("event", ""))
    for error in line.get("error_detail") or []:
        text += f"\n{error.get('exc_type')}: {error.get('exc_value')}"
    return text
