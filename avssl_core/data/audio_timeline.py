"""A sample-indexed buffer of decoded audio, placed by timestamp, from which clips are cut.

Each chunk arrives with the index of its first sample on the output timeline (computed from its
decoded pts, not by counting), so the cut stays sample-accurate even when the source has encoder
priming, a late-starting audio track or gaps. Only samples not yet cut are kept, so memory is bounded
by one clip plus the audio/video interleaving skew of the container, whatever the video's length.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class SampleTimeline:
    """Samples ``[begin, end)`` of one audio stream at a fixed rate, as (samples, channels) int16 chunks.

    ``begin`` starts at the first sample wanted (index 0: the segment start). Audio before it is
    trimmed; a hole before a chunk (late start, gap in the source) becomes silence, which is what a
    player plays there; a chunk overlapping what is already placed loses its overlap. Offsets within
    ``jitter_samples`` are treated as continuous: containers with coarse time bases (Matroska's 1 ms)
    round audio pts, and following that rounding would insert or drop a few samples at every frame.
    """

    def __init__(self, channels: int, jitter_samples: int) -> None:
        self.channels = channels
        self.jitter_samples = jitter_samples
        self.begin = 0  # index of the first buffered sample
        self.end = 0  # index one past the last placed sample
        self.inserted_silence = 0  # samples of silence added for holes (reported, for diagnosis)
        self._chunks: deque[np.ndarray] = deque()

    def add(self, start_index: int, samples: np.ndarray) -> None:
        """Place ``samples`` (shape (n, channels)) whose first sample belongs at ``start_index``."""
        if samples.ndim != 2 or samples.shape[1] != self.channels:
            raise ValueError(f"expected (n, {self.channels}) samples, got shape {samples.shape}")
        offset = start_index - self.end
        if offset > self.jitter_samples:
            self._append(np.zeros((offset, self.channels), dtype=np.int16))
            self.inserted_silence += offset
        elif offset < -self.jitter_samples:
            samples = samples[-offset:]  # already covered (or before the segment start)
        self._append(samples)

    def take(self, start: int, count: int) -> np.ndarray:
        """Return samples ``[start, start + count)`` and forget everything before ``start + count``.

        The caller checks ``end >= start + count`` first; cuts must come in increasing order.
        """
        if start < self.begin or start + count > self.end:
            raise ValueError(
                f"samples [{start}, {start + count}) not buffered (have [{self.begin}, {self.end}))"
            )
        self._drop_until(start)
        parts, needed = [], count
        while needed:
            chunk = self._chunks[0]
            if len(chunk) <= needed:
                parts.append(self._chunks.popleft())
                needed -= len(chunk)
            else:
                parts.append(chunk[:needed])
                self._chunks[0] = chunk[needed:]
                needed = 0
        self.begin = start + count
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._chunks.append(samples)
            self.end += len(samples)

    def _drop_until(self, index: int) -> None:
        while self.begin < index:
            chunk = self._chunks[0]
            excess = index - self.begin
            if len(chunk) <= excess:
                self._chunks.popleft()
                self.begin += len(chunk)
            else:
                self._chunks[0] = chunk[excess:]
                self.begin = index
