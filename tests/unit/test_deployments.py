"""Which port a new deployment gets."""

from __future__ import annotations

import socket
from pathlib import Path

import workbench as wb
from tests.conftest import free_port
from workbench.serving import deployments


def test_a_new_deployment_passes_over_a_port_something_holds(tmp_path: Path) -> None:
    base = free_port()
    current = wb.settings(home=tmp_path, serving_url=f"http://127.0.0.1:{base}")
    with socket.socket() as squatter:
        try:
            squatter.bind(("127.0.0.1", base + 1))
            squatter.listen()
        except OSError:
            pass  # something else holds it already, which does as well

        first = deployments.ensure(current, "first", "champion")
        second = deployments.ensure(current, "second", "champion")

    assert first.port == base
    assert second.port > base + 1
    assert deployments.ensure(current, "second", "champion").port == second.port
