"""Write frames and a stereo soundtrack as an mp4: H.264 (yuv420p) video plus AAC audio, with PyAV.

Timestamps are exact: video pts count frames in a 1/fps time base (the first frame has pts 0) and audio pts
count samples. The AAC encoder's 1024-sample priming delay is recorded in the mp4 edit list, which decoders
(FFmpeg, PyAV) apply, so decoded sample ``k`` is at ``k / sample_rate`` seconds. Audio is muxed as the video
advances (interleaved), which keeps later random access cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AAC_FRAME = 1024  # samples per AAC-LC frame
AUDIO_BITRATE = 128_000  # ample for 16-48 kHz stereo: keeps transients (onsets) sharp


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    audio: np.ndarray,
    *,
    fps: int,
    sample_rate: int,
    width: int,
    height: int,
    crf: int,
    preset: str = "veryfast",
    threads: int = 1,
) -> int:
    """Encode ``frames`` (uint8 RGB, height x width x 3) and ``audio`` ((2, n) float32); return the frame count.

    ``threads=1``: one core per video, parallelism comes from encoding several videos at once.

    ``mbtree=0`` turns off x264's macroblock-tree rate control, so that the same frames give the same bits in
    any process. With it on, the x264 in PyAV's wheel reads uninitialised memory on AVX-512 CPUs when it
    propagates costs through B-frames (seen at 64x64): the encoded frames then depended on what the heap
    held (another PYTHONHASHSEED or allocation order), so a world was not reproducible from its seed even on
    one machine. mbtree is also where x264 computes in floats with an approximate SIMD reciprocal, whose last
    bits may differ between CPU models; without it the same frames gave the same bits at every x264
    instruction-set level from SSE to AVX-512. The price is larger files at a given CRF (mbtree moves bits
    from static to moving areas), not a worse picture.
    """
    if width % 2 or height % 2:
        raise ValueError(f"H.264 yuv420p needs even width and height, got {width}x{height}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    num_samples = audio.shape[1]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream(
            "libx264",
            rate=fps,
            options={"crf": str(crf), "preset": preset, "threads": str(threads), "mbtree": "0"},
        )
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        video.codec_context.thread_count = threads
        sound = container.add_stream("aac", rate=sample_rate, layout="stereo")
        sound.bit_rate = AUDIO_BITRATE
        sound.codec_context.time_base = Fraction(1, sample_rate)

        written = 0  # audio samples handed to the encoder so far

        def push_audio(until: int) -> None:
            nonlocal written
            while written < min(until, num_samples):
                chunk = audio[:, written : min(written + AAC_FRAME, num_samples)]
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="stereo"
                )
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, written, Fraction(1, sample_rate)
                container.mux(sound.encode(frame))
                written += chunk.shape[1]

        count = 0
        for count, pixels in enumerate(frames, start=1):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = count - 1, Fraction(1, fps)
            container.mux(video.encode(frame))
            push_audio(int(round(count / fps * sample_rate)))
        container.mux(video.encode(None))
        push_audio(num_samples)
        container.mux(sound.encode(None))
    return count
