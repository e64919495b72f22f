"""The demo ``make demo`` runs: a smoke run across the local stack."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from workbench import events, stack, tracking
from workbench.settings import Settings
from workbench.settings import settings as read_settings

log = logging.getLogger(__name__)

SMOKE_TOPIC = "workbench.smoke"


def run(console: Console) -> None:
    """Create the topics, log a run to MLflow, send a few events through Kafka and read
    them back, then print where everything is."""
    settings = read_settings()

    # Topics: the ones the stack uses, and one for this smoke run.
    created = events.ensure_topics(settings=settings)
    events.ensure_topics([SMOKE_TOPIC], settings=settings)
    console.print(f"topics ready{f' (created {created})' if created else ''}")

    # MLflow: a small run with parameters, a metric and an artifact.
    run_id, run_url = _log_smoke_run(settings)
    console.print(f"MLflow run {run_id}: {run_url}")

    # Kafka: publish a few events and read them back.
    sent = pd.DataFrame(
        {
            "event_id": [f"smoke-{time.time_ns()}-{i}" for i in range(5)],
            "card_id": [f"card-{i % 2}" for i in range(5)],
            "amount": [12.5, 80.0, 3.2, 440.0, 19.99],
        }
    )
    events.publish(sent, SMOKE_TOPIC, key="card_id", progress=False, settings=settings)
    back = events.tail(SMOKE_TOPIC, n=50, settings=settings)
    missing = set(sent["event_id"]) - set(back.get("event_id", []))
    if missing:
        raise RuntimeError(f"events published to {SMOKE_TOPIC} did not come back: {missing}")
    console.print(f"published {len(sent)} events to {SMOKE_TOPIC!r} and read them back")

    # Models: train and register both use cases once; later runs reuse them.
    for notebook, name in (("train_card_fraud", "card-fraud"), ("train_credit", "credit")):
        _train_once(console, notebook, name)

    # Serving: the fraud champion behind a local BentoML service, scoring a few payments.
    _deploy_and_score(console)

    # Streaming: payments through Kafka and the Flink job, scores and dead letters back.
    _stream(console, settings)

    # Batch: Airflow runs the batch_score notebook for yesterday through Papermill.
    _batch_score(console, settings)

    table = Table("service", "state", "address", "log", title="where everything is")
    for service in stack.status(settings):
        table.add_row(service.name, service.state, service.address, service.log)
    console.print(table)
    console.print(f"MLflow UI: {settings.mlflow_tracking_uri}   workbench home: {settings.home}")


def _deploy_and_score(console: Console) -> None:
    from workbench import datasets, features, serving

    service = serving.deploy("card-fraud")
    events = datasets.card_transactions(5_000, seed=99)
    X = features.CARD_FRAUD.transform(events)
    # Three payments the simulation marked as fraud and two ordinary ones.
    fraud = events.index[events["is_fraud"] == 1][-3:]
    ordinary = events.index[events["is_fraud"] == 0][-2:]
    scored = service.score(X.loc[fraud.append(ordinary)])
    table = Table(
        "event",
        "fraud?",
        "score",
        "version",
        "top reason",
        title=f"card-fraud served at {service.url}",
    )
    for index, row in scored.iterrows():
        reason = row["reasons"][0]
        table.add_row(
            str(events.loc[index, "event_id"]),
            "yes" if events.loc[index, "is_fraud"] else "no",
            f"{row['score']:.4g}",
            str(row["version"]),
            f"{reason['text']} ({reason['feature']}={reason['value']})",
        )
    console.print(table)


def _stream(console: Console, settings: Settings, count: int = 2_000, poison: int = 20) -> None:
    import numpy as np

    from workbench import datasets
    from workbench import stream as streaming

    console.print("starting the stream job for card-fraud (a Flink start takes ~30 s) ...")
    status = streaming.start("card-fraud", settings=settings)
    console.print(f"  stream job {status.job_id}, Flink web UI {status.flink_url}")

    # Cards and ids of their own, so each demo run is new history for the job's state.
    run = f"demo{time.strftime('%H%M%S')}"
    payments = datasets.card_transactions(count, seed=int(time.time()) % 10_000)
    payments = payments.drop(columns=["is_fraud"]).sort_values(["event_time", "event_id"])
    payments["card_id"] = run + "-" + payments["card_id"]
    payments["event_id"] = run + "-" + payments["event_id"]
    bad = payments.head(poison).assign(
        amount=-1.0, event_id=[f"{run}-bad-{i}" for i in range(poison)]
    )
    events.publish(
        pd.concat([payments, bad]), events.TRANSACTIONS, key="card_id", rate=1_000,
        progress=False, settings=settings,
    )  # fmt: skip
    wanted = set(payments["event_id"])
    deadline = time.monotonic() + 120
    scores = pd.DataFrame()
    while time.monotonic() < deadline:
        found = events.tail(events.SCORES, timeout=10, settings=settings)
        if "event_id" in found:
            scores = found[found["event_id"].isin(wanted)].drop_duplicates("event_id")
        if len(scores) >= len(wanted):
            break
        time.sleep(1)
    dead = events.tail(events.DEAD_LETTERS, timeout=10, settings=settings)
    if "original_text" in dead:
        dead = dead[dead["original_text"].str.contains(f"{run}-bad-", na=False, regex=False)]
    latency = (scores["scored_time"] - scores["published_time"]).to_numpy(dtype=float)
    p50, p99 = np.percentile(latency, [50, 99]) if len(latency) else (float("nan"),) * 2
    console.print(
        f"stream: {len(scores):,} of {len(wanted):,} payments scored, {len(dead)} of {poison} "
        f"malformed ones in {events.DEAD_LETTERS!r}; publish to score p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms (scores are visible once the job commits, about once a second)"
    )
    if len(scores) < len(wanted) or len(dead) < poison:
        raise RuntimeError("the stream job did not score every payment; `wb logs stream` shows why")


def _batch_score(console: Console, settings: Settings, rows: int = 20_000) -> None:
    import datetime as dt

    from workbench import airflow, batch

    console.print("starting Airflow (api-server, scheduler, dag-processor) ...")
    stack.up(["airflow"], settings)
    day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    batch.land_input(day, rows, seed=int(time.time()) % 10_000, settings=settings)
    client = airflow.Client.connect(settings)
    run_id = client.trigger("batch_score", {"run_date": day})
    console.print(f"batch_score run {run_id} for {day} triggered through the REST API ...")
    client.wait("batch_score", run_id)
    result = client.result("batch_score", run_id, "score")
    written = batch.read_scores(day)
    console.print(
        f"batch_score: {len(written):,} rows for {day} in {batch.TABLE} "
        f"({batch.database_label(settings)}); output notebook {result['output_notebook']}, "
        f"MLflow run {result['mlflow_run_id']}",
        highlight=False,
    )
    login = airflow.credentials(settings)
    if login is not None:
        console.print(
            f"Airflow UI: {settings.airflow_url} (user {login[0]}, password in `wb status`)"
        )


def _train_once(console: Console, notebook: str, name: str) -> None:
    from workbench import notebooks
    from workbench.errors import DataError

    try:
        versions = tracking.models(name)
    except DataError:
        console.print(f"training {name} with notebooks/{notebook}.ipynb (Papermill) ...")
        run = notebooks.run_notebook(notebook)
        console.print(f"  output notebook: {run.output}")
        versions = tracking.models(name)
    if "champion" not in " ".join(versions["aliases"]):
        tracking.promote(name, int(versions.loc[0, "version"]))
        versions = tracking.models(name)
    table = Table("version", "aliases", "auc", "gini", "ks", "created", title=f"model {name}")
    for row in versions.head(5).itertuples():
        table.add_row(
            str(row.version),
            row.aliases,
            f"{row.auc:.4f}",
            f"{row.gini:.4f}",
            f"{row.ks:.4f}",
            str(row.created)[:19],
        )
    console.print(table)


def _log_smoke_run(settings: Settings) -> tuple[str, str]:
    import mlflow

    tracking.client(settings)
    mlflow.set_experiment("workbench-smoke")
    with mlflow.start_run(run_name="smoke") as active:
        mlflow.log_params({"purpose": "smoke", "rows": 5})
        mlflow.log_metric("latency_ms", 1.0)
        with tempfile.TemporaryDirectory() as folder:
            note = Path(folder) / "smoke.txt"
            note.write_text("workbench smoke run\n")
            mlflow.log_artifact(str(note))
    experiment = active.info.experiment_id
    uri = settings.mlflow_tracking_uri
    return active.info.run_id, f"{uri}/#/experiments/{experiment}/runs/{active.info.run_id}"
