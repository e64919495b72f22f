from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import datasets, features
from workbench.errors import DataError, WorkbenchError
from workbench.features import CARD_FRAUD, CREDIT

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2026-03-01")
COUNTS_AND_FLAGS = ["txn_count_1h", "txn_count_24h", "is_new_merchant", "is_new_country", "hour"]
FLOATS = ["amount_sum_1h", "amount_sum_24h", "seconds_since_prev", "amount_over_mean", "amount"]


def card_event(
    card: str,
    event_id: str,
    at: pd.Timestamp,
    amount: float = 10.0,
    merchant: str = "m1",
    country: str = "GB",
    channel: str = "pos",
) -> dict[str, Any]:
    return {
        "card_id": card,
        "event_id": event_id,
        "event_time": at,
        "amount": amount,
        "currency": "GBP",
        "merchant_id": merchant,
        "mcc": "5411",
        "country": country,
        "channel": channel,
    }


def frame_of(events: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(events)
    frame["event_time"] = frame["event_time"].astype("datetime64[ns]")
    return frame


@st.composite
def card_histories(draw: st.DrawFn) -> pd.DataFrame:
    """Events of a few cards in no particular row order, with ties, exact window
    boundaries and gaps of more than a day."""
    n = draw(st.integers(min_value=1, max_value=40))
    minutes = st.one_of(
        st.integers(0, 90),
        st.integers(0, 4 * 24 * 60),
        st.sampled_from([0, 60, 61, 24 * 60, 24 * 60 + 1, 3 * 24 * 60]),
    )
    ids = draw(st.permutations(range(n)))
    events = [
        card_event(
            card=draw(st.sampled_from(["c1", "c2", "c3"])),
            event_id=f"e{ids[i]:02d}",
            at=START + pd.Timedelta(minutes=draw(minutes), seconds=draw(st.sampled_from([0, 1]))),
            amount=draw(st.integers(0, 300_000)) / 100,
            merchant=draw(st.sampled_from(["m1", "m2", "m3", "m4"])),
            country=draw(st.sampled_from(["GB", "FR", "US"])),
            channel=draw(st.sampled_from(["pos", "ecom", "atm"])),
        )
        for i in range(n)
    ]
    return frame_of(events)


def brute_force(frame: pd.DataFrame) -> pd.DataFrame:
    """The documented features, computed from scratch for each event from the card's
    strictly earlier events in (event_time, event_id) order."""
    rows = []
    events = frame.to_dict("records")
    for event in events:
        t = event["event_time"]
        earlier = [
            other
            for other in events
            if other["card_id"] == event["card_id"]
            and (other["event_time"], other["event_id"]) < (t, event["event_id"])
        ]
        last_hour = [e["amount"] for e in earlier if e["event_time"] > t - HOUR]
        last_day = [e["amount"] for e in earlier if e["event_time"] > t - DAY]
        previous = max(earlier, key=lambda e: (e["event_time"], e["event_id"]), default=None)
        mean = math.fsum(e["amount"] for e in earlier) / len(earlier) if earlier else 0.0
        rows.append(
            {
                "txn_count_1h": len(last_hour),
                "amount_sum_1h": math.fsum(last_hour),
                "txn_count_24h": len(last_day),
                "amount_sum_24h": math.fsum(last_day),
                "seconds_since_prev": (t - previous["event_time"]).total_seconds()
                if previous
                else -1.0,
                "amount_over_mean": event["amount"] / max(mean, 0.01) if earlier else 1.0,
                "is_new_merchant": int(
                    all(e["merchant_id"] != event["merchant_id"] for e in earlier)
                ),
                "is_new_country": int(all(e["country"] != event["country"] for e in earlier)),
                "amount": event["amount"],
                "hour": t.hour,
                "channel": event["channel"],
                "mcc": event["mcc"],
                "country": event["country"],
            }
        )
    return pd.DataFrame(rows, index=frame.index)


def fold_updates(frame: pd.DataFrame, *, through_json: bool = False) -> pd.DataFrame:
    """Feed each card's events to ``update`` one by one, as a streaming job would."""
    states: dict[str, Any] = {}
    rows: dict[Any, dict[str, Any]] = {}
    for index, event in frame.sort_values(["event_time", "event_id"]).iterrows():
        card = event["card_id"]
        state = states.get(card, CARD_FRAUD.initial_state())
        if through_json:
            state = json.loads(json.dumps(state))
            event = event.copy()
            event["event_time"] = event["event_time"].isoformat()
        states[card], rows[index] = CARD_FRAUD.update(state, event.to_dict())
    return pd.DataFrame([rows[i] for i in frame.index], index=frame.index)


def assert_same_features(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(CARD_FRAUD.outputs)
    for column in [*COUNTS_AND_FLAGS, "channel", "mcc", "country"]:
        assert actual[column].tolist() == expected[column].tolist(), column
    for column in FLOATS:
        np.testing.assert_allclose(
            actual[column].to_numpy(float), expected[column].to_numpy(float),
            rtol=1e-9, atol=1e-9, err_msg=column,
        )  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(card_histories())
def test_features_use_only_strictly_earlier_events_of_the_same_card(frame: pd.DataFrame) -> None:
    assert_same_features(CARD_FRAUD.transform(frame), brute_force(frame))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(card_histories())
def test_batch_transform_equals_folding_update_event_by_event(frame: pd.DataFrame) -> None:
    assert_same_features(CARD_FRAUD.transform(frame), fold_updates(frame, through_json=True))


def test_batch_and_streaming_agree_on_generated_transactions() -> None:
    frame = datasets.card_transactions(4_000, seed=8)

    batch = CARD_FRAUD.transform(frame)

    assert_same_features(batch, fold_updates(frame))
    assert_same_features(batch, CARD_FRAUD.replay(frame))


def test_an_event_exactly_one_window_earlier_is_outside_the_window() -> None:
    t = START + 2 * DAY
    frame = frame_of(
        [
            card_event("c1", "a", t - DAY, amount=1.0),
            card_event("c1", "b", t - DAY + pd.Timedelta(1, "ns"), amount=2.0),
            card_event("c1", "c", t - HOUR, amount=4.0),
            card_event("c1", "d", t - HOUR + pd.Timedelta(1, "ns"), amount=8.0),
            card_event("c1", "e", t, amount=16.0),
        ]
    )

    last = CARD_FRAUD.transform(frame).iloc[-1]

    assert (last["txn_count_24h"], last["amount_sum_24h"]) == (3, 14.0)
    assert (last["txn_count_1h"], last["amount_sum_1h"]) == (1, 8.0)


def test_of_two_events_at_the_same_time_the_smaller_event_id_comes_first() -> None:
    frame = frame_of(
        [
            card_event("c1", "b", START, amount=5.0, merchant="m1"),
            card_event("c1", "a", START, amount=3.0, merchant="m1"),
        ]
    )

    result = CARD_FRAUD.transform(frame)

    assert result["txn_count_1h"].tolist() == [1, 0]
    assert result["amount_sum_1h"].tolist() == [3.0, 0.0]
    assert result["is_new_merchant"].tolist() == [0, 1]
    assert result["seconds_since_prev"].tolist() == [0.0, -1.0]


def test_a_cards_first_event_gets_the_documented_sentinels() -> None:
    result = CARD_FRAUD.transform(frame_of([card_event("c1", "a", START, amount=250.0)]))

    row = result.iloc[0]
    assert row["seconds_since_prev"] == features.NO_PREVIOUS == -1.0
    assert row["amount_over_mean"] == features.NO_HISTORY == 1.0
    assert (row["is_new_merchant"], row["is_new_country"]) == (1, 1)
    assert json.dumps(
        CARD_FRAUD.update(CARD_FRAUD.initial_state(), card_event("c1", "a", START))[1]
    )


def test_transform_keeps_the_index_and_row_order_and_ignores_other_columns() -> None:
    frame = datasets.card_transactions(3_000, seed=4)
    shuffled = frame.sample(frac=1.0, random_state=1)
    shuffled.index = [f"row{i}" for i in shuffled.index]

    result = CARD_FRAUD.transform(shuffled)

    assert result.index.equals(shuffled.index)
    expected = CARD_FRAUD.transform(frame)
    expected.index = [f"row{i}" for i in expected.index]
    pd.testing.assert_frame_equal(result, expected.loc[shuffled.index])


def test_timezone_aware_and_coarser_timestamps_give_the_same_features() -> None:
    frame = datasets.card_transactions(2_000, seed=4)
    aware = frame.assign(
        event_time=frame["event_time"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    )
    coarse = frame.assign(event_time=frame["event_time"].astype("datetime64[s]"))

    expected = CARD_FRAUD.transform(frame)

    pd.testing.assert_frame_equal(CARD_FRAUD.transform(aware), expected)
    pd.testing.assert_frame_equal(CARD_FRAUD.transform(coarse), expected)


def test_generated_fraud_stands_out_in_the_features() -> None:
    frame = datasets.card_transactions(100_000, seed=2)
    result = CARD_FRAUD.transform(frame)
    fraud = frame["is_fraud"] == 1

    far_above = result["amount_over_mean"] > 5
    assert far_above[fraud].mean() > 10 * far_above[~fraud].mean()


# --- the streaming path -------------------------------------------------------------


def test_streaming_state_drops_events_older_than_a_day() -> None:
    state = CARD_FRAUD.initial_state()
    second = pd.Timedelta(seconds=1)
    for i, at in enumerate(
        [START, START + HOUR, START + 2 * HOUR, START + 2 * HOUR + DAY - second]
    ):
        state, _ = CARD_FRAUD.update(state, card_event("c1", f"e{i}", at))

    assert len(state["window"]) == 2
    assert state["count"] == 4


def test_streaming_state_remembers_a_bounded_number_of_merchants() -> None:
    state = CARD_FRAUD.initial_state()
    bound = features.MAX_MERCHANTS
    for i in range(bound + 5):
        state, _ = CARD_FRAUD.update(
            state,
            card_event("c1", f"e{i:05d}", START + i * pd.Timedelta(seconds=1), merchant=f"m{i}"),
        )

    assert len(state["merchants"]) == bound
    at = START + DAY
    _, recent = CARD_FRAUD.update(state, card_event("c1", "z1", at, merchant=f"m{bound + 4}"))
    _, forgotten = CARD_FRAUD.update(state, card_event("c1", "z1", at, merchant="m0"))
    assert recent["is_new_merchant"] == 0
    assert forgotten["is_new_merchant"] == 1  # past the bound, as documented


def test_update_leaves_the_given_state_unchanged() -> None:
    state, _ = CARD_FRAUD.update(CARD_FRAUD.initial_state(), card_event("c1", "a", START))
    before = json.dumps(state)

    CARD_FRAUD.update(state, card_event("c1", "b", START + HOUR, merchant="m9", country="FR"))

    assert json.dumps(state) == before


def test_update_refuses_an_event_that_is_not_after_the_last_one() -> None:
    state, _ = CARD_FRAUD.update(CARD_FRAUD.initial_state(), card_event("c1", "b", START + HOUR))

    with pytest.raises(
        DataError, match=r"event 'a' of card 'c1' .* is not after the card's last event 'b'"
    ):
        CARD_FRAUD.update(state, card_event("c1", "a", START))
    with pytest.raises(DataError, match=r"is not after the card's last event 'b'"):
        CARD_FRAUD.update(state, card_event("c1", "b", START + HOUR))


def test_update_refuses_the_state_of_another_card() -> None:
    state, _ = CARD_FRAUD.update(CARD_FRAUD.initial_state(), card_event("c1", "a", START))

    with pytest.raises(DataError, match=r"event of card 'c2' came with the state of card 'c1'"):
        CARD_FRAUD.update(state, card_event("c2", "b", START + HOUR))


def test_update_names_a_missing_or_ill_typed_field() -> None:
    good = card_event("c1", "a", START)

    def first_update(event: dict[str, Any]) -> None:
        CARD_FRAUD.update(CARD_FRAUD.initial_state(), event)

    with pytest.raises(DataError, match=r"missing fields 'merchant_id'"):
        first_update({k: v for k, v in good.items() if k != "merchant_id"})
    with pytest.raises(DataError, match=r"'amount' should be a finite number, got '12\.5' \(str\)"):
        first_update({**good, "amount": "12.5"})
    with pytest.raises(DataError, match=r"'amount' should be a finite number, got nan"):
        first_update({**good, "amount": float("nan")})
    with pytest.raises(DataError, match=r"'amount' should be within >= 0\.0, got -1\.0"):
        first_update({**good, "amount": -1.0})
    with pytest.raises(DataError, match=r"'channel' should be one of .*got 'phone'"):
        first_update({**good, "channel": "phone"})
    with pytest.raises(DataError, match=r"'event_time' should be a datetime or an ISO 8601 str"):
        first_update({**good, "event_time": "yesterday"})


# --- validation ---------------------------------------------------------------------


@pytest.fixture
def good_frame() -> pd.DataFrame:
    return datasets.card_transactions(500, seed=1)[list(CARD_FRAUD.inputs)]


def test_validate_accepts_exactly_the_inputs(good_frame: pd.DataFrame) -> None:
    CARD_FRAUD.validate(good_frame)


def test_validate_names_missing_columns(good_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"missing columns: 'amount', 'merchant_id'"):
        CARD_FRAUD.validate(good_frame.drop(columns=["merchant_id", "amount"]))


def test_validate_names_unexpected_columns_unless_allowed(good_frame: pd.DataFrame) -> None:
    with_label = good_frame.assign(is_fraud=0)

    with pytest.raises(DataError, match=r"unexpected columns: 'is_fraud'"):
        CARD_FRAUD.validate(with_label)
    CARD_FRAUD.validate(with_label, allow_extra=True)


def test_validate_names_an_ill_typed_column(good_frame: pd.DataFrame) -> None:
    bad = good_frame.assign(amount=good_frame["amount"].astype(str), event_time="2026-01-01")

    with pytest.raises(DataError, match=r"'amount' should hold numbers .*got dtype") as caught:
        CARD_FRAUD.transform(bad)
    assert "'event_time' should hold timestamps" in str(caught.value)


def test_validate_refuses_an_empty_frame(good_frame: pd.DataFrame) -> None:
    with pytest.raises(
        DataError, match=r"card_fraud v1 cannot use this frame:\n  - the frame has no rows"
    ):
        CARD_FRAUD.transform(good_frame.iloc[:0])


def test_validate_names_missing_and_out_of_range_values(good_frame: pd.DataFrame) -> None:
    bad = good_frame.copy()
    bad.loc[3, "amount"] = -2.0
    bad.loc[7, "channel"] = "phone"
    bad.loc[9, "card_id"] = None

    with pytest.raises(
        DataError, match=r"'card_id' has 1 missing value \(first at index 9\)"
    ) as caught:
        CARD_FRAUD.transform(bad)
    message = str(caught.value)
    assert "'amount' should be finite and within >= 0.0, got -2.0 at index 3 (1 row" in message
    assert "'channel' should be one of ('pos', 'ecom', 'atm'), got ['phone']" in message


def test_transform_refuses_a_repeated_event(good_frame: pd.DataFrame) -> None:
    twice = pd.concat([good_frame, good_frame.iloc[[10]]])

    with pytest.raises(DataError, match=r"event_id 'tx1-0000000010' appears more than once"):
        CARD_FRAUD.transform(twice)


def test_validate_refuses_something_other_than_a_frame() -> None:
    with pytest.raises(DataError, match=r"expects a pandas DataFrame, got list"):
        CARD_FRAUD.validate([{"card_id": "c1"}])


# --- credit, schema and registry ----------------------------------------------------


def test_credit_batch_equals_update_and_computes_the_documented_ratios() -> None:
    frame = datasets.credit_applications(2_000, seed=3)

    batch = CREDIT.transform(frame)
    streamed = pd.DataFrame(
        [CREDIT.update(CREDIT.initial_state(), row)[1] for row in frame.to_dict("records")],
        index=frame.index,
    )

    pd.testing.assert_frame_equal(batch, streamed, check_dtype=False, rtol=1e-12)
    monthly = 0.10 / 12
    payment = frame["requested_amount"] * monthly / (1 - (1 + monthly) ** -36)
    np.testing.assert_allclose(
        batch["payment_to_income"], 12 * payment / frame["income"], rtol=1e-12
    )
    np.testing.assert_allclose(batch["log_income"], np.log(1 + frame["income"]), rtol=1e-12)
    assert batch["has_delinquency"].tolist() == (frame["delinquencies"] > 0).astype(int).tolist()


def test_credit_has_reasons_for_the_principal_decline_factors() -> None:
    for feature in ("utilisation", "debt_to_income", "payment_to_income", "delinquencies",
                    "months_on_file", "inquiries_6m", "loan_to_income"):  # fmt: skip
        assert CREDIT.reasons[feature].strip(), feature
    assert set(CREDIT.reasons) <= set(CREDIT.outputs)
    assert CREDIT.update({}, datasets.credit_applications(1).iloc[0].to_dict())[0] == {}


def test_schema_is_json_and_lists_inputs_and_outputs_in_order() -> None:
    schema = json.loads(json.dumps(CARD_FRAUD.schema()))

    assert (schema["name"], schema["version"]) == ("card_fraud", 1)
    assert schema["key"] == "card_id"
    assert [c["name"] for c in schema["inputs"]] == list(CARD_FRAUD.inputs)
    assert [c["name"] for c in schema["outputs"]] == list(CARD_FRAUD.outputs)
    channel = next(c for c in schema["inputs"] if c["name"] == "channel")
    assert channel["choices"] == ["pos", "ecom", "atm"]


def test_input_model_accepts_an_event_and_names_a_bad_field() -> None:
    model = CREDIT.input_model()
    application = datasets.credit_applications(1).iloc[0].to_dict()
    fields = {k: v for k, v in application.items() if k in CREDIT.inputs}

    assert model(**fields).model_dump() == fields
    with pytest.raises(
        pydantic.ValidationError, match=r"utilisation\n.*greater than or equal to 0"
    ):
        model(**{**fields, "utilisation": -0.5})
    with pytest.raises(
        pydantic.ValidationError, match=r"housing\n.*'own', 'mortgage', 'rent' or 'other'"
    ):
        model(**{**fields, "housing": "castle"})
    with pytest.raises(
        pydantic.ValidationError, match=r"default\n.*Extra inputs are not permitted"
    ):
        model(**{**fields, "default": 1})


def test_output_model_matches_what_update_emits() -> None:
    _, emitted = CARD_FRAUD.update(CARD_FRAUD.initial_state(), card_event("c1", "a", START))

    assert CARD_FRAUD.output_model()(**emitted).model_dump() == emitted


def test_definitions_are_found_by_name() -> None:
    assert features.get_definition("card_fraud") is CARD_FRAUD
    assert set(features.DEFINITIONS) == {"card_fraud", "credit"}
    with pytest.raises(
        features.FeatureDefinitionNotFound, match=r"'fraud'; known: \['card_fraud', 'credit'\]"
    ):
        features.get_definition("fraud")


def test_a_definition_naming_an_unknown_column_is_refused() -> None:
    with pytest.raises(WorkbenchError, match=r"'merchant' is used but is not an input"):
        features.FeatureDefinition(
            name="broken", version=1, key="merchant", inputs={"amount": "float"},
            outputs={"amount": "float"}, reasons={}, description="",
            batch=lambda frame: frame, step=lambda state, event: (state, event), initial=dict,
        )  # fmt: skip
