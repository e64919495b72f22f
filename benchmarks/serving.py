"""Serving one card-fraud model three ways: workbench, `mlflow models serve`, a bare floor.

Starts MLflow alone in a private home on free ports (a stack already running on this
machine is left alone), trains a LightGBM model on the card-fraud features, registers
and promotes it, then serves that same version three ways at once:

- workbench: ``wb.deploy`` (BentoML hosting the scoring app), ``POST /score``, reasons on;
- ``mlflow models serve --env-manager local``, ``POST /invocations``;
- a bare Starlette endpoint under uvicorn that calls the LightGBM booster on a numpy
  row: the floor for Python serving (:func:`bare_app`).

Each must return the in-process model's scores before it is measured. Then wrk drives
one server at a time (single records, then batches of 64), the servers in turn for three
rounds, and each one's best round is kept: other work on a shared machine comes and goes,
and this gives every contender the same chances. Last, an open-loop generator
(benchmarks/_load.py) sends single records at half the rate wrk reached, for a p99 free
of coordinated omission. Everything started is stopped at the end, also on error or Ctrl-C.

    .venvs/lab/bin/python benchmarks/serving.py [--quick]

Goals for workbench: single-record throughput >= 3x mlflow serve and >= 0.5x the bare
floor; p99 < 20 ms at half saturation; batch rows/s >= 10x single-record rows/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _machine
from _stack import free_ports, private_stack

if TYPE_CHECKING:
    from workbench.settings import Settings

log = logging.getLogger("benchmarks.serving")

BENCHMARKS = Path(__file__).resolve().parent
LAB_BIN = Path(sys.executable).parent
MODEL = "bench-fraud"
ROWS = 100_000
SEED = 7
TREES = 300  # as the card-fraud training notebook
BATCH = 64
CONNECTIONS = 16
THREADS = 2
OPEN_LOOP_CONNECTIONS = 32
BARE_MODEL_ENV = "BENCH_MODEL_URI"
START_TIMEOUT = 180.0
SAME_SCORE = 1e-9

GOAL_VS_MLFLOW = 3.0
GOAL_VS_BARE = 0.5
GOAL_P99_MS = 20.0
GOAL_BATCH_GAIN = 10.0

WRK_SCRIPT = """\
-- POST the JSON body in $BENCH_BODY; report the figures as one JSON line at the end.
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
"""


class BenchmarkError(RuntimeError):
    """The benchmark cannot go on; the message says why and where to look."""


@dataclass(frozen=True)
class Durations:
    """Seconds of each phase of a measurement."""

    warmup: float
    measure: float
    open_loop: float
    rounds: int


FULL = Durations(warmup=3, measure=10, open_loop=15, rounds=3)
QUICK = Durations(warmup=1, measure=3, open_loop=3, rounds=1)


@dataclass(frozen=True)
class Running:
    """A server that answers: its address and the root of its process tree."""

    url: str
    pid: int


@dataclass(frozen=True)
class Contender:
    """One way of serving the model: how to start it, call it and read its scores."""

    name: str
    route: str
    wrap: Callable[[list[dict[str, Any]]], Any]  # records -> JSON body
    read: Callable[[Any], list[float]]  # JSON answer -> one score per record
    serve: Callable[[Settings, Path], contextlib.AbstractContextManager[Running]]


@dataclass(frozen=True)
class Closed:
    """A closed-loop wrk run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_s: float  # CPU seconds the server's processes used meanwhile

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / max(self.requests, 1) * 1e6


@dataclass(frozen=True)
class Figures:
    """Everything measured for one contender."""

    name: str
    max_diff: float
    single: Closed
    batch: Closed
    open_loop: dict[str, Any]


# --- the bare floor ------------------------------------------------------------------


def bare_app() -> Any:
    """The Python floor: a Starlette app scoring JSON records with the booster alone.

    A uvicorn ``--factory`` target; the model URI comes from ``BENCH_MODEL_URI``. No
    validation, no reasons, no batching across requests: categories become codes with
    dictionaries, and the booster scores a float matrix in the event loop.
    """
    import mlflow.sklearn
    import numpy as np
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    model = mlflow.sklearn.load_model(os.environ[BARE_MODEL_ENV])
    encode, classifier = model.steps[0][1], model.steps[-1][1]
    booster = classifier.booster_
    codes: dict[str, dict[str, float]] = {}
    for name, encoder, selected in encode.transformers_:
        if name == "remainder":
            continue
        for column, categories in zip(selected, encoder.categories_, strict=True):
            codes[str(column)] = {str(value): float(i) for i, value in enumerate(categories)}
    # The booster's columns, in its order, each with its category codes (None: a number).
    lookups = [(str(c), codes.get(str(c))) for c in encode.get_feature_names_out()]

    def row(record: dict[str, Any]) -> list[float]:
        return [
            float(record[column]) if table is None else table.get(record[column], -1.0)
            for column, table in lookups
        ]

    async def score(request: Request) -> Response:
        records = orjson.loads(await request.body())
        matrix = np.array([row(record) for record in records], dtype=np.float64)
        scores = booster.predict(matrix, num_threads=1)
        return Response(orjson.dumps({"scores": scores.tolist()}), media_type="application/json")

    async def ping(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/score", score, methods=["POST"]), Route("/ping", ping)])


# --- the private stack ---------------------------------------------------------------


# --- the model -----------------------------------------------------------------------


def train_and_register() -> tuple[Any, Any, int]:
    """Train on the card-fraud features, log, register and promote; return the fitted
    model, the held-out rows and the registered version."""
    import workbench as wb

    features = wb.features.CARD_FRAUD
    events = wb.datasets.card_transactions(ROWS, seed=SEED)
    X = features.transform(events)
    y = events["is_fraud"]

    # The last 20% of time is held out, as in the training notebook.
    train = (events["event_time"] < events["event_time"].quantile(0.8)).to_numpy()
    X_train, y_train, X_test, y_test = X[train], y[train], X[~train], y[~train]
    started = time.perf_counter()
    model = wb.classifier(X_train, n_estimators=TREES, learning_rate=0.05).fit(X_train, y_train)
    log.info("trained on %d rows in %.1f s", len(X_train), time.perf_counter() - started)

    version = wb.log_model(model, MODEL, X_test, y_test, features=features)
    wb.promote(MODEL, version.version)
    log.info("registered %s version %s as champion", MODEL, version.version)
    return model, X_test, version.version


def records_of(frame: Any) -> list[dict[str, Any]]:
    """Rows as plain JSON-ready dicts, numbers exact."""
    return [
        {key: value.item() if hasattr(value, "item") else value for key, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


# --- the servers ---------------------------------------------------------------------


@contextlib.contextmanager
def serve_workbench(settings: Settings, work: Path) -> Iterator[Running]:
    """``wb.deploy``: the BentoML service of the local stack."""
    import workbench as wb
    from workbench import stack
    from workbench.serving import deployments

    service = deployments.service_name(MODEL)
    try:
        handle = wb.deploy(MODEL, settings=settings)
        pid = stack.status(settings, [service])[0].pid
        if pid is None:
            raise BenchmarkError(f"{service} answers but has no pid; see `wb status`")
        yield Running(handle.url, pid)
    finally:
        if MODEL in deployments.load(settings):
            stack.down([service], settings)


@contextlib.contextmanager
def serve_mlflow(settings: Settings, work: Path) -> Iterator[Running]:
    """``mlflow models serve`` in this environment, one uvicorn worker (its default)."""
    port = free_ports(1)[0]
    command = [str(LAB_BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/1",
               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)]  # fmt: skip
    # It starts uvicorn from PATH, so this environment's bin goes first.
    env = {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "PATH": f"{LAB_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    with process(command, env, f"http://127.0.0.1:{port}", work / "mlflow-serve.log") as running:
        yield running


@contextlib.contextmanager
def serve_bare(settings: Settings, work: Path) -> Iterator[Running]:
    """:func:`bare_app` under uvicorn: one worker, no access log."""
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCHMARKS), "--factory",
               "serving:bare_app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    env = {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        BARE_MODEL_ENV: f"models:/{MODEL}/1",
    }
    with process(command, env, f"http://127.0.0.1:{port}", work / "bare.log") as running:
        yield running


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], url: str, log_path: Path) -> Iterator[Running]:
    """Run ``command`` in a process group of its own until ``url``/ping answers; stop
    the whole group afterwards."""
    with log_path.open("wb") as output:
        child = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(f"{url}/ping", child, log_path)
        yield Running(url, child.pid)
    finally:
        stop_group(child)


def wait_until_ready(url: str, child: subprocess.Popen[bytes], log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise BenchmarkError(
                f"{child.args[0]} exited with {child.returncode} before it answered; "
                f"last lines of {log_path}:\n{tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.25)
    raise BenchmarkError(
        f"{url} did not answer within {START_TIMEOUT:g} s; last lines of {log_path}:\n"
        f"{tail(log_path)}"
    )


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """Stop ``child`` and everything in its process group: politely, then for good."""
    group = child.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    child.wait()


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


CONTENDERS = [
    Contender(
        "workbench (BentoML)",
        "/score",
        wrap=lambda records: records,
        read=lambda answer: [result["score"] for result in answer["results"]],
        serve=serve_workbench,
    ),
    Contender(
        "mlflow models serve",
        "/invocations",
        wrap=lambda records: {"dataframe_records": records},
        read=lambda answer: [row[1] for row in answer["predictions"]],
        serve=serve_mlflow,
    ),
    Contender(
        "bare Starlette+booster",
        "/score",
        wrap=lambda records: records,
        read=lambda answer: list(answer["scores"]),
        serve=serve_bare,
    ),
]


# --- measuring -----------------------------------------------------------------------


def check_scores(
    contender: Contender, url: str, records: list[dict[str, Any]], expected: list[float]
) -> float:
    """The largest difference from the in-process scores; refuses more than 1e-9."""
    import httpx

    response = httpx.post(url, json=contender.wrap(records), timeout=60)
    if response.status_code != 200:
        raise BenchmarkError(
            f"{contender.name} answered {response.status_code} to the sample records: "
            f"{response.text[:300]}"
        )
    scores = contender.read(response.json())
    if len(scores) != len(expected):
        raise BenchmarkError(
            f"{contender.name} gave {len(scores)} scores for {len(expected)} records"
        )
    worst = max(abs(a - b) for a, b in zip(scores, expected, strict=True))
    if worst >= SAME_SCORE:
        raise BenchmarkError(
            f"{contender.name} scores differ from the model's by up to {worst:.3g} "
            f"(allowed {SAME_SCORE:g}): it does not serve the same model"
        )
    return worst


def wrk(url: str, body: Path, seconds: float, script: Path, pid: int) -> Closed:
    """One wrk run against ``url``; also the CPU the server used meanwhile."""
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency",
               "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    before = cpu_seconds(pid)
    done = subprocess.run(
        command,
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    used = cpu_seconds(pid) - before
    found = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not found:
        raise BenchmarkError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    figures = json.loads(found[-1].removeprefix("BENCH "))
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Closed(
        requests_per_s=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        requests=figures["requests"],
        errors=errors,
        server_cpu_s=used,
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and its children, so far."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for member in members:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def open_loop(url: str, body: Path, rate: float, seconds: float) -> dict[str, Any]:
    """The fixed-rate generator, in a process of its own."""
    command = [sys.executable, str(BENCHMARKS / "_load.py"), "--url", url, "--body", str(body),
               "--rate", f"{rate:.1f}", "--seconds", f"{seconds:g}",
               "--connections", str(OPEN_LOOP_CONNECTIONS)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90)
    if done.returncode != 0:
        raise BenchmarkError(f"the open-loop generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    settings: Settings,
    work: Path,
    samples: list[dict[str, Any]],
    expected: list[float],
    durations: Durations,
) -> list[Figures]:
    """Start every server, check its scores, then drive them in turn, round after round.

    Other work on the machine comes and goes; interleaving the contenders and keeping
    each one's best round gives them the same chances, so the ratios are fair.
    """
    script = work / "post.lua"
    with contextlib.ExitStack() as servers:
        urls: dict[str, tuple[str, int]] = {}
        worst: dict[str, float] = {}
        for contender in CONTENDERS:
            log.info("%s: starting", contender.name)
            running = servers.enter_context(contender.serve(settings, work))
            url = running.url + contender.route
            worst[contender.name] = check_scores(contender, url, samples[:BATCH], expected[:BATCH])
            log.info("%s: answers at %s (pid %d), same scores as the model (largest "
                     "difference %.2g)", contender.name, url, running.pid,
                     worst[contender.name])  # fmt: skip
            urls[contender.name] = (url, running.pid)

        best: dict[tuple[str, str], Closed] = {}
        for round_ in range(1, durations.rounds + 1):
            for contender in CONTENDERS:
                url, pid = urls[contender.name]
                for kind, records in (("single", samples[:1]), ("batch", samples[:BATCH])):
                    body = write_body(work, contender, kind, records)
                    if round_ == 1:
                        wrk(url, body, durations.warmup, script, pid)
                    found = wrk(url, body, durations.measure, script, pid)
                    rows = found.requests_per_s * (BATCH if kind == "batch" else 1)
                    log.info("round %d, %s, %s: %.0f rows/s, p99 %.2f ms", round_,
                             contender.name, kind, rows, found.p99_ms)  # fmt: skip
                    kept = best.get((contender.name, kind))
                    if kept is None or found.requests_per_s > kept.requests_per_s:
                        best[(contender.name, kind)] = found

        figures = []
        for contender in CONTENDERS:
            url, _ = urls[contender.name]
            one = best[(contender.name, "single")]
            rate = one.requests_per_s / 2
            log.info("%s: open loop at %.0f requests/s for %g s", contender.name, rate,
                     durations.open_loop)  # fmt: skip
            single = write_body(work, contender, "single", samples[:1])
            fixed = open_loop(url, single, rate, durations.open_loop)
            log.info("%s: p99 %.2f ms at %.0f requests/s", contender.name, fixed["p99_ms"],
                     fixed["achieved_rate"])  # fmt: skip
            figures.append(
                Figures(
                    contender.name,
                    worst[contender.name],
                    one,
                    best[(contender.name, "batch")],
                    fixed,
                )
            )
    return figures


def write_body(work: Path, contender: Contender, kind: str, records: list[dict]) -> Path:
    path = work / f"{contender.serve.__name__}-{kind}.json"
    path.write_text(json.dumps(contender.wrap(records)))
    return path


# --- reporting -----------------------------------------------------------------------


def machine() -> str:
    return _machine.describe()


def packages() -> str:
    names = ["bentoml", "mlflow", "lightgbm", "uvicorn", "starlette", "numpy"]
    found = ", ".join(f"{name} {package_version(name)}" for name in names)
    return f"Python {platform.python_version()}, {found}; {wrk_version()}"


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    words = (done.stdout or done.stderr).split()
    return " ".join(words[:2]) if words else "wrk"


def load_average() -> str:
    """The load average, and how often runnable tasks waited for a CPU (Linux PSI)."""
    one, five, _ = os.getloadavg()
    text = f"{one:.1f} (1 min), {five:.1f} (5 min)"
    with contextlib.suppress(OSError, IndexError, ValueError):
        waiting = Path("/proc/pressure/cpu").read_text().split()[2].split("=")[1]
        text += f", CPU pressure {waiting}%"
    return text


def report(figures: list[Figures], durations: Durations, loads: tuple[str, str]) -> None:
    print(f"machine: {machine()}")
    print(f"load average: {loads[0]} before; {loads[1]} after")
    if os.getloadavg()[1] > (os.cpu_count() or 1):
        print("note: other work shared the CPUs; figures are lower and noisier than when idle")
    print(f"packages: {packages()}")
    print(
        f"model: {MODEL} v1, LightGBM {TREES} trees on the card_fraud features, "
        f"{ROWS:,} synthetic transactions (seed {SEED})"
    )
    print(
        f"load: wrk {CONNECTIONS} connections, {THREADS} threads, {durations.measure:g} s after "
        f"{durations.warmup:g} s warm-up, the servers in turn for {durations.rounds} rounds, "
        f"each one's best round kept; batches of {BATCH}; open loop {durations.open_loop:g} s "
        f"at half the single-record req/s, {OPEN_LOOP_CONNECTIONS} connections"
    )
    print(
        "CPU us: the server's CPU time per request (single) or per row (batch), steadier "
        "than req/s on a busy machine\n"
    )

    head = (
        f"{'server':<24}{'single req/s':>13}{'p50 ms':>8}{'p99 ms':>8}{'CPU us':>8}"
        f"{'batch rows/s':>13}{'p99 ms':>8}{'CPU us':>8}{'half req/s':>11}{'p99 ms':>8}"
        f"{'max diff':>10}"
    )
    print(head)
    print("-" * len(head))
    for f in figures:
        print(
            f"{f.name:<24}{f.single.requests_per_s:>13.0f}{f.single.p50_ms:>8.2f}"
            f"{f.single.p99_ms:>8.2f}{f.single.cpu_us_per_request:>8.0f}"
            f"{f.batch.requests_per_s * BATCH:>13.0f}{f.batch.p99_ms:>8.2f}"
            f"{f.batch.cpu_us_per_request / BATCH:>8.1f}"
            f"{f.open_loop['achieved_rate']:>11.0f}{f.open_loop['p99_ms']:>8.2f}"
            f"{f.max_diff:>10.1g}"
        )
    problems = errors(figures)
    print("\nerrors: " + ("; ".join(problems) if problems else "none"))

    ours, theirs, floor = figures
    vs_mlflow = ours.single.requests_per_s / theirs.single.requests_per_s
    vs_bare = ours.single.requests_per_s / floor.single.requests_per_s
    batch_gain = ours.batch.requests_per_s * BATCH / ours.single.requests_per_s
    p99 = ours.open_loop["p99_ms"]
    print("\nworkbench against the goals:")
    goal("single req/s vs mlflow serve", f"{vs_mlflow:.2f}x", f">= {GOAL_VS_MLFLOW:g}x",
         vs_mlflow >= GOAL_VS_MLFLOW)  # fmt: skip
    goal("single req/s vs bare floor", f"{vs_bare:.2f}x", f">= {GOAL_VS_BARE:g}x",
         vs_bare >= GOAL_VS_BARE)  # fmt: skip
    goal("p99 at half saturation", f"{p99:.2f} ms", f"< {GOAL_P99_MS:g} ms", p99 < GOAL_P99_MS)
    goal("batch rows/s vs single rows/s", f"{batch_gain:.1f}x", f">= {GOAL_BATCH_GAIN:g}x",
         batch_gain >= GOAL_BATCH_GAIN)  # fmt: skip
    lag = max(f.open_loop["generator_lag_p99_ms"] for f in figures)
    print(
        f"\nopen-loop generator lag p99 (its own lateness, counted in the latencies): "
        f"up to {lag:.2f} ms"
    )


def goal(label: str, value: str, wanted: str, met: bool) -> None:
    print(f"  {label:<32}{value:>10}   goal {wanted:<10}{'met' if met else 'MISSED'}")


def errors(figures: list[Figures]) -> list[str]:
    found = []
    for f in figures:
        for kind, closed in (("single", f.single), ("batch", f.batch)):
            if closed.errors:
                found.append(f"{f.name} {kind}: {closed.errors} wrk errors")
        if f.open_loop["errors"]:
            found.append(f"{f.name} open loop: {f.open_loop['errors']}")
    return found


# --- the recipe ----------------------------------------------------------------------


def run(durations: Durations, work: Path) -> None:
    import pandas as pd

    loads = load_average()
    with private_stack(work / "home", ["mlflow"]) as settings:
        # One model, registered and promoted in the private MLflow.
        log.info("training %s on %d transactions", MODEL, ROWS)
        # MLflow prints links to the run; stdout is kept for the table.
        with contextlib.redirect_stdout(sys.stderr):
            model, X_test, version = train_and_register()
        if str(version) != "1":
            raise BenchmarkError(f"expected version 1 in a fresh registry, got {version}")

        # The scores every server must give, from the same JSON-ready records.
        samples = records_of(X_test.head(BATCH))
        frame = pd.DataFrame.from_records(samples, columns=list(X_test.columns))
        expected = [float(p) for p in model.predict_proba(frame)[:, 1]]
        (work / "post.lua").write_text(WRK_SCRIPT)

        figures = measure(settings, work, samples, expected, durations)
    report(figures, durations, (loads, load_average()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    log.setLevel(logging.INFO)
    logging.getLogger("workbench").setLevel(logging.INFO)

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    try:
        import bentoml  # noqa: F401
        import mlflow  # noqa: F401
    except ImportError as exc:
        sys.exit(f"{exc.name} is missing: run this with the lab environment, .venvs/lab/bin/python")

    # Ctrl-C and kill both unwind through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="wb-serving-"))
    failed = True
    try:
        run(QUICK if args.quick else FULL, work)
        failed = False
    except BenchmarkError as exc:
        log.error("%s", exc)
        sys.exit(1)
    finally:
        if failed:
            log.info("kept %s (logs, bodies) for a look", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
