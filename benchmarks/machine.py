"""One line naming the machine a benchmark ran on (CPU model, cores, torch threads, GPU), for every script here.

Scripts run as ``python benchmarks/NAME.py``, so this folder is first on ``sys.path`` and ``from machine import
describe`` finds this file.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str = "cpu") -> str:
    """``"<cpu>, N cores, torch X (T threads), <gpu or 'no GPU'>"``."""
    gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else "no GPU"
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}"
