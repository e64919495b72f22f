"""Train -> MLflow -> registry aliases, through the notebooks and the notebook API."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench import tracking
from workbench.notebooks import NotebookRun
from workbench.settings import Settings


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _train(notebook: str, prefix: str, rows: int, folder: Path) -> NotebookRun:
    name = _unique(prefix)
    return wb.run_notebook(
        notebook,
        {"rows": rows, "n_estimators": 60, "model_name": name, "experiment_name": name},
        output=folder / f"{notebook}.ipynb",
        progress=False,
    )


@pytest.fixture(scope="module")
def card_notebook(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> NotebookRun:
    return _train("train_card_fraud", "card-fraud", 40_000, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def credit_notebook(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> NotebookRun:
    return _train("train_credit", "credit", 8_000, tmp_path_factory.mktemp("runs"))


def _sample(version: wb.Version) -> pd.DataFrame:
    text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{tracking.SAMPLE_SCORES}")
    return pd.DataFrame(json.loads(text))


@pytest.mark.parametrize("run", ["card_notebook", "credit_notebook"])
def test_a_training_notebook_registers_a_challenger_that_predicts_what_the_notebook_did(
    run: str, request: pytest.FixtureRequest
) -> None:
    notebook: NotebookRun = request.getfixturevalue(run)
    name = notebook.parameters["model_name"]

    listing = wb.models(name)
    version = tracking._version(tracking.client(), name, str(listing.loc[0, "version"]))
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    sample = _sample(version)
    predicted = np.asarray(loaded.predict(sample.drop(columns="score")))[:, 1]

    assert notebook.output.exists()
    assert len(listing) == 1
    assert listing.loc[0, "aliases"] == "challenger"
    assert 0.5 < listing.loc[0, "auc"] <= 1.0
    assert len(sample) == 100
    np.testing.assert_array_equal(predicted, sample["score"].to_numpy())


def test_a_logged_version_records_features_fingerprint_and_where_it_was_made(
    card_notebook: NotebookRun,
) -> None:
    name = card_notebook.parameters["model_name"]
    client = tracking.client()
    version = client.get_model_version(name, "1")
    run = client.get_run(version.run_id)

    assert version.tags["workbench.features"] == "card_fraud"
    assert version.tags["workbench.features_version"] == "1"
    assert len(version.tags["workbench.data_fingerprint"]) == 16
    assert run.data.tags["workbench.notebook"].endswith("train_card_fraud.ipynb")
    assert json.loads(run.data.tags["workbench.parameters"])["rows"] == 40_000
    assert run.data.params["rows"] == "40000"
    assert "workbench.host" in run.data.tags
    assert {"auc", "gini", "ks", "recall_at_1pct_fpr", "precision_at_top_1pct"} <= set(
        run.data.metrics
    )


@pytest.fixture(scope="module")
def credit_data() -> tuple[pd.DataFrame, pd.Series]:
    applications = wb.datasets.credit_applications(6_000, seed=5)
    return wb.features.CREDIT.transform(applications), applications["default"]


def _fit(X: pd.DataFrame, y: pd.Series, *, noise: bool) -> object:
    # A deliberately worse model learns from shuffled labels.
    labels = y.sample(frac=1.0, random_state=1).to_numpy() if noise else y
    return wb.classifier(X, n_estimators=40).fit(X, labels)


def test_the_promotion_gate_refuses_a_worse_version_and_accepts_a_better_one(
    services: Settings, credit_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = credit_data
    X_train, y_train, X_test, y_test = X[:4000], y[:4000], X[4000:], y[4000:]
    name = _unique("gate")
    weak = wb.log_model(_fit(X_train, y_train, noise=True), name, X_test, y_test)
    strong = wb.log_model(_fit(X_train, y_train, noise=False), name, X_test, y_test)
    worse = wb.log_model(_fit(X_train, y_train, noise=True), name, X_test, y_test)

    assert wb.promote(name, weak.version).aliases == ("champion",)
    assert "champion" in wb.promote(name, strong.version).aliases
    with pytest.raises(wb.PromotionRefused) as refused:
        wb.promote(name, worse.version)

    message = str(refused.value)
    assert f"{worse.metrics['auc']:.4f}" in message
    assert f"{strong.metrics['auc']:.4f}" in message
    assert tracking.client().get_model_version_by_alias(name, "champion").version == "2"


def test_forcing_a_promotion_needs_a_reason_and_records_who_and_why(
    services: Settings, credit_data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = credit_data
    name = _unique("forced")
    strong = wb.log_model(_fit(X[:4000], y[:4000], noise=False), name, X[4000:], y[4000:])
    weak = wb.log_model(_fit(X[:4000], y[:4000], noise=True), name, X[4000:], y[4000:])
    wb.promote(name, strong.version)

    with pytest.raises(wb.DataError, match=r"force=True needs a reason"):
        wb.promote(name, weak.version, force=True)
    forced = wb.promote(name, weak.version, force=True, reason="regulator asked for v2")

    tags = tracking.client().get_model_version(name, str(weak.version)).tags
    assert "champion" in forced.aliases
    assert tags["workbench.forced_reason"] == "regulator asked for v2"
    assert tags["workbench.forced_by"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X, y: (X.drop(columns=["utilisation"]), y), r"utilisation"),
        (lambda X, y: (X.assign(surprise=1.0), y), r"extra columns \['surprise'\]"),
        (lambda X, y: (X.assign(employment=3), y), r"'employment' should be str"),
        (lambda X, y: (X.iloc[0:0], y.iloc[0:0]), r"X is empty"),
        (lambda X, y: (X, pd.Series(np.zeros(len(X), dtype=int))), r"two classes"),
    ],
    ids=["missing-column", "extra-column", "wrong-dtype", "empty", "one-class"],
)
def test_bad_input_is_refused_before_anything_is_logged(
    services: Settings, credit_data: tuple[pd.DataFrame, pd.Series], change, message: str
) -> None:
    X, y = credit_data
    model = _fit(X, y, noise=False)
    bad_X, bad_y = change(X, y)
    name = _unique("refused")

    with pytest.raises(wb.DataError, match=message):
        wb.log_model(model, name, bad_X, bad_y, features=wb.features.CREDIT)

    client = tracking.client()
    assert client.search_registered_models(f"name = '{name}'") == []
    assert client.get_experiment_by_name(name) is None
