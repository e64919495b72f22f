"""batch_score: score a day's credit applications with the champion, daily and on new input.

Runs ``notebooks/batch_score.ipynb`` through Papermill with the lab kernel. It runs at
02:00 UTC for the day before, and whenever an input file lands (an event on the batch
input asset with ``extra={"run_date": ...}``). Trigger it by hand with
``conf={"run_date": "2026-03-01"}``; ``model_name``, ``model_alias`` and ``input_path``
may be given too.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from workbench import batch, scheduled
from workbench.settings import settings

current = settings()
landed = Asset(batch.INPUT_ASSET)

with DAG(
    dag_id="batch_score",
    description="Score a day's credit applications with the champion model",
    # WORKBENCH_AIRFLOW_SCHEDULES=false leaves only triggers and new input (the tests).
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 2 * * *", timezone="UTC"), assets=[landed]
    )
    if current.airflow_schedules
    else [landed],
    catchup=False,
    max_active_runs=2,
    params={
        "run_date": Param(None, type=["null", "string"], format="date"),
        "model_name": Param("credit", type="string"),
        "model_alias": Param("champion", type="string"),
        "input_path": Param(None, type=["null", "string"]),
    },
    default_args={
        "retries": current.airflow_retries,
        "retry_delay": timedelta(seconds=current.airflow_retry_delay),
    },
    tags=["workbench", "batch"],
):

    @task
    def score(**context):
        return scheduled.run_notebook_task(
            "batch_score", scheduled.batch_parameters(context), context
        )

    score()
