"""The frame store (avssl_core/data/frame_store.py): the segment stage decodes every clip once, and training
reads the same frames from it, bit for bit, as from the mp4.

On the real segmented clips of conftest's ``tiny_clips`` (8 synthetic videos, 16 clips of 3 s at 64 px):
every stored clip equals its mp4 decoded by the training reader; every method's pairs and preprocessed
samples are identical with and without the store; a missing entry falls back to the mp4 with one warning;
a corrupt or stale entry is a failed sample naming the .npy; segment rebuilds a deleted part of the store
without transcoding again, and removes it when ``segment.frame_store`` is off.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from avssl_core.config import load_config
from avssl_core.data.frame_store import FrameStoreEntryMissing, frames_dir_of, frames_path
from avssl_core.methods.registry import build_method
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import FailedSample, PairDataset
from avssl_core.pretext.decode import VideoFrameReader
from avssl_core.pretext.sampling import PairSampler
from avssl_core.stages.segment import run_segment

pytestmark = pytest.mark.timeout(180)

METHODS = ["avts", "avc", "coattention", "cmac"]


def _index(tiny_clips: Path) -> ClipIndex:
    return ClipIndex.from_csv(tiny_clips, splits=None)


def _copy_store(tiny_clips: Path, tmp_path: Path) -> Path:
    """A private copy of the session's store, to break."""
    store = tmp_path / "frames"
    shutil.copytree(frames_dir_of(tiny_clips.parent), store)
    return store


def test_segment_stores_every_clip_as_the_mp4_decodes(tiny_clips):
    index = _index(tiny_clips)
    reader = VideoFrameReader()
    store = frames_dir_of(tiny_clips.parent)
    for row in range(len(index)):
        stored = np.load(frames_path(store, index.video_id[row], index.clip_id[row]))
        decoded = reader.read(str(index.video_path[row]), range(int(index.num_frames[row])))
        assert stored.dtype == np.uint8 and stored.shape == (index.num_frames[row], index.height[row],
                                                             index.width[row], 3)
        assert torch.equal(torch.from_numpy(stored), decoded), index.clip_id[row]
    summary = json.loads((tiny_clips.parent.parent / "metrics" / "segment.json").read_text())["frame_store"]
    assert summary["enabled"] and summary["bytes"] == sum(f.stat().st_size for f in store.rglob("*.npy"))
    assert summary["clips_written"] == len(index) and summary["build_seconds"] > 0


@pytest.mark.parametrize("name", METHODS)
def test_pairs_from_the_store_are_the_pairs_decoded_from_the_mp4s(tiny_clips, name):
    method = build_method(name, "tiny")
    sampler = PairSampler(_index(tiny_clips), method.pair_spec(), seed=3, samples_per_epoch=24)
    method.fit_normalization(PairDataset(PairSampler(sampler.index, method.pair_spec(), seed=3, samples_per_epoch=4)),
                             fraction=1.0, seed=3)  # AVTS's input statistics (no-op for the others)
    plain = PairDataset(sampler, preprocess=method.preprocess(train=True))
    stored = PairDataset(sampler, preprocess=method.preprocess(train=True),
                         frame_store=frames_dir_of(tiny_clips.parent))
    for epoch in (0, 1):
        for i in range(len(plain)):
            recipe = sampler.recipe(epoch, i)
            raw_a, raw_b = plain.raw_sample(recipe), stored.raw_sample(recipe)
            assert torch.equal(raw_a["video"], raw_b["video"]) and torch.equal(raw_a["audio"], raw_b["audio"])
    # The preprocessed items too (the same seeded augmentations on the same frames).
    for i in range(4):
        a, b = plain[(1, i)], stored[(1, i)]
        for key, value in a.items():
            assert torch.equal(value, b[key]) if isinstance(value, torch.Tensor) else value == b[key], key


def test_a_missing_entry_is_decoded_from_the_mp4_after_one_warning(tiny_clips, tmp_path):
    store = _copy_store(tiny_clips, tmp_path)
    index = _index(tiny_clips)
    for row in range(len(index)):
        frames_path(store, index.video_id[row], index.clip_id[row]).unlink()
    sampler = PairSampler(index, build_method("avts", "tiny").pair_spec(), seed=0, samples_per_epoch=8)
    plain, stored = PairDataset(sampler), PairDataset(sampler, frame_store=store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [stored[i] for i in range(len(stored))]
    missing = [w for w in caught if issubclass(w.category, FrameStoreEntryMissing)]
    assert len(missing) == 1 and str(store) in str(missing[0].message)
    assert all(torch.equal(item["video"], plain[i]["video"]) for i, item in enumerate(items))


@pytest.mark.parametrize("damage", ["truncated", "stale shape", "not npy"])
def test_a_corrupt_or_stale_entry_is_a_failed_sample_naming_the_file(tiny_clips, tmp_path, damage):
    store = _copy_store(tiny_clips, tmp_path)
    index = _index(tiny_clips)
    sampler = PairSampler(index, build_method("avc", "tiny").pair_spec(), seed=0, samples_per_epoch=4)
    recipe = sampler.recipe(0, 0)
    row = recipe.video_row
    path = frames_path(store, sampler.index.video_id[row], sampler.index.clip_id[row])
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "stale shape":
        np.save(path, np.zeros((3, 8, 8, 3), dtype=np.uint8))
    else:
        path.write_bytes(b"not a numpy file")
    item = PairDataset(sampler, frame_store=store)[0]
    assert isinstance(item, FailedSample)
    assert item.path == str(path) and "rerun `avssl segment`" in item.reason


def test_segment_restores_a_deleted_part_of_the_store_and_removes_it_when_off(tiny_clips, tmp_path):
    world = tiny_clips.parent.parent
    clips = tmp_path / "clips"
    shutil.copytree(world / "clips", clips)
    shutil.copytree(frames_dir_of(world / "clips"), frames_dir_of(clips))
    index = _index(tiny_clips)
    video = str(index.video_id[0])
    shutil.rmtree(frames_dir_of(clips) / video)
    mp4 = clips / video / f"{index.clip_id[0]}.mp4"
    mtime = mp4.stat().st_mtime_ns
    base = [f"paths.validated_dir={world / 'validated'}", f"paths.clips_dir={clips}",
            f"paths.metrics_dir={tmp_path / 'metrics'}", "segment.workers=1", "segment.clip_seconds=3.0",
            "segment.short_side=64"]
    summary = run_segment(load_config(None, base))
    assert summary["num_videos_skipped"] == summary["num_videos"]  # nothing transcoded again
    assert mp4.stat().st_mtime_ns == mtime
    assert summary["frame_store"]["clips_written"] == int(np.sum(index.video_id == video))
    restored = np.load(frames_path(frames_dir_of(clips), video, index.clip_id[0]))
    assert np.array_equal(restored, np.load(frames_path(frames_dir_of(world / "clips"), video, index.clip_id[0])))

    off = run_segment(load_config(None, [*base, "segment.frame_store=false"]))
    assert not off["frame_store"]["enabled"] and off["frame_store"]["bytes"] == 0
    assert not frames_dir_of(clips).exists()


def test_only_the_splits_training_reads_are_stored(tiny_clips, tmp_path):
    """segment.frame_store_splits leaves other splits' clips (the evaluate stage's test clips) out of the
    store, and removes those a wider earlier setting stored; readers of a left-out split get no store."""
    from avssl_core.data.frame_store import configured_frames_dir

    world = tiny_clips.parent.parent
    clips = tmp_path / "clips"
    shutil.copytree(world / "clips", clips)
    shutil.copytree(frames_dir_of(world / "clips"), frames_dir_of(clips))
    base = [f"paths.validated_dir={world / 'validated'}", f"paths.clips_dir={clips}",
            f"paths.metrics_dir={tmp_path / 'metrics'}", "segment.workers=1", "segment.clip_seconds=3.0",
            "segment.short_side=64"]
    cfg = load_config(None, [*base, "segment.frame_store_splits=[val, test]"])  # every tiny video is train
    summary = run_segment(cfg)
    assert summary["num_videos_skipped"] == summary["num_videos"] and summary["frame_store"]["bytes"] == 0
    assert not any(frames_dir_of(clips).iterdir())
    assert configured_frames_dir(cfg, "train") is None and configured_frames_dir(cfg, "test") is not None
    kept = run_segment(load_config(None, [*base, "segment.frame_store_splits=[train]"]))
    assert kept["frame_store"]["clips_written"] == len(_index(tiny_clips))
