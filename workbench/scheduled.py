"""What the DAGs in ``dags/`` call: a notebook run as an Airflow task, kept as its record.

:func:`run_notebook_task` runs in the airflow environment (core workbench and Papermill
only). Papermill starts the notebook with the lab environment's kernel ``workbench``;
the output notebook goes to ``<home>/airflow/runs/<dag>/<run>/<task>-try<n>.ipynb``, is
kept when a cell fails (with the failing cell marked) and is logged to MLflow with the
run's ids, through the kernel's own Python (``python -m workbench.scheduled record``),
as MLflow lives in the lab environment only.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
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
    """Log ``output`` to MLflow as a run of ``airflow.<dag>``, in the kernel's Python."""
    python = kernel_python()
    payload = json.dumps(
        {"output": str(output), "tags": tags, "parameters": parameters, "failed": failed},
        default=str,
    )
    result = subprocess.run(
        [python, "-m", "workbench.scheduled", "record"],
        input=payload,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise WorkbenchError(
            f"could not log {output} to MLflow (is `wb up mlflow` running?):\n"
            + "\n".join(result.stderr.splitlines()[-15:])
        )
    return result.stdout.strip().splitlines()[-1]


def kernel_python(kernel: str = KERNEL) -> str:
    """The Python of the kernelspec ``kernel`` (the lab environment's)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise DataError(
            f"no Jupyter kernel {kernel!r} here; `make envs` registers it in the lab "
            "environment, and JUPYTER_PATH must include .venvs/lab/share/jupyter"
        ) from None
    return str(spec.argv[0])


def _record(payload: dict[str, Any]) -> str:
    # Runs in the lab environment, which has MLflow.
    import mlflow

    from workbench import tracking

    tags = dict(payload["tags"])
    tracking.client()
    mlflow.set_experiment(EXPERIMENT_PREFIX + tags["airflow.dag_id"])
    name = f"{tags['airflow.task_id']} {tags['airflow.run_id']} try {tags['airflow.try_number']}"
    with mlflow.start_run(run_name=name, tags={**tracking.run_context(), **tags}) as run:
        parameters = {k: str(v)[:500] for k, v in payload["parameters"].items()}
        if parameters:
            mlflow.log_params(parameters)
        if Path(payload["output"]).exists():
            mlflow.log_artifact(payload["output"], artifact_path="notebook")
    if payload["failed"]:
        mlflow.MlflowClient().set_terminated(run.info.run_id, status="FAILED")
    return str(run.info.run_id)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbench.scheduled")
    parser.add_argument("command", choices=["record"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(_record(json.loads(sys.stdin.read())))


if __name__ == "__main__":
    main()
