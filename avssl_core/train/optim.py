"""Optimiser and learning-rate schedule from a method's OptimSpec.

Schedules:
  constant  the base rate (after warmup)
  cosine    half a cosine from the base rate to 0 over the run's optimizer steps (after warmup)
  plateau   x0.1 when the epoch's mean training loss has not improved for ``plateau_patience`` epochs
            (torch's ReduceLROnPlateau, stepped once per epoch); at each of ``plateau_restart_epochs``
            the tracking restarts (best loss and bad-epoch count forgotten), the rate stays where it is
Warmup (``warmup_steps`` > 0) ramps linearly up to the base rate first, for every schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from avssl_core.errors import ConfigError
from avssl_core.methods.base import OptimSpec

SCHEDULES = ("constant", "cosine", "plateau")


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: OptimSpec) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    raise ConfigError(f"optimizer {spec.name!r}: expected sgd, adam or adamw")


class LearningRateSchedule:
    """Per-step factor (warmup, cosine) as a LambdaLR; per-epoch plateau decay as ReduceLROnPlateau.

    The two cannot both own the rate: LambdaLR rewrites it from the base rate at every step, which
    would undo a plateau decay. So with ``plateau`` the LambdaLR only runs during warmup.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, spec: OptimSpec, *, total_steps: int) -> None:
        if spec.schedule not in SCHEDULES:
            raise ConfigError(f"schedule {spec.schedule!r}: expected one of {SCHEDULES}")
        self.spec = spec
        self.total_steps = max(1, total_steps)
        # A plain function, not a bound method: LambdaLR's state_dict then stores no lambda state.
        self.per_step = LambdaLR(optimizer, lambda step: self._factor(step))
        self.per_epoch = (ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=spec.plateau_patience)
                          if spec.schedule == "plateau" else None)

    def _factor(self, step: int) -> float:
        warmup = self.spec.warmup_steps
        factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if self.spec.schedule == "cosine":
            progress = min(1.0, max(0, step - warmup) / max(1, self.total_steps - warmup))
            factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
        return factor

    def after_optimizer_step(self) -> None:
        if self.per_epoch is None or self.per_step.last_epoch < self.spec.warmup_steps:
            self.per_step.step()

    def after_epoch(self, mean_loss: float) -> None:
        if self.per_epoch is not None:
            self.per_epoch.step(mean_loss)

    def before_epoch(self, epoch: int) -> None:
        """Called when ``epoch`` (0-based) is next; the trainer calls it before saving the epoch-end
        checkpoint, so a resumed run holds the restarted tracking too.

        Why restart: AVTS Sec. 3.1 scales the rate by 0.1 when the loss fails to decrease for 5 epochs,
        and its second curriculum stage (Sec. 2.4) fine-tunes on 25% hard negatives, whose loss is
        higher than the easy stage's best. Compared with that best, every hard epoch would count as a
        failure to decrease and the rate would fall x0.1 every 6 epochs through the whole stage (to
        about 1e-8 over AVTS's 40 hard epochs). Restarted, the hard stage starts at the rate the easy
        stage ended with and decays only when its own loss stalls.
        """
        sched = self.per_epoch
        if sched is not None and epoch in self.spec.plateau_restart_epochs:
            sched.best, sched.num_bad_epochs, sched.cooldown_counter = sched.mode_worse, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"per_step": self.per_step.state_dict(),
                "per_epoch": self.per_epoch.state_dict() if self.per_epoch is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.per_epoch is not None:
            self.per_epoch.load_state_dict(state["per_epoch"])
