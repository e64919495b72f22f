from __future__ import annotations

import workbench as wb


def test_the_notebook_api_is_exactly_this() -> None:
    assert wb.__all__ == sorted(wb.__all__)
    assert wb.__all__ == [
        "ConfigError",
        "DataError",
        "MissingDependency",
        "NotebookFailed",
        "PromotionRefused",
        "ServiceError",
        "ServiceUnavailable",
        "Settings",
        "Version",
        "WorkbenchError",
        "classifier",
        "datasets",
        "deploy",
        "experiment",
        "features",
        "log_model",
        "models",
        "panel",
        "promote",
        "publish",
        "rollback",
        "run_notebook",
        "settings",
        "stream",
        "tail",
        "topics",
    ]


def test_every_public_name_resolves() -> None:
    for name in wb.__all__:
        assert getattr(wb, name) is not None


def test_every_workbench_error_shares_one_root() -> None:
    for name in (
        "ConfigError",
        "DataError",
        "MissingDependency",
        "ServiceError",
        "ServiceUnavailable",
    ):
        assert issubclass(getattr(wb, name), wb.WorkbenchError)
