"""Counting samples that could not be decoded, and stopping when there are too many.

The collate function drops a sample its decoder could not read and lists it under ``"_failed"`` in the
batch: either a list of file names, or (avssl_core.pretext's collate_skipping_failures) a dict with
``"failed"`` (file names) and ``"reasons"``. A few such files are normal in scraped data and training goes on; many mean the data or
the decoder is broken, and training on what is left would quietly change the data distribution.
"""

from __future__ import annotations

from typing import Any

from avssl_core.errors import DataError
from avssl_core.pretext.dataset import FAILED_KEY, failed_entries  # noqa: F401  (re-exported)

_FILES_IN_MESSAGE = 20


class DecodeFailureTracker:
    def __init__(self, *, max_failed_fraction: float, min_samples: int) -> None:
        self.max_failed_fraction = max_failed_fraction
        self.min_samples = min_samples
        self.samples_seen = 0  # decoded and failed (not the sampler's padding)
        self.failed_files: list[str] = []

    def record(self, *, decoded: int, failed: list[str]) -> None:
        self.samples_seen += decoded + len(failed)
        self.failed_files.extend(failed)

    def over_threshold(self, *, samples_seen: int, failed_count: int) -> bool:
        """Whether the (all-rank) totals pass the threshold; never before ``min_samples`` samples, so
        one bad file among the first few does not stop a run."""
        return samples_seen >= self.min_samples and failed_count > self.max_failed_fraction * samples_seen

    def check(self, *, samples_seen: int, failed_files: list[str]) -> None:
        """Raise DataError naming the files when the (all-rank) totals pass the threshold."""
        if self.over_threshold(samples_seen=samples_seen, failed_count=len(failed_files)):
            fraction = len(failed_files) / samples_seen
            shown = ", ".join(failed_files[:_FILES_IN_MESSAGE])
            more = f" and {len(failed_files) - _FILES_IN_MESSAGE} more" if len(failed_files) > _FILES_IN_MESSAGE else ""
            raise DataError(
                f"{len(failed_files)} of {samples_seen} samples ({fraction:.1%}) could not be decoded, more "
                f"than train.max_failed_fraction={self.max_failed_fraction:g}: {shown}{more}. "
                "Re-run the validate stage on these files or raise the threshold."
            )

    def state_dict(self) -> dict[str, Any]:
        return {"samples_seen": self.samples_seen, "failed_files": list(self.failed_files)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.samples_seen = int(state["samples_seen"])
        self.failed_files = list(state["failed_files"])
