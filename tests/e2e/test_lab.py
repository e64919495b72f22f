"""JupyterLab as `wb up lab` starts it: token authentication on, notebooks/ as its root."""

from __future__ import annotations

import stat

import httpx
import psutil

from tests.conftest import run_wb
from workbench import lab as jupyter
from workbench.settings import Settings


def test_without_the_token_jupyterlab_refuses_access(lab: Settings) -> None:
    base = lab.lab_url
    good = {"authorization": f"token {jupyter.token(lab)}"}

    anonymous = httpx.get(f"{base}/api/contents", timeout=10)
    wrong = httpx.get(f"{base}/api/contents", headers={"authorization": "token x"}, timeout=10)
    page = httpx.get(f"{base}/lab/tree/deploy.ipynb", timeout=10)
    allowed = httpx.get(f"{base}/api/contents", headers=good, timeout=10)

    assert anonymous.status_code == 403
    assert wrong.status_code == 403
    assert page.status_code == 302
    assert page.headers["location"].startswith("/login")
    assert allowed.status_code == 200


def test_the_root_is_notebooks_and_the_kernel_is_workbench(lab: Settings) -> None:
    good = {"authorization": f"token {jupyter.token(lab)}"}

    listed = httpx.get(f"{lab.lab_url}/api/contents", headers=good, timeout=10).json()
    kernels = httpx.get(f"{lab.lab_url}/api/kernelspecs", headers=good, timeout=10).json()

    names = {item["name"] for item in listed["content"]}
    assert {p.name for p in jupyter.NOTEBOOKS.glob("*.ipynb")} <= names
    assert "workbench" in kernels["kernelspecs"]


def test_the_token_is_generated_owner_only_and_off_the_command_line(lab: Settings) -> None:
    path = lab.run_dir / "lab-token"
    token = jupyter.token(lab)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    root = f"--ServerApp.root_dir={jupyter.NOTEBOOKS}"
    lab_processes = [
        p for p in psutil.process_iter(["cmdline"]) if root in (p.info["cmdline"] or [])
    ]
    assert lab_processes
    assert all(token not in " ".join(p.info["cmdline"] or []) for p in lab_processes)


def test_wb_status_prints_the_lab_url_with_the_token(lab: Settings) -> None:
    result = run_wb("status")

    assert result.returncode == 0, result.stderr
    assert f"JupyterLab: {lab.lab_url}/lab?token={jupyter.token(lab)}" in result.stdout
