"""pretrain.train.video_decoder=cuda: NVDEC decoding where CUDA decoding runs, else CPU decoding after one
warning naming the reason, with the very frames CPU decoding gives."""

from __future__ import annotations

import warnings

import pytest
import torch

from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.pretext import decode
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.decode import CudaDecodingUnavailable, VideoFrameReader
from avssl_core.stages.pretrain import prepare_pretraining

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(torch.cuda.is_available(), reason="tests the fallback of a machine without CUDA")]

FRAMES = [0, 3, 7, 20]


def _read_all(reader: VideoFrameReader, paths: list[str]) -> list[torch.Tensor]:
    return [reader.read(p, FRAMES) for p in paths]


def test_without_cuda_one_warning_names_the_reason_and_frames_match_cpu_decoding(tiny_clips):
    paths = [str(p) for p in ClipIndex.from_csv(tiny_clips).video_path[:3]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = VideoFrameReader(device="cuda")
        frames = _read_all(reader, paths) + _read_all(reader, paths)
    fallbacks = [w for w in caught if issubclass(w.category, CudaDecodingUnavailable)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    assert "torch.cuda.is_available() is False" in str(fallbacks[0].message)
    assert "decoding video on the CPU" in str(fallbacks[0].message)
    assert reader.device == "cpu"
    expected = _read_all(VideoFrameReader(device="cpu"), paths) * 2
    assert all(torch.equal(a, b) for a, b in zip(frames, expected, strict=True))
    assert all(f.device.type == "cpu" and f.dtype == torch.uint8 for f in frames)


def test_a_torchcodec_that_cannot_decode_on_cuda_falls_back_once(tiny_clips, monkeypatch):
    """As if a GPU were present: torchcodec's own CUDA open fails here (no device), for real."""
    monkeypatch.setattr(decode, "cuda_decoding_unavailable", lambda: None)
    paths = [str(p) for p in ClipIndex.from_csv(tiny_clips).video_path[:2]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = VideoFrameReader(device="cuda")
        assert reader.device == "cuda"  # nothing known against it yet
        frames = _read_all(reader, paths)
    fallbacks = [w for w in caught if issubclass(w.category, CudaDecodingUnavailable)]
    assert len(fallbacks) == 1 and "torchcodec could not open" in str(fallbacks[0].message)
    assert paths[0] in str(fallbacks[0].message) and reader.device == "cpu"
    expected = _read_all(VideoFrameReader(), paths)
    assert all(torch.equal(a, b) for a, b in zip(frames, expected, strict=True))


def test_the_setting_reaches_the_training_pairs(tiny_clips, tmp_path):
    cfg = load_config(None, [f"paths.clips_dir={tiny_clips.parent}", f"pretrain.out_dir={tmp_path}",
                             "pretrain.val_split=train", "pretrain.val_pairs=4", "pretrain.pairs_per_clip=1",
                             "pretrain.train.video_decoder=cuda"])
    with pytest.warns(CudaDecodingUnavailable, match="no CUDA device"):
        run = prepare_pretraining(cfg, "avc", "tiny")
    assert run.train_set.frames.device == "cpu"
    with pytest.raises(ConfigError, match="video_decoder"):
        load_config(None, ["pretrain.train.video_decoder=nvdec"])
