"""Unreachable services give a clear error within a bounded time, never a hang."""

from __future__ import annotations

import time

import pytest

import workbench as wb
from tests.conftest import free_port
from workbench import events, tracking

BOUND = 2.0  # connect_timeout for these tests
SLACK = 5.0  # what start-up and clean-up may add on this machine


@pytest.fixture
def nowhere() -> wb.Settings:
    port = free_port()  # nothing listens there
    return wb.settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        mlflow_tracking_uri=f"http://127.0.0.1:{port}",
        connect_timeout=BOUND,
    )


def test_an_unreachable_kafka_fails_fast_with_what_to_do(nowhere: wb.Settings) -> None:
    started = time.monotonic()

    with pytest.raises(
        wb.ServiceUnavailable, match=r"Kafka at 127\.0\.0\.1:\d+ did not answer.*wb up kafka"
    ):
        events.publish([{"n": 1}], "transactions", progress=False, settings=nowhere)

    assert time.monotonic() - started < BOUND + SLACK


def test_reading_from_an_unreachable_kafka_fails_fast(nowhere: wb.Settings) -> None:
    started = time.monotonic()

    with pytest.raises(wb.ServiceUnavailable, match=r"WORKBENCH_KAFKA_BOOTSTRAP"):
        events.tail("transactions", settings=nowhere)

    assert time.monotonic() - started < BOUND + SLACK


def test_an_unreachable_tracking_server_fails_fast_with_what_to_do(nowhere: wb.Settings) -> None:
    started = time.monotonic()

    with pytest.raises(
        wb.ServiceUnavailable,
        match=r"MLflow server at http://127\.0\.0\.1:\d+ did not answer.*wb up mlflow",
    ):
        tracking.client(nowhere)

    assert time.monotonic() - started < BOUND + SLACK
