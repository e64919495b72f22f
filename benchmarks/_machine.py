"""What machine a benchmark ran on, for the first line of its report."""

from __future__ import annotations

import os


def describe() -> str:
    """Cores, CPU model and memory, e.g. '2 cores, AMD EPYC, 24 GiB RAM'."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory = int(info.readline().split()[1]) * 1024
    return f"{os.cpu_count()} cores, {model}, {memory / 1024**3:.0f} GiB RAM"
