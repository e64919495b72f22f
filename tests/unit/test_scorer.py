"""Scoring and reasons with a real LightGBM model, without a server."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import workbench as wb
from workbench.serving.app import create_app
from workbench.serving.holder import ModelHolder
from workbench.serving.scorer import Field, Scorer, validate

FIELDS = [
    Field("signal", "double"),
    Field("noise", "double"),
    Field("kind", "string"),
    Field("count", "long"),
]


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "signal": rng.normal(size=4000),
            "noise": rng.normal(size=4000),
            "kind": rng.choice(["a", "b", "c"], 4000),
            "count": rng.integers(0, 10, 4000),
        }
    )
    label = (frame["signal"] + rng.normal(scale=0.3, size=4000) > 1.5).astype(int)
    model = wb.classifier(frame, n_estimators=80).fit(frame, label)
    return Scorer("toy", "1", model, FIELDS, {"signal": "The signal is strong"})


def _record(**changes: object) -> dict:
    return {"signal": 0.0, "noise": 0.1, "kind": "b", "count": 3, **changes}


def test_fast_path_scores_equal_the_models_own_predictions(scorer: Scorer) -> None:
    records = [_record(signal=s, kind=k) for s in np.linspace(-3, 3, 25) for k in "abcz"]

    results = scorer.score(records)

    expected = scorer.model.predict_proba(pd.DataFrame(records))[:, 1]
    assert scorer.explains
    assert scorer._fast is not None
    assert scorer._fast.from_leaves  # one LightGBM call gives scores and reasons
    np.testing.assert_array_equal([r["score"] for r in results], expected)
    np.testing.assert_array_equal(
        [r["score"] for r in scorer.score(records, reasons=False)], expected
    )


def test_one_extreme_feature_is_the_top_reason_with_its_text(scorer: Scorer) -> None:
    (result,) = scorer.score([_record(signal=6.0)])

    top = result["reasons"][0]
    assert top["feature"] == "signal"
    assert top["value"] == 6.0
    assert top["direction"] == "raises"
    assert top["text"] == "The signal is strong"
    assert len(result["reasons"]) == 3


def test_contributions_add_up_to_the_raw_score(scorer: Scorer) -> None:
    fast = scorer._fast
    assert fast is not None
    matrix = fast.matrix([_record(signal=s) for s in (-2.0, 0.5, 3.0)])

    raw = fast.booster.predict(matrix, raw_score=True)

    np.testing.assert_allclose(fast.contributions(matrix).sum(axis=1) + fast.bias, raw)


def test_batches_get_the_same_contributions_as_single_records(scorer: Scorer) -> None:
    fast = scorer._fast
    assert fast is not None
    matrix = fast.matrix([_record(signal=s, kind=k) for s in np.linspace(-3, 3, 10) for k in "abc"])

    together = fast.contributions(matrix)
    one_by_one = np.vstack([fast.contributions(matrix[i : i + 1]) for i in range(len(matrix))])

    np.testing.assert_allclose(together, one_by_one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("record", "field", "error"),
    [
        ({"noise": 0.1, "kind": "b", "count": 3}, "signal", "field required"),
        (_record(extra=1), "extra", "unknown field"),
        (_record(signal="high"), "signal", "expected a number, got a string"),
        (_record(count=2.5), "count", "expected an integer, got a number"),
        (_record(count=True), "count", "expected an integer, got a boolean"),
        (_record(kind=None), "kind", "expected a string, got null"),
        (_record(signal=float("nan")), "signal", "expected a finite number"),
    ],
    ids=["missing", "unknown", "string-for-number", "float-for-int", "bool-for-int", "null", "nan"],
)
def test_validation_names_the_field_and_the_problem(record: dict, field: str, error: str) -> None:
    (problem,) = validate([record], FIELDS)

    assert problem.field == field
    assert problem.error.startswith(error)


def test_the_service_is_not_ready_and_answers_503_until_a_model_is_loaded() -> None:
    holder = ModelHolder("toy", "champion", wb.settings())
    app = create_app(holder, admin_token="t", max_records=10, max_body_bytes=10_000)

    with TestClient(app) as client:
        response = client.post("/score", json=[_record()])
        described = client.get("/model").json()

    assert response.status_code == 503
    assert "still loading" in response.json()["error"]
    assert described["ready"] is False


@pytest.fixture
def client(scorer: Scorer) -> TestClient:
    holder = ModelHolder("toy", "champion", wb.settings())
    holder.current = scorer
    return TestClient(
        create_app(holder, admin_token="secret", max_records=10, max_body_bytes=2_000)
    )


def test_bad_requests_get_4xx_that_name_the_problem(client: TestClient) -> None:
    too_many = client.post("/score", json=[_record()] * 11)
    too_big = client.post("/score", content=b"[" + b" " * 3000 + b"]")
    not_json = client.post("/score", content=b"{nope")
    wrong_shape = client.post("/score", json={"rows": []})
    bad_field = client.post("/score", json=[_record(), _record(count="x")])

    assert (too_many.status_code, too_big.status_code) == (413, 413)
    assert "11 records is over the limit of 10" in too_many.json()["error"]
    assert not_json.status_code == 400
    assert wrong_shape.status_code == 422
    assert bad_field.status_code == 422
    assert bad_field.json()["problems"] == [
        {"record": 1, "field": "count", "error": "expected an integer, got a string"}
    ]


def test_admin_calls_need_the_token(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 401
    assert (
        client.post("/admin/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
    )


def test_concurrent_requests_are_scored_in_one_batch_with_their_own_results(
    scorer: Scorer,
) -> None:
    from workbench.serving.app import Batcher

    batcher = Batcher(max_rows=100)
    requests = [[_record(signal=s)] for s in np.linspace(-2, 3, 20)]
    calls: list[int] = []
    original = scorer.score

    def counting(records, reasons=True):  # type: ignore[no-untyped-def]
        calls.append(len(records))
        return original(records, reasons=reasons)

    async def run() -> list[list[dict]]:
        scorer.score = counting  # type: ignore[method-assign]
        try:
            return await asyncio.gather(*(batcher.score(scorer, r, True) for r in requests))
        finally:
            scorer.score = original  # type: ignore[method-assign]

    results = asyncio.run(run())

    assert sum(calls) == 20
    assert len(calls) < 20
    for request, (result,) in zip(requests, results, strict=True):
        assert result["score"] == original(request)[0]["score"]


def test_large_batches_scored_off_the_event_loop_keep_each_requests_own_results(
    scorer: Scorer,
) -> None:
    from workbench.serving.app import Batcher

    batcher = Batcher(max_rows=1000)
    requests = [[_record(signal=s, count=i % 10) for s in np.linspace(-3, 3, 64)] for i in range(6)]
    broken = [_record(count="x")]  # not validated here, so scoring raises

    async def run() -> list[object]:
        answers = [batcher.score(scorer, r, True) for r in requests]
        return await asyncio.gather(*answers, return_exceptions=True)

    results = asyncio.run(run())

    for request, result in zip(requests, results, strict=True):
        assert [r["score"] for r in result] == [r["score"] for r in scorer.score(request)]
    with pytest.raises(ValueError, match="could not convert string to float"):
        asyncio.run(Batcher(max_rows=1000).score(scorer, broken * 200, True))
