"""A real BentoML service process serving a model from the real MLflow registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import nbformat
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench import serving
from workbench.settings import Settings

SWAP_DELAY = 8.0  # seconds: a poll interval (2 s) plus loading the new version


@dataclass(frozen=True)
class Deployed:
    name: str
    endpoint: serving.Endpoint
    X: pd.DataFrame


@pytest.fixture(scope="module")
def deployed(services: Settings) -> Deployed:
    events = wb.datasets.card_transactions(12_000, seed=21)
    X = wb.features.CARD_FRAUD.transform(events)
    y = events["is_fraud"]
    name = f"serve-{uuid.uuid4().hex[:6]}"
    for trees in (40, 60):
        model = wb.classifier(X[:9_000], n_estimators=trees).fit(X[:9_000], y[:9_000])
        wb.log_model(model, name, X[9_000:], y[9_000:], features=wb.features.CARD_FRAUD)
    wb.promote(name, 1)
    return Deployed(name, wb.deploy(name), X)


def test_deployed_scores_equal_the_models_own_predictions(deployed: Deployed) -> None:
    rows = deployed.X.sample(400, random_state=1)

    scored = deployed.endpoint.score(rows)

    model = mlflow.sklearn.load_model(f"models:/{deployed.name}/1")
    np.testing.assert_array_equal(scored["score"].to_numpy(), model.predict_proba(rows)[:, 1])
    assert set(scored["version"]) == {"1"}
    assert scored.index.equals(rows.index)


def test_every_score_carries_three_reasons_in_plain_words(deployed: Deployed) -> None:
    scored = deployed.endpoint.score(deployed.X.head(20))

    texts = set(wb.features.CARD_FRAUD.reasons.values())
    for reasons in scored["reasons"]:
        assert len(reasons) == 3
        assert {r["text"] for r in reasons} <= texts
        assert {r["direction"] for r in reasons} <= {"raises", "lowers"}


def test_the_deploy_notebook_serves_and_scores_through_papermill(
    deployed: Deployed, tmp_path: Path
) -> None:
    run = wb.run_notebook(
        "deploy",
        {"model_name": deployed.name, "rows": 300},
        tmp_path / "deploy.ipynb",
        progress=False,
    )

    cells = nbformat.read(run.output, as_version=4).cells
    printed = "".join(
        output.get("text", "")
        for cell in cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "raises" in printed or "lowers" in printed
    assert deployed.endpoint.version == "1"


def test_health_readiness_and_metrics_endpoints_answer(deployed: Deployed) -> None:
    url = deployed.endpoint.url
    deployed.endpoint.score(deployed.X.head(3))

    assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    metrics = httpx.get(f"{url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "bentoml_service_request" in metrics.text
    assert f'workbench_score_requests_total{{model="{deployed.name}",version="1"}}' in metrics.text


def test_the_service_listens_on_loopback_only(deployed: Deployed) -> None:
    assert deployed.endpoint.url.startswith("http://127.0.0.1:")


def test_bad_requests_name_the_field_and_never_500(deployed: Deployed) -> None:
    url = f"{deployed.endpoint.url}/score"
    good = deployed.X.head(1).to_dict(orient="records")[0]

    missing = httpx.post(url, json=[{k: v for k, v in good.items() if k != "amount"}])
    wrong = httpx.post(url, json=[{**good, "hour": "noon"}])
    broken = httpx.post(
        url, content=b'[{"amount": 1,', headers={"content-type": "application/json"}
    )
    too_many = httpx.post(url, json=[good] * 1001)

    assert missing.status_code == 422
    assert "'amount'" in missing.json()["error"]
    assert wrong.status_code == 422
    assert "'hour'" in wrong.json()["error"]
    assert broken.status_code == 400
    assert too_many.status_code == 413


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_requests_never_get_a_5xx(deployed: Deployed, data: st.DataObject) -> None:
    fields = list(wb.features.CARD_FRAUD.outputs)
    good = deployed.X.head(1).to_dict(orient="records")[0]
    record = data.draw(
        st.dictionaries(
            st.sampled_from([*fields, "surprise"]),
            _json_values | st.sampled_from(list(good.values())),
            max_size=len(fields) + 1,
        )
    )
    body = data.draw(st.sampled_from([[record], {"records": [record]}, record, [record, good]]))

    response = httpx.post(f"{deployed.endpoint.url}/score", json=body, timeout=10)

    assert response.status_code < 500, response.text
    if response.status_code == 422:
        assert response.json()["problems"] == [] or all(
            "field" in p for p in response.json()["problems"]
        )


def test_the_alias_moves_under_load_with_no_failed_request(
    deployed: Deployed, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text(deployed.X.head(1).to_json(orient="records"))
    out = tmp_path / "log.jsonl"
    rate, seconds = 200, 30
    command = [
        sys.executable,
        str(Path(__file__).with_name("loadgen.py")),
        f"{deployed.endpoint.url}/score",
        str(body),
        str(rate),
        str(seconds),
        str(out),
    ]
    loader = subprocess.Popen(command)
    try:
        time.sleep(4)
        to_2 = time.time()
        wb.promote(deployed.name, 2, force=True, reason="swap under load")
        time.sleep(12)
        to_1 = time.time()
        serving.rollback(deployed.name)
    finally:
        assert loader.wait(timeout=90) == 0
    log = sorted(
        (json.loads(line) for line in out.read_text().splitlines()), key=lambda e: e["due"]
    )

    assert len(log) == rate * seconds
    assert [entry for entry in log if entry["status"] != 200] == []
    assert {entry["version"] for entry in log} == {"1", "2"}
    for moved, new in ((to_2, "2"), (to_1, "1")):
        after = [e for e in log if e["due"] > moved]
        switched = next(e["due"] for e in after if e["version"] == new)
        # Within the stated delay, and once switched, only the new version answers.
        assert switched - moved < SWAP_DELAY
        until = to_1 if new == "2" else float("inf")
        assert {e["version"] for e in after if switched + 0.5 < e["due"] < until} == {new}
