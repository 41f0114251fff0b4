"""Each method declares the pretext protocols it is measured under; device settings name themselves in errors."""

from __future__ import annotations

import pytest
import torch

from avssl_core.errors import ConfigError
from avssl_core.methods.base import PretrainMethod
from avssl_core.methods.protocols import PROTOCOLS, measure_pretext
from avssl_core.methods.registry import METHODS, build_method
from avssl_core.train.devices import choose_device

pytestmark = pytest.mark.timeout(60)


def test_every_method_declares_known_pretext_protocols():
    assert PretrainMethod.pretext_protocols == ("easy",)
    declared = {name: cls.pretext_protocols for name, cls in METHODS.items()}
    assert declared == {"avts": ("easy", "easy75_hard25"), "avc": ("easy",), "coattention": ("shifted", "easy"),
                        "cmac": ("easy",)}
    assert all(p in PROTOCOLS for protocols in declared.values() for p in protocols)


def test_an_unknown_protocol_is_refused_before_any_pair_is_drawn():
    with pytest.raises(ConfigError, match=r"avc: pretext protocols \['weird'\]; each must be one of"):
        measure_pretext(None, build_method("avc", "tiny"), ("weird",))  # the config is never read


def test_device_choice_names_the_setting(monkeypatch):
    assert choose_device("cpu", "evaluate.device") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^train\.device: expected auto, cpu or cuda, got 'tpu'$"):
        choose_device("tpu", "train.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU
    assert choose_device("auto", "train.device", local_rank=1) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^evaluate\.device=cuda but no CUDA device is available$"):
        choose_device("cuda", "evaluate.device")
