"""A deploy panel for JupyterLab: ``wb.panel("card-fraud")``.

One widget shows a model's registered versions and the version its service serves, and
lets the modeler deploy a version through the promotion gate, roll back, and send test
events whose scores come back in a live chart. Every failure is shown in the panel in
plain words; nothing is swallowed.
"""

from __future__ import annotations

import html
import io
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.errors import DataError, MissingDependency, ServiceUnavailable, WorkbenchError
from workbench.settings import Settings
from workbench.settings import settings as read_settings
from workbench.tracking import PromotionRefused

try:
    import ipywidgets as widgets
except ImportError:  # pragma: no cover - the lab environment has it
    raise MissingDependency(
        "ipywidgets is not installed in this environment; use the lab environment "
        "(make envs, then the `workbench` kernel)"
    ) from None

if TYPE_CHECKING:
    import pandas as pd

    from workbench.serving import Endpoint

log = logging.getLogger(__name__)

__all__ = ["Panel", "panel"]

#: Events are published in this many steps, so the progress bar moves.
_STEPS = 10
#: How many of the latest scores the chart shows, and how often it reads them.
_CHART_SCORES = 300
_CHART_SECONDS = 2.0

_OK, _ERROR, _INFO = "#1a7f37", "#b42318", "#444"


def panel(name: str, settings: Settings | None = None) -> Panel:
    """The deploy panel of model ``name``: versions, deploy, rollback, test events.

    >>> wb.panel("card-fraud")
    """
    return Panel(name, settings)


class Panel(widgets.VBox):
    """The widget :func:`panel` returns; its buttons can also be clicked from code."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or read_settings()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._experiments: dict[str, str] = {}
        self._build()
        super().__init__(
            [
                widgets.HTML(f"<h3>{html.escape(name)}</h3>"),
                self.serving,
                self.table,
                widgets.HBox([self.version, self.deploy_button, self.rollback_button]),
                self.confirmation,
                self.refresh_button,
                self.message,
                widgets.HTML("<b>Test events</b>"),
                widgets.HBox([self.count, self.direct, self.send_button, self.watch]),
                self.progress,
                self.chart_note,
                self.chart,
            ]
        )
        self.refresh()

    # --- the widgets -----------------------------------------------------------------

    def _build(self) -> None:
        self.table = widgets.HTML()
        self.serving = widgets.HTML()
        self.message = widgets.HTML()
        self.version = widgets.Dropdown(description="Version", options=[])
        self.deploy_button = widgets.Button(description="Deploy", button_style="primary")
        self.rollback_button = widgets.Button(description="Rollback")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")

        # Deploying asks first; forcing past the gate needs a reason.
        self.confirm_text = widgets.HTML()
        self.force = widgets.Checkbox(description="Force past the gate", indent=False)
        self.reason = widgets.Text(placeholder="reason, recorded with the promotion")
        self.confirm_button = widgets.Button(description="Confirm", button_style="warning")
        self.cancel_button = widgets.Button(description="Cancel")
        self.confirmation = widgets.VBox(
            [
                self.confirm_text,
                widgets.HBox([self.force, self.reason]),
                widgets.HBox([self.confirm_button, self.cancel_button]),
            ],
            layout=widgets.Layout(display="none"),
        )

        self.count = widgets.BoundedIntText(
            value=200, min=1, max=100_000, description="Events", layout={"width": "180px"}
        )
        self.direct = widgets.Checkbox(
            description="Score directly through the service",
            indent=False,
            layout={"width": "auto", "margin": "0 12px"},
        )
        self.send_button = widgets.Button(description="Send test events", icon="paper-plane")
        self.watch = widgets.ToggleButton(description="Watch scores", value=False)
        self.progress = widgets.IntProgress(min=0, max=1, value=0, description="Sent")
        self.chart_note = widgets.HTML()
        self.chart = widgets.Image(format="png", layout={"width": "640px"})

        self.refresh_button.on_click(self._action("Refresh", self.refresh))
        self.deploy_button.on_click(self._action("Deploy", self._ask))
        self.cancel_button.on_click(self._action("Cancel", self._hide_confirmation))
        self.confirm_button.on_click(self._action("Deploy", self._deploy))
        self.rollback_button.on_click(self._action("Rollback", self._rollback))
        self.send_button.on_click(self._action("Send test events", self._send))
        self.watch.observe(self._toggle_watch, names="value")

    def _action(self, label: str, step: Callable[[], None]) -> Callable[[Any], None]:
        # A click's failure lands in the message area in words, never in a hidden log.
        def run(_button: Any = None) -> None:
            buttons = (self.deploy_button, self.confirm_button, self.rollback_button)
            for button in buttons:
                button.disabled = True
            try:
                step()
            except PromotionRefused as exc:
                self._say(f"The promotion gate refused: {exc}", _ERROR)
            except WorkbenchError as exc:
                self._say(f"{label} failed: {exc}", _ERROR)
            except Exception as exc:
                log.exception("%s failed in the panel of %s", label, self.name)
                self._say(f"{label} failed unexpectedly: {type(exc).__name__}: {exc}", _ERROR)
            finally:
                for button in buttons:
                    button.disabled = False

        return run

    def _say(self, text: str, colour: str = _INFO) -> None:
        self.message.value = f'<div style="color:{colour}">{html.escape(text)}</div>'

    # --- versions and the service --------------------------------------------------

    def refresh(self) -> None:
        """Read the versions from the registry and the service's state again."""
        from workbench import tracking

        versions = tracking.models(self.name)
        self.table.value = _table(versions, self._run_links(versions))
        chosen = self.version.value
        self.version.options = [
            (f"{row.version} ({row.aliases})" if row.aliases else str(row.version), row.version)
            for row in versions.itertuples()
        ]
        numbers = list(versions["version"])
        self.version.value = chosen if chosen in numbers else numbers[0]
        self._show_serving()

    def _run_links(self, versions: pd.DataFrame) -> dict[str, str]:
        from workbench import tracking

        # A run's experiment never changes: asked once per run, not on every refresh.
        unknown = [r for r in versions["run_id"] if r and r not in self._experiments]
        if unknown:
            registry = tracking.client(self.settings)
            for run_id in unknown:
                self._experiments[run_id] = registry.get_run(run_id).info.experiment_id
        base = self.settings.mlflow_tracking_uri
        return {
            run_id: f"{base}/#/experiments/{self._experiments[run_id]}/runs/{run_id}"
            for run_id in versions["run_id"]
            if run_id
        }

    def _endpoint(self) -> Endpoint | None:
        from workbench import serving

        try:
            return serving.endpoint(self.name, self.settings)
        except DataError:
            return None

    def _show_serving(self) -> None:
        handle = self._endpoint()
        if handle is None:
            self.serving.value = _line(
                f"{self.name} is not deployed yet: pick a version and click Deploy.", _INFO
            )
            return
        try:
            state = handle.status()
        except ServiceUnavailable as exc:
            self.serving.value = _line(f"Service down: {exc}", _ERROR)
            return
        latency = state.get("latency") or {}
        recent = (
            f"; recent latency p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms "
            f"over {latency['requests']} requests"
            if latency.get("requests")
            else "; no requests yet"
        )
        self.serving.value = _line(
            f"Serving version {state.get('version')} of {self.name}@{handle.alias} "
            f"at {handle.url}{recent}",
            _OK,
        )

    # --- deploy and rollback -----------------------------------------------------------

    def _ask(self) -> None:
        self.force.value = False
        self.reason.value = ""
        self.confirm_text.value = (
            f"Promote version <b>{self.version.value}</b> of {html.escape(self.name)} to "
            "champion through the gate and have the service serve it?"
        )
        self.confirmation.layout.display = "flex"
        self._say("")

    def _hide_confirmation(self) -> None:
        self.confirmation.layout.display = "none"

    def _deploy(self) -> None:
        from workbench import serving, tracking

        version = self.version.value
        if self.force.value and not self.reason.value.strip():
            raise DataError("forcing past the gate needs a reason: type one, then Confirm")
        self._say(f"Deploying version {version}…")
        self._hide_confirmation()
        try:
            tracking.promote(
                self.name,
                version,
                force=self.force.value,
                reason=self.reason.value.strip() or None,
            )
        except Exception:
            self.refresh()  # the table shows the champion as it stands
            raise
        handle = serving.deploy(self.name, settings=self.settings)
        self.refresh()
        self._say(
            f"Version {version} is champion and the service serves version {handle.version}.", _OK
        )

    def _rollback(self) -> None:
        from workbench import serving, tracking

        handle = serving.rollback(self.name, self.settings)
        champion = tracking.client(self.settings).get_model_version_by_alias(
            self.name, tracking.CHAMPION
        )
        self.refresh()
        if handle is None:
            self._say(
                f"Champion rolled back to version {champion.version}; "
                "the model is not deployed, so no service had to follow.",
                _OK,
            )
        else:
            self._say(
                f"Champion rolled back to version {champion.version}; the service "
                f"serves version {handle.version}.",
                _OK,
            )

    # --- test events -----------------------------------------------------------------

    def _send(self) -> None:
        from workbench import datasets, events, stream

        count = int(self.count.value)
        batch = datasets.card_transactions(count, seed=secrets.randbelow(2**31))
        # Cards and ids of this send's own: the stream job keeps each card's history,
        # and a generated payment older than the card's latest would be a dead letter.
        send = f"panel{secrets.token_hex(3)}-"
        batch["card_id"] = send + batch["card_id"]
        batch["event_id"] = send + batch["event_id"]
        self.progress.max, self.progress.value = count, 0
        self.progress.bar_style = ""

        # Published in steps, so the bar follows what Kafka has acknowledged.
        step = max(1, -(-count // _STEPS))
        for start in range(0, count, step):
            part = batch.iloc[start : start + step]
            self.progress.value += events.publish(
                part, events.TRANSACTIONS, key="card_id", progress=False, settings=self.settings
            )
        self.progress.bar_style = "success"
        sent = f"Published {count} test events to {events.TRANSACTIONS!r}."

        if self.direct.value:
            self._score_directly(batch)
            self._say(f"{sent} Their scores came straight from the service (below).", _OK)
            return
        job = stream.status(self.settings)
        if job.state == "running" and job.model == self.name:
            self._say(
                f"{sent} The stream job scores them into {events.SCORES!r}; "
                "the chart follows that topic.",
                _OK,
            )
            self.watch.value = True
            return
        self._say(
            f"{sent} No stream job scores {self.name} ({job.state}), so nothing will appear "
            f"in {events.SCORES!r}: start one with wb.stream.start({self.name!r}), or tick "
            "'Score directly through the service' and send again.",
            _ERROR,
        )

    def _score_directly(self, batch: pd.DataFrame) -> None:
        from workbench import features

        handle = self._endpoint()
        if handle is None:
            raise DataError(f"{self.name} is not deployed; click Deploy first, then send again")
        self.watch.value = False
        scored = handle.score(features.CARD_FRAUD.transform(batch), reasons=False)
        self.chart.value = _plot(scored["score"].tolist(), scored["version"].tolist())
        self.chart_note.value = _line(
            f"{len(scored)} scores returned by the service at {handle.url} directly: not "
            f"through Kafka or the stream job, and not written to 'scores'.",
            _INFO,
        )
        self._show_serving()

    def _toggle_watch(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.watch_scores()
        else:
            self.stop_watching()

    def watch_scores(self) -> None:
        """Follow the latest scores of this model in ``scores`` in the background."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._follow, name=f"wb-panel-{self.name}", daemon=True
        )
        self._watcher.start()

    def stop_watching(self) -> None:
        """Stop the background reading of ``scores``."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=15)
        self._watcher = None
        if self.watch.value:
            self.watch.value = False

    def _follow(self) -> None:
        from workbench import events

        while not self._stop.is_set():
            try:
                self._draw_latest(events)
            except WorkbenchError as exc:
                self.chart_note.value = _line(f"Reading {events.SCORES!r} failed: {exc}", _ERROR)
            except Exception as exc:
                log.exception("reading scores for the panel of %s failed", self.name)
                self.chart_note.value = _line(
                    f"Reading {events.SCORES!r} failed unexpectedly: {type(exc).__name__}: {exc}",
                    _ERROR,
                )
            self._stop.wait(_CHART_SECONDS)

    def _draw_latest(self, events: Any) -> None:
        latest = events.tail(events.SCORES, n=_CHART_SCORES, timeout=3, settings=self.settings)
        if "model" in latest.columns:
            latest = latest[latest["model"] == self.name]
        now = time.strftime("%H:%M:%S")
        if latest.empty:
            self.chart_note.value = _line(
                f"No scores of {self.name} in {events.SCORES!r} yet (checked {now}).", _INFO
            )
            return
        latest = latest.sort_values("timestamp", kind="stable").tail(_CHART_SCORES)
        self.chart.value = _plot(latest["score"].tolist(), latest["version"].astype(str).tolist())
        self.chart_note.value = _line(
            f"The latest {len(latest)} scores of {self.name} in {events.SCORES!r}, written by "
            f"the stream job (updated {now}).",
            _INFO,
        )

    def close(self) -> None:
        """Stop watching and close the widget."""
        self.stop_watching()
        super().close()


def _line(text: str, colour: str) -> str:
    return f'<div style="color:{colour}">{html.escape(text)}</div>'


def _table(versions: pd.DataFrame, links: dict[str, str]) -> str:
    head = "".join(
        f"<th style='padding:2px 8px'>{h}</th>"
        for h in ("version", "aliases", "AUC", "Gini", "KS", "created", "run")
    )
    rows = []
    for row in versions.itertuples():
        link = links.get(row.run_id)
        run = (
            f"<a href='{html.escape(link)}' target='_blank'>{html.escape(row.run_id[:8])}</a>"
            if link
            else ""
        )
        cells = (
            str(row.version),
            html.escape(row.aliases),
            *(f"{value:.4f}" for value in (row.auc, row.gini, row.ks)),
            f"{row.created:%Y-%m-%d %H:%M}",
            run,
        )
        rows.append("<tr>" + "".join(f"<td style='padding:2px 8px'>{c}</td>" for c in cells))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _plot(scores: list[float], versions: list[str]) -> bytes:
    # A Figure of its own, not pyplot: drawn from the watcher thread, never displayed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.6), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for version in sorted(set(versions)):
        index = [i for i, v in enumerate(versions) if v == version]
        axes.scatter(index, [scores[i] for i in index], s=8, label=f"version {version}")
    axes.set_ylim(0, 1)
    axes.set_xlabel("event (oldest to newest)")
    axes.set_ylabel("score")
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
