"""The core of the package imports in each of the three environments."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO

CORE = (
    "import workbench, workbench.settings, workbench.errors, workbench.events, "
    "workbench.datasets, workbench.features"
)


@pytest.mark.parametrize("extra", ["lab", "airflow", "flink"])
def test_the_core_imports_in_every_environment(extra: str) -> None:
    python = REPO / ".venvs" / extra / "bin" / "python"
    assert python.exists(), f"{python} is missing: run `make envs`"

    result = subprocess.run(
        [str(python), "-c", f"{CORE}; print(workbench.settings().kafka_bootstrap)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env={**os.environ, "WORKBENCH_KAFKA_BOOTSTRAP": f"{extra}.example:9092"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{extra}.example:9092"


@pytest.mark.parametrize(
    ("extra", "pandas_major"), [("lab", "3"), ("airflow", None), ("flink", "2")]
)
def test_each_environment_holds_its_own_stack(extra: str, pandas_major: str | None) -> None:
    python = REPO / ".venvs" / extra / "bin" / "python"
    probe = {
        "lab": "import mlflow, bentoml, jupyterlab, confluent_kafka",
        "airflow": "import airflow, airflow.providers.papermill",
        "flink": "import pyflink, confluent_kafka",
    }[extra]

    result = subprocess.run(
        [str(python), "-c", f"{probe}; import pandas; print(pandas.__version__)"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    if pandas_major is not None:
        assert result.stdout.strip().splitlines()[-1].startswith(pandas_major + ".")
