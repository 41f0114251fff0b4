"""Audio building blocks of the synthetic world, all vectorized over whole signals.

Object classes combine these into their sounds; ``pan`` and ``mix`` place the sounding objects in stereo.
Levels are linear amplitudes on a full scale of 1.0.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

TWO_PI = 2.0 * np.pi


def add_at(buffer: np.ndarray, start: int, waveform: np.ndarray) -> None:
    """Add ``waveform`` into ``buffer`` from sample ``start``, cutting what runs past the end."""
    if start >= len(buffer):
        return
    skip = max(0, -start)
    start = max(0, start)
    piece = waveform[skip : skip + len(buffer) - start]
    buffer[start : start + len(piece)] += piece


def decay(length: int, tau_s: float, sample_rate: int) -> np.ndarray:
    """Exponential decay envelope starting at 1."""
    return np.exp(-np.arange(length, dtype=np.float32) / np.float32(tau_s * sample_rate))


def damped_sine(freq_hz: float, tau_s: float, length_s: float, sample_rate: int) -> np.ndarray:
    """A struck resonance (wood, metal): a sine that starts at full amplitude and dies away."""
    n = max(1, int(length_s * sample_rate))
    t = np.arange(n, dtype=np.float32) / sample_rate
    # Cosine phase: the strike is at full amplitude on its first sample, so the onset is crisp.
    return (np.cos(TWO_PI * freq_hz * t) * decay(n, tau_s, sample_rate)).astype(np.float32)


def noise_transient(rng: np.random.Generator, tau_s: float, length_s: float, sample_rate: int) -> np.ndarray:
    """The broadband 'tk' of a hit: white noise with a fast exponential decay."""
    n = max(1, int(length_s * sample_rate))
    return (rng.standard_normal(n).astype(np.float32) * decay(n, tau_s, sample_rate)).astype(np.float32)


def phase_from_frequency(freq_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Instantaneous phase (radians) of an oscillator whose frequency changes per sample."""
    return np.cumsum(TWO_PI * np.asarray(freq_hz, np.float64) / sample_rate)


def harmonics(phase: np.ndarray, weights) -> np.ndarray:
    """Sum of ``weights[k-1] * sin(k * phase)``: band-limited tones (no aliasing, unlike a naive saw)."""
    out = np.zeros(phase.shape, np.float32)
    for k, w in enumerate(weights, start=1):
        if w:
            out += np.float32(w) * np.sin(k * phase).astype(np.float32)
    return out


def resonator(x: np.ndarray, centre_hz: float, bandwidth_hz: float, sample_rate: int) -> np.ndarray:
    """Two-pole resonance (a formant) normalized to unit gain at its centre."""
    r = np.exp(-np.pi * bandwidth_hz / sample_rate)
    w = TWO_PI * centre_hz / sample_rate
    a = [1.0, -2.0 * r * np.cos(w), r * r]
    gain = abs(np.polyval(a[::-1], np.exp(-1j * w)))  # |A(e^{jw})|: the filter's gain at centre is 1/this
    return signal.lfilter([gain], a, x).astype(np.float32)


def bandpass_noise(
    rng: np.random.Generator, n: int, low_hz: float, high_hz: float, sample_rate: int
) -> np.ndarray:
    nyquist = sample_rate / 2
    high_hz = min(high_hz, 0.9 * nyquist)
    sos = signal.butter(2, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    y = signal.sosfilt(sos, rng.standard_normal(n)).astype(np.float32)
    return y / max(float(np.std(y)), 1e-9)


def constant_power_pan(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left/right gains for horizontal positions 0 (left edge) .. 1 (right edge); L^2 + R^2 = 1."""
    angle = np.clip(position, 0.0, 1.0) * (np.pi / 2)
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def pan(mono: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Mono -> (2, n) stereo, ``position`` per sample in 0..1."""
    left, right = constant_power_pan(position)
    return np.stack([mono * left, mono * right])


def hiss(rng: np.random.Generator, num_samples: int, level_dbfs: float) -> np.ndarray:
    """Independent white noise per channel at ``level_dbfs`` RMS (re full scale 1.0)."""
    rms = 10.0 ** (level_dbfs / 20.0)
    return (rng.standard_normal((2, num_samples)) * rms).astype(np.float32)


def limit_peak(stereo: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale the whole mix down (never up) so it cannot clip in the encoder."""
    top = float(np.max(np.abs(stereo))) if stereo.size else 0.0
    return stereo * np.float32(peak / top) if top > peak else stereo
