"""retrain: weekly, train a challenger, compare it with the champion, promote through the gate.

Runs ``notebooks/train_credit.ipynb`` (registers a new version as ``challenger``), then
``notebooks/evaluate.ipynb``, which compares challenger and champion on a fresh holdout
(AUC, Gini, KS, stability of the score distribution) and moves ``champion`` only
through ``wb.promote``'s gate (held-out AUC no worse than the champion's).
``conf={"train": {...}}`` overrides training parameters.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, task

from workbench import scheduled
from workbench.settings import settings

current = settings()

with DAG(
    dag_id="retrain",
    description="Train a credit challenger weekly and promote it through the gate",
    schedule=CronTriggerTimetable("0 3 * * 0", timezone="UTC")
    if current.airflow_schedules
    else None,
    catchup=False,
    max_active_runs=1,
    params={
        "model_name": Param("credit", type="string"),
        "train": Param({}, type="object"),
        "holdout_rows": Param(20_000, type="integer", minimum=1_000),
        "holdout_seed": Param(101, type="integer"),
    },
    default_args={
        "retries": current.airflow_retries,
        "retry_delay": timedelta(seconds=current.airflow_retry_delay),
    },
    tags=["workbench", "models"],
):

    @task
    def train(**context):
        params = context["params"]
        parameters = {
            **params["train"],
            "model_name": params["model_name"],
            "experiment_name": params["model_name"],
        }
        return scheduled.run_notebook_task("train_credit", parameters, context)

    @task
    def evaluate(**context):
        params = context["params"]
        parameters = {
            "model_name": params["model_name"],
            "holdout_rows": params["holdout_rows"],
            "holdout_seed": params["holdout_seed"],
        }
        return scheduled.run_notebook_task("evaluate", parameters, context)

    train() >> evaluate()
