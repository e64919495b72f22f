"""The deploy panel's buttons, clicked through the widget API, against the real MLflow
server, BentoML service and Kafka broker."""

from __future__ import annotations

import uuid

import pytest

import workbench as wb
from tests.conftest import free_port
from tests.integration.panel_models import register
from workbench import events, serving, stack
from workbench.panels import Panel
from workbench.serving import deployments
from workbench.settings import Settings


@pytest.fixture(scope="module")
def model(services: Settings) -> str:
    name = f"panel-{uuid.uuid4().hex[:6]}"
    register(name)
    return name


def _champion(name: str) -> int:
    versions = wb.models(name)
    return int(versions.loc[versions["aliases"].str.contains("champion"), "version"].item())


def _deploy_through_the_panel(panel: Panel, version: int, force: str | None = None) -> None:
    panel.version.value = version
    panel.deploy_button.click()
    if force is not None:
        panel.force.value = True
        panel.reason.value = force
    panel.confirm_button.click()


def _text(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html).replace("&#x27;", "'").replace("&quot;", '"')


def test_the_panel_lists_every_version_with_its_metrics_and_run_link(
    model: str, services: Settings
) -> None:
    panel = wb.panel(model)

    versions = wb.models(model)
    assert [value for _, value in panel.version.options] == list(versions["version"])
    for row in versions.itertuples():
        assert f"{row.auc:.4f}" in panel.table.value
        assert f"/runs/{row.run_id}" in panel.table.value
    assert services.mlflow_tracking_uri in panel.table.value
    assert "Serving version 1" in panel.serving.value


def test_deploy_moves_the_champion_and_the_service_follows(model: str) -> None:
    panel = wb.panel(model)

    _deploy_through_the_panel(panel, 2)

    assert _champion(model) == 2
    assert serving.endpoint(model).version == "2"
    assert "Serving version 2" in panel.serving.value
    assert "Version 2 is champion" in _text(panel.message.value)


def test_rollback_restores_the_previous_version(model: str) -> None:
    wb.promote(model, 1, force=True, reason="start the rollback test from version 1")
    panel = wb.panel(model)
    _deploy_through_the_panel(panel, 2)
    assert _champion(model) == 2

    panel.rollback_button.click()

    assert _champion(model) == 1
    assert serving.endpoint(model).version == "1"
    assert "rolled back to version 1" in _text(panel.message.value)
    assert "Serving version 1" in panel.serving.value


def test_a_refused_promotion_shows_both_aucs_and_keeps_the_champion(model: str) -> None:
    panel = wb.panel(model)
    champion = _champion(model)
    versions = wb.models(model).set_index("version")

    _deploy_through_the_panel(panel, 3)

    shown = _text(panel.message.value)
    assert "gate refused" in shown
    assert f"{versions.loc[3, 'auc']:.4f}" in shown
    assert f"{versions.loc[champion, 'auc']:.4f}" in shown
    assert _champion(model) == champion
    assert serving.endpoint(model).version == str(champion)


def test_forcing_past_the_gate_without_a_reason_is_refused_in_words(model: str) -> None:
    panel = wb.panel(model)
    champion = _champion(model)

    _deploy_through_the_panel(panel, 3, force="")

    assert "needs a reason" in _text(panel.message.value)
    assert _champion(model) == champion


def test_send_events_publishes_n_events_and_says_nothing_scores_them(
    model: str, services: Settings
) -> None:
    panel = wb.panel(model)
    before = _messages(services)

    panel.count.value = 137
    panel.send_button.click()

    assert _messages(services) == before + 137
    assert (panel.progress.value, panel.progress.max) == (137, 137)
    shown = _text(panel.message.value)
    assert "Published 137 test events to 'transactions'" in shown
    assert "No stream job scores" in shown
    assert f"wb.stream.start('{model}')" in shown


def _messages(settings: Settings) -> int:
    found = {info.name: info.messages for info in events.topic_info(settings)}
    return found[events.TRANSACTIONS]


def test_scoring_directly_charts_the_services_scores_and_says_so(model: str) -> None:
    panel = wb.panel(model)
    served = serving.endpoint(model).status()["latency"].get("requests", 0)

    panel.count.value = 60
    panel.direct.value = True
    panel.send_button.click()

    assert bytes(panel.chart.value).startswith(b"\x89PNG")
    assert "60 scores returned by the service" in _text(panel.chart_note.value)
    assert "not written to 'scores'" in _text(panel.chart_note.value)
    assert serving.endpoint(model).status()["latency"]["requests"] > served


def test_the_live_chart_follows_this_models_scores_in_the_topic(
    model: str, services: Settings
) -> None:
    # Score records as the stream job writes them, for this model and for another one.
    records = [
        {"event_id": f"e{i}", "model": model, "version": "1", "score": i / 50} for i in range(40)
    ]
    others = [
        {"event_id": f"o{i}", "model": "another", "version": "9", "score": 0.5} for i in range(7)
    ]
    wb.publish(records + others, events.SCORES, key="event_id", progress=False)
    panel = wb.panel(model)

    panel.watch.value = True
    try:
        _wait(lambda: "The latest 40 scores" in _text(panel.chart_note.value), 60)
        assert bytes(panel.chart.value).startswith(b"\x89PNG")
    finally:
        panel.watch.value = False

    assert panel._watcher is None
    assert "written by the stream job" in _text(panel.chart_note.value)


def _wait(condition: object, seconds: float) -> None:
    import time

    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_an_unreachable_kafka_is_named_in_the_panel(model: str, services: Settings) -> None:
    dead = f"127.0.0.1:{free_port()}"
    panel = wb.panel(model, wb.settings(kafka_bootstrap=dead, connect_timeout=2))

    panel.count.value = 5
    panel.send_button.click()

    shown = _text(panel.message.value)
    assert f"Kafka at {dead} did not answer" in shown
    assert "wb up kafka" in shown
    assert panel.progress.value == 0


def test_a_stopped_service_shows_as_down_with_what_to_do(model: str, services: Settings) -> None:
    service = deployments.service_name(model)
    stack.down([service], services)
    try:
        panel = wb.panel(model)

        shown = _text(panel.serving.value)
        assert shown.startswith("Service down:")
        assert f"wb up {service}" in shown
    finally:
        wb.deploy(model)
