"""A preset whose frames are larger than the stored clips is refused before training, with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.resolution import stored_short_side
from avssl_core.stages.pretrain import prepare_pretraining

pytestmark = pytest.mark.timeout(120)


def _cfg(tiny_clips: Path, tmp_path: Path, *extra: str):
    return load_config(None, [f"paths.clips_dir={tiny_clips.parent}", f"pretrain.out_dir={tmp_path / 'pretrain'}",
                              "pretrain.val_split=train", "pretrain.val_pairs=4", "pretrain.pairs_per_clip=1",
                              *extra])


def test_stored_short_side_is_read_from_the_clip_index(tiny_clips):
    assert stored_short_side(ClipIndex.from_csv(tiny_clips)) == 64  # the fixture segments at 64 px


@pytest.mark.parametrize(("method", "preset", "override", "needed"), [
    ("avts", "tiny", "pretrain.hparams={avts: {short_side: 72}}", 72),
    ("avc", "paper", None, 256),  # 224 px crops from a 256 px short side
])
def test_a_preset_larger_than_the_clips_is_refused(tiny_clips, tmp_path, method, preset, override, needed):
    cfg = _cfg(tiny_clips, tmp_path, *([override] if override else []))
    with pytest.raises(ConfigError) as caught:
        prepare_pretraining(cfg, method, preset)
    message = str(caught.value)
    assert str(tiny_clips) in message  # the clips index
    assert f"{needed} px short side" in message and "64 px short side" in message
    assert f"segment.short_side={needed}" in message  # the segment setting that fixes it
    assert not (tmp_path / "pretrain").exists()  # refused before anything was written


def test_a_preset_at_the_clips_size_is_accepted(tiny_clips, tmp_path):
    cfg = _cfg(tiny_clips, tmp_path, "pretrain.hparams={avts: {short_side: 64, crop_size: 48}}")
    run = prepare_pretraining(cfg, "avts", "tiny")
    assert run.method.hparams["short_side"] == 64
