"""The machine a benchmark ran on, for the first line of its output: figures mean little without it."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """Processor model, core count, load average over the last minute (what else was running) and OS."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info
                          if line.startswith("model name")), model)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{model}, {os.cpu_count()} cores, load average {load:.2f}, "
            f"{platform.system()} {platform.release()}")
