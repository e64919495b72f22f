from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench import modeling


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, 400),
            "txn_count_1h": rng.integers(0, 5, 400),
            "channel": rng.choice(["pos", "ecom", "atm"], 400),
        }
    )


@pytest.fixture
def target(frame: pd.DataFrame) -> pd.Series:
    return ((frame["amount"] > 80) | (frame["channel"] == "atm")).astype(int)


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gradient_boosting"])
def test_the_classifier_learns_from_numbers_and_strings(
    frame: pd.DataFrame, target: pd.Series, kind: str
) -> None:
    model = wb.classifier(frame, kind=kind, max_depth=3).fit(frame, target)

    score = modeling.scores(model, frame)

    assert modeling.evaluate(target, score)["auc"] > 0.95


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gradient_boosting"])
def test_a_monotone_column_only_ever_raises_the_score(
    frame: pd.DataFrame, target: pd.Series, kind: str
) -> None:
    noisy = target.sample(frac=1.0, random_state=2).to_numpy()  # no real relation left
    model = wb.classifier(frame, kind=kind, monotone={"amount": 1}).fit(frame, noisy)
    row = frame.iloc[[0] * 50].assign(amount=np.linspace(0, 500, 50))

    score = modeling.scores(model, row)

    assert np.all(np.diff(score) >= 0)


def test_monotone_constraints_must_name_numeric_columns(frame: pd.DataFrame) -> None:
    with pytest.raises(wb.DataError, match=r"does not have: \['nope'\]"):
        wb.classifier(frame, monotone={"nope": 1})
    with pytest.raises(wb.DataError, match=r"check \['channel'\]"):
        wb.classifier(frame, monotone={"channel": 1})


def test_metrics_match_their_definitions_on_a_known_score() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    score = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.8, 0.9, 0.95])

    metrics = modeling.evaluate(y, score)

    # 15 positive-negative pairs, 13 ordered correctly (the negative at 0.9 outranks
    # the positives at 0.4 and 0.8).
    assert metrics["auc"] == pytest.approx(13 / 15)
    assert metrics["gini"] == pytest.approx(2 * 13 / 15 - 1)
    # Best split: score >= 0.4 catches all 3 positives and 1 of 5 negatives.
    assert metrics["ks"] == pytest.approx(1 - 1 / 5)
    # At FPR 0 nothing is flagged before 0.95: recall 1/3.
    assert metrics["recall_at_1pct_fpr"] == pytest.approx(1 / 3)
    assert metrics["precision_at_top_1pct"] == 1.0


def test_the_fingerprint_changes_with_any_value_and_not_otherwise(frame: pd.DataFrame) -> None:
    changed = frame.copy()
    changed.loc[7, "amount"] += 0.01

    assert modeling.fingerprint(frame) == modeling.fingerprint(frame.copy())
    assert modeling.fingerprint(frame) != modeling.fingerprint(changed)


EXPECTED = {"amount": "float", "txn_count_1h": "int", "channel": "str"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="channel"), r"missing columns \['channel'\]"),
        (lambda f: f.assign(extra=1.0), r"extra columns \['extra'\]"),
        (lambda f: f.assign(amount=f["amount"].astype(str)), r"'amount' should be float"),
        (lambda f: f.assign(channel=1), r"'channel' should be str"),
        (lambda f: f.iloc[0:0], r"X is empty"),
    ],
    ids=["missing-column", "extra-column", "string-for-number", "number-for-string", "empty"],
)
def test_bad_training_data_is_named(frame: pd.DataFrame, change, message: str) -> None:
    with pytest.raises(wb.DataError, match=message):
        modeling.check_training_data(change(frame), None, EXPECTED)


def test_a_target_with_one_class_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(wb.DataError, match=r"two classes.*got \[0\]"):
        modeling.check_training_data(frame, np.zeros(len(frame), dtype=int), EXPECTED)


def test_a_target_of_the_wrong_length_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(wb.DataError, match=r"y has 3 values but X has 400 rows"):
        modeling.check_training_data(frame, [0, 1, 0], EXPECTED)


def test_timestamps_must_become_numbers_first(frame: pd.DataFrame) -> None:
    stamped = frame.assign(event_time=pd.Timestamp("2026-01-01"))

    with pytest.raises(wb.DataError, match=r"'event_time' \(datetime64"):
        modeling.check_training_data(stamped)
