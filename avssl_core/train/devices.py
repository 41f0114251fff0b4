"""Which torch device a setting (``train.device``, ``evaluate.device``: auto | cpu | cuda) names."""

from __future__ import annotations

import torch

from avssl_core.errors import ConfigError

CHOICES = ("auto", "cpu", "cuda")


def choose_device(preference: str, setting: str, local_rank: int | None = None) -> torch.device:
    """``auto``: a GPU when torch sees one, else the CPU. ``setting`` names the parameter in errors.

    ``local_rank`` (under torchrun) picks this process's GPU; None leaves the index to torch's current
    device, as a single process does.
    """
    if preference not in CHOICES:
        raise ConfigError(f"{setting}: expected auto, cpu or cuda, got {preference!r}")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"{setting}=cuda but no CUDA device is available")
    return torch.device("cuda", None if local_rank is None else local_rank % torch.cuda.device_count())
