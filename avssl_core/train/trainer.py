"""The training loop every pretraining method shares.

A method (avssl_core.methods.base.PretrainMethod) says what to compute; this module owns how: device,
precision, DDP, gradient accumulation, optimiser and schedule, checkpoints, resume, logs, data-failure
accounting and throughput figures. The same call works in a plain ``python`` process and under
``torchrun --nproc_per_node N``.

Exact resume. A run killed at any point and restarted with the same command ends with the same weights,
bit for bit on CPU with ``deterministic``, as a run never interrupted. That rests on:
  * data order from (seed, epoch, rank) alone, resumed at a batch position: the sampler's ``start_step``;
  * dataset items that depend only on (epoch, index), never on worker RNG state: workers are seeded
    from (seed, epoch, rank, worker) (reproducible), but a resumed epoch restarts them, so any draw
    that is not keyed by the index would differ from the uninterrupted run;
  * checkpoints only at optimizer-step boundaries, holding every rank's RNG states, the partial sums the
    epoch's end still needs (mean loss for the plateau schedule, failure counts), optimiser, schedule
    and gradient-scaler state;
  * epoch-dependent method state derived from the epoch (``on_epoch_start``), not accumulated.

Protocols expected from the data side (avssl_core.pretext provides the real ones):
  train_set / val_set: map-style datasets (``__len__``, ``__getitem__``), optionally ``set_epoch(epoch)``
      (called before each training epoch's DataLoader is created, so fresh workers see it).
  make_sampler(num_samples, *, seed, epoch, rank, world_size, start_step, batch_size) -> an iterable of
      dataset indices with ``__len__``: this rank's share of the epoch, skipping the first
      ``start_step * batch_size`` of them; every rank must get the same length.
  collate(list of items) -> dict batch; a ``"_failed"`` entry lists items that could not be decoded
      and were dropped (a list of file names, or a dict with "failed" names and "reasons"). A batch may
      hold no sample at all (all failed, or only the sampler's padding): the step goes on without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm

from avssl_core.config import Precision, TrainConfig
from avssl_core.errors import ConfigError, DataError
from avssl_core.io_utils import write_json_atomic
from avssl_core.methods.base import PretrainMethod, StepOutput
from avssl_core.train.checkpoint import (
    check_signature,
    find_latest_checkpoint,
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from avssl_core.train.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_gradients,
    all_reduce_sum,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from avssl_core.train.failures import FAILED_KEY, DecodeFailureTracker, failed_entries
from avssl_core.train.metrics_log import MetricsWriter
from avssl_core.train.optim import LearningRateSchedule, build_optimizer
from avssl_core.train.pretext_tally import PretextTally
from avssl_core.train.seeding import (
    capture_rng_state,
    derive_seed,
    loader_generator,
    restore_rng_state,
    seed_everything,
)
from avssl_core.train.throughput import ThroughputMeter
from avssl_core.train.workers import start_dataloader_worker, worker_start_method

log = logging.getLogger(__name__)

_VALIDATION_STREAM = 2**32  # stands in for the epoch in the validation loader's seed: apart from any epoch
SUMMARY_FILE = "train_summary.json"


class IndexSampler(Protocol):
    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...


class SamplerFactory(Protocol):
    def __call__(self, num_samples: int, *, seed: int, epoch: int, rank: int, world_size: int,
                 start_step: int, batch_size: int) -> IndexSampler: ...


def default_sampler_factory(num_samples: int, *, seed: int, epoch: int, rank: int, world_size: int,
                            start_step: int, batch_size: int) -> IndexSampler:
    """The pair pipeline's resumable sampler (avssl_core.pretext)."""
    from avssl_core.pretext.epoch_order import ResumableDistributedSampler

    return ResumableDistributedSampler(num_samples, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
                                       start_step=start_step, batch_size=batch_size)


def resolve_precision(requested: Precision, device: torch.device) -> str:
    """The autocast precision for ``requested`` (TrainConfig.precision, which its constructor has checked
    against Precision) on ``device``."""
    if requested == "auto":
        if device.type != "cuda":
            return "fp32"
        # bf16 needs no loss scaling; GPUs without it (V100, T4) fall back to fp16 with a GradScaler.
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return requested


def train(
    method: PretrainMethod,
    train_set: Any,
    *,
    cfg: TrainConfig,
    out_dir: str | Path,
    val_set: Any = None,
    make_sampler: SamplerFactory = default_sampler_factory,
    collate: Callable[[list[Any]], dict[str, Any]] = default_collate,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``method`` on ``train_set``, resuming from ``out_dir``'s latest checkpoint if there is one.

    ``on_epoch_end(epoch, record)`` runs on every rank after each epoch's checkpoint is written; ``record``
    holds the epoch's ``train_loss`` and, with a ``val_set``, its ``val_accuracy``. It may raise to stop
    the run (an ablation's pruner does): the checkpoint is complete by then, so nothing is left half
    written. Under DDP it must decide the same on every rank (the record is the same on all of them).

    Returns the run summary (also written to ``out_dir/train_summary.json`` by the main process).
    """
    if cfg.epochs is None or cfg.batch_size is None:
        raise ConfigError("train.epochs and train.batch_size must be set (the pretrain stage takes them from "
                          "the method's preset)")
    ctx = init_distributed(cfg.device)
    try:
        with _determinism(cfg.deterministic):
            return _Trainer(method, train_set, val_set=val_set, cfg=cfg, out_dir=Path(out_dir),
                            make_sampler=make_sampler, collate=collate, ctx=ctx,
                            on_epoch_end=on_epoch_end).run()
    finally:
        shutdown_distributed(ctx)


@contextlib.contextmanager
def _determinism(enabled: bool) -> Iterator[None]:
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    if enabled:
        # cuBLAS reads this when it creates its handle; deterministic mode refuses to run without it.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN time and pick kernels
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


class _TrainingStepModule(nn.Module):
    """DDP and torch.compile act on ``forward``; a method's training entry point is ``training_step``."""

    def __init__(self, method: PretrainMethod) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        return self.method.training_step(batch)


class _Trainer:
    def __init__(self, method: PretrainMethod, train_set: Any, *, val_set: Any, cfg: TrainConfig,
                 out_dir: Path, make_sampler: SamplerFactory, collate: Callable, ctx: DistContext,
                 on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        self.method, self.train_set, self.val_set = method, train_set, val_set
        self.on_epoch_end = on_epoch_end
        self.cfg, self.out_dir, self.ctx = cfg, out_dir, ctx
        self.make_sampler, self.collate = make_sampler, collate
        self.device = ctx.device
        self.precision = resolve_precision(cfg.precision, self.device)
        self.channels_last = cfg.channels_last_3d and method.uses_3d_convolutions()

        method.to(self.device)
        if self.channels_last:
            _to_channels_last_3d(method)
        self.batches_per_epoch = self._batches_in_epoch(epoch=0)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.grad_accum_steps)
        self.optimizer = build_optimizer(method.parameters(), method.optim_spec())
        self.schedule = LearningRateSchedule(self.optimizer, method.optim_spec(),
                                             total_steps=cfg.epochs * self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

        # Position: the next batch to train on is batch ``batches_consumed`` of epoch ``epoch``.
        self.epoch = 0
        self.batches_consumed = 0
        self.global_step = 0  # optimizer steps taken
        self.epoch_loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.epoch_loss_count = 0  # micro-batches in epoch_loss_sum
        self.failures = DecodeFailureTracker(max_failed_fraction=cfg.max_failed_fraction,
                                             min_samples=cfg.min_samples_before_failure_check)
        self.resumed_from: str | None = None
        self._saved_at: tuple[int, int, int] | None = None  # (step, epoch, batches) of the last save/load
        self.last_epoch_record: dict[str, Any] = {}

        self.writer = MetricsWriter(out_dir, enabled=ctx.is_main)
        self.meter = ThroughputMeter(self.device)
        self._reset_window()

    # -- set-up -----------------------------------------------------------------------------------
    def _batches_in_epoch(self, epoch: int) -> int:
        sampler = self._sampler(self.train_set, epoch=epoch, start_step=0)
        counts = all_gather_objects(self.ctx, len(sampler))
        if len(set(counts)) != 1:
            # Unequal shares would leave one rank waiting forever in a gradient all-reduce.
            raise ConfigError(f"the sampler gives ranks unequal numbers of samples per epoch: {counts}")
        if counts[0] == 0:
            raise DataError("the training set is empty")
        return math.ceil(counts[0] / self.cfg.batch_size)

    def _sampler(self, dataset: Any, *, epoch: int, start_step: int) -> IndexSampler:
        return self.make_sampler(len(dataset), seed=self.cfg.seed, epoch=epoch, rank=self.ctx.rank,
                                 world_size=self.ctx.world_size, start_step=start_step,
                                 batch_size=self.cfg.batch_size)

    def _loader(self, dataset: Any, sampler: IndexSampler, *, stream: int) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.cfg.batch_size, sampler=sampler, num_workers=self.cfg.num_workers,
            collate_fn=self.collate, pin_memory=self.device.type == "cuda", drop_last=False,
            generator=loader_generator(self.cfg.seed, stream, self.ctx.rank),
            worker_init_fn=start_dataloader_worker,
            # Workers are created per epoch so that they see the dataset's set_epoch.
            persistent_workers=False,
            multiprocessing_context=worker_start_method(self.cfg.num_workers),
        )

    def _resume_or_seed(self) -> None:
        if self.ctx.is_main:
            remove_partial_writes(self.out_dir)
        path = find_latest_checkpoint(self.out_dir)
        if path is None:
            seed_everything(derive_seed(self.cfg.seed, self.ctx.rank))
            self.writer.truncate_after(global_step=0, epochs_completed=0)
            return
        state = load_checkpoint(path, map_location=self.device)
        check_signature(path, state["signature"], self.method.signature())
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self._warn_if_inexact(path, state)
        position = state["position"]
        self.epoch, self.batches_consumed = position["epoch"], position["batches_consumed"]
        self.global_step = position["global_step"]
        self._restore_rank_state(state["ranks"])
        self.resumed_from = str(path)
        self._saved_at = (self.global_step, self.epoch, self.batches_consumed)
        self.writer.truncate_after(global_step=self.global_step, epochs_completed=self.epoch)
        if self.ctx.is_main:
            log.info("resumed from %s (epoch %d, batch %d, step %d)", path, self.epoch,
                     self.batches_consumed, self.global_step)

    def _warn_if_inexact(self, path: Path, state: dict[str, Any]) -> None:
        """Settings that change the data order or the schedule make the resumed run differ from an
        uninterrupted one; it may still be what the user wants (e.g. more epochs), so warn, not refuse."""
        before = state.get("train_config", {})
        changed = [f"{key} {before[key]} -> {getattr(self.cfg, key)}"
                   for key in ("seed", "batch_size", "grad_accum_steps", "epochs")
                   if key in before and before[key] != getattr(self.cfg, key)]
        if state.get("world_size") != self.ctx.world_size:
            changed.append(f"world_size {state.get('world_size')} -> {self.ctx.world_size}")
        if changed and self.ctx.is_main:
            log.warning("resuming from %s with changed settings (%s): the run will not match an "
                        "uninterrupted one", path, "; ".join(changed))

    def _restore_rank_state(self, ranks: list[dict[str, Any]]) -> None:
        if len(ranks) == self.ctx.world_size:
            mine = ranks[self.ctx.rank]
            restore_rng_state(mine["rng"])
            self.failures.load_state_dict(mine["failures"])
            self.epoch_loss_sum.fill_(mine["epoch_loss_sum"])
            self.epoch_loss_count = mine["epoch_loss_count"]
            return
        # Another world size (warned about above): the data order changes anyway, so reseed and go on.
        seed_everything(derive_seed(self.cfg.seed, self.ctx.rank, self.global_step))
        if self.ctx.is_main:  # keep the totals once
            self.failures.samples_seen = sum(r["failures"]["samples_seen"] for r in ranks)
            self.failures.failed_files = [f for r in ranks for f in r["failures"]["failed_files"]]
            self.epoch_loss_sum.fill_(sum(r["epoch_loss_sum"] for r in ranks))
            self.epoch_loss_count = sum(r["epoch_loss_count"] for r in ranks)

    def _wrap_model(self) -> None:
        step_module: nn.Module = _TrainingStepModule(self.method)
        # Compiled inside DDP, not around it, so that the steps that bypass DDP (see _micro_step) run
        # the same compiled code.
        self.local_runner = torch.compile(step_module) if self.cfg.compile else step_module
        self.ddp: DistributedDataParallel | None = None
        self.runner = self.local_runner
        if self.ctx.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.local_runner, device_ids=device_ids)
            self.runner = self.ddp

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._resume_or_seed()
        barrier(self.ctx)  # nobody trains while the main process is still truncating logs
        self._wrap_model()
        self.method.train()
        total = self.cfg.epochs * self.steps_per_epoch
        if self.cfg.max_steps is not None:
            total = min(total, self.cfg.max_steps)
        self.bar = tqdm(total=total, initial=min(self.global_step, total), unit="step", dynamic_ncols=True,
                        disable=not (self.ctx.is_main and self.cfg.progress), desc=self.method.name)
        try:
            while self.epoch < self.cfg.epochs and not self._step_cap_reached():
                self._train_epoch()
                if self.batches_consumed < self.batches_per_epoch:
                    break  # stopped by max_steps inside the epoch
                self._finish_epoch()
            self._check_failures()
            if self._saved_at != (self.global_step, self.epoch, self.batches_consumed):
                self._save()
        finally:
            self.bar.close()
        return self._summary()

    def _step_cap_reached(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def _train_epoch(self) -> None:
        self.method.on_epoch_start(self.epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(self.epoch)
        self.batches_per_epoch = self._batches_in_epoch(self.epoch)
        if self.batches_consumed >= self.batches_per_epoch:
            return  # killed between the epoch's last step and its end-of-epoch checkpoint
        sampler = self._sampler(self.train_set, epoch=self.epoch, start_step=self.batches_consumed)
        batches = iter(self._loader(self.train_set, sampler, stream=self.epoch))
        self.meter.restart_window()
        while self.batches_consumed < self.batches_per_epoch and not self._step_cap_reached():
            # The epoch's last group may be short; its loss is averaged over the batches it has.
            group = min(self.cfg.grad_accum_steps, self.batches_per_epoch - self.batches_consumed)
            self.optimizer.zero_grad(set_to_none=True)
            for i in range(group):
                with self.meter.waiting():
                    batch = next(batches, None)
                if batch is None:
                    raise DataError(f"the sampler ran out after {self.batches_consumed + i} of "
                                    f"{self.batches_per_epoch} batches of epoch {self.epoch}")
                self._micro_step(batch, group=group, synchronize=i == group - 1)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.after_optimizer_step()
            self.method.after_optimizer_step()
            self.batches_consumed += group
            self.global_step += 1
            self.bar.update(1)
            if self.global_step % self.cfg.log_every_steps == 0:
                self._log_window()
            # At the epoch's end the end-of-epoch checkpoint follows at once; no need for two.
            if (self.global_step % self.cfg.checkpoint_every_steps == 0
                    and self.batches_consumed < self.batches_per_epoch):
                self._save()
                self.meter.restart_window()

    def _micro_step(self, batch: dict[str, Any], *, group: int, synchronize: bool) -> None:
        failed = failed_entries(batch.pop(FAILED_KEY, None))
        decoded = _batch_len(batch)
        self.failures.record(decoded=decoded, failed=failed)
        if self.ddp is None:
            if decoded:
                self._forward_backward(batch, self.runner, group=group)
            return
        # Under DDP a rank may get a batch with no sample (the sampler's padding, or every sample failed)
        # and must not run DDP's forward then: DDP exchanges buffers and bucket layouts in forward and
        # gradients in backward, and the other ranks would wait for it forever.
        if not synchronize:
            # Gradients accumulate locally, as under ddp.no_sync(), but without DDP's forward at all.
            if decoded:
                self._forward_backward(batch, self.local_runner, group=group)
            return
        if all_reduce_sum(self.ctx, [float(decoded == 0)])[0] == 0:
            self._forward_backward(batch, self.runner, group=group)  # DDP all-reduces in backward
            return
        if decoded:
            self._forward_backward(batch, self.local_runner, group=group)
        all_reduce_gradients(self.ctx, [p for p in self.method.parameters() if p.requires_grad])

    def _forward_backward(self, batch: dict[str, Any], module: nn.Module, *, group: int) -> None:
        batch = self._to_device(batch)
        with self._autocast():
            out: StepOutput = module(batch)
        self.scaler.scale(out.loss.float() / group).backward()
        loss = out.loss.detach().to(torch.float64)
        self.epoch_loss_sum += loss
        self.epoch_loss_count += 1
        self._window_loss += loss
        self._window_batches += 1
        for key, value in out.metrics.items():
            value = value.detach() if isinstance(value, torch.Tensor) else value
            self._window_metrics[key] = self._window_metrics.get(key, 0.0) + value
        self.meter.add_samples(_batch_len(batch))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Move the batch's tensors (and lists of them: crops of differing sides) to the device, run the
        method's device half of the data path there (crop resize, flip, normalisation, spectrograms,
        SpecAugment, in full precision: outside autocast), then lay 5-D clips out channels-last."""
        def move(value: Any) -> Any:
            if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
                return [v.to(self.device, non_blocking=True) for v in value]
            if not isinstance(value, torch.Tensor):
                return value  # including the host's augmentation draws (a dict): read on the CPU
            return value.to(self.device, non_blocking=True)

        def layout(value: Any) -> Any:
            if self.channels_last and isinstance(value, torch.Tensor) and value.dim() == 5:
                return value.contiguous(memory_format=torch.channels_last_3d)
            return value

        batch = self.method.device_transform({key: move(value) for key, value in batch.items()})
        return {key: layout(value) for key, value in batch.items()}

    # -- logging ----------------------------------------------------------------------------------
    def _reset_window(self) -> None:
        self._window_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._window_batches = 0
        self._window_metrics: dict[str, Any] = {}

    def _log_window(self) -> None:
        # Means over all ranks' micro-batches; a rank's keys may be missing if all its batches were empty.
        keys = sorted({k for rank_keys in all_gather_objects(self.ctx, sorted(self._window_metrics))
                       for k in rank_keys})
        speed = self.meter.report_window()
        local = [float(self._window_loss), float(self._window_batches),
                 *(float(self._window_metrics.get(k, 0.0)) for k in keys),
                 speed["samples_per_s"], speed["data_wait_fraction"]]
        total = all_reduce_sum(self.ctx, local)
        batches = max(total[1], 1.0)
        record = {
            "epoch": self.epoch, "step": self.global_step, "lr": self._lr(),
            **{k: v / batches for k, v in zip(keys, total[2:-2], strict=True)},
            "loss": total[0] / batches,
            "samples_per_s": total[-2],  # all ranks together
            "data_wait_fraction": total[-1] / self.ctx.world_size,
            **{k: v for k, v in speed.items() if k.startswith("peak_")},  # the main process's memory
        }
        self.writer.log_step(record)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
        self._reset_window()
        self._check_failures()

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _check_failures(self) -> None:
        seen, failed = all_reduce_sum(self.ctx, [self.failures.samples_seen, len(self.failures.failed_files)])
        if self.failures.over_threshold(samples_seen=int(seen), failed_count=int(failed)):
            files = [f for rank_files in all_gather_objects(self.ctx, self.failures.failed_files)
                     for f in rank_files]
            self.failures.check(samples_seen=int(seen), failed_files=files)

    # -- epoch end --------------------------------------------------------------------------------
    def _finish_epoch(self) -> None:
        loss_sum, count = all_reduce_sum(self.ctx, [float(self.epoch_loss_sum), self.epoch_loss_count])
        mean_loss = loss_sum / count if count else math.nan
        if count:
            self.schedule.after_epoch(mean_loss)
        self.schedule.before_epoch(self.epoch + 1)
        self._check_failures()
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.global_step, "train_loss": mean_loss,
                                  "lr": self._lr(), "curriculum_stage": self._curriculum_stage()}
        if self.val_set is not None and self._validates_after(self.epoch):
            record.update(self._validate())
        self.writer.log_epoch(record)
        self.last_epoch_record = record
        self.epoch += 1
        self.batches_consumed = 0
        self.epoch_loss_sum.zero_()
        self.epoch_loss_count = 0
        self._save()
        self.meter.restart_window()
        if self.on_epoch_end is not None:
            self.on_epoch_end(record["epoch"], dict(record))

    def _validates_after(self, epoch: int) -> bool:
        every = self.cfg.validate_every_epochs
        return (epoch + 1) % every == 0 or epoch + 1 == self.cfg.epochs

    def _curriculum_stage(self) -> int | None:
        try:
            return self.method.pair_spec().curriculum_stage_at(self.epoch)
        except NotImplementedError:
            return None

    @torch.no_grad()
    def _validate(self) -> dict[str, Any]:
        """Pretext accuracy on held-out pairs, overall and per pair kind, summed over ranks."""
        self.method.eval()
        tally = PretextTally()
        sampler = self._sampler(self.val_set, epoch=0, start_step=0)
        for batch in self._loader(self.val_set, sampler, stream=_VALIDATION_STREAM):
            tally.failed += len(failed_entries(batch.pop(FAILED_KEY, None)))
            if _batch_len(batch) == 0:
                continue
            with self._autocast():
                out = self.method.evaluation_step(self._to_device(batch))
            if not tally.add(out):
                self.method.train()
                return {}
        self.method.train()
        totals = all_reduce_sum(self.ctx, tally.counts + [tally.failed])
        result = PretextTally.result(totals[:-1], int(totals[-1]))
        return {"val_accuracy": result["accuracy"], "val_accuracy_by_kind": result["accuracy_by_kind"],
                "val_failed": result["failed"], **({"val_chance": result["chance"]} if result["chance"] else {})}

    # -- checkpoints ------------------------------------------------------------------------------
    def _save(self) -> None:
        # Every rank's RNG and partial sums: the collective runs on all ranks, only the main one writes.
        ranks = all_gather_objects(self.ctx, {
            "rng": capture_rng_state(),
            "failures": self.failures.state_dict(),
            "epoch_loss_sum": float(self.epoch_loss_sum),
            "epoch_loss_count": self.epoch_loss_count,
        })
        if self.ctx.is_main:
            state = {
                "signature": self.method.signature(),
                "model": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "position": {"epoch": self.epoch, "batches_consumed": self.batches_consumed,
                             "global_step": self.global_step},
                "curriculum_stage": self._curriculum_stage(),  # informational: follows from the epoch
                "ranks": ranks,
                "world_size": self.ctx.world_size,
                "train_config": dataclasses.asdict(self.cfg),
            }
            save_checkpoint(self.out_dir, state, global_step=self.global_step, keep=self.cfg.keep_checkpoints)
        self._saved_at = (self.global_step, self.epoch, self.batches_consumed)

    # -- summary ----------------------------------------------------------------------------------
    def _summary(self) -> dict[str, Any]:
        failed = [f for files in all_gather_objects(self.ctx, self.failures.failed_files) for f in files]
        seen = int(all_reduce_sum(self.ctx, [self.failures.samples_seen])[0])
        latest = find_latest_checkpoint(self.out_dir) if self.ctx.is_main else None
        summary = {
            **self.method.signature(),
            "global_step": self.global_step,
            "epochs_completed": self.epoch,
            "stopped_by": "max_steps" if self.epoch < self.cfg.epochs else "epochs",
            "resumed_from": self.resumed_from,
            "train_loss": self.last_epoch_record.get("train_loss"),
            "val_accuracy": self.last_epoch_record.get("val_accuracy"),
            "samples_seen": seen,
            "failed_count": len(failed),
            "failed_files": failed,
            "world_size": self.ctx.world_size,
            "device": str(self.device),
            "precision": self.precision,
            "checkpoint": str(latest) if latest else None,
            **self.meter.report_run(),
        }
        if self.ctx.is_main:
            write_json_atomic(self.out_dir / SUMMARY_FILE, summary)
        barrier(self.ctx)
        return summary


def _to_channels_last_3d(module: nn.Module) -> None:
    """Store 5-D weights (3-D convolutions) channels-last. ``module.to(memory_format=...)`` would also
    try the 4-D weights of 2-D convolutions (spectrogram networks), which that format cannot hold."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)


def _batch_len(batch: dict[str, Any]) -> int:
    """Samples in a collated batch: the length of its first tensor (0 when every sample failed)."""
    index = batch.get("index")
    if isinstance(index, torch.Tensor):
        return int(index.shape[0])
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return 0

