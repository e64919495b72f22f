"""JupyterLab as a service of the local stack: ``wb up lab``.

JupyterLab runs from the lab environment on ``WORKBENCH_LAB_URL`` with ``notebooks/`` as
its root and token authentication on. The token is generated once and kept, readable
by its owner only, in the workbench home (``run/lab-token``); ``wb status`` prints the
URL with it. The notebooks' kernel, ``workbench``, is the lab environment's own, so
ipywidgets render without any build step.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from workbench.settings import Settings, generated_secret
from workbench.stack.services import Address, Service

#: The folder JupyterLab opens: the notebooks modelers run and Airflow schedules.
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def token(settings: Settings) -> str:
    """The token JupyterLab asks for: generated once, kept in ``run/lab-token`` (0600)."""
    return generated_secret(settings.run_dir / "lab-token")


def url(settings: Settings, notebook: str | None = None) -> str:
    """JupyterLab's address with the token, optionally opening ``notebook``."""
    target = f"/lab/tree/{notebook}" if notebook else "/lab"
    return f"{settings.lab_url}{target}?token={token(settings)}"


def _address(settings: Settings) -> Address:
    parts = urlsplit(settings.lab_url)
    return Address(parts.hostname or "127.0.0.1", parts.port or 8888, "WORKBENCH_LAB_URL")


def _command(settings: Settings) -> list[str]:
    address = _address(settings)
    return [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        f"--ServerApp.ip={address.host}",
        f"--ServerApp.port={address.port}",
        # Taking another port would leave `wb status` and the token URL pointing elsewhere.
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={NOTEBOOKS}",
        "--ServerApp.allow_remote_access=False",
        # Checkpoints go to the home, so the checkout's notebooks/ holds only notebooks.
        f"--FileCheckpoints.checkpoint_dir={settings.home / 'lab' / 'checkpoints'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # Extensions come from the lock, not from PyPI at run time.
        "--LabApp.extension_manager=readonly",
        # Containers (the lab image, CI) often run as root; Jupyter refuses that unasked.
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]


def _environment(settings: Settings) -> dict[str, str]:
    # The token goes through the environment, not the command line `ps` shows; Jupyter's
    # own configuration and state stay in the workbench home, away from the user's.
    lab_home = settings.home / "lab"
    return {
        "JUPYTER_TOKEN": token(settings),
        "JUPYTER_CONFIG_DIR": str(lab_home / "config"),
        "JUPYTER_RUNTIME_DIR": str(lab_home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(lab_home / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(lab_home / "settings"),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
    }


def _prepare(settings: Settings) -> None:
    for folder in ("config", "runtime", "workspaces", "settings", "checkpoints"):
        (settings.home / "lab" / folder).mkdir(parents=True, exist_ok=True)
    token(settings)


def healthy(settings: Settings) -> bool:
    """True when JupyterLab answers an authenticated API call; never raises."""
    try:
        response = httpx.get(
            f"{settings.lab_url}/api/status",
            headers={"authorization": f"token {token(settings)}"},
            timeout=1.0,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


LAB = Service(
    name="lab",
    description="JupyterLab on notebooks/ with the workbench kernel (token auth)",
    command=_command,
    addresses=lambda s: [_address(s)],
    healthy=healthy,
    prepare=_prepare,
    environment=_environment,
    group="lab",
)
