"""Batch scoring two ways: the batch_score DAG through Airflow and the plain script a user
would write.

Starts MLflow and Airflow in a private home on free ports (a stack already running on
this machine is left alone), trains and promotes a credit model with
``notebooks/train_credit.ipynb``, lands one input file of ``--rows`` applications, then:

- workbench: triggers ``batch_score`` through the REST API and waits: Papermill runs
  ``notebooks/batch_score.ipynb`` with the lab kernel, which scores with the serving
  scorer (scores and the top three reasons) and replaces the day's rows in SQLite;
- plain script: a fresh lab-environment Python that loads the same model from MLflow,
  reads the same file, makes the same features, calls ``predict_proba`` (no reasons)
  and appends the rows to a SQLite table with ``DataFrame.to_sql``.

Reported: rows/s of the work itself (load the model, read, featurize, score, write) for
both and their ratio; the same end to end; and the fixed overhead of the DAG (trigger
to task running, kernel start, the rest until the work starts, recording the output
notebook in MLflow afterwards).

    .venvs/lab/bin/python benchmarks/batch.py [--rows 1000000]

Goals: at least 0.8x the plain script's rows/s; under 15 s of fixed overhead on 2 cores.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _machine
from _stack import private_stack

if TYPE_CHECKING:
    from workbench.settings import Settings

log = logging.getLogger("benchmarks.batch")

MODEL = "bench-credit"
DAY = "2026-03-01"

PLAIN = """
import sys, time, json
import mlflow, pandas as pd
import workbench as wb

started = time.perf_counter()

mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.sklearn.load_model(f"models:/{sys.argv[2]}@champion")
frame = pd.read_parquet(sys.argv[3])
X = wb.features.CREDIT.transform(frame)
scores = pd.DataFrame({
    "run_date": sys.argv[5],
    "application_id": frame["application_id"],
    "score": model.predict_proba(X)[:, 1],
})
scores.to_sql("plain_scores", f"sqlite:///{sys.argv[4]}", if_exists="append", index=False,
              chunksize=100_000)
print(json.dumps({"work_s": time.perf_counter() - started, "rows": len(scores),
                  "sample": scores["score"].head(1000).tolist()}))
"""


def train(home: Path) -> None:
    import workbench as wb

    wb.run_notebook(
        "train_credit",
        {"model_name": MODEL, "experiment_name": MODEL},
        output=home / "train_credit.ipynb",
        progress=False,
    )
    wb.promote(MODEL, 1)


def _seconds(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_dag(current: Settings) -> dict[str, Any]:
    from workbench import airflow, batch

    client = airflow.Client.connect(current)
    client.wait_for_dag("batch_score")
    client.unpause("batch_score")
    triggered = time.time()
    run_id = client.trigger("batch_score", {"run_date": DAY, "model_name": MODEL})
    client.wait("batch_score", run_id, timeout=1800)
    finished = time.time()
    (task,) = client.tasks("batch_score", run_id)
    result = client.result("batch_score", run_id, "score")
    notebook = json.loads(Path(result["output_notebook"]).read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    last = next(c for c in code if 'timings["total s"]' in "".join(c["source"]))
    timings = ast.literal_eval("".join(last["outputs"][-1]["data"]["text/plain"]))
    loading = next(c for c in code if "load_scorer(" in "".join(c["source"]))
    started_notebook = _seconds(notebook["metadata"]["papermill"]["start_time"])
    first_cell = _seconds(code[0]["metadata"]["papermill"]["start_time"])
    work_start = _seconds(loading["metadata"]["papermill"]["start_time"])  # after the imports
    ended_notebook = _seconds(notebook["metadata"]["papermill"]["end_time"])
    written = batch.read_scores(DAY)
    return {
        "rows": len(written),
        "work_s": timings["total s"],
        "timings": timings,
        "end_to_end_s": finished - triggered,
        "trigger_to_running_s": _seconds(task["start_date"]) - triggered,
        "task_start_to_notebook_s": started_notebook - _seconds(task["start_date"]),
        "kernel_start_s": first_cell - started_notebook,
        "imports_s": work_start - first_cell,
        "after_notebook_s": _seconds(task["end_date"]) - ended_notebook,
        "sample": written.set_index("application_id")["score"],
    }


def run_plain(current: Settings, path: Path, tmp: Path) -> dict[str, Any]:
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, current.mlflow_tracking_uri, MODEL, str(path),
         str(tmp / "plain.db"), DAY],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["end_to_end_s"] = time.time() - started
    return report


def pressure() -> str:
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "CPU pressure unknown"
    return "CPU pressure " + line.split()[2].removeprefix("avg60=") + "% (avg60)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import pandas as pd

    from workbench import batch

    print(f"machine: {_machine.describe()}; {pressure()} at start")
    with tempfile.TemporaryDirectory(prefix="wb-bench-batch-") as folder:
        tmp = Path(folder)
        with private_stack(
            tmp / "home",
            ["mlflow", "airflow"],
            WORKBENCH_AIRFLOW_SCHEDULES="false",
            WORKBENCH_AIRFLOW_RETRIES="0",
        ) as current:
            train(tmp)
            path = batch.land_input(DAY, args.rows, seed=5, settings=current)
            plain = run_plain(current, path, tmp)
            dag = run_dag(current)
        print(f"{pressure()} at the end")
        same = pd.Series(plain["sample"]).to_numpy()
        # Read before the temporary folder goes.
        frame = pd.read_parquet(path, columns=["application_id"]).head(len(same))

    ours = dag["sample"].loc[frame["application_id"]].to_numpy()
    rows = args.rows
    print(f"\nrows: {rows:,} (DAG wrote {dag['rows']:,}, plain {plain['rows']:,})")
    print(f"scores equal on the first {len(same)} rows: {bool((same == ours).all())}")
    print("| contender | work s | rows/s (work) | end to end s | rows/s (end to end) |")
    print("| --- | --- | --- | --- | --- |")
    for name, figures in (("batch_score DAG (with reasons)", dag), ("plain script", plain)):
        print(
            f"| {name} | {figures['work_s']:.1f} | {rows / figures['work_s']:,.0f} | "
            f"{figures['end_to_end_s']:.1f} | {rows / figures['end_to_end_s']:,.0f} |"
        )
    print(f"DAG notebook steps: {dag['timings']}")
    ratio = plain["work_s"] / dag["work_s"]
    ratio_all = plain["end_to_end_s"] / dag["end_to_end_s"]
    fixed = dag["end_to_end_s"] - dag["work_s"]
    print(f"ratio of rows/s, work: {ratio:.2f}x (goal >= 0.8x); end to end: {ratio_all:.2f}x")
    print(
        f"fixed overhead {fixed:.1f} s (goal < 15 s): trigger to task running "
        f"{dag['trigger_to_running_s']:.1f} s, task start to notebook "
        f"{dag['task_start_to_notebook_s']:.1f} s, kernel start {dag['kernel_start_s']:.1f} s, "
        f"imports {dag['imports_s']:.1f} s, after the notebook (MLflow record) "
        f"{dag['after_notebook_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
