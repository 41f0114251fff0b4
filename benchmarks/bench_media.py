"""Benchmark inputs: long test videos made quickly with PyAV's bundled FFmpeg, cached under /tmp.

Frames come from FFmpeg's ``testsrc2`` pattern (moving, so the encoder does real work) and audio is a
tone with a beep every second, both generated in C by filter graphs, then encoded H.264 + AAC in mp4
like a typical downloaded source. Files are keyed by their parameters, so a benchmark run reuses them.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CACHE_DIR = Path(os.environ.get("AVSSL_BENCH_CACHE", "/tmp/avssl-bench"))


def cached_test_video(
    seconds: float,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    sample_rate: int = 44100,
    channels: int = 2,
    crf: int = 23,
    preset: str = "ultrafast",
) -> Path:
    """Path of a cached test mp4 with these properties; written on first use."""
    name = (
        f"testsrc2_{seconds:g}s_{width}x{height}_{fps}fps_{sample_rate}hz_{channels}ch_crf{crf}_{preset}.mp4"
    )
    path = CACHE_DIR / name
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.mp4")
    try:
        _write(tmp, seconds, width, height, fps, sample_rate, channels, crf, preset)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _source(description: str, *, audio: bool):
    graph = av.filter.Graph()
    src = graph.add(description.split("=", 1)[0], description.split("=", 1)[1])
    sink = graph.add("abuffersink" if audio else "buffersink")
    src.link_to(sink)
    graph.configure()
    return graph, sink


def _pull_all(graph_and_sink):
    graph, sink = graph_and_sink  # the sink only holds a weak reference to its graph: keep it alive
    while True:
        try:
            yield sink.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            return


def _write(path, seconds, width, height, fps, sample_rate, channels, crf, preset) -> None:
    video = _source(f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}", audio=False)
    layout = "mono" if channels == 1 else "stereo" if channels == 2 else "5.1"
    # A 440 Hz tone with a beep every second (sine's beep_factor) so the audio is not trivially compressible.
    tone = _source(
        f"sine=frequency=440:beep_factor=4:sample_rate={sample_rate}:duration={seconds}:samples_per_frame=1024",
        audio=True,
    )
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"crf": str(crf), "preset": preset}
        aud = out.add_stream("aac", rate=sample_rate)
        aud.layout = layout
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        audio_frames = _pull_all(tone)
        audio_time = 0.0
        for frame in _pull_all(video):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vs.encode(frame))
            # Interleave: encode audio up to this video frame's time.
            while audio_time <= frame.time:
                chunk = next(audio_frames, None)
                if chunk is None:
                    break
                audio_time = float(chunk.pts * chunk.time_base) + chunk.samples / sample_rate
                for converted in resampler.resample(chunk):
                    out.mux(aud.encode(converted))
        for chunk in audio_frames:
            for converted in resampler.resample(chunk):
                out.mux(aud.encode(converted))
        for converted in resampler.resample(None):
            out.mux(aud.encode(converted))
        out.mux(vs.encode(None))
        out.mux(aud.encode(None))


def flash_beep_video(
    path: Path,
    *,
    seconds: float,
    flash_times: list[float],
    fps: int = 25,
    width: int = 96,
    height: int = 64,
    sample_rate: int = 44100,
    channels: int = 2,
    frame_times: list[float] | None = None,
) -> Path:
    """A dark video whose frame at each flash time is white, with a 1 kHz beep starting at the same time.

    ``frame_times`` (seconds, increasing) makes it variable-frame-rate; flash times must be frame times.
    H.264 in a 1 ms time base + AAC (with its encoder priming, as real files have it), mp4.
    """
    times = frame_times if frame_times is not None else [j / fps for j in range(round(seconds * fps))]
    flash_frames = {min(range(len(times)), key=lambda j: abs(times[j] - t)) for t in flash_times}
    layout = "mono" if channels == 1 else "stereo"
    rng = np.random.default_rng(0)
    n = round(seconds * sample_rate)
    audio = rng.normal(0, 0.003, (channels, n)).astype(np.float32)
    beep = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(sample_rate // 10) / sample_rate)).astype(np.float32)
    for t in flash_times:
        s = round(t * sample_rate)
        audio[:, s : s + len(beep)] += beep[: max(0, n - s)]
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        aus = out.add_stream("aac", rate=sample_rate, layout=layout)
        dark = av.VideoFrame.from_ndarray(np.full((height, width, 3), 30, np.uint8), format="rgb24")
        bright = av.VideoFrame.from_ndarray(np.full((height, width, 3), 230, np.uint8), format="rgb24")
        for j, t in enumerate(times):
            frame = (bright if j in flash_frames else dark).reformat(format="yuv420p")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, start : start + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
            out.mux(aus.encode(frame))
        out.mux(aus.encode(None))
    return path


__all__ = ["CACHE_DIR", "cached_test_video", "flash_beep_video"]
