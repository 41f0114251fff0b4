"""The pair dataset: index -> recipe -> decoded raw sample -> ``preprocess``, in the worker.

For training, ``preprocess`` is the host half of the method's transform (``method.preprocess().host``):
uint8 crops, the waveform and the augmentation draws; the trainer runs the device half on each batch
(``PretrainMethod.device_transform``). A full transform (evaluation's per-sample path) works too.

Item ``i`` is pair ``i`` of the current epoch (``set_epoch``), or of the epoch given with it when the
index is an ``(epoch, i)`` pair (ResumableDistributedSampler(with_epoch=True), for persistent workers).
A pair whose files cannot be decoded is not replaced or zero-filled: the item is a ``FailedSample`` naming
the file and the reason, and ``collate_skipping_failures`` leaves it out of the batch and lists it under
``batch["_failed"]`` so the trainer can count failures and stop when there are too many.
Video frames come from the frame store (avssl_core/data/frame_store.py) when one is given and holds the
clip, else from the mp4: the same frames either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from avssl_core.data.frame_store import FrameStore, FrameStoreError
from avssl_core.pretext.decode import DecodeError, VideoDevice, VideoFrameReader, read_audio_window
from avssl_core.pretext.epoch_order import PAD_INDEX
from avssl_core.pretext.sampling import PairRecipe, PairSampler

AUGMENT_SEED_TAG = 0x41554731  # "AUG1": augmentation draws, apart from the pair and order streams

FAILED_KEY = "_failed"


@dataclass(frozen=True)
class FailedSample:
    """An item that could not be decoded: which pair, which file, why."""

    index: int
    path: str
    reason: str


@dataclass(frozen=True)
class PaddingSample:
    """The distributed sampler's padding position: no sample, not a failure."""


class PairDataset(Dataset):
    """Map-style dataset of decoded pairs; ``len`` is the sampler's ``samples_per_epoch``."""

    def __init__(self, sampler: PairSampler, *, preprocess: Callable[[dict], dict] | None = None,
                 epoch: int = 0, seek_mode: str = "exact", decoder_cache_size: int = 8,
                 video_decoder: VideoDevice = "cpu", frame_store: str | Path | None = None) -> None:
        self.sampler = sampler
        self.spec = sampler.spec
        self.preprocess = preprocess
        self.epoch = epoch
        self.frames = VideoFrameReader(capacity=decoder_cache_size, seek_mode=seek_mode, device=video_decoder)
        # A stored frame is a copy from the page cache, cheaper than any decoder (NVDEC included), so
        # video_decoder only decodes the clips the store lacks.
        self.store = FrameStore(frame_store) if frame_store is not None else None
        self.failures: list[FailedSample] = []  # this process's failures; workers report through the collate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.sampler.samples_per_epoch

    def __getitem__(self, item: int | tuple[int, int]) -> dict | FailedSample | PaddingSample:
        epoch, i = item if isinstance(item, tuple) else (self.epoch, item)
        if i == PAD_INDEX:
            return PaddingSample()
        recipe = self.sampler.recipe(epoch, i)
        try:
            sample = self.raw_sample(recipe)
        except DecodeError as exc:
            failure = FailedSample(index=i, path=exc.path, reason=exc.reason)
            self.failures.append(failure)
            return failure
        if self.preprocess is None:
            return sample
        # Augmentations (random crops, flips) draw from torch's RNG. Seed it from (seed, epoch, index),
        # like the recipe, so an item is the same whichever worker makes it and however far that worker
        # got: a resumed epoch restarts its workers, and must still see the same crops.
        with seeded_cpu_rng(augmentation_seed(self.sampler.seed, epoch, i)):
            return self.preprocess(sample)

    def raw_sample(self, recipe: PairRecipe) -> dict[str, Any]:
        """Decode a recipe into the raw-sample format of avssl_core.methods.base (raises DecodeError)."""
        index, spec = self.sampler.index, self.spec
        video = self._stored_frames(recipe)
        if video is None:
            video = self.frames.read(str(index.video_path[recipe.video_row]), recipe.frame_indices)
        c = recipe.audio_row
        clip_rate = int(index.sample_rate[c])
        target_rate = spec.audio_sample_rate or clip_rate
        audio = read_audio_window(
            str(index.audio_path[c]), recipe.audio_start_sample, recipe.audio_num_samples,
            channels=spec.audio_channels, clip_rate=clip_rate, target_rate=target_rate,
            target_len=round(spec.audio_seconds * target_rate))
        return {"video": video, "audio": audio, "label": recipe.label, "kind": int(recipe.kind),
                "index": recipe.index, "clip": recipe.video_row,
                "source": int(index.video_group[recipe.video_row])}

    def _stored_frames(self, recipe: PairRecipe) -> torch.Tensor | None:
        """The recipe's frames from the frame store; None without a store or an entry for the clip."""
        if self.store is None:
            return None
        index, row = self.sampler.index, recipe.video_row
        try:
            return self.store.read(str(index.video_id[row]), str(index.clip_id[row]), recipe.frame_indices,
                                   (int(index.num_frames[row]), int(index.height[row]), int(index.width[row])))
        except FrameStoreError as exc:
            raise DecodeError(exc.path, exc.reason) from exc


@contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Torch's CPU generator seeded with ``seed`` inside the block, and put back as it was after it, so the
    caller's own stream is untouched (with num_workers=0 that is the training process).

    Only the CPU generator: the host half draws nothing else. ``torch.manual_seed`` would also seed every
    accelerator's generators, lazily where none is initialised, which records a Python traceback per call
    (0.4 ms, a third of AVC paper's CPU time per sample), and would reset the training process's CUDA
    stream at every item.
    """
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for item ``index`` of ``epoch``, apart from the streams the sampler uses."""
    state = np.random.SeedSequence([AUGMENT_SEED_TAG, seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def collate_skipping_failures(batch: list) -> dict:
    """Stack the decoded items; list the failed ones under ``batch["_failed"]``; drop padding silently.

    ``batch["_failed"] = {"num_failed": n, "failed": [paths], "reasons": [messages], "indices": [i]}``
    is always present (n may be 0). When nothing decoded, the batch holds only that key.
    """
    failed = [item for item in batch if isinstance(item, FailedSample) or item is None]
    good = [item for item in batch if isinstance(item, dict)]
    collated: dict = collate_items(good) if good else {}
    collated[FAILED_KEY] = {
        "num_failed": len(failed),
        "failed": [f.path if f is not None else "?" for f in failed],
        "reasons": [f.reason if f is not None else "dataset returned None" for f in failed],
        "indices": [f.index if f is not None else -1 for f in failed],
    }
    return collated


def collate_items(items: list[dict]) -> dict:
    """``default_collate``, except that a tensor whose shape differs between items (the host side's uint8
    crops, whose side depends on the drawn scale) is kept as a list of tensors: they are resized on the
    device, a group of equal sides at a time."""
    ragged = {k for k, v in items[0].items()
              if isinstance(v, torch.Tensor) and any(item[k].shape != v.shape for item in items[1:])}
    collated = default_collate([{k: v for k, v in item.items() if k not in ragged} for item in items])
    for key in ragged:
        collated[key] = [item[key] for item in items]
    return collated


def batch_size_of(batch: dict) -> int:
    """Samples in a collated batch (0 when every item failed or was padding)."""
    for key, value in batch.items():
        if key != FAILED_KEY and isinstance(value, torch.Tensor):
            return int(value.shape[0])
    return 0


def failed_entries(value: Any) -> list[str]:
    """The batch's ``"_failed"`` entry as "file" or "file (reason)" strings."""
    if not value:
        return []
    if isinstance(value, dict):
        paths = [str(p) for p in value.get("failed", [])]
        reasons = list(value.get("reasons", [])) + [""] * len(paths)
        return [f"{p} ({r})" if r else p for p, r in zip(paths, reasons, strict=False)]
    return [str(p) for p in value]
