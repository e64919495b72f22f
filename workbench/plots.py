"""The plots a modeler looks at after training: ROC curve, scores by class, importance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 5.0, height: float = 4.0) -> tuple[Figure, Any]:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, height))
    return figure, axes


def roc_curve(y: Any, score: np.ndarray, title: str = "ROC curve") -> Figure:
    """The ROC curve with its AUC, and the chance diagonal."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as curve

    fpr, tpr, _ = curve(np.asarray(y).astype(int), score)
    auc = roc_auc_score(np.asarray(y).astype(int), score)
    figure, axes = _figure()
    axes.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def score_distribution(y: Any, score: np.ndarray, title: str = "Scores by class") -> Figure:
    """Histograms of the score for each class, on a log count scale."""
    figure, axes = _figure()
    truth = np.asarray(y).astype(int)
    bins = np.linspace(0.0, 1.0, 41)
    for label, name in ((0, "negative"), (1, "positive")):
        axes.hist(
            score[truth == label], bins=bins, alpha=0.6, label=f"{name} ({(truth == label).sum()})"
        )
    axes.set(xlabel="score", ylabel="events", title=title, yscale="log")
    axes.legend()
    figure.tight_layout()
    return figure


def feature_importance(model: Any, top: int = 15, title: str = "Feature importance") -> Figure:
    """The model's own importances (gain for LightGBM), largest first."""
    importance = _importances(model)
    shown = importance.sort_values(ascending=True).tail(top)
    figure, axes = _figure(height=max(3.0, 0.3 * len(shown) + 1))
    axes.barh(shown.index, shown.to_numpy())
    axes.set(xlabel="importance", title=title)
    figure.tight_layout()
    return figure


def _importances(model: Any) -> pd.Series:
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    names = list(getattr(model, "feature_names_in_", []))
    if hasattr(estimator, "booster_"):
        booster = estimator.booster_
        values = booster.feature_importance(importance_type="gain")
        return pd.Series(values, index=booster.feature_name())
    if hasattr(estimator, "feature_importances_"):
        return pd.Series(estimator.feature_importances_, index=names or None)
    raise TypeError(f"{type(estimator).__name__} does not expose feature importances")
