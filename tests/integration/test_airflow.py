"""The DAGs run by the real Airflow scheduler: api-server, scheduler, dag-processor and
LocalExecutor started once for this module through the same code as `wb up airflow`,
beside the session's Kafka and MLflow."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

import workbench as wb
from tests.conftest import free_port
from workbench import airflow, batch, stack, tracking
from workbench.notebooks import _SECRET
from workbench.settings import Settings, settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def airflow_stack(services: Settings) -> Iterator[Settings]:
    """Airflow on a free port, with one quick retry and no schedules (runs come only from
    the tests' triggers and asset events)."""
    env = {
        "WORKBENCH_AIRFLOW_URL": f"http://127.0.0.1:{free_port()}",
        "WORKBENCH_AIRFLOW_RETRIES": "1",
        "WORKBENCH_AIRFLOW_RETRY_DELAY": "1",
        "WORKBENCH_AIRFLOW_SCHEDULES": "false",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    current = settings()
    try:
        stack.up(["airflow"], current)
        yield current
    finally:
        stack.down(["airflow"], current)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def client(airflow_stack: Settings) -> airflow.Client:
    return airflow.Client.connect(airflow_stack)


@pytest.fixture(scope="module")
def credit_model(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A credit model of its own, version 1 the champion."""
    name = f"credit-af-{uuid.uuid4().hex[:6]}"
    wb.run_notebook(
        "train_credit",
        {"rows": 8_000, "n_estimators": 40, "model_name": name, "experiment_name": name},
        output=tmp_path_factory.mktemp("runs") / "train_credit.ipynb",
        progress=False,
    )
    wb.promote(name, 1)
    return name


def _score(client: airflow.Client, conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    run_id = client.trigger("batch_score", conf)
    client.wait("batch_score", run_id, timeout=300)
    return run_id, client.result("batch_score", run_id, "score")


@pytest.fixture(scope="module")
def first_run(
    client: airflow.Client, credit_model: str, airflow_stack: Settings
) -> tuple[str, dict[str, Any], pd.DataFrame]:
    landed = batch.land_input("2026-03-01", 3_000, seed=21, settings=airflow_stack)
    run_id, result = _score(client, {"run_date": "2026-03-01", "model_name": credit_model})
    return run_id, result, pd.read_parquet(landed)


def test_batch_score_triggered_through_the_api_writes_one_row_per_application(
    first_run: tuple[str, dict[str, Any], pd.DataFrame], credit_model: str
) -> None:
    _, _, applications = first_run
    written = batch.read_scores("2026-03-01")

    assert len(written) == len(applications) == 3_000
    assert set(written["application_id"]) == set(applications["application_id"])
    assert set(written["model"]) == {credit_model}
    assert set(written["version"]) == {"1"}
    assert written["score"].between(0, 1).all()
    assert written["reason_1"].notna().all()


def test_batch_scores_equal_the_online_scorer_with_its_reasons(
    first_run: tuple[str, dict[str, Any], pd.DataFrame], credit_model: str
) -> None:
    from workbench.serving.holder import load_scorer

    _, _, applications = first_run
    written = batch.read_scores("2026-03-01").set_index("application_id")
    sample = applications.head(50)
    records = wb.features.CREDIT.transform(sample).to_dict(orient="records")
    online = load_scorer(credit_model, "1").score(records)

    ids = sample["application_id"].tolist()
    assert written.loc[ids, "score"].tolist() == [r["score"] for r in online]
    assert written.loc[ids, "reason_1"].tolist() == [r["reasons"][0]["text"] for r in online]


def test_the_output_notebook_names_dag_run_and_try_and_is_logged_to_mlflow(
    first_run: tuple[str, dict[str, Any], pd.DataFrame], airflow_stack: Settings
) -> None:
    run_id, result, _ = first_run
    output = Path(result["output_notebook"])
    notebook = json.loads(output.read_text())
    logged = tracking.client().get_run(result["mlflow_run_id"])
    artifacts = [
        a.path for a in mlflow.MlflowClient().list_artifacts(logged.info.run_id, "notebook")
    ]
    parameters = notebook["metadata"]["papermill"]["parameters"]

    assert output.is_relative_to(airflow.runs_dir(airflow_stack) / "batch_score")
    assert output.name == "score-try1.ipynb"
    assert re.sub(r"[^A-Za-z0-9._+-]", "_", run_id) == output.parent.name
    assert logged.data.tags["airflow.run_id"] == run_id
    assert logged.data.tags["airflow.try_number"] == "1"
    assert logged.info.status == "FINISHED"
    assert artifacts == ["notebook/score-try1.ipynb"]
    assert parameters["run_date"] == "2026-03-01"
    assert not [name for name in parameters if _SECRET.search(name)]
    found = airflow.credentials(airflow_stack)
    assert found is not None
    assert found[1] not in output.read_text()
    for service in airflow.SERVICES:
        assert found[1] not in service.log_path(airflow_stack).read_text()


def test_a_second_run_for_the_same_date_replaces_its_rows(
    first_run: tuple[str, dict[str, Any], pd.DataFrame], client: airflow.Client, credit_model: str
) -> None:
    before = batch.read_scores("2026-03-01")

    _score(client, {"run_date": "2026-03-01", "model_name": credit_model})
    after = batch.read_scores("2026-03-01")

    assert len(after) == len(before) == 3_000
    assert after["application_id"].is_unique
    assert after["scored_at"].min() > before["scored_at"].max()


def test_a_failing_notebook_fails_its_task_after_the_retry_and_keeps_the_marked_notebook(
    client: airflow.Client, credit_model: str, airflow_stack: Settings, tmp_path: Path
) -> None:
    # An input file without the income column: the feature cell raises.
    source = batch.land_input("2026-03-02", 200, seed=3, settings=airflow_stack)
    broken = tmp_path / "no-income.parquet"
    pd.read_parquet(source).drop(columns=["income"]).to_parquet(broken)
    conf = {"run_date": "2026-03-02", "model_name": credit_model, "input_path": str(broken)}

    run_id = client.trigger("batch_score", conf)
    with pytest.raises(airflow.AirflowRunFailed, match=r"ended failed"):
        client.wait("batch_score", run_id, timeout=300)
    (task,) = client.tasks("batch_score", run_id)
    last_try = client.log("batch_score", run_id, "score", task["try_number"])
    output = airflow.runs_dir(airflow_stack) / "batch_score"
    kept = sorted((output / re.sub(r"[^A-Za-z0-9._+-]", "_", run_id)).glob("*.ipynb"))
    cells = json.loads(kept[-1].read_text())["cells"]
    failed = [c for c in cells if any(o["output_type"] == "error" for o in c.get("outputs", []))]

    assert task["state"] == "failed"
    assert task["try_number"] == 2
    assert [p.name for p in kept] == ["score-try1.ipynb", "score-try2.ipynb"]
    assert len(failed) == 1
    assert "definition.transform(applications)" in "".join(failed[0]["source"])
    assert f"failed in cell {failed[0]['execution_count']}" in last_try
    assert "missing columns: 'income'" in last_try
    assert "An Exception was encountered" in "".join(cells[0]["source"])
    assert len(batch.read_scores("2026-03-02")) == 0


def test_an_input_file_landing_starts_batch_score_for_its_date(
    client: airflow.Client, credit_model: str, airflow_stack: Settings
) -> None:
    # The asset event names the date and, here, the test's own model.
    client.unpause("batch_score")
    known = {r["dag_run_id"] for r in client.api("GET", "/dags/batch_score/dagRuns")["dag_runs"]}
    batch.land_input("2026-03-03", 500, seed=4, settings=airflow_stack)

    airflow.announce_input("2026-03-03", airflow_stack, model_name=credit_model)
    deadline = time.monotonic() + 120
    new: list[dict[str, Any]] = []
    while not new and time.monotonic() < deadline:
        runs = client.api("GET", "/dags/batch_score/dagRuns")["dag_runs"]
        new = [r for r in runs if r["dag_run_id"] not in known]
        time.sleep(1)
    assert new, "no batch_score run started within 120 s of the asset event"
    client.wait("batch_score", new[0]["dag_run_id"], timeout=300)

    assert new[0]["run_type"] == "asset_triggered"
    assert len(batch.read_scores("2026-03-03")) == 500


def _retrain(client: airflow.Client, name: str, train: dict[str, Any]) -> str:
    run_id = client.trigger(
        "retrain", {"model_name": name, "train": {"rows": 8_000, **train}, "holdout_rows": 5_000}
    )
    client.wait("retrain", run_id, timeout=600)
    return run_id


def test_retrain_keeps_the_champion_against_a_worse_challenger_and_moves_it_for_a_better_one(
    client: airflow.Client, credit_model: str
) -> None:
    # The champion (version 1) has 40 trees; one stump is worse, 150 trees better.
    registry = tracking.client()
    _retrain(client, credit_model, {"n_estimators": 1, "num_leaves": 2})
    after_worse = registry.get_model_version_by_alias(credit_model, "champion").version
    worse = registry.get_model_version(credit_model, "2")

    run_id = _retrain(client, credit_model, {"n_estimators": 150})
    after_better = registry.get_model_version_by_alias(credit_model, "champion").version
    better = registry.get_model_version(credit_model, "3")
    evaluated = client.result("retrain", run_id, "evaluate")

    assert after_worse == "1"
    assert worse.tags["workbench.evaluation"].startswith("kept: refused")
    assert float(worse.tags["metric.auc"]) < float(better.tags["metric.auc"])
    assert after_better == "3"
    assert better.tags["workbench.evaluation"] == "promoted version 3"
    assert "workbench.psi_vs_champion" in better.tags
    assert Path(evaluated["output_notebook"]).name == "evaluate-try1.ipynb"
