"""What a media file is (``probe_file``) and whether all of it decodes (``decode_stats``).

``probe_file`` reads only the container header and a few seconds of packets: it is cheap enough for the
acquire stage to run on every file. ``decode_stats`` decodes the whole file once, streaming, for the
validate stage. Neither raises on bad media: the reason lands in ``probe_error`` / ``decode_error``, so one
broken file is reported instead of stopping a run over thousands.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import av
import av.logging
import numpy as np
from av.video.reformatter import VideoReformatter

from avssl_core.data.tables import PROBE_COLUMNS

# Columns decode_stats adds; valid.csv carries them after the manifest columns.
DECODE_COLUMNS = [
    "decodable",  # decoded start to end without error, and as long as announced
    "decode_error",  # empty when decodable; else why not
    "decoded_video_s",
    "decoded_audio_s",
    "audio_rms_dbfs",  # 20*log10(RMS) over all samples of all channels; full-scale square wave = 0
    "mean_frame_diff",  # mean |difference| of consecutive small gray frames, 0-255 scale
    "content_hash",  # same decoded pictures -> same hash, whatever the container or file name
]

# Source media is opened with these FFmpeg options. Only demuxers of self-contained media files may run:
# playlist and list demuxers (hls, concat, dash, image sequences) open the files a text file names, which
# would read outside the data root behind the root check's back; nested opens may use local files only.
SOURCE_DEMUXERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpeg", "mpegts", "mpegvideo", "flv",
                   "ogg", "asf", "mxf", "nut")
SOURCE_OPEN_OPTIONS = {"format_whitelist": ",".join(SOURCE_DEMUXERS), "protocol_whitelist": "file"}


def open_source(path: str | Path):
    """Open a source video for reading, with SOURCE_OPEN_OPTIONS."""
    return av.open(str(path), options=dict(SOURCE_OPEN_OPTIONS))


HASH_CHUNK_BYTES = 1 << 20
VFR_WINDOW_S = 3.0  # timestamps of this much video tell constant from variable frame rate
VFR_MAX_PACKETS = 300
VFR_RELATIVE_TOLERANCE = 0.1  # frame intervals may differ by this share of the typical interval
SILENCE_FLOOR_DBFS = -120.0  # digital silence would be -inf; a finite floor keeps tables and JSON numeric
THUMB_SIZE = 64  # frames are compared and hashed as THUMB_SIZE x THUMB_SIZE images
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks so memory stays flat for large videos."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def unprobed_row(reason: str) -> dict[str, Any]:
    """The PROBE_COLUMNS of a file that was not (or could not be) probed, with ``reason`` as probe_error."""
    row: dict[str, Any] = dict.fromkeys(PROBE_COLUMNS)
    row.update(probe_error=reason, container="", video_codec="", pix_fmt="", audio_codec="", streams_json="[]",
               sha256="", num_video_streams=0, num_audio_streams=0)
    return row


def probe_file(path: str | Path) -> dict[str, Any]:
    """Describe one media file with exactly the PROBE_COLUMNS keys.

    Missing values are None (numbers) or "" (strings). Never raises for bad media: ``probe_error``
    says why the container could not be read ("file not found", "empty file (0 bytes)", ...). Reasons say
    what a file is (empty, text, unknown container, its size), never what it holds: the manifest, the
    quarantine list and the logs are shared with others.
    The caller decides whether the file may be read at all (avssl_core.data.roots); this function reads it.
    """
    row = unprobed_row("")
    path = Path(path)
    try:
        if not path.exists():
            return {**row, "probe_error": "file not found"}
        if not path.is_file():
            return {**row, "probe_error": "not a regular file"}
        row["size_bytes"] = path.stat().st_size
        row["sha256"] = sha256_file(path)
        if row["size_bytes"] == 0:
            return {**row, "probe_error": "empty file (0 bytes)"}
        try:
            container = _open_with_reason(path)
        except av.FFmpegError as exc:
            return {**row, "probe_error": _open_failure_reason(path, row["size_bytes"], exc)}
        with container:
            row.update(_describe_container(container))
    except OSError as exc:
        row["probe_error"] = f"cannot read file: {exc.strerror or type(exc).__name__}"
    except Exception as exc:  # a probe must report, not crash the acquire stage
        row["probe_error"] = f"probe failed: {type(exc).__name__}"
    return row


def _open_with_reason(path: Path):
    """Open a container with FFmpeg's error log switched on, so a failure carries FFmpeg's own reason.

    PyAV leaves FFmpeg's log off by default (routing it through Python is slow and has hung threaded
    decoders); opening is single-threaded, so it is on only here, captured so nothing is printed.
    """
    previous = av.logging.get_level()
    with av.logging.Capture():
        av.logging.set_level(av.logging.ERROR)
        try:
            return open_source(path)
        finally:
            av.logging.set_level(previous)


# FFmpeg's error lines name the problem ("moov atom not found"); a demuxer may quote what it read, so a
# line with quotes, or anything but short plain ASCII, is replaced by the error's generic text.
_PLAIN_FFMPEG_LINE = re.compile(r"[A-Za-z0-9 ,.:;_/()+-]{1,120}")


def _open_failure_reason(path: Path, size_bytes: int, exc: av.FFmpegError) -> str:
    log = getattr(exc, "log", None)  # (level, component, message) of FFmpeg's last error line
    line = log[2].strip() if log else ""
    detail = line if _PLAIN_FFMPEG_LINE.fullmatch(line) else (exc.strerror or type(exc).__name__)
    with open(path, "rb") as fh:
        head = fh.read(512)
    if _looks_like_text(head):
        return f"not a media file: text ({size_bytes} bytes)"
    return f"unknown container ({size_bytes} bytes): {detail}"


def _looks_like_text(head: bytes) -> bool:
    """True for UTF-8 text (notes, an HTML error page saved by a failed download), false for binary."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # invalid mid-buffer: binary; at the end: a character cut at 512 bytes
            return False
        text = head[: exc.start].decode("utf-8")
    return bool(text) and all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _describe_container(container) -> dict[str, Any]:
    videos = _video_streams(container)
    audios = list(container.streams.audio)
    if not videos and not audios:
        return {"container": container.format.name, "probe_error": "no audio or video stream",
                "streams_json": json.dumps([_stream_info(s) for s in container.streams])}
    out: dict[str, Any] = {
        "container": container.format.name,
        "duration_s": _container_duration_s(container),
        "num_video_streams": len(videos),
        "num_audio_streams": len(audios),
        "streams_json": json.dumps([_stream_info(s) for s in container.streams]),
    }
    video = pick_stream(videos)
    if video is not None:
        ctx = video.codec_context
        out.update(
            video_codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=ctx.pix_fmt or "",
            bit_depth=_bit_depth(ctx.pix_fmt),
            fps=stream_fps(video),
            fps_is_variable=_has_variable_frame_rate(container, video),
        )
    audio = pick_audio_stream(audios)
    if audio is not None:
        ctx = audio.codec_context
        out.update(audio_codec=ctx.name, audio_sample_rate=ctx.sample_rate, audio_channels=ctx.layout.nb_channels,
                   audio_stream_index=audio.index)
    return out


def _video_streams(container) -> list:
    # Cover art in mp4/mkv is a one-picture "video" stream; it is not the video.
    return [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]


def pick_stream(streams: list):
    """The stream a player would play: the first one flagged default, else the first one."""
    for stream in streams:
        if stream.disposition & av.stream.Disposition.default:
            return stream
    return streams[0] if streams else None


def pick_audio_stream(streams: list):
    """The audio stream with the highest sample rate; among equals the default one, then the first.

    A file may carry an 8 kHz default track beside a 16 kHz one: a higher rate can always be resampled
    down to ``segment.sample_rate``, a lower one cannot be recovered, so the best rate is the one to check
    and to use. Its index is recorded (``audio_stream_index``) so validate and segment use the same one.
    """
    if not streams:
        return None
    default = pick_stream(streams)
    return max(streams, key=lambda s: (s.codec_context.sample_rate or 0, s is default, -s.index))


def best_streams(container, audio_stream_index: int | None = None) -> tuple[Any, Any]:
    """(video, audio) streams that probe_file describes and decode_stats decodes; either may be None.

    ``audio_stream_index`` (the file's stream index that probe_file recorded) names the audio stream.
    """
    audios = list(container.streams.audio)
    audio = next((s for s in audios if s.index == audio_stream_index), None) if audio_stream_index is not None \
        else pick_audio_stream(audios)
    return pick_stream(_video_streams(container)), audio


def stream_fps(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def _bit_depth(pix_fmt: str | None) -> int | None:
    if not pix_fmt:
        return None
    try:
        return av.VideoFormat(pix_fmt).components[0].bits
    except (ValueError, IndexError):
        return None


def _container_duration_s(container) -> float | None:
    if container.duration is not None:
        return container.duration / av.time_base
    durations = [_stream_duration_s(s) for s in container.streams]
    durations = [d for d in durations if d is not None]
    return max(durations) if durations else None


def _stream_duration_s(stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _has_variable_frame_rate(container, stream) -> bool | None:
    """True when the intervals between the first frames' timestamps differ beyond tolerance.

    The average rate in the header cannot tell: a VFR file still has an average. Packets come in decode
    order (B-frames), so timestamps are sorted before taking differences. A difference of one tick is
    rounding (29.97 fps in a 1 ms time base alternates 33 and 34 ms), not variable rate.
    """
    if stream.time_base is None:
        return None
    pts: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            pts.append(packet.pts)
            if len(pts) >= VFR_MAX_PACKETS or (pts[-1] - pts[0]) * stream.time_base > VFR_WINDOW_S:
                break
    except av.FFmpegError:
        pass  # a damaged file: judge from the packets read so far; decode_stats reports the damage
    intervals = np.diff(np.unique(pts))
    if len(intervals) < 3:
        return None
    typical = float(np.median(intervals))
    tolerance = max(VFR_RELATIVE_TOLERANCE * typical, 1.5)
    return bool(np.any(np.abs(intervals - typical) > tolerance))


def _stream_info(stream) -> dict[str, Any]:
    ctx = stream.codec_context
    info: dict[str, Any] = {
        "index": stream.index,
        "type": stream.type,
        "codec": ctx.name if ctx is not None else "",
        "duration_s": _stream_duration_s(stream),
        "frames": stream.frames,
        "default": bool(stream.disposition & av.stream.Disposition.default),
        "language": _language_tag(stream.metadata.get("language", "")),
    }
    if stream.type == "video":
        info.update(width=ctx.width, height=ctx.height, pix_fmt=ctx.pix_fmt, fps=stream_fps(stream),
                    attached_pic=bool(stream.disposition & av.stream.Disposition.attached_pic))
    elif stream.type == "audio":
        info.update(sample_rate=ctx.sample_rate, channels=ctx.layout.nb_channels, layout=ctx.layout.name)
    return info


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})?")


def _language_tag(value: str) -> str:
    """A language code as the file states it, or "other": free text from a file is not copied into tables."""
    return value if not value or _LANGUAGE_TAG.fullmatch(value) else "other"


def decode_stats(
    path: str | Path, *, duration_tolerance_s: float = 0.5, thumb_size: int = THUMB_SIZE,
    audio_stream_index: int | None = None,
) -> dict[str, Any]:
    """Decode the chosen video and audio streams start to end and measure them (DECODE_COLUMNS keys).

    ``audio_stream_index`` is the stream probe_file chose (None: choose the same way now).

    Streaming: each frame is shrunk to a ``thumb_size`` square image, folded into running sums and
    dropped, so memory does not grow with the length of the video. ``decodable`` is False when decoding
    fails, or when a stream decodes to less than its announced duration minus ``duration_tolerance_s``
    (a truncated file whose header still announces the full length).
    """
    acc = _DecodeAccumulator(thumb_size)
    announced: dict[str, float | None] = {}  # stream kind -> duration the file claims
    try:
        container = open_source(path)
    except av.FFmpegError as exc:
        return {"decodable": False, "decode_error": f"cannot open: {exc.strerror or exc}", **acc.results()}
    try:
        with container:
            error = _decode_all(container, acc, announced, audio_stream_index)
    except av.FFmpegError as exc:
        kind = "video" if "video" in announced else "audio"
        reached = (acc.video_seconds() if kind == "video" else acc.audio_seconds()) or 0.0
        of = f" of {announced[kind]:.2f} s announced" if announced.get(kind) else ""
        error = f"decode failed after {reached:.2f} s{of}: {exc.strerror or exc}"
    except Exception as exc:  # report, do not crash the stage; the detail names the exception
        error = f"decode failed: {type(exc).__name__}: {exc}"
    if not error:
        error = _shortfall(announced, acc, duration_tolerance_s)
    return {"decodable": not error, "decode_error": error, **acc.results()}


def _decode_all(container, acc: _DecodeAccumulator, announced: dict[str, float | None],
                audio_stream_index: int | None) -> str:
    """Feed every frame of the chosen streams to ``acc``; fills ``announced``; returns an error or ""."""
    video, audio = best_streams(container, audio_stream_index)
    if video is None and audio is None:
        return "no audio or video stream"
    if video is not None:
        video.thread_type = "AUTO"  # frame + slice threads: the full decode is the slow part of validate
        acc.video_fps = stream_fps(video)
        announced["video"] = _stream_duration_s(video) or _container_duration_s(container)
    if audio is not None:
        announced["audio"] = _stream_duration_s(audio) or _container_duration_s(container)
    for packet in container.demux([s for s in (video, audio) if s is not None]):
        for frame in packet.decode():
            if packet.stream.type == "video":
                acc.add_video(frame)
            else:
                acc.add_audio(frame)
    return ""


def _shortfall(announced: dict[str, float | None], acc: _DecodeAccumulator, tolerance_s: float) -> str:
    decoded = {"video": acc.video_seconds(), "audio": acc.audio_seconds()}
    for kind, expected in announced.items():
        got = decoded[kind]
        if expected is not None and got is not None and got < expected - tolerance_s:
            return f"{kind} decodes to {got:.2f} s but the file announces {expected:.2f} s (truncated?)"
        if got is None:
            return f"{kind} stream decodes to no frames"
    return ""


class _DecodeAccumulator:
    """Running sums over decoded frames: durations, loudness, motion and a content hash."""

    def __init__(self, thumb_size: int):
        self.thumb_size = thumb_size
        # Kept for the whole file, as in transcode.py: VideoFrame.reformat would rebuild the swscale context
        # for every frame, which cost validate more than decoding did (71 ms against 39 ms for a 4 s clip).
        self.reformatter = VideoReformatter()
        self.video_fps: float | None = None
        self.num_frames = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.previous: np.ndarray | None = None
        self.diff_sum = 0.0
        self.video_hash = hashlib.sha256()
        self.num_samples = 0
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.sum_squares = 0.0
        self.num_values = 0

    def add_video(self, frame) -> None:
        # Colour goes into the hash: two clips can differ only in hue, with identical gray pictures.
        rgb = self.reformatter.reformat(frame, width=self.thumb_size, height=self.thumb_size,
                                        format="rgb24").to_ndarray()
        self.video_hash.update(np.ascontiguousarray(rgb).tobytes())
        gray = rgb.astype(np.float32) @ LUMA_WEIGHTS  # BT.601 luma, 0-255
        if self.previous is not None:
            self.diff_sum += float(np.mean(np.abs(gray - self.previous)))
        self.previous = gray
        self.num_frames += 1
        if frame.time is not None:
            self.first_time = frame.time if self.first_time is None else min(self.first_time, frame.time)
            self.last_time = frame.time if self.last_time is None else max(self.last_time, frame.time)

    def add_audio(self, frame) -> None:
        samples = _normalized_samples(frame.to_ndarray())
        self.sum_squares += float(np.square(samples, dtype=np.float64).sum())
        self.num_values += samples.size
        self.num_samples += frame.samples
        self.sample_rate = frame.sample_rate
        self.channels = frame.layout.nb_channels

    def video_seconds(self) -> float | None:
        if self.num_frames == 0:
            return None
        period = 1.0 / self.video_fps if self.video_fps else 0.0
        if self.first_time is None or self.last_time is None:
            return self.num_frames * period
        return self.last_time - self.first_time + period

    def audio_seconds(self) -> float | None:
        if self.num_samples == 0 or not self.sample_rate:
            return None
        return self.num_samples / self.sample_rate

    def _mean_frame_diff(self) -> float | None:
        if self.num_frames == 0:
            return None
        # A single picture cannot move: report it as static rather than leave the value missing.
        return self.diff_sum / (self.num_frames - 1) if self.num_frames > 1 else 0.0

    def results(self) -> dict[str, Any]:
        rms_dbfs = None
        if self.num_values:
            mean_square = self.sum_squares / self.num_values
            rms_dbfs = 10.0 * math.log10(mean_square) if mean_square > 0 else SILENCE_FLOOR_DBFS
            rms_dbfs = max(SILENCE_FLOOR_DBFS, rms_dbfs)
        # Audio enters the hash only coarsely (rate, channels): an mp4 trims the encoder's priming samples
        # through an edit list while a stream-copied mkv keeps them, so the same audio re-muxed decodes to
        # slightly different samples, whereas the pictures decode bit-exactly.
        content_hash = ""
        if self.num_frames:
            digest = self.video_hash.copy()  # results() may be called again; leave the running hash alone
            digest.update(f"|audio:{self.sample_rate}:{self.channels}".encode())
            content_hash = digest.hexdigest()
        return {
            "decoded_video_s": _rounded(self.video_seconds()),
            "decoded_audio_s": _rounded(self.audio_seconds()),
            "audio_rms_dbfs": _rounded(rms_dbfs),
            "mean_frame_diff": _rounded(self._mean_frame_diff()),
            "content_hash": content_hash,
        }


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _normalized_samples(samples: np.ndarray) -> np.ndarray:
    """Samples on a -1..1 scale whatever the decoder's sample format (float, s16, s32, u8)."""
    if samples.dtype.kind == "f":
        return samples
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    return samples.astype(np.float64) / float(np.iinfo(samples.dtype).max + 1)

