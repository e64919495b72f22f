"""Serving registered models: ``wb.deploy`` and ``wb.rollback``.

``wb.deploy("card-fraud")`` starts (or reuses) a local BentoML service that serves
``models:/card-fraud@champion`` and follows the alias as it moves; the handle it returns
scores DataFrames through that service.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from workbench.errors import DataError, ServiceUnavailable
from workbench.settings import Settings
from workbench.settings import settings as read_settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["Endpoint", "deploy", "endpoint", "rollback"]


@dataclass(frozen=True)
class Endpoint:
    """A deployed model's scoring service."""

    model: str
    alias: str
    url: str
    settings: Settings

    @property
    def version(self) -> str | None:
        """The version the service answers with right now."""
        return self.status().get("version")

    def status(self) -> dict[str, Any]:
        """What the service says of itself: version, readiness, inputs, recent latency."""
        try:
            return dict(httpx.get(f"{self.url}/model", timeout=5).json())
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"the scoring service for {self.model} at {self.url} did not answer ({exc}); "
                f"`wb up {_service(self.model)}` starts it, `wb logs {_service(self.model)}` "
                "shows why it stopped"
            ) from None

    def score(self, frame: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
        """Scores (and reasons) for each row of ``frame``, through the service.

        Returns a DataFrame on ``frame``'s index with ``score``, ``version`` and, for
        models that explain themselves, ``reasons``.
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []
        size = self.settings.serving_max_records
        for start in range(0, len(frame), size):
            rows.extend(self._post(frame.iloc[start : start + size], reasons))
        result = pd.DataFrame(rows, index=frame.index)
        return result.drop(columns=["model"], errors="ignore")

    def _post(self, part: pd.DataFrame, reasons: bool) -> list[dict[str, Any]]:
        body = part.to_json(orient="records", date_format="iso")
        try:
            response = httpx.post(
                f"{self.url}/score",
                content=body,
                params={"reasons": str(reasons).lower()},
                headers={"content-type": "application/json"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"the scoring service for {self.model} at {self.url} did not answer ({exc})"
            ) from None
        if response.status_code in (400, 413, 422):
            raise DataError(f"the service refused the rows: {response.json()['error']}")
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"the scoring service for {self.model} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return list(response.json()["results"])

    def reload(self) -> str | None:
        """Ask the service to follow its alias now (an admin call).

        Returns the version it serves, or None when loading outlasts the request (the
        service finishes it anyway; :meth:`wait_for` waits for it).
        """
        response = httpx.post(
            f"{self.url}/admin/reload",
            headers={"authorization": f"Bearer {self.settings.admin_secret()}"},
            timeout=120,
        )
        if response.status_code == 504:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"the scoring service refused to reload ({response.status_code}): "
                f"{response.text[:300]}"
            )
        return str(response.json()["version"])

    def wait_for(self, version: str, timeout: float = 60.0) -> None:
        """Wait until the service answers with ``version``."""
        deadline = time.monotonic() + timeout
        while self.version != version:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"{self.model} still serves version {self.version} after {timeout:g} s, "
                    f"not {version}; see `wb logs {_service(self.model)}`"
                )
            time.sleep(0.2)

    def _repr_html_(self) -> str:
        try:
            state = self.status()
        except ServiceUnavailable as exc:
            return f"<b>{html.escape(self.model)}</b>: {html.escape(str(exc))}"
        latency = state.get("latency", {})
        recent = (
            f", p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms over "
            f"{latency['requests']} requests"
            if latency.get("requests")
            else ""
        )
        return (
            f"<b>{html.escape(self.model)}</b>@{html.escape(self.alias)} serves version "
            f"<b>{state.get('version')}</b> at <code>{html.escape(self.url)}</code>{recent}"
        )


def _service(model: str) -> str:
    from workbench.serving.deployments import service_name

    return service_name(model)


def endpoint(name: str, settings: Settings | None = None) -> Endpoint:
    """The handle of an already deployed model."""
    from workbench.serving import deployments

    settings = settings or read_settings()
    found = deployments.load(settings).get(name)
    if found is None:
        raise DataError(f"{name!r} is not deployed; wb.deploy({name!r}) deploys it")
    return Endpoint(name, found.alias, deployments.url(settings, found), settings)


def deploy(name: str, alias: str = "champion", settings: Settings | None = None) -> Endpoint:
    """Serve ``models:/<name>@<alias>`` locally and return the service's handle.

    Starts the model's BentoML service if it is not running, or has a running one load
    the alias's version now; waits until that version answers. The service keeps
    following the alias afterwards (``wb.promote``, ``wb.rollback``, the MLflow UI).

    >>> service = wb.deploy("card-fraud")
    >>> service.score(X.head())
    """
    from workbench import stack, tracking
    from workbench.serving import deployments

    settings = settings or read_settings()

    # Which version the alias names now.
    registry = tracking.client(settings)
    holder = tracking._holder(registry, name, alias)
    if holder is None:
        raise DataError(
            f"no version of {name!r} has the alias {alias!r}; "
            f"give one with wb.promote({name!r}, version, alias={alias!r})"
        )

    # The service: started if needed, restarted if it followed another alias.
    previous = deployments.load(settings).get(name)
    deployment = deployments.ensure(settings, name, alias)
    if previous is not None and previous.alias != alias:
        stack.down([deployment.service], settings)
    stack.up([deployment.service], settings)

    # Have it serve that version now rather than at its next poll.
    handle = Endpoint(name, alias, deployments.url(settings, deployment), settings)
    if handle.version != holder.version:
        handle.reload()
        handle.wait_for(holder.version)
    log.info("%s@%s: version %s serves at %s", name, alias, holder.version, handle.url)
    return handle


def rollback(name: str, settings: Settings | None = None) -> Endpoint | None:
    """Move ``champion`` back to the version that held it before; a deployed service
    follows at once. Returns the service's handle when the model is deployed."""
    from workbench import tracking
    from workbench.serving import deployments

    settings = settings or read_settings()
    version = tracking.rollback(name)
    found = deployments.load(settings).get(name)
    if found is None or found.alias != "champion":
        return None
    handle = endpoint(name, settings)
    handle.reload()
    handle.wait_for(str(version.version))
    return handle
