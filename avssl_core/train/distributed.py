"""One code path for 1 or N processes: torchrun's environment decides, the trainer never branches on it.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. Without them (plain ``python``) the run is a single process
and no process group is created, so a laptop run pays nothing for DDP. The collectives below are no-ops
with one process; with several, every rank must call them at the same point of the loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from avssl_core.train.devices import choose_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_process_group: bool  # False when the caller had already initialised one: leave it alone
    # Small control messages (flags, counts, logged metrics, pickled objects) go over gloo on the CPU
    # even when gradients go over NCCL: exchanging them through GPU tensors would stall the CPU until
    # the GPU has drained its queue. None: the default group, which is gloo already.
    control_group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str) -> DistContext:
    """Read torchrun's environment, pick this process's device and join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_preference, "train.device", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and all_gather_object use the current device
    owns = False
    if world_size > 1 and not dist.is_initialized():
        # gloo for CPU tensors, NCCL for CUDA tensors: a process group serves one kind well.
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
        owns = True
    control_group = None
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        if dist.get_backend() != "gloo":
            control_group = dist.new_group(backend="gloo")
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device,
                       owns_process_group=owns, control_group=control_group)


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier(group=ctx.control_group)


def all_reduce_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64, so counts stay exact)."""
    if not ctx.is_distributed:
        return [float(v) for v in values]
    buf = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=ctx.control_group)
    return buf.tolist()


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not ctx.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj, group=ctx.control_group)
    return gathered


def all_reduce_gradients(ctx: DistContext, parameters: list[torch.nn.Parameter]) -> None:
    """Average gradients over ranks by hand, as DDP would (a missing gradient counts as zeros).

    For the step where some rank has no sample to run (see the trainer): DDP's own reduction only
    happens inside a forward/backward, which that rank cannot run.
    """
    for param in parameters:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(ctx.world_size)
