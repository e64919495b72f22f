"""What the DAGs in ``dags/`` call: a notebook run as an Airflow task, kept as its record.

:func:`run_notebook_task` runs in the airflow environment (core workbench and Papermill
only). Papermill starts the notebook with the lab environment's kernel ``workbench``;
the output notebook goes to ``<home>/airflow/runs/<dag>/<run>/<task>-try<n>.ipynb``, is
kept when a cell fails (with the failing cell marked) and is logged to MLflow with the
run's ids through MLflow's REST API (MLflow lives in the lab environment only, and
importing it for each task would cost seconds).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from workbench.errors import DataError, WorkbenchError
from workbench.notebooks import KERNEL, NotebookFailed, run_notebook
from workbench.settings import settings as read_settings

log = logging.getLogger(__name__)

#: MLflow experiment of the output notebooks of DAG ``<dag>``: ``airflow.<dag>``.
EXPERIMENT_PREFIX = "airflow."
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def output_path(dag_id: str, run_id: str, task_id: str, try_number: int) -> Path:
    """Where a try's output notebook goes: one folder per DAG and run, one file per try."""
    home = read_settings().home / "airflow" / "runs"
    return home / dag_id / _UNSAFE.sub("_", run_id) / f"{task_id}-try{try_number}.ipynb"


def run_notebook_task(
    notebook: str, parameters: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """Run ``notebook`` with ``parameters`` as the task of ``context``.

    Returns the output notebook's path and MLflow run id (the task's XCom). A failing
    cell fails the task with :class:`~workbench.notebooks.NotebookFailed` (cell number
    and error in the task log); the output notebook is kept and logged either way.
    """
    ti = context["ti"]
    output = output_path(ti.dag_id, ti.run_id, ti.task_id, ti.try_number)
    started = time.time()
    failure: NotebookFailed | None = None
    try:
        run_notebook(notebook, parameters, output, kernel=KERNEL, progress=False)
    except NotebookFailed as exc:
        failure = exc
    tags = {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.task_id": ti.task_id,
        "airflow.try_number": str(ti.try_number),
        "workbench.notebook": notebook,
    }
    mlflow_run = record_in_mlflow(output, tags, parameters, failed=failure is not None)
    log.info(
        "%s try %d: output notebook %s (MLflow run %s), %.1f s",
        ti.task_id,
        ti.try_number,
        output,
        mlflow_run,
        time.time() - started,
    )
    if failure is not None:
        raise failure
    return {"output_notebook": str(output), "mlflow_run_id": mlflow_run}


def record_in_mlflow(
    output: Path, tags: dict[str, str], parameters: dict[str, Any], *, failed: bool
) -> str:
    """Log ``output`` to MLflow as a run of ``airflow.<dag>``; returns the run's id.

    The run carries the task's tags and where it ran, the notebook's parameters, the
    output notebook as the artifact ``notebook/<file>``, and FINISHED or FAILED.
    """
    import httpx

    from workbench import tracking

    settings = read_settings()
    name = f"{tags['airflow.task_id']} {tags['airflow.run_id']} try {tags['airflow.try_number']}"
    now = int(time.time() * 1000)
    with httpx.Client(base_url=settings.mlflow_tracking_uri, timeout=60) as http:
        mlflow = _MlflowRest(http, settings.mlflow_tracking_uri)
        experiment = mlflow.experiment_id(EXPERIMENT_PREFIX + tags["airflow.dag_id"])
        run = mlflow.call(
            "runs/create",
            {
                "experiment_id": experiment,
                "run_name": name,
                "start_time": now,
                "tags": _pairs({**tracking.run_context(), **tags}),
            },
        )["run"]["info"]
        params = {k: str(v)[:500] for k, v in parameters.items()}
        if params:
            mlflow.call("runs/log-batch", {"run_id": run["run_id"], "params": _pairs(params)})
        if output.exists():
            mlflow.upload(run["artifact_uri"], f"notebook/{output.name}", output.read_bytes())
        mlflow.call(
            "runs/update",
            {
                "run_id": run["run_id"],
                "status": "FAILED" if failed else "FINISHED",
                "end_time": int(time.time() * 1000),
            },
        )
    return str(run["run_id"])


def _pairs(values: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": key, "value": str(value)} for key, value in values.items()]


class _MlflowRest:
    """The few MLflow REST calls a task's record needs, with errors in words."""

    def __init__(self, http: Any, url: str) -> None:
        self.http, self.url = http, url

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise WorkbenchError(
                f"could not reach MLflow at {self.url} to log the output notebook "
                f"({exc}); is `wb up mlflow` running?"
            ) from exc

    def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send("POST", f"/api/2.0/mlflow/{endpoint}", json=body)
        if response.status_code != 200:
            raise WorkbenchError(
                f"MLflow at {self.url} refused {endpoint}: {response.status_code} "
                f"{response.text[:500]}"
            )
        return dict(response.json())

    def experiment_id(self, name: str) -> str:
        for _ in range(2):  # another task may create it between the two calls
            found = self._send(
                "GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}
            )
            if found.status_code == 200:
                return str(found.json()["experiment"]["experiment_id"])
            created = self._send("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})
            if created.status_code == 200:
                return str(created.json()["experiment_id"])
        raise WorkbenchError(
            f"MLflow at {self.url} neither has nor creates the experiment {name!r}: "
            f"{created.status_code} {created.text[:500]}"
        )

    def upload(self, artifact_uri: str, path: str, content: bytes) -> None:
        from urllib.parse import urlsplit

        if not artifact_uri.startswith("mlflow-artifacts:"):
            raise WorkbenchError(
                f"MLflow at {self.url} keeps artifacts at {artifact_uri}, not behind its own "
                "artifact proxy; start it with --artifacts-destination (as `wb up mlflow` does)"
            )
        root = urlsplit(artifact_uri).path.strip("/")
        response = self._send(
            "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{root}/{path}", content=content
        )
        if response.status_code != 200:
            raise WorkbenchError(
                f"MLflow at {self.url} refused the artifact {path}: {response.status_code} "
                f"{response.text[:500]}"
            )


# --- parameters of the DAGs ----------------------------------------------------------


def landed(context: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` of the newest asset event that triggered this run (empty if none)."""
    extras: dict[str, Any] = {}
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            extras.update(event.extra or {})
    extras.pop("from_rest_api", None)
    return extras


def run_date(context: dict[str, Any]) -> str:
    """The day a run is for: ``run_date`` in the run's conf, else the ``run_date`` of the
    asset event that triggered it, else the day before the scheduled time."""
    given = context["params"].get("run_date") or landed(context).get("run_date")
    if given:
        return _day(given)
    logical = context.get("logical_date")
    if logical is not None:
        return (logical - timedelta(days=1)).date().isoformat()
    raise DataError(
        "this run has no run date: trigger it with conf {'run_date': 'YYYY-MM-DD'}, or land "
        "an input file through the batch input asset with extra {'run_date': ...}"
    )


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise DataError(f"expected a run date as YYYY-MM-DD, got {value!r}") from None


def batch_parameters(context: dict[str, Any]) -> dict[str, Any]:
    """``batch_score``'s notebook parameters: the run's params and conf, or what the
    asset event that triggered it says (``run_date``, ``model_name``, ...)."""
    from workbench import batch

    # An asset event may name the model and input as well as the date.
    params = {**context["params"], **landed(context)}
    day = run_date(context)
    return {
        "run_date": day,
        "model_name": params["model_name"],
        "model_alias": params["model_alias"],
        "input_path": params.get("input_path") or str(batch.input_path(day)),
    }
