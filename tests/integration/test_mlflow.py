from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import mlflow

from workbench import tracking
from workbench.settings import Settings


def test_a_run_logged_through_the_client_reads_back_through_the_rest_api(
    services: Settings, tmp_path: Path
) -> None:
    client = tracking.client(services)
    experiment = client.create_experiment(f"test-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    run_id = run.info.run_id
    client.log_param(run_id, "max_depth", "6")
    for step, auc in enumerate([0.71, 0.78, 0.83]):
        client.log_metric(run_id, "auc", auc, step=step)
    report = tmp_path / "report.txt"
    report.write_text("held-out AUC 0.83\n")
    client.log_artifact(run_id, str(report))
    client.set_terminated(run_id)

    api = f"{services.mlflow_tracking_uri}/api/2.0/mlflow"
    fetched = httpx.get(f"{api}/runs/get", params={"run_id": run_id}, timeout=10).json()["run"]
    history = httpx.get(
        f"{api}/metrics/get-history", params={"run_id": run_id, "metric_key": "auc"}, timeout=10
    ).json()["metrics"]
    artifacts = httpx.get(f"{api}/artifacts/list", params={"run_id": run_id}, timeout=10).json()[
        "files"
    ]
    content = httpx.get(
        f"{services.mlflow_tracking_uri}/get-artifact",
        params={"path": "report.txt", "run_uuid": run_id},
        timeout=10,
    ).text

    assert {p["key"]: p["value"] for p in fetched["data"]["params"]} == {"max_depth": "6"}
    assert [m["value"] for m in sorted(history, key=lambda m: m["step"])] == [0.71, 0.78, 0.83]
    assert fetched["info"]["status"] == "FINISHED"
    assert [f["path"] for f in artifacts] == ["report.txt"]
    assert content == "held-out AUC 0.83\n"


def test_a_registered_version_gets_an_alias_the_registry_resolves(services: Settings) -> None:
    client = tracking.client(services)
    name = f"test-model-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run() as run:
        mlflow.log_text("placeholder weights", "model/weights.txt")
    client.create_registered_model(name)
    first = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    second = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)

    client.set_registered_model_alias(name, "challenger", second.version)
    client.set_registered_model_alias(name, "champion", first.version)

    api = f"{services.mlflow_tracking_uri}/api/2.0/mlflow"
    resolved = httpx.get(
        f"{api}/registered-models/alias", params={"name": name, "alias": "challenger"}, timeout=10
    ).json()["model_version"]
    assert resolved["version"] == second.version == "2"
    assert client.get_model_version_by_alias(name, "champion").version == "1"
