"""Real media files, good and broken, written with PyAV for the probe and validate tests.

Every clip is tiny (64x64, about 2 s) so the whole set is written in a couple of seconds. The broken
files are broken the way real files are: cut-off downloads, missing streams, silent tracks, frozen
pictures, text saved as .mp4, copies, and links that escape the data folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_FRAME_SAMPLES = 1024  # one AAC frame


def write_clip(
    path: str | Path,
    *,
    seconds: float = 2.0,
    width: int = 64,
    height: int = 64,
    fps: int = 25,
    video_streams: int = 1,
    audio_streams: int = 1,
    sample_rate: int = 16000,
    audio_sample_rates: list[int] | None = None,
    silent_audio_streams: tuple[int, ...] = (),
    channels: int = 2,
    moving: bool = True,
    silent: bool = False,
    pix_fmt: str = "yuv420p",
    variable_frame_rate: bool = False,
    faststart: bool = False,
    seed: int = 0,
) -> Path:
    """Write an H.264 + AAC clip: a bar sliding over a gradient and a sine tone; ``seed`` varies both.

    ``variable_frame_rate`` alternates 20 ms and 70 ms between frames (timestamps in a 1 ms time base);
    ``faststart`` puts the moov atom first, as streaming-friendly downloads have it.
    ``audio_sample_rates`` gives each audio stream its own rate (the first is flagged default), overriding
    ``audio_streams`` and ``sample_rate``; ``silent_audio_streams`` (positions among the audio streams) are
    silent, so a test can tell which stream a stage used.
    """
    rates = list(audio_sample_rates) if audio_sample_rates else [sample_rate] * audio_streams
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        videos = [_add_video_stream(container, width, height, fps, pix_fmt, variable_frame_rate)
                  for _ in range(video_streams)]
        audios = [_add_audio_stream(container, rate, channels) for rate in rates]
        if videos:
            _encode_video(container, videos, seconds, fps, moving, variable_frame_rate, seed)
        kinds = [(rate, silent or i in silent_audio_streams) for i, rate in enumerate(rates)]
        for rate, quiet in sorted(set(kinds)):
            _encode_audio(container, [a for a, k in zip(audios, kinds, strict=True) if k == (rate, quiet)], seconds,
                          rate, channels, quiet, seed)
    return path


def _add_video_stream(container, width, height, fps, pix_fmt, variable_frame_rate):
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.options = {"preset": "ultrafast", "crf": "23"}
    if variable_frame_rate:
        stream.codec_context.time_base = Fraction(1, 1000)
    return stream


def _add_audio_stream(container, sample_rate, channels):
    return container.add_stream("aac", rate=sample_rate, layout="stereo" if channels == 2 else "mono")


def _frame_image(index: int, width: int, height: int, moving: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    colour = rng.integers(64, 256, size=3, dtype=np.uint8)
    gradient = np.linspace(0, 160, width, dtype=np.float32)[None, :, None]
    image = np.broadcast_to(gradient, (height, width, 3)).astype(np.uint8).copy()
    position = (index * (2 + seed % 5)) % width if moving else width // 3
    image[:, position : position + max(2, width // 8)] = colour
    return image


def _encode_video(container, streams, seconds, fps, moving, variable_frame_rate, seed):
    num_frames = max(1, round(seconds * fps))
    pts_ms = 0
    for index in range(num_frames):
        frame = av.VideoFrame.from_ndarray(
            _frame_image(index, streams[0].width, streams[0].height, moving, seed), format="rgb24")
        for stream in streams:
            if variable_frame_rate:
                frame.pts, frame.time_base = pts_ms, Fraction(1, 1000)
            else:
                frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        pts_ms += 20 if index % 2 else 70
    for stream in streams:
        for packet in stream.encode(None):
            container.mux(packet)


def _encode_audio(container, streams, seconds, sample_rate, channels, silent, seed):
    num_samples = round(seconds * sample_rate)
    t = np.arange(num_samples) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * (330 + 55 * (seed % 7)) * t)
    samples = np.zeros_like(tone) if silent else tone
    planes = np.repeat(samples[None, :].astype(np.float32), channels, axis=0)
    layout = "stereo" if channels == 2 else "mono"
    for start in range(0, num_samples, AUDIO_FRAME_SAMPLES):
        chunk = np.ascontiguousarray(planes[:, start : start + AUDIO_FRAME_SAMPLES])
        for stream in streams:
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
    for stream in streams:
        for packet in stream.encode(None):
            container.mux(packet)


def remux(source: str | Path, dest: str | Path) -> Path:
    """Copy every stream's packets into a new container (the extension of ``dest`` picks it)."""
    with av.open(str(source)) as src, av.open(str(dest), "w") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:  # the demuxer's end-of-stream marker, not data
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return Path(dest)


def truncate_copy(source: str | Path, dest: str | Path, fraction: float) -> Path:
    """The first ``fraction`` of ``source``'s bytes: an interrupted download."""
    data = Path(source).read_bytes()
    Path(dest).write_bytes(data[: int(len(data) * fraction)])
    return Path(dest)


def write_zoo(root: Path, outside: Path) -> dict[str, Path]:
    """Write every kind of test file under ``root``; ``outside`` receives a link target beyond ``root``.

    Returns name -> path. Names starting ``good`` are files that should pass validation.
    """
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["good_a"] = write_clip(root / "good_a.mp4", seed=1)
    files["good_b"] = write_clip(root / "good_b.mp4", seed=2, sample_rate=48000)
    files["good_multistream"] = write_clip(root / "good_multistream.mp4", seed=3, video_streams=2,
                                           audio_streams=2)
    files["good_vfr"] = write_clip(root / "good_vfr.mp4", seed=4, variable_frame_rate=True)
    files["good_10bit"] = write_clip(root / "good_10bit.mp4", seed=5, pix_fmt="yuv420p10le")
    files["zero_bytes"] = root / "zero_bytes.mp4"
    files["zero_bytes"].write_bytes(b"")
    files["text"] = root / "notes.mp4"
    files["text"].write_text("these are my holiday notes, not a video\n" * 10)
    files["truncated_no_moov"] = truncate_copy(files["good_a"], root / "truncated_no_moov.mp4", 0.3)
    faststart = write_clip(outside / "faststart_source.mp4", seed=6, faststart=True)
    files["truncated_mid_mdat"] = truncate_copy(faststart, root / "truncated_mid_mdat.mp4", 0.6)
    mkv_source = remux(write_clip(outside / "mkv_source.mp4", seed=7), outside / "mkv_source.mkv")
    files["truncated_mkv"] = truncate_copy(mkv_source, root / "truncated.mkv", 0.6)
    files["no_audio"] = write_clip(root / "no_audio.mp4", seed=8, audio_streams=0)
    files["no_video"] = write_clip(root / "no_video.mp4", seed=9, video_streams=0)
    files["silent_audio"] = write_clip(root / "silent_audio.mp4", seed=10, silent=True)
    files["static_video"] = write_clip(root / "static_video.mp4", seed=11, moving=False)
    files["low_sample_rate"] = write_clip(root / "low_sample_rate.mp4", seed=12, sample_rate=8000)
    files["too_short"] = write_clip(root / "too_short.mp4", seed=13, seconds=0.6)
    files["low_fps"] = write_clip(root / "low_fps.mp4", seed=14, fps=5)
    files["tiny_resolution"] = write_clip(root / "tiny_resolution.mp4", seed=15, width=32, height=32)
    files["exact_duplicate"] = Path(shutil.copyfile(files["good_a"], root / "zz_copy_of_good_a.mp4"))
    files["remuxed_duplicate"] = remux(files["good_b"], root / "zz_good_b_remuxed.mkv")
    target = write_clip(outside / "elsewhere.mp4", seed=16)
    files["symlink_outside"] = root / "link_to_elsewhere.mp4"
    os.symlink(target, files["symlink_outside"])
    return files


def write_with_ffmpeg(path: str | Path, *args: str) -> Path:
    """A file encoded by the ffmpeg command line (formats PyAV's writer is awkward for: MPEG-PS, audio-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(path)], check=True, timeout=60)
    return path


def write_mpeg_ps(path: str | Path, seconds: float = 2.0) -> Path:
    """An .mpg: MPEG-1 video and MP2 audio in an MPEG program stream, as old camcorders and archives have."""
    return write_with_ffmpeg(path, "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=25:duration={seconds}",
                             "-f", "lavfi", "-i", f"sine=f=440:sample_rate=16000:duration={seconds}",
                             "-c:v", "mpeg1video", "-c:a", "mp2")


def write_audio_only_m4a(path: str | Path, seconds: float = 2.0) -> Path:
    return write_with_ffmpeg(path, "-f", "lavfi", "-i", f"sine=f=440:sample_rate=16000:duration={seconds}",
                             "-c:a", "aac")
