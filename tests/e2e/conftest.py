"""JupyterLab, started once through the same code as `wb up lab`, on a stack of its own.

The fixtures of the integration stack are imported, not shared: when both folders run in
one session the browser tests get their own home, ports and services.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.integration.conftest import services, stack_env
from tests.integration.panel_models import register
from workbench import stack
from workbench.settings import Settings, settings

__all__ = ["services", "stack_env"]

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def fraud_model(services: Settings) -> str:
    """card-fraud, the model deploy.ipynb opens: versions 1 (champion, deployed) and 2."""
    register("card-fraud", worse=False)
    return "card-fraud"


@pytest.fixture(scope="session")
def lab(services: Settings) -> Iterator[Settings]:
    """JupyterLab on a free port, with its settings; stopped at the end of the session."""
    saved = os.environ.get("WORKBENCH_LAB_URL")
    os.environ["WORKBENCH_LAB_URL"] = f"http://127.0.0.1:{free_port()}"
    current = settings()
    # A test must not write outputs into the checkout's notebook.
    autosave = current.home / "lab" / "settings" / "@jupyterlab" / "docmanager-extension"
    autosave.mkdir(parents=True, exist_ok=True)
    (autosave / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    stack.up(["lab"], current)
    yield current
    stack.down(["lab"], current)
    if saved is None:
        os.environ.pop("WORKBENCH_LAB_URL", None)
    else:
        os.environ["WORKBENCH_LAB_URL"] = saved
