"""Which models are deployed locally, on which port, and their services in the stack.

Each deployed model is one service of the local stack, ``serve-<model>``, running the
BentoML service of :mod:`workbench.serving.service`. The list lives in the workbench
home, so ``wb up``, ``wb status`` and ``wb down`` know every deployment.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from workbench.settings import Settings
from workbench.stack.services import Address, Service, http_ok, port_free


@dataclass(frozen=True)
class Deployment:
    """A model served locally: which alias it follows and where it listens."""

    model: str
    alias: str
    port: int

    @property
    def service(self) -> str:
        return service_name(self.model)


def service_name(model: str) -> str:
    """The stack's name for the service that serves ``model``."""
    return "serve-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", model)


def _path(settings: Settings) -> Path:
    return settings.home / "serving" / "deployments.json"


def load(settings: Settings) -> dict[str, Deployment]:
    """Every deployment, by model name."""
    path = _path(settings)
    if not path.exists():
        return {}
    return {item["model"]: Deployment(**item) for item in json.loads(path.read_text())}


def save(settings: Settings, deployment: Deployment) -> None:
    """Add or replace one deployment."""
    current = load(settings)
    current[deployment.model] = deployment
    path = _path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(d) for d in current.values()], indent=2))


def host(settings: Settings) -> str:
    return urlsplit(settings.serving_url).hostname or "127.0.0.1"


def ensure(settings: Settings, model: str, alias: str) -> Deployment:
    """The deployment of ``model`` following ``alias``, given a port on first use.

    The first model gets the port of ``WORKBENCH_SERVING_URL``, the next ones the free
    ports after it (a port something holds now is passed over).
    """
    current = load(settings)
    if model in current and current[model].alias == alias:
        return current[model]
    if model in current:
        port = current[model].port
    else:
        base = urlsplit(settings.serving_url).port or 3000
        taken = {d.port for d in current.values()}
        address = host(settings)
        port = next(
            p
            for p in range(base, base + 1000)
            if p not in taken and (p == base or port_free(address, p))
        )
    deployment = Deployment(model, alias, port)
    save(settings, deployment)
    return deployment


def url(settings: Settings, deployment: Deployment) -> str:
    return f"http://{host(settings)}:{deployment.port}"


def service(deployment: Deployment) -> Service:
    """The stack service that serves one deployment."""

    def command(settings: Settings) -> list[str]:
        return [
            str(Path(sys.executable).parent / "bentoml"),
            "serve",
            "workbench.serving.service:Scoring",
            "--host",
            host(settings),
            "--port",
            str(deployment.port),
        ]

    return Service(
        name=deployment.service,
        group="serving",
        description=f"BentoML scoring service for {deployment.model}@{deployment.alias}",
        command=command,
        addresses=lambda s: [Address(host(s), deployment.port, "WORKBENCH_SERVING_URL")],
        healthy=lambda s: http_ok(f"{url(s, deployment)}/readyz"),
        environment=lambda s: {
            "WORKBENCH_SERVE_MODEL": deployment.model,
            "WORKBENCH_SERVE_ALIAS": deployment.alias,
        },
    )
