"""model.pt: one writer and one reader (avssl_core/methods/saved.py), the format byte-compatible with the
files earlier releases wrote, and every bad file a DataError that names it."""

from __future__ import annotations

import pytest
import torch

from avssl_core.errors import DataError
from avssl_core.methods.registry import build_method
from avssl_core.methods.saved import load_model, model_sha256, save_model

pytestmark = pytest.mark.timeout(120)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_then_load_gives_the_same_method_preset_hparams_and_weights(tmp_path):
    torch.manual_seed(3)
    method = build_method("avc", "tiny", lr=0.002)
    path = tmp_path / "avc" / "model.pt"
    digest = save_model(method, path)
    assert digest == model_sha256(path) and len(digest) == 64
    loaded = load_model(path, "avc")
    assert (loaded.name, loaded.preset, loaded.hparams) == ("avc", "tiny", method.hparams)
    assert _same_weights(loaded, method)
    assert _same_weights(load_model(path), method)  # without naming the method it must hold


def test_a_model_pt_written_the_old_way_loads(tmp_path):
    """Earlier releases wrote this dict with torch.save from stages/pretrain.py; those files still load."""
    torch.manual_seed(4)
    method = build_method("avts", "tiny")
    path = tmp_path / "model.pt"
    torch.save({"signature": method.signature(), "hparams": method.hparams, "state_dict": method.state_dict()},
               path)
    assert _same_weights(load_model(path, "avts"), method)


def test_bad_model_files_are_data_errors_naming_the_file(tmp_path):
    missing = tmp_path / "avc" / "model.pt"
    with pytest.raises(DataError, match=rf"{missing}: no pretrained model; run `avssl pretrain --method avc` first"):
        load_model(missing, "avc")
    with pytest.raises(DataError, match=rf"{missing}: no pretrained model$"):
        load_model(missing)

    other = tmp_path / "model.pt"
    save_model(build_method("avc", "tiny"), other)
    with pytest.raises(DataError, match=rf"{other}: holds a 'avc' model, not 'avts'"):
        load_model(other, "avts")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=rf"{garbage}: unreadable model file"):
        load_model(garbage)

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(DataError, match=rf"{foreign}: not a pretrained model \(no signature, hparams, state_dict\)"):
        load_model(foreign)

    mismatched = tmp_path / "mismatched.pt"
    method = build_method("avc", "tiny")
    torch.save({"signature": method.signature(), "hparams": method.hparams, "state_dict": {"x": torch.zeros(1)}},
               mismatched)
    with pytest.raises(DataError, match=rf"{mismatched}: its weights do not load into 'avc'"):
        load_model(mismatched)
