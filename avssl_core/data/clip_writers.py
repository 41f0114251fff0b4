"""Writers for one clip's files: H.264 mp4 video and PCM WAV audio, each atomic.

A clip's mp4 is encoded while its frames stream in, into a temporary file beside the final name; only
:meth:`ClipVideoWriter.finish` renames it into place, so a crash or an error mid-clip leaves no file
under the final name (and :meth:`ClipVideoWriter.abort` deletes the temporary one).
"""

from __future__ import annotations

import contextlib
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from avssl_core.io_utils import atomic_path


def output_size(
    width: int, height: int, short_side: int, sample_aspect_ratio: Fraction | None = None
) -> tuple[int, int]:
    """(width, height) with the short side ``short_side`` and the display aspect ratio kept.

    Both sides are even because 4:2:0 chroma halves them. Anamorphic sources (non-square pixels) are
    scaled to square pixels, so the clip looks as the source is displayed.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid frame size {width}x{height}")
    display_width = width * float(sample_aspect_ratio) if sample_aspect_ratio else float(width)
    if display_width <= height:
        long_side = height * short_side / display_width
        return short_side, _even(long_side)
    long_side = display_width * short_side / height
    return _even(long_side), short_side


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


class ClipVideoWriter:
    """Encode frames of one clip to H.264 in mp4, constant frame rate, keyframe every ``keyframe_interval``.

    B-frames are off: with keyframes every few frames they buy little, and without them decode order
    equals display order, pts equal dts and the mp4 needs no edit list, so every reader (PyAV,
    torchvision, decord, browsers) agrees on which frame is frame i. ``faststart`` puts the index first.
    """

    def __init__(
        self,
        dest: str | Path,
        *,
        width: int,
        height: int,
        fps: int,
        crf: int,
        preset: str,
        keyframe_interval: int,
        threads: int,
    ) -> None:
        self.dest = Path(dest)
        self.frames_written = 0
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.dest))
        try:
            self._container = av.open(
                str(tmp), "w", format="mp4", container_options={"movflags": "+faststart"}
            )
            stream = self._container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = Fraction(1, fps)
            stream.codec_context.thread_count = threads
            stream.codec_context.options = {
                "crf": str(crf),
                "preset": preset,
                "g": str(keyframe_interval),
                "keyint_min": str(keyframe_interval),
                "sc_threshold": "0",  # no extra keyframes at scene cuts: a fixed GOP
                "bf": "0",
            }
            self._stream = stream
            self._time_base = Fraction(1, fps)
        except BaseException:
            self._stack.close()
            raise

    def write(self, frame: av.VideoFrame) -> None:
        """Encode ``frame`` (already yuv420p at the clip size) as the clip's next frame."""
        frame.pts = self.frames_written
        frame.time_base = self._time_base
        # Decoded frames carry the source's picture type; x264 would turn every source I-frame into an
        # extra keyframe. NONE lets the fixed GOP decide.
        frame.pict_type = PictureType.NONE
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def finish(self) -> None:
        """Flush the encoder, close the file and move it to its final name."""
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._stack.close()

    def abort(self) -> None:
        """Discard the clip: close and delete the temporary file; nothing appears under the final name."""
        with contextlib.suppress(Exception):
            self._container.close()
        # Leaving the atomic_path context with an exception deletes the temporary file without renaming.
        self._stack.__exit__(RuntimeError, RuntimeError("clip aborted"), None)


def write_wav(dest: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write (samples, channels) int16 audio as 16-bit PCM WAV, atomically."""
    if samples.dtype != np.int16 or samples.ndim != 2:
        raise ValueError(f"expected (n, channels) int16 samples, got {samples.dtype} {samples.shape}")
    with atomic_path(dest) as tmp, wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(samples.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
