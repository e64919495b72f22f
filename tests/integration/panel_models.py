"""Registered versions for the panel's tests: two good ones, then one the gate refuses."""

from __future__ import annotations

import numpy as np

import workbench as wb


def register(name: str, *, worse: bool = True) -> None:
    """Versions 1 and 2 of ``name`` (2 not worse than 1 on held-out AUC), champion 1 and
    deployed; with ``worse``, a version 3 trained on shuffled labels, which the gate refuses.
    """
    events = wb.datasets.card_transactions(12_000, seed=21)
    X = wb.features.CARD_FRAUD.transform(events)
    y = events["is_fraud"]
    train, test = slice(None, 9_000), slice(9_000, None)
    labels = [y[train], y[train]]
    if worse:
        labels.append(y[train].sample(frac=1.0, random_state=3).set_axis(y[train].index))
    for trees, target in zip((15, 80, 40), labels, strict=False):
        model = wb.classifier(X[train], n_estimators=trees).fit(X[train], target)
        wb.log_model(model, name, X[test], y[test], features=wb.features.CARD_FRAUD)

    versions = wb.models(name).set_index("version")
    assert versions.loc[2, "auc"] >= versions.loc[1, "auc"], versions
    if worse:
        assert versions.loc[3, "auc"] < versions.loc[1, "auc"] - 0.05, versions
    assert np.isfinite(versions["auc"]).all()
    wb.promote(name, 1)
    wb.deploy(name)
