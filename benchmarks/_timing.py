"""Timing shared by the benchmarks: the same loop for every implementation."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def timed(function: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Run ``function`` ``repeat`` times after a collection each; return times and last result."""
    times, result = [], None
    for _ in range(repeat):
        result = None  # drop the previous run's result before timing the next
        gc.collect()
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return times, result
