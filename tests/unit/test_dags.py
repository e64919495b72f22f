"""The DAGs in dags/ as Airflow's own parser reads them, in the airflow environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

AIRFLOW_PYTHON = REPO / ".venvs" / "airflow" / "bin" / "python"

_PARSE = """
import json
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=%r)
dags = {}
for dag in bag.dags.values():
    timetable = dag.timetable
    inner = getattr(timetable, "timetable", timetable)
    assets = getattr(timetable, "asset_condition", None)
    dags[dag.dag_id] = {
        "timetable": type(timetable).__name__,
        "cron": getattr(inner, "expression", None),
        "assets": [a.uri for a in getattr(assets, "objects", [])],
        "retries": dag.default_args["retries"],
        "retry_delay": dag.default_args["retry_delay"].total_seconds(),
        "tasks": sorted(t.task_id for t in dag.tasks),
    }
print(json.dumps({
    "errors": bag.import_errors,
    "seconds": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
    "dags": dags,
}))
"""


def _parse(tmp_path: Path, **env: str) -> dict:
    if not AIRFLOW_PYTHON.exists():
        pytest.fail(f"{AIRFLOW_PYTHON} is missing; `make envs` syncs the airflow environment")
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-W", "ignore", "-c", _PARSE % str(REPO / "dags")],
        env={
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(REPO),
            "WORKBENCH_HOME": str(tmp_path / "home"),
            "PATH": "/usr/bin:/bin",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _parse(tmp_path_factory.mktemp("dags"))


def test_every_dag_file_imports_without_errors_within_a_few_seconds(parsed: dict) -> None:
    files = sorted(p.name for p in (REPO / "dags").glob("*.py"))

    assert parsed["errors"] == {}
    assert sorted(parsed["seconds"]) == files
    assert max(parsed["seconds"].values()) < 3.0
    assert sorted(parsed["dags"]) == ["batch_score", "retrain"]


def test_batch_score_runs_daily_and_when_input_lands_and_retrain_weekly(parsed: dict) -> None:
    from workbench import batch

    score, retrain = parsed["dags"]["batch_score"], parsed["dags"]["retrain"]

    assert score["timetable"] == "AssetOrTimeSchedule"
    assert score["cron"] == "0 2 * * *"
    assert score["assets"] == [batch.INPUT_ASSET]
    assert score["tasks"] == ["score"]
    assert retrain["timetable"] == "CronTriggerTimetable"
    assert retrain["cron"] == "0 3 * * 0"
    assert retrain["tasks"] == ["evaluate", "train"]
    assert (score["retries"], score["retry_delay"]) == (2, 300.0)


def test_with_schedules_off_only_triggers_and_landed_input_start_runs(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, WORKBENCH_AIRFLOW_SCHEDULES="false", WORKBENCH_AIRFLOW_RETRIES="1")

    assert parsed["dags"]["batch_score"]["timetable"] == "AssetTriggeredTimetable"
    assert parsed["dags"]["batch_score"]["assets"]
    assert parsed["dags"]["retrain"]["timetable"] == "NullTimetable"
    assert parsed["dags"]["batch_score"]["retries"] == 1
