"""Building and judging classifiers: a ready pipeline for tabular data, and the metrics a
model-risk reviewer asks for."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import DataError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

#: Fraction of legitimate events a fraud team accepts to flag.
FALSE_POSITIVE_RATE = 0.01
#: Share of the highest scores a review team works through.
TOP_SHARE = 0.01


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding strings (or pandas categories)."""
    return [
        str(c)
        for c in frame.columns
        if pd.api.types.is_string_dtype(frame[c])
        or isinstance(frame[c].dtype, pd.CategoricalDtype)
        or frame[c].dtype == object
    ]


def classifier(
    X: pd.DataFrame,
    kind: str = "lightgbm",
    *,
    monotone: Mapping[str, int] | None = None,
    **params: Any,
) -> Pipeline:
    """An unfitted classifier for ``X``'s columns: string columns are encoded, numbers pass.

    ``kind`` is ``"lightgbm"`` (LightGBM's LGBMClassifier) or ``"hist_gradient_boosting"``
    (scikit-learn's). ``monotone`` maps numeric columns to +1 (the score may only rise
    with the value) or -1 (only fall), which keeps decline reasons truthful: "income is
    low" is then never the reason for a high score. ``params`` go to the classifier.

    >>> model = wb.classifier(X_train, n_estimators=200).fit(X_train, y_train)
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    strings = categorical_columns(X)
    if monotone:
        params = {**params, **_monotone_params(kind, X, strings, monotone)}
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                strings,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return Pipeline([("encode", encode), ("model", _estimator(kind, strings, params))])


def _monotone_params(
    kind: str, X: pd.DataFrame, strings: list[str], monotone: Mapping[str, int]
) -> dict[str, Any]:
    unknown = [c for c in monotone if c not in X.columns]
    if unknown:
        raise DataError(f"monotone names columns that X does not have: {unknown}")
    wrong = [c for c in monotone if c in strings or monotone[c] not in (-1, 0, 1)]
    if wrong:
        raise DataError(f"monotone constraints need numeric columns and -1, 0 or +1; check {wrong}")
    # The encoder puts the string columns first, then the others in X's order.
    order = strings + [str(c) for c in X.columns if c not in strings]
    if kind == "lightgbm":
        return {"monotone_constraints": [int(monotone.get(c, 0)) for c in order]}
    return {"monotonic_cst": {c: int(v) for c, v in monotone.items()}}


def _estimator(kind: str, strings: list[str], params: dict[str, Any]) -> Any:
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**{"verbose": -1, "n_jobs": 2, **params})
    if kind == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**{"categorical_features": strings or None, **params})
    raise DataError(f"unknown classifier kind {kind!r}; use 'lightgbm' or 'hist_gradient_boosting'")


def scores(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The model's probability of the positive class for each row of ``X``."""
    if not hasattr(model, "predict_proba"):
        raise DataError(
            f"{type(model).__name__} has no predict_proba; workbench serves classifiers "
            "that give a probability (scikit-learn or LightGBM classifiers)"
        )
    try:
        proba = np.asarray(model.predict_proba(X))
    except Exception as exc:
        raise DataError(
            f"{type(model).__name__} could not score X ({type(exc).__name__}: {exc}). "
            "Pass the columns the model was fitted on, with the same types."
        ) from exc
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise DataError(
            f"expected a binary classifier (two probability columns), got shape {proba.shape}"
        )
    return proba[:, 1]


def evaluate(y: pd.Series | np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Held-out metrics of a binary score: AUC, Gini, KS, recall at a 1% false-positive
    rate and precision among the top 1% of scores."""
    from sklearn.metrics import roc_auc_score, roc_curve

    truth = np.asarray(y).astype(int)
    auc = float(roc_auc_score(truth, score))
    fpr, tpr, _ = roc_curve(truth, score)
    top = max(1, math.ceil(TOP_SHARE * len(score)))
    best = np.argsort(-score, kind="stable")[:top]
    return {
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": float(np.max(tpr - fpr)),
        "recall_at_1pct_fpr": float(np.max(tpr[fpr <= FALSE_POSITIVE_RATE])),
        "precision_at_top_1pct": float(truth[best].mean()),
    }


def fingerprint(frame: pd.DataFrame) -> str:
    """A short hash of a frame's columns, types and values: equal data, equal fingerprint."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(frame[c].dtype)) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def check_training_data(X: Any, y: Any = None, expected: Mapping[str, str] | None = None) -> None:
    """Raise :class:`DataError` naming what is wrong with ``X`` (and ``y``), before anything
    is logged. ``expected`` maps column names to kinds (``float``, ``int``, ``str``)."""
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    if X.empty:
        raise DataError("X is empty: there are no rows (or no columns) to log a model with")
    if expected is not None:
        _check_columns(X, expected)
    unsupported = [
        f"{c!r} ({X[c].dtype})"
        for c in X.columns
        if not (
            pd.api.types.is_numeric_dtype(X[c])
            or pd.api.types.is_bool_dtype(X[c])
            or str(c) in categorical_columns(X)
        )
    ]
    if unsupported:
        raise DataError(
            f"columns of unsupported type: {', '.join(unsupported)}; use numbers, booleans "
            "or strings (derive hour or age from a timestamp, for example)"
        )
    if y is not None:
        _check_target(X, y)


def _check_columns(X: pd.DataFrame, expected: Mapping[str, str]) -> None:
    missing = [c for c in expected if c not in X.columns]
    extra = [str(c) for c in X.columns if c not in expected]
    if missing or extra:
        raise DataError(
            "X does not match the feature definition: "
            + "; ".join(
                part
                for part in (
                    f"missing columns {missing}" if missing else "",
                    f"extra columns {extra}" if extra else "",
                )
                if part
            )
        )
    wrong = []
    for column, kind in expected.items():
        values = X[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if (kind in ("float", "int") and not numeric) or (
            kind == "str" and column not in categorical_columns(X)
        ):
            wrong.append(f"{column!r} should be {kind}, is {values.dtype}")
    if wrong:
        raise DataError("X has columns of the wrong type: " + "; ".join(wrong))


def _check_target(X: pd.DataFrame, y: Any) -> None:
    values = pd.Series(np.asarray(y))
    if len(values) != len(X):
        raise DataError(f"y has {len(values)} values but X has {len(X)} rows")
    if values.isna().any():
        raise DataError(f"y has {int(values.isna().sum())} missing values")
    classes = sorted(values.unique().tolist())
    if len(classes) != 2:
        raise DataError(
            f"y must hold two classes to evaluate a classifier, got {classes!r}; "
            "held-out data needs both outcomes"
        )
