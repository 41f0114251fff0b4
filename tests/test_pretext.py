"""Pair sampling, epoch order and pair decoding (avssl_core.pretext) on the real tiny clips."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import torchaudio
from torch.utils.data import DataLoader

from avssl_core.errors import DataError
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import PairDataset, batch_size_of, collate_skipping_failures
from avssl_core.pretext.epoch_order import PAD_INDEX, ResumableDistributedSampler
from avssl_core.pretext.sampling import PairSampler
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairKind, PairSpec
from avssl_core.train.workers import start_dataloader_worker, worker_start_method

ALL_KINDS = NegativeMix(easy=0.25, hard=0.25, superhard=0.25, shifted=0.25)


def spec_with(mix: NegativeMix = ALL_KINDS, **fields) -> PairSpec:
    fields.setdefault("video_frames", 25)
    fields.setdefault("audio_seconds", 1.0)
    return PairSpec(curriculum=(CurriculumStage(0, mix),), **fields)


@pytest.fixture(scope="module")
def index(tiny_clips) -> ClipIndex:
    return ClipIndex.from_csv(tiny_clips)


def draw(sampler: PairSampler, epoch: int = 0, n: int | None = None):
    return [sampler.recipe(epoch, i) for i in range(n or sampler.samples_per_epoch)]


# -- clip index -------------------------------------------------------------------------------------

def test_clip_index_groups_videos_and_resolves_paths(index, tiny_clips, tmp_path):
    assert len(index) == 16 and index.num_videos == 8
    for g in range(index.num_videos):
        rows = index.rows_of_video(g)
        assert len(set(index.video_id[rows])) == 1 and list(index.start_s[rows]) == [0.0, 3.0]
    assert all(Path(p).is_file() for p in [*index.video_path, *index.audio_path])

    table = pd.read_csv(tiny_clips)
    table["video_path"] = [str(Path(p).relative_to(tiny_clips.parent)) for p in table["video_path"]]
    table.to_csv(tmp_path / "relative.csv", index=False)
    relative = ClipIndex.from_csv(tmp_path / "relative.csv", root=tiny_clips.parent)
    assert list(relative.video_path) == list(index.video_path)


def test_clip_index_errors_name_the_file(tiny_clips, tmp_path):
    table = pd.read_csv(tiny_clips)
    table.drop(columns=["num_samples"]).to_csv(tmp_path / "no_col.csv", index=False)
    with pytest.raises(DataError, match=r"no_col\.csv.*num_samples"):
        ClipIndex.from_csv(tmp_path / "no_col.csv")
    with pytest.raises(DataError, match=r"index\.csv.*split.*val"):
        ClipIndex.from_csv(tiny_clips, splits="val")


# -- pair recipes -----------------------------------------------------------------------------------

def test_recipes_depend_only_on_seed_epoch_and_index(index):
    a = PairSampler(index, spec_with(), seed=7, samples_per_epoch=64)
    b = PairSampler(index, spec_with(), seed=7, samples_per_epoch=64)
    forwards = draw(a, epoch=3)
    backwards = [b.recipe(3, i) for i in reversed(range(64))][::-1]  # another order, another instance
    assert forwards == backwards
    assert draw(a, epoch=4) != forwards
    assert draw(PairSampler(index, spec_with(), seed=8, samples_per_epoch=64), epoch=3) != forwards
    assert [r.video_row for r in forwards] == [i % 16 for i in range(64)]  # anchor = i % num_clips


@pytest.mark.parametrize("video_fps,video_frames,audio_seconds",
                         [(None, 25, 1.0), (None, 16, 2.0), (7.5, 8, 0.96)])
def test_positive_windows_share_their_centre(index, video_fps, video_frames, audio_seconds):
    spec = spec_with(video_fps=video_fps, video_frames=video_frames, audio_seconds=audio_seconds)
    sampler = PairSampler(index, spec, seed=0, samples_per_epoch=400)
    positives = [r for r in draw(sampler) if r.kind == PairKind.POSITIVE]
    assert len(positives) > 100
    for r in positives:
        assert r.label == 1 and r.audio_row == r.video_row
        video, audio = sampler.video_interval_s(r), sampler.audio_interval_s(r)
        assert abs(sum(video) / 2 - sum(audio) / 2) <= 0.5 / 25
        assert audio[1] - audio[0] == pytest.approx(audio_seconds)
        assert r.frame_indices[-1] < 75
    if video_fps == 7.5:  # frames picked by timestamp: k/7.5 s -> frame floor(k * 25 / 7.5)
        r = positives[0]
        assert np.diff(r.frame_indices).tolist() == [3, 3, 4, 3, 3, 4, 3]


def test_negative_kinds_are_where_they_should_be(index):
    spec = spec_with()
    sampler = PairSampler(index, spec, seed=3, samples_per_epoch=2000)
    recipes = draw(sampler)
    by_kind = {kind: [r for r in recipes if r.kind == kind] for kind in PairKind}
    assert all(len(v) > 150 for v in by_kind.values()) and not sampler.fallback_counts
    vid = index.video_id
    for r in by_kind[PairKind.EASY]:
        assert r.label == 0 and vid[r.audio_row] != vid[r.video_row]
    other_clip = 0
    for r in by_kind[PairKind.HARD]:
        (v0, v1), (a0, a1) = sampler.video_interval_s(r), sampler.audio_interval_s(r)
        assert vid[r.audio_row] == vid[r.video_row]
        assert max(a0 - v1, v0 - a1) >= spec.hard_negative_gap_s - 1e-6
        other_clip += r.audio_row != r.video_row
    assert 0 < other_clip < len(by_kind[PairKind.HARD])  # both this clip and the video's other clip serve
    for r in by_kind[PairKind.SUPERHARD]:
        (v0, v1), (a0, a1) = sampler.video_interval_s(r), sampler.audio_interval_s(r)
        assert r.audio_row == r.video_row
        assert min(v1, a1) - max(v0, a0) == pytest.approx(spec.superhard_overlap * (v1 - v0), abs=1 / 16000)
    for r in by_kind[PairKind.SHIFTED]:
        v0, v1 = sampler.video_interval_s(r)
        positive_audio_start = (v0 + v1) / 2 - spec.audio_seconds / 2
        assert vid[r.audio_row] == vid[r.video_row]
        assert 2.0 <= abs(r.shift_s) <= 5.8
        moved = sampler.audio_interval_s(r)[0] - positive_audio_start
        assert moved == pytest.approx(r.shift_s, abs=0.5 / 16000 + 1e-9)
    shifts = np.array([r.shift_s for r in by_kind[PairKind.SHIFTED]])
    assert (shifts > 0).any() and (shifts < 0).any()


def test_impossible_hard_negatives_become_counted_easy_ones(index):
    sampler = PairSampler(index, spec_with(NegativeMix(easy=0.0, hard=1.0), hard_negative_gap_s=5.5),
                          seed=0, samples_per_epoch=200)
    negatives = [r for r in draw(sampler) if r.label == 0]
    assert negatives and all(r.kind == PairKind.EASY and r.fallback_from == PairKind.HARD for r in negatives)
    assert sampler.fallback_counts[PairKind.HARD] == len(negatives)
    assert all(index.video_id[r.audio_row] != index.video_id[r.video_row] for r in negatives)


def test_curriculum_brings_in_hard_negatives_at_its_stage(index):
    spec = PairSpec(video_frames=25, audio_seconds=1.0, curriculum=(
        CurriculumStage(0, NegativeMix()), CurriculumStage(2, NegativeMix(easy=0.75, hard=0.25))))
    sampler = PairSampler(index, spec, seed=11, samples_per_epoch=4000)
    before = Counter(r.kind for r in draw(sampler, epoch=1))
    after = Counter(r.kind for r in draw(sampler, epoch=2))
    assert before[PairKind.HARD] == 0
    for counts in (before, after):
        assert abs(counts[PairKind.POSITIVE] / 4000 - 0.5) < 0.05
    negatives = 4000 - after[PairKind.POSITIVE]
    assert abs(after[PairKind.HARD] / negatives - 0.25) < 0.05
    assert after[PairKind.HARD] + after[PairKind.EASY] == negatives


# -- epoch order ------------------------------------------------------------------------------------

@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_samples", [12, 13])
def test_epoch_order_covers_every_sample_once_across_ranks(world_size, num_samples):
    shards = [list(ResumableDistributedSampler(num_samples, seed=5, epoch=1, rank=r, world_size=world_size,
                                               batch_size=2)) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    real = [i for s in shards for i in s if i != PAD_INDEX]
    assert sorted(real) == list(range(num_samples))  # each once, none twice
    assert sum(s.count(PAD_INDEX) for s in shards) == -num_samples % world_size
    assert real != sorted(real)  # shuffled
    other_epoch = list(ResumableDistributedSampler(num_samples, seed=5, epoch=2, batch_size=2))
    assert other_epoch != list(ResumableDistributedSampler(num_samples, seed=5, epoch=1, batch_size=2))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_epoch_order_resumes_at_a_batch_offset(world_size):
    for rank in range(world_size):
        common = dict(seed=9, epoch=4, rank=rank, world_size=world_size, batch_size=3)
        full = ResumableDistributedSampler(23, **common)
        resumed = ResumableDistributedSampler(23, **common, start_step=2)
        assert list(resumed) == list(full)[6:] and len(resumed) == len(list(resumed))
        resumed.set_epoch(5)  # the offset belongs to the interrupted epoch only
        full.set_epoch(5)
        assert list(resumed) == list(full)
    # a run resumed on another world size (12 samples done = 2 steps of 2 x 3) visits exactly the unseen ones
    seen = [i for r in range(2) for i in list(ResumableDistributedSampler(
        23, seed=9, epoch=4, rank=r, world_size=2, batch_size=3))[:6]]
    rest = [i for r in range(3) for i in ResumableDistributedSampler(
        23, seed=9, epoch=4, rank=r, world_size=3, batch_size=2, start_step=2)]
    assert sorted(seen + [i for i in rest if i != PAD_INDEX]) == list(range(23))


# -- decoding -----------------------------------------------------------------------------------------

def pyav_frame(path: str, number: int) -> np.ndarray:
    with av.open(path) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k == number:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame {number}")


def wav_samples(path: str, channels: int) -> np.ndarray:
    data = Path(path).read_bytes()
    assert data[36:40] == b"data"  # plain 44-byte header, as clip_writers writes it
    return np.frombuffer(data[44:], dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768


@pytest.mark.parametrize("audio_channels,audio_sample_rate", [(1, None), (2, None), (1, 8000)])
def test_dataset_decodes_the_recipe_exactly(index, audio_channels, audio_sample_rate):
    spec = spec_with(audio_channels=audio_channels, audio_sample_rate=audio_sample_rate)
    sampler = PairSampler(index, spec, seed=2, samples_per_epoch=16)
    dataset = PairDataset(sampler, epoch=1)
    for i in (0, 5):
        sample, recipe = dataset[i], sampler.recipe(1, i)
        rate = audio_sample_rate or 16000
        assert sample["video"].dtype == torch.uint8 and sample["video"].shape == (25, 64, 64, 3)
        assert sample["audio"].dtype == torch.float32 and sample["audio"].shape == (audio_channels, rate)
        assert (sample["label"], sample["kind"], sample["index"]) == (recipe.label, int(recipe.kind), i)
        row = recipe.video_row  # the anchor clip, and the source video it was cut from
        assert sample["clip"] == row and sample["source"] == sampler.index.video_group[row]
        video_path = sampler.index.video_path[recipe.video_row]
        for k in (0, 24):
            assert np.array_equal(sample["video"][k].numpy(), pyav_frame(video_path, recipe.frame_indices[k]))
        stereo = wav_samples(sampler.index.audio_path[recipe.audio_row], 2)
        window = stereo[recipe.audio_start_sample: recipe.audio_start_sample + recipe.audio_num_samples].T
        expected = window.mean(axis=0, keepdims=True) if audio_channels == 1 else window
        if audio_sample_rate is None:
            assert np.array_equal(sample["audio"].numpy(), expected)
        else:  # the same window, resampled by torchaudio
            resampled = torchaudio.functional.resample(torch.from_numpy(expected), 16000, audio_sample_rate)
            assert torch.allclose(sample["audio"], resampled[:, :rate], atol=1e-6)


def identity_plus_mean(sample: dict) -> dict:
    """A picklable preprocess, to check it runs in the workers."""
    return {**sample, "video_mean": sample["video"].float().mean()}


def test_dataloader_workers_give_the_same_batches(index):
    sampler = PairSampler(index, spec_with(), seed=4, samples_per_epoch=12)
    dataset = PairDataset(sampler, preprocess=identity_plus_mean, epoch=2)
    order = ResumableDistributedSampler(12, seed=4, epoch=2, batch_size=4)

    def batches(**kwargs):
        loader = DataLoader(dataset, batch_size=4, sampler=order, collate_fn=collate_skipping_failures,
                            **kwargs)
        return list(loader)

    serial = batches(num_workers=0)  # also leaves open decoders in this process for forked workers to inherit
    # Forked workers, unless this process runs other threads (a flow-run test before this one leaves
    # Prefect's): forking then could deadlock, so the workers start as the trainer's would.
    forked = batches(num_workers=2, multiprocessing_context=worker_start_method(2) or "fork",
                     worker_init_fn=start_dataloader_worker)
    assert len(serial) == len(forked) == 3
    for one, other in zip(serial, forked, strict=True):
        assert one["_failed"]["num_failed"] == 0 and batch_size_of(one) == 4
        for key in ("video", "audio", "label", "kind", "index", "video_mean"):
            assert torch.equal(one[key], other[key])
    assert sorted(torch.cat([b["index"] for b in serial]).tolist()) == list(range(12))
    # What spawn/forkserver workers receive: a pickled copy (spawning real ones costs ~10 s on 2 cores).
    copy = pickle.loads(pickle.dumps(dataset))
    assert not copy.frames._decoders
    for key in ("video", "audio", "video_mean"):
        assert torch.equal(copy[order.positions()[0]][key], serial[0][key][0])


def random_draw(sample: dict) -> dict:
    """A stand-in augmentation: one draw from torch's RNG, as random crops and flips make."""
    return {"draw": torch.rand(()), "index": sample["index"]}


def test_augmentation_depends_on_the_item_not_on_what_came_before(index):
    # A resumed epoch restarts its DataLoader workers: item i must get the same augmentation whether
    # it is the first item a worker makes or the hundredth, and different items different draws.
    dataset = PairDataset(PairSampler(index, spec_with(), seed=5), preprocess=random_draw, epoch=1)
    first = dataset[3]["draw"]
    for i in (0, 7, 11):
        dataset[i]
    assert torch.equal(dataset[3]["draw"], first)
    draws = {float(dataset[i]["draw"]) for i in range(len(dataset))}
    assert len(draws) == len(dataset)
    assert not torch.equal(dataset[(2, 3)]["draw"], first)  # another epoch, another draw
    # The caller's own stream (the training process when num_workers=0) is left as it was.
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dataset[4]
    assert torch.equal(torch.rand(3), expected)


def test_a_corrupt_clip_is_skipped_and_reported(index, tiny_clips, tmp_path):
    table = pd.read_csv(tiny_clips)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00garbage, not an mp4" * 500)
    table.loc[0, "video_path"] = str(broken)
    table.to_csv(tmp_path / "index.csv", index=False)
    broken_index = ClipIndex.from_csv(tmp_path / "index.csv")
    sampler = PairSampler(broken_index, spec_with(), seed=0, samples_per_epoch=16)
    broken_row = int(np.flatnonzero(sampler.index.video_path == str(broken))[0])
    dataset = PairDataset(sampler)
    items = [dataset[i] for i in (broken_row, (broken_row + 1) % 16, PAD_INDEX)]
    batch = collate_skipping_failures(items + [None])
    assert batch_size_of(batch) == 1 and batch["index"].tolist() == [(broken_row + 1) % 16]
    report = batch["_failed"]
    assert report["num_failed"] == 2 and report["failed"][0] == str(broken)
    assert report["indices"][0] == broken_row
    assert "video decode failed" in report["reasons"][0]
    assert dataset.failures[0].path == str(broken)
    empty = collate_skipping_failures([items[0]])
    assert batch_size_of(empty) == 0 and empty["_failed"]["num_failed"] == 1


def test_frame_reader_reopens_decoders_inherited_across_a_fork(index):
    from avssl_core.pretext.decode import VideoFrameReader

    reader = VideoFrameReader(capacity=2)
    path = str(index.video_path[0])
    first = reader.read(path, [0, 1])
    inherited = reader._decoders[path]
    assert reader._decoder(path) is inherited  # reused within a process
    reader._owner_pid = -1  # as seen from a forked child
    assert torch.equal(reader.read(path, [0, 1]), first) and reader._decoders[path] is not inherited
    for row in (1, 2):  # least recently used decoders are closed beyond capacity
        reader.read(str(index.video_path[row]), [0])
    assert list(reader._decoders) == [str(index.video_path[1]), str(index.video_path[2])]
