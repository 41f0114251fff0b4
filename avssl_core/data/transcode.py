"""Cut one source video into fixed-length clips in a single streaming pass (PyAV).

The source is opened once and its best video stream and best audio stream are decoded together in file
order. Video goes to constant frame rate by presentation time (:mod:`avssl_core.data.frame_rate`), is
scaled to the target short side and converted to 8-bit yuv420p in one swscale call, and streams into
the current clip's H.264 encoder. Audio goes through one ``av.AudioResampler`` (target rate, s16,
channels kept; more than two channels are downmixed to stereo with libswresample's standard matrix,
which folds centre and surround channels into left/right) and is placed on a sample timeline by its
decoded pts (:mod:`avssl_core.data.audio_timeline`).

Time 0 is the first video frame (the video stream's start time): clip ``k`` covers
``[start + k * clip_seconds, start + (k + 1) * clip_seconds)``; its frame ``i`` is the source frame on
screen at ``clip_start + i / fps`` and its audio is exactly ``round(clip_seconds * sample_rate)``
samples cut at the same instant. AAC encoder priming is handled by FFmpeg (edit lists / skip
samples), which shows up in decoded pts; because audio is placed by those pts and never by counting
from the first packet, audio and video stay aligned to well within one frame.

Each clip is written as soon as both its video and its audio are complete; nothing longer than one
clip is held, so memory does not grow with the video's length. A tail shorter than a clip is dropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from avssl_core.data.audio_timeline import SampleTimeline
from avssl_core.data.clip_writers import ClipVideoWriter, output_size, write_wav
from avssl_core.data.frame_rate import ConstantRateSampler
from avssl_core.data.ordered_worker import OrderedWorker
from avssl_core.data.probe import open_source
from avssl_core.errors import DataError

log = logging.getLogger(__name__)

# Seek this far before a requested start so the audio packets of the first clip are surely read too
# (containers interleave audio and video only approximately) and decoders have settled.
SEEK_MARGIN_S = 1.0
# A video stream that ends this much earlier than its container declares is truncated or corrupt.
TRUNCATION_TOLERANCE_S = 1.0
# Frames queued for the encoder thread at most (small: they are already scaled to the clip size).
ENCODE_BACKLOG_FRAMES = 16
# Audio pts rounding that is ignored (see SampleTimeline); well under one video frame.
AUDIO_JITTER_S = 0.002


class TranscodeError(DataError):
    """A source cannot be segmented; the message names the file and the reason."""


@dataclass(frozen=True)
class SegmentParams:
    """What a clip looks like. Everything here changes the output files (see params_key)."""

    clip_seconds: float
    fps: int
    short_side: int
    sample_rate: int
    keyframe_interval: int
    crf: int
    preset: str
    threads: int = 1  # x264 threads; changes speed, not what the clip shows
    decode_threads: int = 0  # 0: FFmpeg picks

    def __post_init__(self) -> None:
        frames = self.clip_seconds * self.fps
        if self.clip_seconds <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"clip_seconds={self.clip_seconds} must be a positive whole number of frames at fps={self.fps}"
            )
        if self.short_side < 2 or self.short_side % 2:
            raise ValueError(f"short_side={self.short_side} must be even (4:2:0 chroma) and at least 2")
        if self.keyframe_interval < 1 or self.sample_rate < 1 or self.fps < 1:
            raise ValueError("keyframe_interval, sample_rate and fps must be positive")

    @property
    def frames_per_clip(self) -> int:
        return round(self.clip_seconds * self.fps)

    @property
    def samples_per_clip(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def clip_start_sample(self, k: int) -> int:
        # From k * clip_seconds, not k * samples_per_clip, so clip starts never drift from the video.
        return round(k * self.clip_seconds * self.sample_rate)

    def params_key(self) -> dict:
        """The parameters that define the clips' content (thread counts excluded: speed only)."""
        key = asdict(self)
        key.pop("threads")
        key.pop("decode_threads")
        return key


@dataclass
class ClipInfo:
    index: int  # k: clip number within the video
    start_s: float  # in the source, seconds from its first video frame
    end_s: float
    video_path: Path
    audio_path: Path
    num_frames: int
    num_samples: int
    width: int
    height: int
    sample_rate: int
    audio_channels: int
    fps: int


@dataclass
class SegmentResult:
    clips: list[ClipInfo] = field(default_factory=list)
    usable_s: float = 0.0  # seconds from the segment start that had both video and audio
    discarded_tail_s: float = 0.0
    source_width: int = 0
    source_height: int = 0
    source_fps: float = 0.0
    inserted_silence_s: float = 0.0


def clip_id_for(video_id: str, k: int) -> str:
    return f"{video_id}_{k:05d}"


def segment_video(
    source: str | Path,
    out_dir: str | Path,
    video_id: str,
    params: SegmentParams,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    on_clip: Callable[[ClipInfo], None] | None = None,
    audio_stream_index: int | None = None,
) -> SegmentResult:
    """Segment ``source`` into ``out_dir/<clip_id>.mp4`` + ``.wav``; ``on_clip`` runs as each clip completes.

    Raises TranscodeError if the source is unusable (FFmpeg errors are wrapped, naming the file); clips
    finished before a failure stay on disk, the clip in progress is discarded.
    ``audio_stream_index`` (the file's stream index) names the audio stream; None: FFmpeg's best one.
    """
    source = Path(source)
    job = None
    try:
        with open_source(source) as container:
            job = _SegmentJob(container, source, Path(out_dir), video_id, params, start_s, end_s, on_clip,
                              audio_stream_index)
            try:
                return job.run()
            finally:
                job.close()
    except av.error.FFmpegError as exc:
        # FFmpeg's messages name the failing call, not the file; say which file and how far it got.
        where = f" after {job.video_end_s + job.start_s:.2f} s of video" if job and job.video_end_s else ""
        raise TranscodeError(f"{source}: cannot decode{where}: {exc}") from exc


class _SegmentJob:
    """State of one streaming pass: the clip being encoded, the audio timeline, completed halves."""

    def __init__(self, container, source, out_dir, video_id, params, start_s, end_s, on_clip,
                 audio_stream_index=None):
        self.container = container
        self.source = source
        self.out_dir = out_dir
        self.video_id = video_id
        self.p = params
        self.on_clip = on_clip
        self.video = container.streams.best("video")
        # The audio stream validate checked (probe's choice, e.g. the 16 kHz track beside an 8 kHz default).
        self.audio = (next((s for s in container.streams.audio if s.index == audio_stream_index), None)
                      if audio_stream_index is not None else container.streams.best("audio"))
        if self.video is None:
            raise TranscodeError(f"{source}: no video stream")
        if self.audio is None:
            raise TranscodeError(f"{source}: no audio stream")
        self.start_s = max(0.0, start_s or 0.0)
        self.end_s = end_s
        if end_s is not None and end_s <= self.start_s:
            raise TranscodeError(f"{source}: end_s={end_s} is not after start_s={self.start_s}")
        # Known up front only when the caller bounds the segment; otherwise found at end of file.
        self.max_clips = (
            math.floor((end_s - self.start_s) / params.clip_seconds + 1e-9) if end_s is not None else None
        )
        if self.max_clips == 0:
            raise TranscodeError(f"{source}: segment [{self.start_s}, {end_s}] s is shorter than one clip")
        vs = self.video
        self.origin_s = float(vs.start_time * vs.time_base) if vs.start_time is not None else None
        self.sampler: ConstantRateSampler = ConstantRateSampler(params.fps)
        # x264 runs in a background thread, fed in order (see OrderedWorker); a clip's video counts as
        # done only once its finish() has run there.
        self.encoder = OrderedWorker(max_backlog=ENCODE_BACKLOG_FRAMES, name="x264")
        self.writer: ClipVideoWriter | None = None  # the clip whose frames are being queued
        self.unfinished_writers: set[ClipVideoWriter] = set()
        self.video_done: set[int] = set()  # clips whose mp4 is complete
        self.audio_done: set[int] = set()  # clips whose wav is complete
        self.reported: set[int] = set()  # complete clips handed to on_clip
        self.next_audio_clip = 0
        self.video_end_s: float | None = None  # end of the last decoded frame, segment time
        self.video_finished = False  # all wanted output frames emitted
        self.resampler: av.AudioResampler | None = None
        self.timeline: SampleTimeline | None = None
        self.out_channels = 0
        self.size: tuple[int, int] | None = None
        self.scaled_cache: tuple[object, av.VideoFrame] | None = None  # (source frame, scaled copy)
        # One reformatter for the whole pass: it keeps its swscale context, which VideoFrame.reformat
        # would rebuild (filter tables and all) for every frame, at several times the cost of scaling.
        self.reformatter = VideoReformatter()
        self.result = SegmentResult()

    # -- driving loop -----------------------------------------------------------------------------

    def run(self) -> SegmentResult:
        vs, as_ = self.video, self.audio
        vs.codec_context.thread_type = "AUTO"
        vs.codec_context.thread_count = self.p.decode_threads
        self.result.source_width = vs.codec_context.width
        self.result.source_height = vs.codec_context.height
        rate = vs.average_rate or vs.guessed_rate
        self.result.source_fps = float(rate) if rate else 0.0
        if self.start_s > SEEK_MARGIN_S:
            self._seek(self.start_s - SEEK_MARGIN_S)
        reached_eof = True
        for packet in self.container.demux(vs, as_):
            for frame in packet.decode():
                if packet.stream.index == vs.index:
                    self._on_video_frame(frame)
                else:
                    self._on_audio_frame(frame)
            self.encoder.poll()
            if self._all_wanted_clips_submitted():
                reached_eof = False  # stopped early at end_s
                break
        if reached_eof:
            self._on_end_of_file()
        self.encoder.drain()
        self._pair_finished_clips()
        return self._summarize(reached_eof)

    def _seek(self, to_s: float) -> None:
        origin = self.origin_s or 0.0
        target = int((origin + to_s) / self.video.time_base)
        self.container.seek(target, stream=self.video, backward=True, any_frame=False)

    def _all_wanted_clips_submitted(self) -> bool:
        return self.max_clips is not None and self.video_finished and self.next_audio_clip >= self.max_clips

    # -- video ------------------------------------------------------------------------------------

    def _on_video_frame(self, frame: av.VideoFrame) -> None:
        if frame.pts is None:
            raise TranscodeError(f"{self.source}: video frame without a timestamp")
        if self.origin_s is None:
            self.origin_s = float(frame.time)
        t = float(frame.time) - self.origin_s - self.start_s
        duration = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
        self.video_end_s = t + (duration or self._nominal_frame_s())
        if self.video_finished:
            return
        for index, shown in self.sampler.push(frame, t):
            self._emit(index, shown)

    def _nominal_frame_s(self) -> float:
        rate = self.result.source_fps
        return 1.0 / rate if rate else 1.0 / self.p.fps

    def _emit(self, index: int, frame: av.VideoFrame) -> None:
        k, i = divmod(index, self.p.frames_per_clip)
        if self.max_clips is not None and k >= self.max_clips:
            self.video_finished = True
            return
        if self.writer is None:
            self._open_clip(k, frame)
        self.encoder.submit(self.writer.write, self._scaled(frame))
        if i == self.p.frames_per_clip - 1:
            writer, self.writer = self.writer, None
            self.encoder.submit(writer.finish, then=lambda: self._video_clip_done(k, writer))
            if self.max_clips is not None and k == self.max_clips - 1:
                self.video_finished = True

    def _video_clip_done(self, k: int, writer: ClipVideoWriter) -> None:
        self.unfinished_writers.discard(writer)
        self.video_done.add(k)
        self._pair_finished_clips()

    def _scaled(self, frame: av.VideoFrame) -> av.VideoFrame:
        # A duplicated source frame is scaled once; the scaled copy is re-encoded with a new pts.
        if self.scaled_cache is None or self.scaled_cache[0] is not frame:
            w, h = self.size
            scaled = self.reformatter.reformat(
                frame, width=w, height=h, format="yuv420p", interpolation="AREA"
            )
            self.scaled_cache = (frame, scaled)
        return self.scaled_cache[1]

    def _open_clip(self, k: int, frame: av.VideoFrame) -> None:
        if self.size is None:
            sar = self.video.codec_context.sample_aspect_ratio
            self.size = output_size(frame.width, frame.height, self.p.short_side, sar if sar else None)
        w, h = self.size
        self.writer = ClipVideoWriter(
            self._clip_path(k, ".mp4"),
            width=w,
            height=h,
            fps=self.p.fps,
            crf=self.p.crf,
            preset=self.p.preset,
            keyframe_interval=self.p.keyframe_interval,
            threads=self.p.threads,
        )
        self.unfinished_writers.add(self.writer)

    def close(self) -> None:
        """Stop the encoder thread; discard any clip whose mp4 is not finished (no file under its name)."""
        self.encoder.close()
        for writer in self.unfinished_writers:
            writer.abort()
        self.unfinished_writers.clear()
        self.writer = None

    # -- audio ------------------------------------------------------------------------------------

    def _on_audio_frame(self, frame: av.AudioFrame) -> None:
        if frame.pts is None:
            raise TranscodeError(f"{self.source}: audio frame without a timestamp")
        if self.resampler is None:
            channels = frame.layout.nb_channels
            self.out_channels = 1 if channels == 1 else 2
            layout = "mono" if self.out_channels == 1 else "stereo"
            self.resampler = av.AudioResampler(format="s16", layout=layout, rate=self.p.sample_rate)
            self.timeline = SampleTimeline(self.out_channels, round(AUDIO_JITTER_S * self.p.sample_rate))
        self._place(self.resampler.resample(frame))

    def _place(self, frames: list[av.AudioFrame]) -> None:
        origin = self.origin_s or 0.0  # audio before the first video frame: origin known from the stream
        rate = self.p.sample_rate
        offset = round((origin + self.start_s) * rate)
        for out in frames:
            # Resampler output pts are in 1/rate and carry the source timing, filter delay compensated.
            tb = out.time_base
            start = round(out.pts * tb.numerator * rate / tb.denominator) - offset
            samples = out.to_ndarray().reshape(-1, self.out_channels)  # packed s16: interleaved channels
            self.timeline.add(start, samples)
        self._cut_ready_audio()

    def _cut_ready_audio(self) -> None:
        n = self.p.samples_per_clip
        while self.max_clips is None or self.next_audio_clip < self.max_clips:
            k = self.next_audio_clip
            start = self.p.clip_start_sample(k)
            if self.timeline.end < start + n:
                return
            write_wav(self._clip_path(k, ".wav"), self.timeline.take(start, n), self.p.sample_rate)
            self.audio_done.add(k)
            self.next_audio_clip += 1
            self._pair_finished_clips()

    # -- end of file and pairing ------------------------------------------------------------------

    def _on_end_of_file(self) -> None:
        if self.video_end_s is None:
            raise TranscodeError(f"{self.source}: no video frame could be decoded")
        if self.resampler is None:
            raise TranscodeError(f"{self.source}: no audio frame could be decoded")
        self._check_not_truncated()
        if not self.video_finished:
            for index, shown in self.sampler.finish(self.video_end_s):
                self._emit(index, shown)
                if self.video_finished:
                    break
        self._place(self.resampler.resample(None))

    def _declared_video_end_s(self) -> float | None:
        """End of the video stream in source time as the container declares it, or None if it does not."""
        vs = self.video
        if vs.duration is None:  # Matroska/WebM often declare no per-stream duration
            return None
        return float(((vs.start_time or 0) + vs.duration) * vs.time_base)

    def _check_not_truncated(self) -> None:
        declared_end = self._declared_video_end_s()
        if declared_end is None:
            return
        decoded_end = self.video_end_s + (self.origin_s or 0.0) + self.start_s
        wanted_end = (
            declared_end if self.end_s is None else min(declared_end, (self.origin_s or 0.0) + self.end_s)
        )
        if decoded_end < wanted_end - TRUNCATION_TOLERANCE_S:
            raise TranscodeError(
                f"{self.source}: video stream ends at {decoded_end:.2f} s but the container declares "
                f"{declared_end:.2f} s: truncated or corrupt"
            )

    def _pair_finished_clips(self) -> None:
        for k in sorted((self.video_done & self.audio_done) - self.reported):
            self.reported.add(k)
            clip = self._clip_info(k)
            self.result.clips.append(clip)
            if self.on_clip is not None:
                self.on_clip(clip)

    def _clip_info(self, k: int) -> ClipInfo:
        start = self.start_s + k * self.p.clip_seconds
        w, h = self.size
        return ClipInfo(
            index=k,
            start_s=round(start, 6),
            end_s=round(start + self.p.clip_seconds, 6),
            video_path=self._clip_path(k, ".mp4"),
            audio_path=self._clip_path(k, ".wav"),
            num_frames=self.p.frames_per_clip,
            num_samples=self.p.samples_per_clip,
            width=w,
            height=h,
            sample_rate=self.p.sample_rate,
            audio_channels=self.out_channels,
            fps=self.p.fps,
        )

    def _summarize(self, reached_eof: bool) -> SegmentResult:
        # Halves whose partner never completed (audio shorter than video or the reverse) are tails.
        for k in self.video_done ^ self.audio_done:
            suffix = ".mp4" if k in self.video_done else ".wav"
            self._clip_path(k, suffix).unlink(missing_ok=True)
        if reached_eof:
            audio_end_s = (self.timeline.end / self.p.sample_rate) if self.timeline else 0.0
            usable = max(0.0, min(self.video_end_s or 0.0, audio_end_s))
            if self.end_s is not None:
                usable = min(usable, self.end_s - self.start_s)
        else:
            # Stopped once the last wanted clip was done: the rest up to end_s was not decoded, so take
            # the declared length of the video stream (when the container has one) as its bound.
            usable = self.end_s - self.start_s
            declared_end = self._declared_video_end_s()
            if declared_end is not None:
                usable = min(usable, declared_end - (self.origin_s or 0.0) - self.start_s)
        self.result.clips.sort(key=lambda c: c.index)
        self.result.usable_s = round(usable, 6)
        self.result.discarded_tail_s = round(
            max(0.0, usable - len(self.result.clips) * self.p.clip_seconds), 6
        )
        if self.timeline is not None:
            self.result.inserted_silence_s = self.timeline.inserted_silence / self.p.sample_rate
        return self.result

    def _clip_path(self, k: int, suffix: str) -> Path:
        return self.out_dir / f"{clip_id_for(self.video_id, k)}{suffix}"
