"""Batch scoring: a day's input, scored like the online service, written idempotently.

``notebooks/batch_score.ipynb`` (run daily by the ``batch_score`` DAG) reads the day's
credit applications from :func:`input_path`, turns them into features with the model's
feature definition, scores them with :func:`score_frame` (the serving scorer's tables,
so scores and reasons are the service's to the bit) and writes them with
:func:`write_scores`: one transaction deletes the date's rows and inserts the new ones,
so a rerun replaces that date and never duplicates it.

Only core packages are imported at module level; numpy, SQLAlchemy and the scorer are
imported where used (in the lab kernel).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import DataError
from workbench.settings import Settings
from workbench.settings import settings as read_settings

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine, Table

    from workbench.serving.scorer import Scorer

log = logging.getLogger(__name__)

TABLE = "batch_scores"
REASONS = 3
#: The asset a landed input file updates; ``batch_score`` runs when it changes.
INPUT_ASSET = "file://workbench/batch/input/credit"
_CHUNK = 100_000


def input_dir(settings: Settings | None = None) -> Path:
    """Where a day's input files land: ``<home>/batch/input/credit``."""
    return (settings or read_settings()).home / "batch" / "input" / "credit"


def input_path(run_date: str | date, settings: Settings | None = None) -> Path:
    """The input file of ``run_date``: ``<home>/batch/input/credit/<date>.parquet``."""
    return input_dir(settings) / f"{_iso(run_date)}.parquet"


def database_url(settings: Settings | None = None) -> str:
    """The results database: ``WORKBENCH_BATCH_DATABASE_URL``, else SQLite in the home."""
    settings = settings or read_settings()
    if settings.batch_database_url is not None:
        return settings.batch_database_url.get_secret_value()
    return f"sqlite:///{settings.home / 'batch' / 'scores.db'}"


def database_label(settings: Settings | None = None) -> str:
    """The results database's URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(database_url(settings)).render_as_string(hide_password=True)


def _iso(run_date: str | date) -> str:
    try:
        return date.fromisoformat(str(run_date)).isoformat()
    except ValueError:
        raise DataError(f"expected a run date as YYYY-MM-DD, got {run_date!r}") from None


def land_input(
    run_date: str | date, rows: int, seed: int = 0, settings: Settings | None = None
) -> Path:
    """Write ``rows`` simulated credit applications as ``run_date``'s input file."""
    from workbench import datasets

    path = input_path(run_date, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = datasets.credit_applications(rows, seed=seed, start=_iso(run_date))
    partial = path.with_suffix(".parquet.partial")
    frame.drop(columns=["default"]).to_parquet(partial, index=False)
    partial.replace(path)  # readers never see half a file
    log.info("landed %d applications for %s in %s", rows, _iso(run_date), path)
    return path


def read_input(path: str | Path) -> pd.DataFrame:
    """A day's input file; a missing one is an error that names where it was expected."""
    import pandas as pd

    source = Path(path)
    if not source.exists():
        raise DataError(
            f"no input at {source}; land the day's applications there first "
            "(wb.batch.land_input(run_date, rows) simulates them)"
        )
    return pd.read_parquet(source)


# --- scoring -------------------------------------------------------------------------


def score_frame(scorer: Scorer, X: pd.DataFrame, *, reasons: bool = True) -> pd.DataFrame:
    """Scores and the top reasons for every row of ``X``, as the service gives them.

    For a :func:`workbench.classifier` model the scorer's own fast path runs on column
    arrays in chunks on every core, with the same encodings, leaf tables and reason
    ranking as ``POST /score``. Returns ``score`` and ``reason_1`` .. ``reason_3`` (the
    reason texts) on ``X``'s index.
    """
    import numpy as np
    import pandas as pd

    fast = scorer._fast
    if fast is None:
        return _score_records(scorer, X, reasons=reasons)
    missing = [c for c in fast.columns if c not in X.columns]
    if missing:
        raise DataError(f"X lacks the model's inputs {missing}; transform with its definition")

    def score(part: pd.DataFrame) -> tuple[Any, Any]:
        matrix = np.empty((len(part), len(fast.columns)), dtype=np.float64)
        for j, column in enumerate(fast.columns):
            codes = fast.codes.get(column)
            values = part[column]
            if codes is None:
                matrix[:, j] = values.to_numpy(dtype=np.float64)
            else:
                # Unseen categories get -1, as the service's encoder does.
                matrix[:, j] = values.map(codes).fillna(-1.0).to_numpy(dtype=np.float64)
        probabilities, contributions = fast.predict(matrix, reasons=reasons)
        if contributions is None:
            return probabilities, None
        return probabilities, np.argsort(-contributions, axis=1, kind="stable")[:, :REASONS]

    parts = [X.iloc[start : start + _CHUNK] for start in range(0, len(X), _CHUNK)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        scored = list(pool.map(score, parts))
    result = pd.DataFrame(
        {"score": np.concatenate([p for p, _ in scored]) if scored else []}, index=X.index
    )
    if reasons and scored:
        texts = np.asarray(scorer._texts, dtype=object)
        top = np.concatenate([t for _, t in scored])
        for rank in range(REASONS):
            result[f"reason_{rank + 1}"] = texts[top[:, rank]]
    return result


def _score_records(scorer: Scorer, X: pd.DataFrame, *, reasons: bool) -> pd.DataFrame:
    # Models that are not encoder + LightGBM: the service scores them record by record.
    import pandas as pd

    scored = scorer.score(X.to_dict(orient="records"), reasons=reasons)
    result = pd.DataFrame({"score": [r["score"] for r in scored]}, index=X.index)
    if reasons and scorer.explains:
        for rank in range(REASONS):
            result[f"reason_{rank + 1}"] = [r["reasons"][rank]["text"] for r in scored]
    return result


# --- results -------------------------------------------------------------------------


def _table() -> Table:
    from sqlalchemy import Column, DateTime, Float, MetaData, String, Table

    return Table(
        TABLE,
        MetaData(),
        Column("run_date", String(10), primary_key=True),
        Column("application_id", String(64), primary_key=True),
        Column("score", Float, nullable=False),
        Column("model", String(200), nullable=False),
        Column("version", String(20), nullable=False),
        *(Column(f"reason_{rank + 1}", String(200)) for rank in range(REASONS)),
        Column("scored_at", DateTime, nullable=False),
    )


def engine(url: str | None = None) -> Engine:
    """A SQLAlchemy engine for the results database (its folder made for SQLite)."""
    from sqlalchemy import create_engine

    url = url or database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


def write_scores(
    scores: pd.DataFrame,
    run_date: str | date,
    *,
    model: str,
    version: str,
    url: str | None = None,
) -> int:
    """Replace ``run_date``'s rows of the results table with ``scores``, in one transaction.

    ``scores`` needs ``application_id`` and ``score`` (and the reason columns of
    :func:`score_frame`). Returns the number of rows the date holds afterwards.
    """
    from sqlalchemy import delete, func, select

    day = _iso(run_date)
    needed = {"application_id", "score"}
    if not needed <= set(scores.columns):
        raise DataError(f"scores need the columns {sorted(needed)}, got {list(scores.columns)}")
    table = _table()
    started = time.monotonic()
    target = engine(url)
    table.metadata.create_all(target)
    statement, rows = _insert(table, target, scores, day, model, version)
    with target.begin() as connection:
        connection.execute(delete(table).where(table.c.run_date == day))
        for chunk in rows:
            connection.exec_driver_sql(statement, chunk)
        count = int(
            connection.execute(
                select(func.count()).select_from(table).where(table.c.run_date == day)
            ).scalar_one()
        )
    target.dispose()
    log.info("wrote %d scores for %s in %.1f s", count, day, time.monotonic() - started)
    return count


def _insert(
    table: Table, target: Engine, scores: pd.DataFrame, day: str, model: str, version: str
) -> tuple[str, Iterator[list[Any]]]:
    """The driver's INSERT and its rows in chunks, built from whole columns at once.

    Rows go to the driver's ``executemany`` as they are (tuples for positional
    parameters, dicts for named ones), each column through its type's own conversion
    for this database; per-row work in SQLAlchemy would cost more than the scoring.
    """
    import pandas as pd
    from sqlalchemy import insert

    dialect = target.dialect
    compiled = insert(table).compile(dialect=dialect)
    count = len(scores)
    stamp = pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime()

    def column(name: str) -> list[Any]:
        if name not in scores.columns:
            return [None] * count
        series = scores[name]
        if name == "score":
            return series.astype(float).tolist()
        series = series.astype(object)
        return series.where(series.notna(), None).astype(object).tolist()

    constants = {"run_date": day, "model": model, "version": str(version), "scored_at": stamp}
    values: dict[str, list[Any]] = {}
    for item in table.columns:
        convert = item.type.bind_processor(dialect)
        if item.name in constants:
            value = constants[item.name]
            values[item.name] = [convert(value) if convert else value] * count
        else:
            found = column(item.name)
            values[item.name] = [convert(v) for v in found] if convert else found
    names = list(compiled.positiontup or compiled.params)

    def chunk(start: int) -> list[Any]:
        rows = zip(*(values[name][start : start + _CHUNK] for name in names), strict=True)
        if compiled.positional:
            return list(rows)
        return [dict(zip(names, row, strict=True)) for row in rows]

    return compiled.string, (chunk(start) for start in range(0, count, _CHUNK))


def read_scores(run_date: str | date, url: str | None = None) -> pd.DataFrame:
    """The results table's rows for ``run_date``."""
    import pandas as pd
    from sqlalchemy import inspect, select

    table = _table()
    source = engine(url)
    try:
        if not inspect(source).has_table(TABLE):
            return pd.DataFrame(columns=[c.name for c in table.columns])
        query = select(table).where(table.c.run_date == _iso(run_date))
        with source.connect() as connection:
            return pd.read_sql(query, connection)
    finally:
        source.dispose()
