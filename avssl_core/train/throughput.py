"""Where training time goes: waiting for the next batch vs computing, samples/s, peak memory.

Wall time between two reports is split into time blocked in the DataLoader (``waiting``) and the rest
(forward, backward, optimizer). On CUDA the rest includes kernels still queued at the report, which the
loss read-out at each log step flushes, so the split is accurate over a log window, not per step.
A data-wait fraction near 0 means the GPU is the bottleneck; near 1, decoding is.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psutil
import torch


class ThroughputMeter:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._process = psutil.Process()
        self.peak_rss_bytes = 0
        now = time.perf_counter()
        self._window_start = now
        self._window_wait = 0.0
        self._window_samples = 0
        self._run_start = now
        self.total_wait_s = 0.0
        self.total_samples = 0

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            waited = time.perf_counter() - start
            self._window_wait += waited
            self.total_wait_s += waited

    def add_samples(self, n: int) -> None:
        self._window_samples += n
        self.total_samples += n

    def restart_window(self) -> None:
        """Exclude a pause (validation, checkpoint writing) from the next report."""
        self._window_start = time.perf_counter()
        self._window_wait = 0.0
        self._window_samples = 0

    def report_window(self) -> dict[str, float]:
        """Figures since the last report, then start a new window."""
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        figures = {
            "samples_per_s": self._window_samples / elapsed,
            "data_wait_fraction": min(1.0, self._window_wait / elapsed),
            **self.peak_memory_mb(),
        }
        self.restart_window()
        return figures

    def report_run(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self._run_start, 1e-9)
        return {"samples_per_s": self.total_samples / elapsed,
                "data_wait_fraction": min(1.0, self.total_wait_s / elapsed),
                "wall_s": elapsed, **self.peak_memory_mb()}

    def peak_memory_mb(self) -> dict[str, float]:
        # RSS is sampled at each report: a peak between reports can be missed, which is fine for spotting
        # growth (a leak, an oversized prefetch) over a run.
        self.peak_rss_bytes = max(self.peak_rss_bytes, self._process.memory_info().rss)
        figures = {"peak_rss_mb": self.peak_rss_bytes / 2**20}
        if self.device.type == "cuda":
            figures["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return figures
