"""The registry of pretraining methods, and their parameter counts.

``python -m avssl_core.methods.registry`` prints the parameter counts of every method and preset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from avssl_core.errors import ConfigError
from avssl_core.methods.avc import AVC
from avssl_core.methods.avts import AVTS
from avssl_core.methods.base import PretrainMethod
from avssl_core.methods.cmac import CMAC
from avssl_core.methods.coattention import CoAttention

if TYPE_CHECKING:
    from avssl_core.config import Config

# name -> class, in the order front ends list them (CLI help, report, flows). Fill it with register().
METHODS: dict[str, type[PretrainMethod]] = {}


def register(cls: type[PretrainMethod]) -> type[PretrainMethod]:
    """Add ``cls`` to the registry under ``cls.name`` and return it (so it also works as a class
    decorator): a plugin or a test adds a method without editing this file, and every stage, flow and the
    report then know it by that name."""
    if not (isinstance(cls, type) and issubclass(cls, PretrainMethod)):
        raise TypeError(f"register: {cls!r} is not a PretrainMethod subclass")
    if not cls.name or not cls.PRESETS:
        raise ValueError(f"register: {cls.__name__} must set name and PRESETS")
    taken = METHODS.get(cls.name)
    if taken is not None and taken is not cls:
        raise ValueError(f"register: the method name {cls.name!r} is taken by {taken.__module__}.{taken.__qualname__}")
    METHODS[cls.name] = cls
    return cls


for _method in (AVTS, AVC, CoAttention, CMAC):
    register(_method)


def build_method(name: str, preset: str, **overrides: Any) -> PretrainMethod:
    """The method ``name`` with preset ``preset`` and hyper-parameter ``overrides``."""
    if name not in METHODS:
        raise ValueError(f"unknown pretraining method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name](preset, **overrides)


def build_pretrain_method(cfg: Config, name: str, preset: str) -> PretrainMethod:
    """The method ``name`` with preset ``preset`` and params.yaml's ``pretrain.hparams.<name>``; mistakes are
    ConfigErrors naming the parameter."""
    if name not in METHODS:
        raise ConfigError(f"pretrain.method: unknown method {name!r}; choose one of {sorted(METHODS)}")
    try:
        return build_method(name, preset, **cfg.pretrain.hparams.get(name, {}))
    except ValueError as exc:
        raise ConfigError(f"pretrain.hparams.{name}: {exc}") from exc


def _count(method: nn.Module, *submodules: str) -> int:
    """Trainable parameters (momentum (key) encoders are frozen copies, not part of the model) of the named
    top-level submodules of ``method``, or of all of it."""
    return sum(p.numel() for name, p in method.named_parameters()
               if p.requires_grad and (not submodules or name.split(".", 1)[0] in submodules))


def parameter_counts(method: PretrainMethod) -> dict[str, int]:
    """Trainable parameters of the video network (with its final FC, where the method adds one: AVTS's
    video_fc), the audio network, everything else (heads, distance calibration), and the total."""
    video = _count(method, "video_net", "video_fc")
    audio = _count(method, "audio_net")
    total = _count(method)
    return {"video": video, "audio": audio, "other": total - video - audio, "total": total}


def main() -> None:
    print(f"{'method':<12} {'preset':<7} {'video':>12} {'audio':>12} {'other':>8} {'total':>12}")
    for name, cls in METHODS.items():
        for preset in cls.PRESETS:
            c = parameter_counts(build_method(name, preset))
            print(f"{name:<12} {preset:<7} {c['video']:>12,} {c['audio']:>12,} {c['other']:>8,} {c['total']:>12,}")


if __name__ == "__main__":
    main()
