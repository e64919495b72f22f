"""Card-fraud features on a million transactions: workbench against plain pandas.

Generates the same synthetic transactions in fresh processes, featurizes them with
``CARD_FRAUD.transform`` and with the straightforward pandas version a modeler would
write (groupby, time-based rolling, cumcount, duplicated), checks that both give the
same values, and prints seconds, peak memory and the ratio. A last row generates ten
million transactions chunk by chunk without keeping them, to show the generator's
memory stays bounded.

    .venvs/lab/bin/python benchmarks/features.py [--rows 1000000] [--stream-rows 10000000]

Goals: featurizing a million rows in under 30 s and 2 GiB, no slower than pandas.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _machine

from workbench import datasets
from workbench.features import CARD_FRAUD, MEAN_FLOOR, NO_HISTORY, NO_PREVIOUS

GOAL_SECONDS = 30.0
GOAL_BYTES = 2 * 1024**3


def straightforward(frame: pd.DataFrame) -> pd.DataFrame:
    """The card-fraud features as plain pandas: what a modeler would write by hand."""
    df = frame[list(CARD_FRAUD.inputs)].reset_index(drop=True)
    df = df.sort_values(["card_id", "event_time", "event_id"])
    cards = df.groupby("card_id", sort=False)

    # Rolling windows over (t - w, t] include the event itself: take it out again. The
    # result comes card by card in the frame's order, which is already by card.
    out = pd.DataFrame(index=df.index)
    for window in ("1h", "24h"):
        rolled = cards.rolling(window, on="event_time", closed="right")["amount"]
        count = rolled.count().to_numpy()
        total = rolled.sum().to_numpy()
        out[f"txn_count_{window}"] = count.astype("int64") - 1
        out[f"amount_sum_{window}"] = np.maximum(total - df["amount"].to_numpy(), 0.0)

    gap = cards["event_time"].diff().dt.total_seconds()
    out["seconds_since_prev"] = gap.fillna(NO_PREVIOUS)
    earlier = cards.cumcount()
    mean = (cards["amount"].cumsum() - df["amount"]) / earlier.clip(lower=1)
    ratio = df["amount"] / mean.clip(lower=MEAN_FLOOR)
    out["amount_over_mean"] = ratio.where(earlier > 0, NO_HISTORY)
    out["is_new_merchant"] = (~df.duplicated(["card_id", "merchant_id"])).astype("int64")
    out["is_new_country"] = (~df.duplicated(["card_id", "country"])).astype("int64")
    out["amount"] = df["amount"]
    out["hour"] = df["event_time"].dt.hour.astype("int64")
    for column in ("channel", "mcc", "country"):
        out[column] = df[column]
    out = out.sort_index()
    out.index = frame.index
    return out


def child(role: str, rows: int, seed: int, output: str, repeat: int) -> dict[str, Any]:
    """Run one contender in this (fresh) process and report its figures."""
    if role == "stream":
        started = time.perf_counter()
        fraud = 0
        for chunk in datasets.iter_card_transactions(rows, seed, chunk_size=250_000):
            fraud += int(chunk["is_fraud"].sum())
        return {"generate_s": time.perf_counter() - started, "fraud_rate": fraud / rows}

    started = time.perf_counter()
    frame = datasets.card_transactions(rows, seed)
    generated = time.perf_counter() - started
    report: dict[str, Any] = {"generate_s": generated}
    if role == "data":
        return report
    featurize = CARD_FRAUD.transform if role == "workbench" else straightforward
    timings = []
    result: pd.DataFrame | None = None
    for _ in range(repeat):
        result = None  # so one result at a time counts toward the peak
        started = time.perf_counter()
        result = featurize(frame)
        timings.append(time.perf_counter() - started)
    report["featurize_s"] = min(timings)
    report["first_s"] = timings[0]
    with open(output, "wb") as sink:
        pickle.dump(result, sink)
    return report


def run(role: str, rows: int, seed: int, output: str, repeat: int = 1) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", role, "--rows", str(rows),
               "--seed", str(seed), "--output", output, "--repeat", str(repeat)]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def same_values(ours: pd.DataFrame, theirs: pd.DataFrame) -> str:
    """'yes', or the first column where the two results differ."""
    if list(ours.columns) != list(theirs.columns) or not ours.index.equals(theirs.index):
        return "no: columns or index differ"
    for column, kind in CARD_FRAUD.outputs.items():
        if kind == "float":
            close = np.allclose(ours[column], theirs[column], rtol=1e-9, atol=1e-6)
            if not close:
                return f"no: {column}"
        elif ours[column].tolist() != theirs[column].tolist():
            return f"no: {column}"
    return "yes (counts, flags, strings exact; sums within 1e-9)"


def machine() -> str:
    return (
        f"{_machine.describe()}; "
        f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stream-rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=["data", "workbench", "pandas", "stream"])
    parser.add_argument("--output", default="")
    parser.add_argument("--repeat", type=int, default=3, help="featurize runs; the best counts")
    args = parser.parse_args()

    if args.child:
        report = child(args.child, args.rows, args.seed, args.output, args.repeat)
        report["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(report))
        return

    print(f"machine: {machine()}")
    print(f"card_fraud features on {args.rows:,} synthetic transactions (seed {args.seed})\n")
    with tempfile.TemporaryDirectory() as folder:
        data = run("data", args.rows, args.seed, "")
        ours = run("workbench", args.rows, args.seed, f"{folder}/workbench.pkl", args.repeat)
        theirs = run("pandas", args.rows, args.seed, f"{folder}/pandas.pkl", args.repeat)
        with open(f"{folder}/workbench.pkl", "rb") as a, open(f"{folder}/pandas.pkl", "rb") as b:
            agree = same_values(pickle.load(a), pickle.load(b))

    rows: list[tuple[str, float, dict[str, Any] | None, int]] = [
        ("generate only", data["generate_s"], None, data["peak_rss"]),
        ("workbench CARD_FRAUD.transform", ours["generate_s"], ours, ours["peak_rss"]),
        ("pandas groupby/rolling/cumcount", theirs["generate_s"], theirs, theirs["peak_rss"]),
    ]
    if args.stream_rows:
        stream = run("stream", args.stream_rows, args.seed, "")
        rows.append(
            (f"generate {args.stream_rows:,} in chunks, not kept", stream["generate_s"], None,
             stream["peak_rss"])
        )  # fmt: skip

    print(f"featurize s: the first run, and the best of {args.repeat} in the same process\n")
    print(f"{'contender':<40} {'generate s':>10} {'first s':>8} {'best s':>7} {'peak RSS MiB':>13}")
    for name, generate, timing, peak in rows:
        first = f"{timing['first_s']:.2f}" if timing else "-"
        best = f"{timing['featurize_s']:.2f}" if timing else "-"
        print(f"{name:<40} {generate:>10.2f} {first:>8} {best:>7} {peak / 1024**2:>13.0f}")
    ratio = theirs["featurize_s"] / ours["featurize_s"]
    first_ratio = theirs["first_s"] / ours["first_s"]
    print(
        f"\nworkbench is {ratio:.1f}x the speed of plain pandas (best runs; first runs "
        f"{first_ratio:.1f}x); same values: {agree}"
    )
    fast_enough = ours["first_s"] < GOAL_SECONDS
    small_enough = ours["peak_rss"] < GOAL_BYTES
    print(
        f"goals: featurize < {GOAL_SECONDS:.0f} s: {fast_enough}; peak < 2 GiB: {small_enough}; "
        f"not slower than pandas: {min(ratio, first_ratio) >= 1}"
    )


if __name__ == "__main__":
    main()
