"""The data path split at the device boundary (transforms/features.py, "The split at the device boundary"):
for every method and preset, the host half in the worker plus the device half on a collated batch give the
tensors the old per-sample preprocessing gave (tests/preprocess_reference.py), bit for bit on the CPU, for
the same (seed, epoch, index)."""

from __future__ import annotations

import pickle

import preprocess_reference as reference
import pytest
import torch

from avssl_core.methods.registry import build_method
from avssl_core.pretext.dataset import augmentation_seed, collate_skipping_failures
from avssl_core.pretext.spec import PairKind
from avssl_core.transforms.features import HOST_FRAMES, batch_of_one
from avssl_core.transforms.specaugment import SpecAugment

pytestmark = pytest.mark.timeout(300)

SEED, EPOCH = 7, 3


def raw_samples(method, n: int, *, sizes: list[tuple[int, int]]) -> list[dict]:
    """Raw samples as the pair dataset yields them, cycling through frame ``sizes`` (a batch of mixed clip
    resolutions gives crops of several sides, even in evaluation)."""
    spec, hp = method.pair_spec(), method.hparams
    g = torch.Generator().manual_seed(1)
    samples = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        num = round(spec.audio_seconds * hp["sample_rate"]) + (i % 3) - 1  # +-1 sample of window rounding
        samples.append({"video": torch.randint(0, 256, (spec.video_frames, h, w, 3), dtype=torch.uint8, generator=g),
                        "audio": torch.rand(spec.audio_channels, num, generator=g) * 2 - 1,
                        "label": i % 2, "kind": int(PairKind.POSITIVE if i % 2 else PairKind.EASY), "index": i,
                        "clip": i, "source": i})
    return samples


def fitted(name: str, preset: str):
    torch.manual_seed(0)
    method = build_method(name, preset)
    normalizer = getattr(method, "normalizer", None)
    if normalizer is not None:  # statistics that are not the identity, so a wrong axis shows
        bands = normalizer.audio_mean.numel()
        normalizer.audio_mean.copy_(torch.linspace(-3, 1, bands))
        normalizer.audio_std.copy_(torch.linspace(0.5, 2, bands))
        normalizer.video_mean.copy_(torch.tensor([0.4, 0.5, 0.6]))
        normalizer.video_std.copy_(torch.tensor([0.2, 0.25, 0.3]))
        normalizer.fitted.fill_(True)
    return method


def seeded(fn, sample: dict, index: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(augmentation_seed(SEED, EPOCH, index))
        return fn(sample)


CASES = [(m, p) for p in ("tiny", "paper") for m in ("avts", "avc", "coattention", "cmac")]


@pytest.mark.parametrize(("name", "preset"), CASES)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_split_path_equals_the_per_sample_path_bit_for_bit(name, preset, train):
    method = fitted(name, preset)
    short = int(method.hparams["short_side"])
    n = 6 if preset == "tiny" else 2
    samples = raw_samples(method, n, sizes=[(short, short * 4 // 3), (short + 8, short + 8)])
    transform = pickle.loads(pickle.dumps(method.preprocess(train=train)))  # as the workers get it
    hosts = [seeded(transform.host, s, i) for i, s in enumerate(samples)]
    assert all(h[HOST_FRAMES].dtype == torch.uint8 for h in hosts)  # the worker hands on bytes, not floats
    batch = collate_skipping_failures(hosts)
    batch.pop("_failed")
    out = method.device_transform(batch)
    for i, sample in enumerate(samples):
        want = seeded(lambda s: reference.method_sample(method, s, train=train), sample, i)
        for key in ("video", "audio"):
            assert out[key][i].shape == want[key].shape, (key, i)
            assert torch.equal(out[key][i], want[key]), (name, preset, key, i)
        single = seeded(method.preprocess(train=train), sample, i)  # evaluation's per-sample path
        assert torch.equal(single["video"], want["video"]) and torch.equal(single["audio"], want["audio"])
        assert int(out["index"][i]) == i and single["index"] == i


def test_device_transform_passes_model_inputs_through_unchanged():
    method = fitted("avc", "tiny")
    sample = raw_samples(method, 1, sizes=[(64, 80)])[0]
    done = batch_of_one(method.preprocess(train=False)(sample))
    assert method.device_transform(done) is done


def test_specaugment_draws_and_masks_as_torchaudio():
    """The split SpecAugment draws what torchaudio's masking draws, and masks the same interval."""
    spec = torch.randn(1, 40, 101)
    for seed in range(20):
        torch.manual_seed(seed)
        want = reference.spec_augment(spec, max_warp=5, freq_mask=27, time_mask=20)
        torch.manual_seed(seed)
        got = SpecAugment(time_warp=5, freq_mask=27, time_mask=20)(spec)
        assert torch.equal(got, want), seed
