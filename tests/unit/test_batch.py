"""Batch scoring without services: the serving scorer's scores, idempotent writes, the
parameters the DAGs give their notebooks, and Airflow's generated credentials."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import workbench as wb
from workbench import airflow, batch, scheduled
from workbench.serving.scorer import Field, Scorer
from workbench.settings import settings

_MLFLOW_TYPES = {"float": "double", "int": "long", "str": "string"}


@pytest.fixture(scope="module")
def credit() -> tuple[Scorer, pd.DataFrame]:
    applications = wb.datasets.credit_applications(3_000, seed=8)
    X = wb.features.CREDIT.transform(applications)
    model = wb.classifier(X, n_estimators=30).fit(X, applications["default"])
    fields = [Field(c, _MLFLOW_TYPES[k]) for c, k in wb.features.CREDIT.outputs.items()]
    scorer = Scorer("credit", "7", model, fields, dict(wb.features.CREDIT.reasons))
    return scorer, X


def test_batch_scores_and_reasons_are_the_online_scorers_to_the_bit(
    credit: tuple[Scorer, pd.DataFrame],
) -> None:
    scorer, X = credit
    sample = X.iloc[:300].copy()
    sample.loc[sample.index[0], "employment"] = "astronaut"  # unseen, as the service sees it
    online = scorer.score(sample.to_dict(orient="records"))

    scored = batch.score_frame(scorer, sample)

    assert scorer.explains
    assert scored["score"].tolist() == [r["score"] for r in online]
    for rank in range(batch.REASONS):
        expected = [r["reasons"][rank]["text"] for r in online]
        assert scored[f"reason_{rank + 1}"].tolist() == expected


def test_scoring_refuses_a_frame_without_the_models_inputs(
    credit: tuple[Scorer, pd.DataFrame],
) -> None:
    scorer, X = credit

    with pytest.raises(wb.DataError, match=r"lacks the model's inputs \['utilisation'\]"):
        batch.score_frame(scorer, X.drop(columns=["utilisation"]))


def _scores(ids: list[str], score: float) -> pd.DataFrame:
    return pd.DataFrame({"application_id": ids, "score": score, "reason_1": "Income is low"})


def test_writing_a_date_again_replaces_its_rows_and_leaves_other_dates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    batch.write_scores(_scores(["a", "b", "c"], 0.1), "2026-03-01", model="m", version="1", url=url)
    batch.write_scores(_scores(["x"], 0.2), "2026-03-02", model="m", version="1", url=url)

    count = batch.write_scores(
        _scores(["a", "b", "c"], 0.3), "2026-03-01", model="m", version="2", url=url
    )
    first, second = batch.read_scores("2026-03-01", url), batch.read_scores("2026-03-02", url)

    assert count == 3
    assert sorted(first["application_id"]) == ["a", "b", "c"]
    assert set(first["score"]) == {0.3}
    assert set(first["version"]) == {"2"}
    assert second["application_id"].tolist() == ["x"]


@pytest.mark.parametrize("style", ["qmark", "named"])
def test_rows_reach_the_driver_whole_in_positional_and_named_style(
    tmp_path: Path, style: str
) -> None:
    from sqlalchemy import create_engine, select

    target = create_engine(f"sqlite:///{tmp_path / 'scores.db'}", paramstyle=style)
    table = batch._table()
    table.metadata.create_all(target)
    scores = _scores(["a", "b"], 0.25).assign(reason_1=["Income is low", None])

    statement, rows = batch._insert(table, target, scores, "2026-03-01", "m", "7")
    with target.begin() as connection:
        for chunk in rows:
            connection.exec_driver_sql(statement, chunk)
        found = [dict(row._mapping) for row in connection.execute(select(table))]

    assert [(r["application_id"], r["score"], r["reason_1"]) for r in found] == [
        ("a", 0.25, "Income is low"),
        ("b", 0.25, None),
    ]
    assert {(r["run_date"], r["model"], r["version"]) for r in found} == {("2026-03-01", "m", "7")}
    assert all(isinstance(r["scored_at"], dt.datetime) for r in found)


def test_writing_refuses_scores_without_ids_and_a_malformed_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scores.db'}"

    with pytest.raises(wb.DataError, match=r"need the columns \['application_id', 'score'\]"):
        batch.write_scores(pd.DataFrame({"score": [0.1]}), "2026-03-01", model="m", version="1")
    with pytest.raises(wb.DataError, match=r"YYYY-MM-DD, got '03/01/2026'"):
        batch.write_scores(_scores(["a"], 0.1), "03/01/2026", model="m", version="1", url=url)


def test_a_missing_input_file_names_where_it_was_expected(tmp_path: Path) -> None:
    with pytest.raises(wb.DataError, match=r"no input at .*2026-03-01\.parquet"):
        batch.read_input(tmp_path / "2026-03-01.parquet")


# --- what the DAGs hand their notebooks ----------------------------------------------


def _context(
    params: dict[str, Any], logical: dt.datetime | None = None, extra: dict | None = None
) -> dict[str, Any]:
    events = {"asset": [SimpleNamespace(extra=extra)]} if extra is not None else {}
    defaults = {"run_date": None, "model_name": "credit", "model_alias": "champion"}
    return {
        "params": {**defaults, "input_path": None, **params},
        "logical_date": logical,
        "triggering_asset_events": events,
    }


@pytest.mark.parametrize(
    ("context", "day"),
    [
        (
            _context({"run_date": "2026-03-05"}, dt.datetime(2026, 4, 1, 2, tzinfo=dt.UTC)),
            "2026-03-05",
        ),
        (_context({}, None, {"run_date": "2026-03-06", "from_rest_api": True}), "2026-03-06"),
        (_context({}, dt.datetime(2026, 4, 1, 2, tzinfo=dt.UTC)), "2026-03-31"),
    ],
    ids=["conf", "asset-event", "schedule-scores-the-day-before"],
)
def test_the_run_date_comes_from_conf_then_the_asset_event_then_the_schedule(
    context: dict[str, Any], day: str, clean_env: Path
) -> None:
    parameters = scheduled.batch_parameters(context)

    assert parameters["run_date"] == day
    assert parameters["input_path"] == str(batch.input_path(day))
    assert parameters["model_name"] == "credit"


def test_an_asset_event_may_name_the_model_and_a_run_without_a_date_is_refused(
    clean_env: Path,
) -> None:
    landed = scheduled.batch_parameters(
        _context({}, None, {"run_date": "2026-03-06", "model_name": "m2"})
    )

    assert landed["model_name"] == "m2"
    with pytest.raises(wb.DataError, match=r"no run date: trigger it with conf"):
        scheduled.batch_parameters(_context({}))


def test_a_secret_looking_parameter_is_refused_before_the_notebook_runs(clean_env: Path) -> None:
    ti = SimpleNamespace(dag_id="batch_score", run_id="manual__1", task_id="score", try_number=1)

    with pytest.raises(wb.DataError, match=r"\['db_password'\] look like secrets"):
        scheduled.run_notebook_task("batch_score", {"db_password": "hunter2"}, {"ti": ti})
    assert not (settings().home / "airflow" / "runs").exists()


# --- Airflow's configuration ---------------------------------------------------------


def test_airflow_gets_generated_credentials_once_and_binds_loopback(clean_env: Path) -> None:
    current = settings(home=clean_env / "home", airflow_url="http://127.0.0.1:18080")
    airflow._ensure_credentials(current)
    first = airflow.credentials(current)
    airflow._ensure_credentials(current)
    environment = airflow.environment(current)
    passwords = Path(environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])

    assert first is not None
    assert first == airflow.credentials(current)
    assert first[1] not in ("admin", "airflow", "")
    assert len(first[1]) >= 20
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert json.loads(passwords.read_text()) == {first[0]: first[1]}
    assert airflow.API.command(current)[2:6] == ["--host", "127.0.0.1", "--port", "18080"]
    assert "--skip-serve-logs" in airflow.SCHEDULER.command(current)
    secret = (current.home / "airflow" / "jwt-secret").read_text()
    assert all(secret not in value for value in environment.values())


def test_recording_a_try_without_mlflow_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("WORKBENCH_MLFLOW_TRACKING_URI", dead)
    tags = {
        "airflow.dag_id": "batch_score",
        "airflow.run_id": "manual__1",
        "airflow.task_id": "score",
        "airflow.try_number": "1",
    }

    with pytest.raises(wb.WorkbenchError, match=rf"could not reach MLflow at {dead}.*wb up mlflow"):
        scheduled.record_in_mlflow(tmp_path / "out.ipynb", tags, {}, failed=False)
