"""Running notebooks with parameters through Papermill, as Airflow does in production."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import DataError, WorkbenchError
from workbench.tracking import NOTEBOOK_ENV, PARAMETERS_ENV

log = logging.getLogger(__name__)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: The kernelspec `make envs` registers for the lab environment.
KERNEL = "workbench"
_SECRET = re.compile(r"password|passwd|secret|token|api_?key|credential", re.IGNORECASE)


class NotebookFailed(WorkbenchError):
    """A cell of a notebook raised; the output notebook keeps the failing cell."""

    def __init__(self, message: str, *, cell: int | None, output: Path) -> None:
        super().__init__(message)
        self.cell = cell
        self.output = output


@dataclass(frozen=True)
class NotebookRun:
    """A finished notebook run: where its output notebook is and what it was given."""

    notebook: Path
    output: Path
    parameters: dict[str, Any]


def find_notebook(notebook: str | Path) -> Path:
    """A notebook by path, or by name in ``notebooks/`` (``train_credit`` works)."""
    path = Path(notebook)
    candidates = [path, NOTEBOOKS / path, NOTEBOOKS / f"{path}.ipynb"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    known = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    raise DataError(f"no notebook {str(notebook)!r}; the notebooks are {known}")


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    *,
    kernel: str = KERNEL,
    progress: bool = True,
) -> NotebookRun:
    """Execute a notebook top to bottom with Papermill and return where its output is.

    ``parameters`` replace the values in the cell tagged ``parameters``; they are stored
    in the output notebook, so secrets are refused (pass those through the environment).
    A cell that raises stops the run with :class:`NotebookFailed`, naming the cell and the
    error; the output notebook is kept with the failing cell marked.
    """
    import papermill

    source = find_notebook(notebook)
    values = dict(parameters or {})
    secret = [name for name in values if _SECRET.search(name)]
    if secret:
        raise DataError(
            f"parameters {secret} look like secrets and would be written into the output "
            "notebook; pass them through environment variables instead"
        )
    target = Path(output) if output else _default_output(source)
    target.parent.mkdir(parents=True, exist_ok=True)

    log.info("running %s -> %s with %s", source.name, target, values)
    with _kernel_environment(source, values):
        try:
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=values,
                kernel_name=kernel,
                cwd=str(source.parent),
                progress_bar=progress,
                log_output=False,
            )
        except papermill.PapermillExecutionError as exc:
            raise NotebookFailed(
                f"{source.name} failed in cell {exc.exec_count} (index {exc.cell_index}): "
                f"{exc.ename}: {exc.evalue}. The output notebook {target} keeps the failing "
                "cell.",
                cell=exc.exec_count,
                output=target,
            ) from None
    return NotebookRun(source, target, values)


def _default_output(source: Path) -> Path:
    from workbench.settings import settings

    return settings().home / "runs" / f"{source.stem}.ipynb"


@contextmanager
def _kernel_environment(source: Path, parameters: Mapping[str, Any]) -> Iterator[None]:
    # The kernel inherits these, so runs it logs are tagged with notebook and parameters.
    values = {
        NOTEBOOK_ENV: str(source),
        PARAMETERS_ENV: json.dumps(dict(parameters), default=str),
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
