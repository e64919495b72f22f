"""``WORKBENCH_FLINK_URL`` naming another cluster: ``wb.stream.start`` submits the job there.

A standalone Flink cluster (a JobManager and a TaskManager from PyFlink's own scripts)
listens on 127.0.0.2, which workbench counts as another machine while it stays on this
one's loopback. The job is submitted with ``flink run``, scores through the same BentoML
service, and ``wb.stream.stop`` cancels it on the cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import workbench as wb
from tests.conftest import free_port
from workbench import stream
from workbench.settings import Settings
from workbench.stream import control

HOST = "127.0.0.2"
EVENTS = 300


def _flink_home() -> Path:
    return control._flink_cli(wb.settings()).parent.parent


def _config(folder: Path, rpc: int, rest: int) -> Path:
    """A Flink configuration for one JobManager and one TaskManager on ``HOST``."""
    import yaml

    shutil.copytree(_flink_home() / "conf", folder)
    defaults = yaml.safe_load((folder / "config.yaml").read_text())
    values = {
        # Java 17 needs the module openings PyFlink's default configuration carries.
        "env.java.opts.all": defaults["env"]["java"]["opts"]["all"],
        "jobmanager.rpc.address": HOST,
        "jobmanager.rpc.port": rpc,
        "jobmanager.bind-host": HOST,
        "jobmanager.memory.process.size": "1024m",
        "taskmanager.host": HOST,
        "taskmanager.bind-host": HOST,
        "taskmanager.memory.process.size": "1728m",
        "taskmanager.numberOfTaskSlots": 2,
        "rest.address": HOST,
        "rest.bind-address": HOST,
        "rest.port": rest,
        "blob.server.port": free_port(),
        "parallelism.default": 2,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(values))
    return folder


@pytest.fixture(scope="module")
def cluster(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The cluster's REST URL; its processes are stopped at the end of the module."""
    work = tmp_path_factory.mktemp("flink-cluster")
    rest = free_port()
    conf = _config(work / "conf", free_port(), rest)
    # A cluster that runs Python jobs has flink-python in its lib/, as Flink's docs ask.
    lib = work / "lib"
    lib.mkdir()
    for jar in [
        *(_flink_home() / "lib").glob("*.jar"),
        *(_flink_home() / "opt").glob("flink-python*.jar"),
    ]:
        (lib / jar.name).symlink_to(jar)
    python = control.flink_python(services)
    environment = {
        **os.environ,
        "FLINK_LIB_DIR": str(lib),
        "FLINK_CONF_DIR": str(conf),
        "FLINK_LOG_DIR": str(work / "log"),
        "PATH": f"{python.parent}:{os.environ['PATH']}",
    }
    scripts = _flink_home() / "bin"
    processes = [
        subprocess.Popen(
            [str(scripts / script), "start-foreground"],
            env=environment,
            stdout=(work / f"{script}.out").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for script in ("jobmanager.sh", "taskmanager.sh")
    ]
    url = f"http://{HOST}:{rest}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = httpx.get(f"{url}/overview", timeout=2).json()
                if answer.get("slots-total", 0) >= 2:
                    break
            except httpx.HTTPError:
                pass
            assert all(p.poll() is None for p in processes), "the Flink cluster exited"
            assert time.monotonic() < deadline, "the Flink cluster did not come up in 120 s"
            time.sleep(1)
        yield url
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _skip_to_end(settings: Settings, group: str) -> None:
    """Commit ``group``'s offsets at the end of ``transactions``: the job reads only what
    this test publishes, not what earlier tests left in the topic."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        topic = consumer.list_topics("transactions", timeout=10).topics["transactions"]
        ends = []
        for partition in topic.partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition("transactions", partition), timeout=10
            )
            ends.append(TopicPartition("transactions", partition, high))
        deadline = time.monotonic() + 60
        while True:
            try:
                consumer.commit(offsets=ends, asynchronous=False)
                break
            except KafkaException as error:  # a new broker still loading its coordinator
                if not error.args[0].retriable() or time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        consumer.close()


def test_the_job_is_submitted_to_the_cluster_scores_and_stops_there(
    cluster: str, services: Settings
) -> None:
    model = f"remote-{uuid.uuid4().hex[:6]}"
    history = wb.datasets.card_transactions(5_000, seed=8)
    X = wb.features.CARD_FRAUD.transform(history)
    fitted = wb.classifier(X, n_estimators=20).fit(X, history["is_fraud"])
    version = wb.log_model(fitted, model, X, history["is_fraud"], features=wb.features.CARD_FRAUD)
    wb.promote(model, version.version)
    remote = wb.settings(flink_url=cluster)
    _skip_to_end(remote, f"workbench-stream-{model}")

    started = stream.start(model, fresh=True, settings=remote)
    try:
        assert started.state == "running"
        assert started.flink_url == cluster
        jobs = httpx.get(f"{cluster}/jobs/overview", timeout=5).json()["jobs"]
        assert [j["name"] for j in jobs if j["state"] == "RUNNING"] == [f"workbench-stream-{model}"]

        events = wb.datasets.card_transactions(EVENTS, seed=12).drop(columns=["is_fraud"])
        prefix = f"{model}-"
        events["event_id"] = prefix + events["event_id"].astype(str)
        events["card_id"] = prefix + events["card_id"].astype(str)
        wb.publish(events, "transactions", key="card_id", progress=False)
        deadline = time.monotonic() + 180
        while True:
            scores = wb.tail("scores", timeout=10)
            if "event_id" in scores.columns:
                scores = scores[scores["event_id"].astype(str).str.startswith(prefix)]
                if len(scores) >= EVENTS or time.monotonic() > deadline:
                    break
            assert time.monotonic() < deadline, "no scores from the remote cluster in 180 s"
            time.sleep(2)
        assert sorted(scores["event_id"]) == sorted(events["event_id"])
        assert set(scores["model"]) == {model}
    finally:
        stopped = stream.stop(remote)

    assert stopped
    assert stream.status(remote).state == "stopped"
    states = {j["name"]: j["state"] for j in httpx.get(f"{cluster}/jobs/overview").json()["jobs"]}
    assert states[f"workbench-stream-{model}"] == "CANCELED"
