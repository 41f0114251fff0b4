"""Window geometry of a method's PairSpec: which frames and which audio samples make up one window.

The one statement of the conventions the pair sampler (sampling.py), the evaluation clips
(eval/clips.py) and the localization moments (eval/localization.py) share:

- Video: ``spec.video_frames`` frames at ``spec.video_fps`` (None: the clip's own rate). At a lower rate
  frames are picked by timestamp: frame k of the window is the source frame shown at time k/rate after
  the window's start. A window anchored on a start frame (training pairs, localization moments) takes
  ``start + frame_offsets(...)``; a window named by its centre time (evaluation clips of files at any
  rate) takes ``centred_frames(...)``.
- Audio: ``spec.audio_seconds`` centred on the video window's centre. At the clip's own rate that is
  ``native_audio_len`` samples, enough for resampling to give the spec's length.
"""

from __future__ import annotations

import math

import numpy as np

from avssl_core.pretext.spec import PairSpec


def video_rate(spec: PairSpec, fps: float) -> float:
    """Frames per second of the window for a clip at ``fps``: the spec's rate, else the clip's."""
    return spec.video_fps or fps


def video_window_s(spec: PairSpec, fps: float) -> float:
    """Seconds the video window covers for a clip at ``fps``."""
    return spec.video_frames / video_rate(spec, fps)


def frame_offsets(video_frames: int, fps: float, rate: float) -> np.ndarray:
    """Frame k of a window at ``rate`` is the clip frame shown at time k/rate: offset floor(k*fps/rate)."""
    return np.floor(np.arange(video_frames) * (fps / rate) + 1e-9).astype(np.int64)


def centred_frames(centre_s: float, spec: PairSpec, fps: float, num_frames: int) -> list[int]:
    """The frames of the video window centred at ``centre_s`` seconds of a file of ``num_frames`` frames at
    ``fps``: frame k is the one shown at (window start + k/rate), kept inside the file."""
    rate = video_rate(spec, fps)
    start = centre_s - spec.video_frames / rate / 2
    return [min(num_frames - 1, max(0, int(math.floor((start + k / rate) * fps + 1e-6))))
            for k in range(spec.video_frames)]


def centred_audio_start_s(centre_s: float, spec: PairSpec) -> float:
    """Where the audio window centred at ``centre_s`` seconds starts, in seconds."""
    return centre_s - spec.audio_seconds / 2


def native_audio_len(spec: PairSpec, clip_rate: int) -> int:
    """Samples to read at the clip's rate so that resampling yields at least the spec's window length."""
    if spec.audio_sample_rate is None or spec.audio_sample_rate == clip_rate:
        return round(spec.audio_seconds * clip_rate)
    wanted = round(spec.audio_seconds * spec.audio_sample_rate)
    return math.ceil(wanted * clip_rate / spec.audio_sample_rate)


def centred_audio_start(starts: np.ndarray, fps: float, video_window_s: float, sample_rate: int,
                        audio_len: int, rounded: bool = True) -> np.ndarray:
    """Audio start sample (clip-local) whose window is centred on the centre of the video window starting
    at each frame of ``starts``."""
    centre = starts / fps + video_window_s / 2
    exact = centre * sample_rate - audio_len / 2
    return np.round(exact).astype(np.int64) if rounded else exact
