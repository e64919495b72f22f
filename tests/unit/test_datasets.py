from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench import datasets, modeling
from workbench.errors import DataError
from workbench.features import CARD_FRAUD


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return datasets.card_transactions(300_000, seed=11)


@pytest.fixture(scope="module")
def applications() -> pd.DataFrame:
    return datasets.credit_applications(200_000, seed=11)


def test_card_transactions_are_identical_for_the_same_seed() -> None:
    first = datasets.card_transactions(20_000, seed=5)
    second = datasets.card_transactions(20_000, seed=5)

    pd.testing.assert_frame_equal(first, second)


def test_card_transactions_differ_for_another_seed() -> None:
    first = datasets.card_transactions(20_000, seed=5)
    other = datasets.card_transactions(20_000, seed=6)

    assert not first["amount"].equals(other["amount"])
    assert not first["card_id"].equals(other["card_id"])


@pytest.mark.parametrize("chunk_size", [999, 65_536, 100_000, 1_000_000], ids=lambda s: f"{s}")
def test_chunks_put_together_equal_the_whole_frame(chunk_size: int) -> None:
    n = 150_001  # crosses the generator's internal blocks, ends on a partial one
    whole = datasets.card_transactions(n, seed=3)

    chunks = list(datasets.iter_card_transactions(n, seed=3, chunk_size=chunk_size))

    assert all(len(chunk) == chunk_size for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)


def test_card_transactions_have_the_documented_columns_and_types(
    transactions: pd.DataFrame,
) -> None:
    assert list(transactions.columns) == list(datasets.CARD_COLUMNS)
    assert transactions["event_time"].dtype == np.dtype("datetime64[ns]")
    assert transactions["amount"].dtype == np.float64
    assert transactions["is_fraud"].dtype == np.int64
    text_columns = ["card_id", "account_id", "merchant_id", "mcc", "currency", "country"]
    for column in [*text_columns, "channel", "event_id"]:
        assert pd.api.types.is_string_dtype(transactions[column]), column
    assert set(transactions["channel"]) == {"pos", "ecom", "atm"}
    assert set(transactions["is_fraud"]) == {0, 1}
    assert transactions.notna().all().all()
    assert (transactions["amount"] > 0).all()
    assert transactions.index.equals(pd.RangeIndex(len(transactions)))


def test_events_have_unique_ids_and_come_in_time_order(transactions: pd.DataFrame) -> None:
    assert transactions["event_id"].is_unique
    ordered = transactions.sort_values(["event_time", "event_id"], kind="stable")
    assert ordered.index.equals(transactions.index)


def test_events_span_the_documented_days_from_start() -> None:
    frame = datasets.card_transactions(50_000, seed=2, start="2025-03-01T06:00:00+01:00")

    first = pd.Timestamp("2025-03-01 05:00:00")
    assert frame["event_time"].min() >= first
    assert frame["event_time"].max() <= first + pd.Timedelta(days=datasets.SPAN_DAYS)
    assert frame["event_time"].max() >= first + pd.Timedelta(days=datasets.SPAN_DAYS - 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_fraud_rate_is_close_to_the_documented_rate(seed: int) -> None:
    frame = datasets.card_transactions(300_000, seed=seed)

    assert frame["is_fraud"].mean() == pytest.approx(datasets.FRAUD_RATE, rel=0.15)


@pytest.fixture(scope="module")
def habits(transactions: pd.DataFrame) -> pd.DataFrame:
    """For each row, whether it breaks the card's habits in the ways the docstring names."""
    frame = transactions
    fraud = frame["is_fraud"] == 1
    home = frame.groupby("card_id")["country"].agg(lambda c: c.mode().iloc[0])
    usual = frame[~fraud].groupby("card_id")["amount"].median()
    times_usual = frame["amount"] / frame["card_id"].map(usual)
    return pd.DataFrame(
        {
            "abroad": frame["country"] != frame["card_id"].map(home),
            "night": frame["event_time"].dt.hour < 6,
            "new_merchant": ~frame.duplicated(["card_id", "merchant_id"]),
            "far_above_usual": times_usual > 10,
            "small": frame["amount"] < 3,
            "online": frame["channel"] == "ecom",
            "typical_amount": times_usual.between(0.25, 4),
            "fraud": fraud,
        }
    )


def _share(habits: pd.DataFrame, pattern: str, fraud: bool) -> float:
    return float(habits.loc[habits["fraud"] == fraud, pattern].mean())


@pytest.mark.parametrize(
    ("pattern", "times"),
    [
        ("night", 3),
        ("abroad", 8),
        ("new_merchant", 2),
        ("far_above_usual", 8),
        ("small", 10),
        ("online", 2),
    ],
    ids=lambda value: str(value),
)
def test_fraud_shows_the_patterns_in_the_docstring_far_more_often(
    habits: pd.DataFrame, pattern: str, times: int
) -> None:
    assert _share(habits, pattern, fraud=True) > times * _share(habits, pattern, fraud=False)


@pytest.mark.parametrize(
    "pattern", ["night", "abroad", "new_merchant", "far_above_usual", "small", "online"]
)
def test_each_pattern_shows_in_only_part_of_the_fraud_and_now_and_then_in_legit_spending(
    habits: pd.DataFrame, pattern: str
) -> None:
    assert _share(habits, pattern, fraud=True) < 0.85
    assert _share(habits, pattern, fraud=False) > 0.005


def test_some_fraud_is_quiet_and_looks_like_the_cards_own_spending(
    transactions: pd.DataFrame, habits: pd.DataFrame
) -> None:
    day = transactions["event_time"].dt.hour.between(8, 20)
    ordinary = ~habits["abroad"] & day & ~habits["new_merchant"] & habits["typical_amount"]

    assert ordinary[habits["fraud"]].mean() > 0.05


def test_a_model_learns_the_fraud_but_cannot_separate_it_perfectly() -> None:
    events = datasets.card_transactions(40_000, seed=7)
    X, y = CARD_FRAUD.transform(events), events["is_fraud"]
    train = (events["event_time"] < events["event_time"].quantile(0.8)).to_numpy()

    model = wb.classifier(X[train], n_estimators=60).fit(X[train], y[train])
    auc = modeling.evaluate(y[~train], modeling.scores(model, X[~train]))["auc"]

    assert 0.85 < auc < 0.985


def test_legitimate_cards_keep_a_home_country_and_usual_merchants(
    transactions: pd.DataFrame,
) -> None:
    legit = transactions[transactions["is_fraud"] == 0]
    by_card = legit.groupby("card_id")

    in_top_country = by_card["country"].agg(lambda c: c.value_counts().iloc[0]).sum()
    in_top_merchants = by_card["merchant_id"].agg(lambda m: m.value_counts().iloc[:8].sum()).sum()

    assert in_top_country / len(legit) > 0.95
    assert in_top_merchants / len(legit) > 0.7


def test_credit_applications_are_identical_for_the_same_seed() -> None:
    pd.testing.assert_frame_equal(
        datasets.credit_applications(5_000, seed=4), datasets.credit_applications(5_000, seed=4)
    )
    assert not datasets.credit_applications(5_000, seed=4)["default"].equals(
        datasets.credit_applications(5_000, seed=9)["default"]
    )


def test_credit_applications_have_the_documented_columns_and_values(
    applications: pd.DataFrame,
) -> None:
    frame = applications
    assert list(frame.columns) == list(datasets.CREDIT_COLUMNS)
    assert frame["application_id"].is_unique
    assert frame["application_time"].dtype == np.dtype("datetime64[ns]")
    assert frame["application_time"].is_monotonic_increasing
    assert set(frame["employment"]) == {
        "employed", "self_employed", "unemployed", "retired", "student",
    }  # fmt: skip
    assert set(frame["housing"]) == {"own", "mortgage", "rent", "other"}
    for column in ("delinquencies", "months_on_file", "inquiries_6m", "default"):
        assert frame[column].dtype == np.int64, column
        assert (frame[column] >= 0).all(), column
    assert frame["utilisation"].between(0, 1).all()
    assert (frame["income"] > 0).all()
    assert (frame["requested_amount"] >= 500).all()
    assert frame.notna().all().all()


def test_default_rate_is_close_to_the_documented_target(applications: pd.DataFrame) -> None:
    assert applications["default"].mean() == pytest.approx(datasets.DEFAULT_RATE, abs=0.005)


def test_defaults_follow_the_documented_risk_factors(applications: pd.DataFrame) -> None:
    frame = applications

    def rate(mask: pd.Series) -> float:
        return float(frame.loc[mask, "default"].mean())

    utilisation = frame["utilisation"]
    assert rate(utilisation > utilisation.quantile(0.75)) > 1.5 * rate(
        utilisation < utilisation.quantile(0.25)
    )
    assert rate(frame["delinquencies"] >= 2) > 1.5 * rate(frame["delinquencies"] == 0)
    assert rate(frame["employment"] == "unemployed") > 1.5 * rate(frame["employment"] == "employed")
    burden = frame["requested_amount"] / frame["income"]
    assert rate(burden > burden.quantile(0.9)) > rate(burden < burden.quantile(0.5))


def test_zero_rows_give_an_empty_frame_with_the_columns() -> None:
    frame = datasets.card_transactions(0)

    assert list(frame.columns) == list(datasets.CARD_COLUMNS)
    assert len(frame) == 0
    assert list(datasets.credit_applications(0).columns) == list(datasets.CREDIT_COLUMNS)


def test_a_negative_size_is_refused_with_the_value() -> None:
    with pytest.raises(DataError, match=r"n must be a whole number of rows >= 0, got -5"):
        datasets.card_transactions(-5)
    with pytest.raises(DataError, match=r"n must be a whole number of rows >= 0, got 2\.5"):
        datasets.credit_applications(2.5)  # type: ignore[arg-type]


def test_a_chunk_size_below_one_is_refused() -> None:
    with pytest.raises(DataError, match=r"chunk_size must be a positive number of rows, got 0"):
        next(datasets.iter_card_transactions(10, chunk_size=0))
