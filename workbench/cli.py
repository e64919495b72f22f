"""The ``wb`` command: the local stack and the everyday actions, from a shell."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from workbench.errors import WorkbenchError
from workbench.settings import apply_telemetry_policy
from workbench.settings import settings as read_settings

# Wide enough for paths when the output is a pipe or a log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _report_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    # A WorkbenchError is a message for the user, not a traceback.
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except WorkbenchError as exc:
            errors.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            sys.exit(1)

    return wrapper


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """workbench: train, register, serve and stream fraud and credit models."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_path=False, show_time=False)],
    )
    logging.getLogger("workbench").setLevel(logging.DEBUG if verbose else logging.INFO)
    apply_telemetry_policy()


@main.command()
@click.argument("services", nargs=-1)
@_report_errors
def up(services: tuple[str, ...]) -> None:
    """Start the local stack (or the named SERVICES or groups: airflow, lab, stream) and wait."""
    from workbench import stack

    statuses = stack.up(services or None)
    _print_statuses(statuses)


@main.command()
@click.argument("services", nargs=-1)
@_report_errors
def down(services: tuple[str, ...]) -> None:
    """Stop the local stack (or the named SERVICES)."""
    from workbench import stack

    stopped = stack.down(services or None)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_report_errors
def status(as_json: bool) -> None:
    """Show each service (state, pid, address, health, log) and the settings."""
    from workbench import stack

    current = read_settings()
    statuses = stack.status(current)
    if as_json:
        payload = {
            "services": {s.name: s.to_dict() for s in statuses},
            "settings": current.public(),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    _print_statuses(statuses)
    table = Table("setting", "value", title="settings (WORKBENCH_*)", title_justify="left")
    for name, value in current.public().items():
        table.add_row(f"WORKBENCH_{name.upper()}", value)
    console.print(table)


def _print_statuses(statuses: list[Any]) -> None:
    table = Table("service", "state", "healthy", "pid", "address", "log", "detail")
    colours = {"up": "green", "down": "red", "starting": "yellow"}
    for s in statuses:
        colour = colours.get(s.state, "cyan")
        table.add_row(
            s.name,
            f"[{colour}]{s.state}[/]",
            "yes" if s.healthy else "no",
            str(s.pid or ""),
            s.address,
            s.log,
            s.detail,
        )
    console.print(table)


@main.command()
@click.argument("service")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines to show.")
@_report_errors
def logs(service: str, follow: bool, lines: int) -> None:
    """Print the log of SERVICE."""
    from workbench import stack

    try:
        for line in stack.logs(service, lines=lines, follow=follow):
            click.echo(line)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--force", is_flag=True, help="Fetch again even if the jars are there.")
@_report_errors
def jars(force: bool) -> None:
    """Fetch the Kafka broker and Flink connector jars from Maven Central."""
    from workbench import jvm

    current = read_settings()
    jvm.check_java()
    target = jvm.fetch_jars(current, force=force)
    console.print(f"JVM artifacts in {target}")


@main.command()
@_report_errors
def topics() -> None:
    """List Kafka topics with partitions and message counts."""
    from workbench import events

    table = Table("topic", "partitions", "messages")
    for info in events.topic_info():
        table.add_row(info.name, str(info.partitions), str(info.messages))
    console.print(table)


@main.command()
@click.argument("name")
@click.option("--alias", default="champion", show_default=True, help="The alias to serve.")
@_report_errors
def deploy(name: str, alias: str) -> None:
    """Serve the registered model NAME@ALIAS locally and wait until it answers."""
    from workbench import serving

    handle = serving.deploy(name, alias)
    console.print(f"{name}@{alias} version {handle.version} serves at {handle.url}/score")


@main.command()
@click.argument("name")
@_report_errors
def rollback(name: str) -> None:
    """Move NAME's champion back to the previous version; its service follows."""
    from workbench import serving, tracking

    handle = serving.rollback(name)
    current = tracking.client().get_model_version_by_alias(name, "champion").version
    where = f", served at {handle.url}" if handle else ""
    console.print(f"{name}: champion is version {current} again{where}")


@main.group()
def stream() -> None:
    """The streaming job: Kafka transactions in, scores and dead letters out."""


@stream.command("start")
@click.argument("model")
@click.option("--alias", default="champion", show_default=True, help="The alias to score with.")
@click.option("--fresh", is_flag=True, help="Forget retained checkpoints; start from offsets.")
@_report_errors
def stream_start(model: str, alias: str, fresh: bool) -> None:
    """Deploy MODEL and run the stream job that scores through it."""
    from workbench import stream as streaming

    console.print(f"starting the stream job for {model}@{alias} (a Flink start takes ~30 s)")
    status = streaming.start(model, alias, fresh=fresh)
    console.print(f"stream job {status.job_id} runs; web UI at {status.flink_url}")


@stream.command("stop")
@_report_errors
def stream_stop() -> None:
    """Stop the stream job; its checkpoints stay and the next start resumes from them."""
    from workbench import stream as streaming

    console.print("stopped" if streaming.stop() else "the stream job was not running")


@stream.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_report_errors
def stream_status(as_json: bool) -> None:
    """Show whether the stream job runs, its checkpoints and its web UI."""
    from dataclasses import asdict

    from workbench import stream as streaming

    status = streaming.status()
    if as_json:
        print(json.dumps(asdict(status)))
        return
    table = Table(show_header=False)
    for key, value in asdict(status).items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)
    if status.state != "running":
        sys.exit(3)


@main.command("run")
@click.argument("notebook")
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter for the notebook's parameters cell (repeatable); VALUE is read as JSON "
    "when it parses, else as a string.",
)
@click.option("-o", "--output", type=click.Path(), help="Where to write the output notebook.")
@_report_errors
def run_notebook(notebook: str, parameters: tuple[str, ...], output: str | None) -> None:
    """Run NOTEBOOK (a path, or a name in notebooks/) with Papermill."""
    from workbench import notebooks

    values = dict(_parameter(p) for p in parameters)
    finished = notebooks.run_notebook(notebook, values, output)
    console.print(f"{finished.notebook.name} finished; output notebook: {finished.output}")


def _parameter(text: str) -> tuple[str, Any]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


@main.command()
@_report_errors
def demo() -> None:
    """Run the demo against the running stack and print where everything is."""
    from workbench import demo as demo_module

    demo_module.run(console)


if __name__ == "__main__":
    main()
